#!/usr/bin/env bash
# TS1 as in the course: scripts/ts1.sh <port>, table data/PROJ2-DNSTS1.txt.
# Extra arguments go to `dnslb ts` (e.g. --dialect 2022, -v).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
if [ $# -lt 1 ]; then
    echo "usage: $0 <port> [dnslb ts options]" >&2
    exit 2
fi
port=$1
shift
exec "$(dnslb_bin)" ts "$port" --table "$root/data/PROJ2-DNSTS1.txt" "$@"
