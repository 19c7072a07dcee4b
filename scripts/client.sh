#!/usr/bin/env bash
# The client as in the course: scripts/client.sh <lsHost> <lsPort>.
# Reads PROJ2-HNS.txt from the current directory, or else the course's
# data/PROJ2-HNS.txt, and writes RESOLVED.txt in the current directory;
# extra arguments go to `dnslb client` (e.g. --input names.txt).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
if [ $# -lt 2 ]; then
    echo "usage: $0 <lsHost> <lsPort> [dnslb client options]" >&2
    exit 2
fi
input=()
if [[ " $* " != *" --input "* ]] && [ ! -e PROJ2-HNS.txt ]; then
    if [ ! -e "$root/data/PROJ2-HNS.txt" ]; then
        echo "$0: no PROJ2-HNS.txt in $PWD nor in $root/data; pass --input <file>" >&2
        exit 2
    fi
    echo "$0: reading $root/data/PROJ2-HNS.txt (no PROJ2-HNS.txt in $PWD)" >&2
    input=(--input "$root/data/PROJ2-HNS.txt")
fi
exec "$(dnslb_bin)" client "$@" "${input[@]}"
