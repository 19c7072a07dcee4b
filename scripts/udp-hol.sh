#!/usr/bin/env bash
# Head-of-line blocking, measured: three clients ping at once (10 pings each,
# 1 s timeout) through a load balancer in front of three echo servers that
# drop 4 in 11 datagrams (seeds 1, 2, 3). First through the serial design of
# the lab's usual solutions (tests/udp_lab/SerialLB.py), then through
# `dnslb udp-lb`. Prints each client's summary and the wall time.
#
# Usage: scripts/udp-hol.sh
set -euo pipefail

. "$(dirname "$0")/lib.sh"
dnslb=$(dnslb_bin)
cd "$root"
stop_servers_on_exit

# run NAME LB-COMMAND...: fresh seeded echo servers, the load balancer, three clients.
run() {
    local name=$1 backends=() clients=() i started elapsed out
    shift
    for i in 1 2 3; do
        start_server port "$dnslb" udp-echo 0 --bind 127.0.0.1 --seed "$i"
        backends+=(127.0.0.1 "$port")
    done
    start_server port "$@" "${backends[@]}"
    out=$(mktemp -d)
    started=${EPOCHREALTIME/./}
    for i in 1 2 3; do
        "$dnslb" ping 127.0.0.1 "$port" --count 10 --timeout 1 >"$out/$i" &
        clients+=("$!")
    done
    for i in "${clients[@]}"; do
        wait "$i" || true
    done
    elapsed=$(( (${EPOCHREALTIME/./} - started) / 1000 ))
    echo "$name: three clients done in $elapsed ms"
    for i in 1 2 3; do
        echo "  client $i: $(grep 'packets transmitted' "$out/$i")"
    done
    rm -r "$out"
    stop_servers
    server_pids=()
}

run "serial lab design" python3 tests/udp_lab/SerialLB.py 0
run "dnslb udp-lb" "$dnslb" udp-lb 0 --bind 127.0.0.1
