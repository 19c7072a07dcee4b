#!/usr/bin/env bash
# Datagrams per second, direct to an echo server and through the load
# balancer (in front of three echo servers), in the same run, loss 0.
#
# Usage: scripts/udp-bench.sh [COUNT [WINDOW]]   (defaults 200000 and 32)
set -euo pipefail

count=${1:-200000}
window=${2:-32}

. "$(dirname "$0")/lib.sh"
dnslb=$(dnslb_bin)
stop_servers_on_exit

backends=()
for _ in 1 2 3; do
    start_server port "$dnslb" udp-echo 0 --bind 127.0.0.1 --loss 0
    backends+=(127.0.0.1 "$port")
done
direct=$port
start_server lb "$dnslb" udp-lb 0 --bind 127.0.0.1 "${backends[@]}"

echo "$(nproc) cores; $count datagrams, window $window, loss 0"
echo "direct to an echo server:"
"$dnslb" ping 127.0.0.1 "$direct" --flood --count "$count" --window "$window"
echo "through the load balancer (3 echo servers):"
"$dnslb" ping 127.0.0.1 "$lb" --flood --count "$count" --window "$window"
