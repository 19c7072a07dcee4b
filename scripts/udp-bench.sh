#!/usr/bin/env bash
# Datagrams per second, direct to an echo server and through the load
# balancer (in front of three echo servers), in the same run, loss 0.
#
# Usage: scripts/udp-bench.sh [COUNT [WINDOW]]   (defaults 200000 and 32)
set -euo pipefail

count=${1:-200000}
window=${2:-32}

cd "$(dirname "$0")/.."
cargo build --release --quiet
dnslb=target/release/dnslb

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

# start ARGS...: runs `dnslb ARGS...` and sets $port from its `listening on` line.
start() {
    local fd line
    exec {fd}< <(exec "$dnslb" "$@" 2>/dev/null)
    pids+=("$!")
    read -r line <&"$fd"
    port=${line##*:}
}

backends=()
for _ in 1 2 3; do
    start udp-echo 0 --bind 127.0.0.1 --loss 0
    backends+=(127.0.0.1 "$port")
done
direct=$port
start udp-lb 0 --bind 127.0.0.1 "${backends[@]}"
lb=$port

echo "$(nproc) cores; $count datagrams, window $window, loss 0"
echo "direct to an echo server:"
"$dnslb" ping 127.0.0.1 "$direct" --flood --count "$count" --window "$window"
echo "through the load balancer (3 echo servers):"
"$dnslb" ping 127.0.0.1 "$lb" --flood --count "$count" --window "$window"
