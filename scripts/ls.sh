#!/usr/bin/env bash
# The LS as in the course: scripts/ls.sh <lsPort> <ts1Host> <ts1Port> <ts2Host> <ts2Port>.
# Extra arguments go to `dnslb ls` (e.g. --timeout 1, -v).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
if [ $# -lt 5 ]; then
    echo "usage: $0 <lsPort> <ts1Host> <ts1Port> <ts2Host> <ts2Port> [dnslb ls options]" >&2
    exit 2
fi
exec "$(dnslb_bin)" ls "$@"
