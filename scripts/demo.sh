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
out=${CARGO_TARGET_DIR:-$root/target}/demo
mkdir -p "$out"
stop_servers_on_exit
# The servers' logs (the LS's -v lines, the counters each prints when it
# stops) show on the terminal, each line after the server's name.
server_log=-

# started <name> <table or role>: says which server listens where.
started() {
    local addr=${1}_addr
    echo "$1: listening on ${!addr} ($2)" >&2
}
start_server ts1 "$bin" ts 0 --bind 127.0.0.1 --table "$root/data/PROJ2-DNSTS1.txt"
started ts1 "TS, data/PROJ2-DNSTS1.txt"
start_server ts2 "$bin" ts 0 --bind 127.0.0.1 --table "$root/data/PROJ2-DNSTS2.txt"
started ts2 "TS, data/PROJ2-DNSTS2.txt"
start_server ls "$bin" ls 0 127.0.0.1 "$ts1" 127.0.0.1 "$ts2" --bind 127.0.0.1 --timeout "${DEMO_TIMEOUT:-5}" -v
started ls "LS, asking ts1 and ts2"

echo "client: resolving data/PROJ2-HNS.txt (misses take ${DEMO_TIMEOUT:-5} s)" >&2
"$bin" client 127.0.0.1 "$ls" --input "$root/data/PROJ2-HNS.txt" --output "$out/RESOLVED.txt" >/dev/null
echo "--- $out/RESOLVED.txt" >&2
cat "$out/RESOLVED.txt"
if cmp -s "$out/RESOLVED.txt" "$root/data/example-RESOLVED.txt"; then
    echo "--- identical to data/example-RESOLVED.txt" >&2
fi
echo "--- stopping the servers" >&2
