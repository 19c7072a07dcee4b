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
#   HOSTS_QUERIES  queries per sequential client (16 clients); each pipelined
#                  client sends 100 times as many. Default: as many as keep
#                  each load going 4 s past the mend on this machine, from a
#                  short run of each load before the cut
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
queries=${HOSTS_QUERIES:-}
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

# lasting <sample> <bench args...>: the queries per client that keep this
# load (TS2's names, with <bench args>) going from the start to 6 s past the
# mend, from a run of <sample> queries per client; at least 10,000.
lasting() {
    local sample=$1 elapsed
    shift
    echo "(timing the load: $sample queries per client)" >&2
    elapsed=$(on cl bench "${addr[ls]}" "$ls" --names "$root/data/PROJ2-DNSTS2.txt" --timeout 12 \
        --queries "$sample" "$@" | awk '$1 == "elapsed" { print $2 }')
    awk -v sample="$sample" -v seconds=$((1 + cut_for + 6)) -v e="${elapsed:-0}" \
        'BEGIN { n = e > 0 ? sample * seconds / e : 0; printf "%d\n", (n > 10000 ? n : 10000) }'
}

false_misses=0
# partition <label> <bench args...>: runs the bench from the clients' host
# asking only TS2's names, cuts TS1's port a second in, mends it $cut_for s
# later, and prints the bench's report.
partition() {
    local label=$1 pid known
    shift
    echo "== $label; TS1 is cut off for $cut_for s a second in" >&2
    on cl bench "${addr[ls]}" "$ls" --names "$root/data/PROJ2-DNSTS2.txt" --timeout 12 "$@" \
        >"$out/bench.txt" &
    pid=$!
    sleep 1
    ts1_port down
    sleep "$cut_for"
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "(the load ended before the link was mended: raise HOSTS_QUERIES)" >&2
    fi
    ts1_port up
    wait "$pid" || true
    cat "$out/bench.txt"
    known=$(sed -n 's/^misses.*(\([0-9]*\) for names with a known answer)$/\1/p' "$out/bench.txt")
    echo "false misses (HOST NOT FOUND for names TS2 holds): ${known:-?}" >&2
    false_misses=$((false_misses + ${known:-1}))
    ts1_in_use
}

sequential=${queries:-$(lasting 2000 --clients 16)}
partition "16 sequential clients x $sequential queries" --clients 16 --queries "$sequential"
pipelined=$((queries * 100))
if [[ -z $queries ]]; then
    pipelined=$(lasting 50000 --clients 4 --pipeline 64)
fi
partition "4 pipelined clients x $pipelined queries, 64 in flight" --clients 4 --pipeline 64 --queries "$pipelined"

echo "== the course's client on host cl: data/PROJ2-HNS.txt" >&2
(cd "$out" && cp "$root/data/PROJ2-HNS.txt" . && on cl client "${addr[ls]}" "$ls" >/dev/null)
identical=no
if diff -u "$root/data/example-RESOLVED.txt" "$out/RESOLVED.txt"; then
    identical=yes
fi
echo "== $false_misses false misses in all; RESOLVED.txt identical to data/example-RESOLVED.txt: $identical" >&2
[ "$false_misses" -eq 0 ] && [ "$identical" = yes ]
