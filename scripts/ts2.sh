#!/usr/bin/env bash
# TS2 as in the course: scripts/ts2.sh <port>, table data/PROJ2-DNSTS2.txt.
# Extra arguments go to `dnslb ts` (e.g. --dialect 2022, -v).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
course_ts 2 "$@"
