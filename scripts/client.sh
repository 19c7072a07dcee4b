#!/usr/bin/env bash
# The client as in the course: scripts/client.sh <lsHost> <lsPort>.
# Reads PROJ2-HNS.txt and writes RESOLVED.txt in the current directory;
# extra arguments go to `dnslb client` (e.g. --input data/PROJ2-HNS.txt).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
if [ $# -lt 2 ]; then
    echo "usage: $0 <lsHost> <lsPort> [dnslb client options]" >&2
    exit 2
fi
exec "$(dnslb_bin)" client "$@"
