#!/usr/bin/env bash
# The system on four hosts, and a network partition: TS1, TS2, the LS and
# the clients each run in a network namespace of their own, joined by a
# bridge in a fifth (the switch); nothing touches this machine's network.
# Under load that asks only names TS2 holds, TS1's switch port is cut (its
# packets vanish: no RST, no FIN), then mended; then the course's client
# resolves data/PROJ2-HNS.txt from the clients' host and RESOLVED.txt is
# compared with data/example-RESOLVED.txt.
#
# Needs root (`ip netns`); skips with a message otherwise. Everything it
# made is deleted when it ends, however it ends.
#
# Usage: scripts/hosts-demo.sh
#   HOSTS_QUERIES  queries per sequential client and bench run (default
#                  10000; 16 clients); each pipelined client sends 100 times
#                  as many. The bench runs again until the link is mended, so
#                  the load always outlasts the mend
#   HOSTS_CUT      seconds TS1 stays cut off (default 6: longer than the LS's
#                  5 s timeout)
# Exit 0 when the load saw no false miss and RESOLVED.txt is identical.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "hosts-demo: skipped: network namespaces need root" >&2
    exit 0
fi
if ! ip netns list >/dev/null 2>&1; then
    echo "hosts-demo: skipped: \`ip netns\` is not available" >&2
    exit 0
fi

bin=$(dnslb_bin)
out=${CARGO_TARGET_DIR:-$root/target}/hosts-demo
mkdir -p "$out"
queries=${HOSTS_QUERIES:-10000}
cut_for=${HOSTS_CUT:-6}

# Namespaces of this run: the prefix and this shell's pid keep them apart
# from any other run.
run=dnslbdemo-$$
roles=(sw ts1 ts2 ls cl)
declare -A addr=([ts1]=10.231.77.1 [ts2]=10.231.77.2 [ls]=10.231.77.3 [cl]=10.231.77.4)

# show <command...>: prints a command, then runs it (10 s at most).
show() {
    echo "+ $*" >&2
    timeout 10 "$@"
}

delete_net() {
    local role
    for role in "${roles[@]}"; do
        timeout 10 ip netns del "$run-$role" 2>/dev/null || true
    done
}
# Servers stop first, then their namespaces (and with them every link) go.
trap 'stop_servers; delete_net' EXIT
trap 'exit 130' INT TERM HUP
trap 'exit 141' PIPE

echo "== the network: a switch and four hosts" >&2
show ip netns add "$run-sw"
show ip -n "$run-sw" link add br0 type bridge
show ip -n "$run-sw" link set br0 up
for role in ts1 ts2 ls cl; do
    ns=$run-$role
    show ip netns add "$ns"
    show ip -n "$run-sw" link add "$role" type veth peer name eth0 netns "$ns"
    show ip -n "$run-sw" link set "$role" master br0 up
    show ip -n "$ns" addr add "${addr[$role]}/24" dev eth0
    show ip -n "$ns" link set eth0 up
    show ip -n "$ns" link set lo up
done

# on <role> <dnslb args...>: dnslb on that host.
on() {
    local role=$1
    shift
    ip netns exec "$run-$role" "$bin" "$@"
}
# start_on <var> <role> <dnslb args...>: a dnslb server on that host (start_server).
start_on() {
    local var=$1 role=$2
    shift 2
    start_server "$var" ip netns exec "$run-$role" "$bin" "$@"
}

echo "== the servers" >&2
start_on ts1 ts1 ts 0 --bind "${addr[ts1]}" --table "$root/data/PROJ2-DNSTS1.txt"
echo "TS1 on host ts1: $ts1_addr" >&2
start_on ts2 ts2 ts 0 --bind "${addr[ts2]}" --table "$root/data/PROJ2-DNSTS2.txt"
echo "TS2 on host ts2: $ts2_addr" >&2
server_log=- start_on ls ls ls 0 "${addr[ts1]}" "$ts1" "${addr[ts2]}" "$ts2" --bind "${addr[ls]}"
echo "LS on host ls: $ls_addr (timeout 5 s)" >&2

# ts1_port <up|down>: mends or cuts TS1's switch port.
ts1_port() {
    show ip -n "$run-sw" link set ts1 "$1"
}

# ts1_in_use: waits (10 s at most) until the LS answers a name only TS1 holds.
ts1_in_use() {
    local started=$SECONDS
    printf 'amazon.org 94.5.6.7 A\n' >"$out/ts1-name.txt"
    while ((SECONDS - started < 10)); do
        if on cl bench "${addr[ls]}" "$ls" --names "$out/ts1-name.txt" --queries 1 --timeout 0.3 |
            grep -q '^hits *1$'; then
            echo "TS1 answers again through the LS" >&2
            return 0
        fi
    done
    echo "TS1 was not used again within 10 s" >&2
    return 1
}

false_misses=0
# partition <label> <bench args...>: runs the bench from the clients' host
# asking only TS2's names, again and again until the link is mended (the
# run under way then finishes), cuts TS1's port a second in, mends it
# $cut_for s later, and prints each run's report.
partition() {
    local label=$1 pid known report mended=$out/mended
    shift
    rm -f "$mended" "$out"/bench-*.txt
    echo "== $label; TS1 is cut off for $cut_for s a second in" >&2
    (
        round=0 status=0
        # Until the link is mended, or a run fails to run at all.
        while [ ! -e "$mended" ] && ((status <= 1)); do
            round=$((round + 1))
            on cl bench "${addr[ls]}" "$ls" --names "$root/data/PROJ2-DNSTS2.txt" --timeout 12 "$@" \
                >"$out/bench-$round.txt" || status=$?
        done
    ) &
    pid=$!
    sleep 1
    ts1_port down
    sleep "$cut_for"
    ts1_port up
    touch "$mended"
    wait "$pid" || true
    for report in $(ls "$out"/bench-*.txt | sort -t- -k2 -n); do
        echo "-- ${report##*/}" >&2
        cat "$report"
        known=$(sed -n 's/^misses.*(\([0-9]*\) for names with a known answer)$/\1/p' "$report")
        echo "false misses (HOST NOT FOUND for names TS2 holds): ${known:-?}" >&2
        false_misses=$((false_misses + ${known:-1}))
    done
    ts1_in_use
}

partition "16 sequential clients x $queries queries" --clients 16 --queries "$queries"
partition "4 pipelined clients, 64 in flight" --clients 4 --pipeline 64 --queries $((queries * 100))

echo "== the course's client on host cl: data/PROJ2-HNS.txt" >&2
(cd "$out" && cp "$root/data/PROJ2-HNS.txt" . && on cl client "${addr[ls]}" "$ls" >/dev/null)
identical=no
if diff -u "$root/data/example-RESOLVED.txt" "$out/RESOLVED.txt"; then
    identical=yes
fi
echo "== $false_misses false misses in all; RESOLVED.txt identical to data/example-RESOLVED.txt: $identical" >&2
[ "$false_misses" -eq 0 ] && [ "$identical" = yes ]
