#!/usr/bin/env bash
# The UDP ping lab end to end: three echo servers that drop 4 in 11
# datagrams (ports 2526-2528, or free ports when those are taken), the
# round-robin load balancer in front of them on a free port, and ten pings
# through it. Prints which server each ping went to, stops everything it
# started and exits 0.
#
# Usage: scripts/udp-demo.sh            (a different loss pattern each run)
#        SEED=7 scripts/udp-demo.sh     (the same pattern for the same seed)
set -euo pipefail

cd "$(dirname "$0")/.."
cargo build --release --quiet
dnslb=target/release/dnslb

pids=()
logs=$(mktemp -d)
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$logs"
}
trap cleanup EXIT

# start NAME ARGS...: runs `dnslb ARGS...` (stderr to $logs/NAME.log),
# records its pid and sets $addr from its `listening on <addr>` line, $pid
# and $out (its stdout); returns 1 if it exits without that line.
start() {
    local name=$1 line
    shift
    exec {out}< <(exec "$dnslb" "$@" 2>"$logs/$name.log")
    pid=$!
    pids+=("$pid")
    if ! read -r line <&"$out"; then
        return 1
    fi
    addr=${line#listening on }
}

seed_args() {
    if [[ -n "${SEED:-}" ]]; then
        echo "--seed $((SEED + $1))"
    fi
}

backends=()
for i in 1 2 3; do
    port=$((2525 + i))
    # shellcheck disable=SC2046 # seed_args is zero or two words
    if ! start "server$i" udp-echo "$port" --bind 127.0.0.1 $(seed_args "$i"); then
        echo "port $port is taken: server$i uses a free port"
        start "server$i" udp-echo 0 --bind 127.0.0.1 $(seed_args "$i")
    fi
    echo "server$i (drops 4/11): $addr"
    backends+=(127.0.0.1 "${addr##*:}")
done

start lb udp-lb 0 --bind 127.0.0.1 -v "${backends[@]}"
lb_port=${addr##*:} lb_pid=$pid lb_out=$out
echo "load balancer: $addr"
echo

status=0
"$dnslb" ping 127.0.0.1 "$lb_port" --count 10 --timeout 1 || status=$?

# Stop the load balancer so its log is complete: its stdout closes when it exits.
kill "$lb_pid"
cat <&"$lb_out" >/dev/null

echo
echo "Where the load balancer sent each ping (one rotation over the servers):"
sed -n 's/.* -> \(server[0-9]* ([^)]*)\): "PING \([0-9]*\) .*/  ping \2 -> \1/p' "$logs/lb.log"

if [[ $status -ne 0 ]]; then
    echo "no ping was answered (exit status $status)" >&2
    exit "$status"
fi
