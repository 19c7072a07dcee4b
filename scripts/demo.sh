#!/usr/bin/env bash
# Runs the whole system on the bundled course data: two TSes and the LS on
# loopback (free ports), then the client on data/PROJ2-HNS.txt. Prints
# RESOLVED.txt and stops everything it started.
#
# DEMO_TIMEOUT sets the LS timeout in seconds (default 5, as in the spec;
# the one name no TS holds is answered after it).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bin=$(dnslb_bin)
out=$root/target/demo
mkdir -p "$out"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

# start <var> <args...>: starts `dnslb <args>` in the background and stores
# the port from its first line (`listening on <addr>:<port>`) in <var>.
start() {
    local var=$1 fd line
    shift
    exec {fd}< <(exec "$bin" "$@")
    pids+=($!)
    if ! read -r -t 10 line <&"$fd"; then
        echo "demo: dnslb $* did not start" >&2
        exit 1
    fi
    printf -v "$var" '%s' "${line##*:}"
    echo "dnslb $1: $line" >&2
}

start ts1 ts 0 --bind 127.0.0.1 --table "$root/data/PROJ2-DNSTS1.txt"
start ts2 ts 0 --bind 127.0.0.1 --table "$root/data/PROJ2-DNSTS2.txt"
start ls ls 0 127.0.0.1 "$ts1" 127.0.0.1 "$ts2" --bind 127.0.0.1 --timeout "${DEMO_TIMEOUT:-5}" -v

echo "client: resolving data/PROJ2-HNS.txt (misses take ${DEMO_TIMEOUT:-5} s)" >&2
"$bin" client 127.0.0.1 "$ls" --input "$root/data/PROJ2-HNS.txt" --output "$out/RESOLVED.txt" >/dev/null
echo "--- $out/RESOLVED.txt" >&2
cat "$out/RESOLVED.txt"
if cmp -s "$out/RESOLVED.txt" "$root/data/example-RESOLVED.txt"; then
    echo "--- identical to data/example-RESOLVED.txt" >&2
fi
