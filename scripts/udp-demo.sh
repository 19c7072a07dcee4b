#!/usr/bin/env bash
# The UDP ping lab end to end: three echo servers that drop 4 in 11
# datagrams (ports 2526-2528, or free ports when those are taken), the
# round-robin load balancer in front of them on a free port, and ten pings
# through it. Prints which server each ping went to, stops everything it
# started and exits 0 (1 if no ping was answered).
#
# Usage: scripts/udp-demo.sh            (a different loss pattern each run)
#        SEED=7 scripts/udp-demo.sh     (the same pattern for the same seed)
set -euo pipefail

. "$(dirname "$0")/lib.sh"
dnslb=$(dnslb_bin)
logs=$(mktemp -d)
stop_servers_on_exit 'rm -rf "$logs"'

# start NAME ARGS...: start_server for `dnslb ARGS...`, its stderr in
# $logs/NAME.log; sets NAME, NAME_addr, NAME_pid and NAME_out.
start() {
    local name=$1
    shift
    server_log=$logs/$name.log start_server "$name" "$dnslb" "$@"
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
    addr=server${i}_addr
    echo "server$i (drops 4/11): ${!addr}"
    backends+=(127.0.0.1 "${!addr##*:}")
done

start lb udp-lb 0 --bind 127.0.0.1 -v "${backends[@]}"
echo "load balancer: $lb_addr"
echo

status=0
# -O: each lost ping shows as `no answer yet for seq=<n>`.
"$dnslb" ping 127.0.0.1 "$lb" -c 10 -W 1 -O || status=$?

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
