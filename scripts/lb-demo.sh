#!/usr/bin/env bash
# Load balancing in the lecture's sense: three replica TSes holding the same
# names (data/PROJ2-DNSTS1.txt, served over DNS) behind one LS pool.
#
# 1. For each policy, an LS with --pool of the three answers the same
#    queries; the counters it prints when it stops show how the queries
#    spread over the members (`; pool 1: ts1 up sent ..., answered ...`).
# 2. One replica is frozen (SIGSTOP) under traffic: its queries go to the
#    others after --try-timeout, it is backed off, the health checks mark it
#    down (`ls: health: ... marked down`); thawed (SIGCONT), it is taken
#    back (`... back up`) and used again.
#
# Everything runs on loopback, on free ports, and stops when the script ends.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bin=$(dnslb_bin)
out=${CARGO_TARGET_DIR:-$root/target}/lb-demo
mkdir -p "$out"
stop_servers_on_exit
server_log=-

# The names the replicas hold, 30 times over.
names="$out/names.txt"
for _ in $(seq 30); do cut -d' ' -f1 "$root/data/PROJ2-DNSTS1.txt"; done >"$names"

members=""
for ts in r1 r2 r3; do
    start_server "$ts" "$bin" ts 0 --bind 127.0.0.1 --table "$root/data/PROJ2-DNSTS1.txt" --dns-port 0
    read_dns_port "$ts"
    dns=${ts}_dns
    echo "$ts: replica, DNS on 127.0.0.1:${!dns}" >&2
    members+="${members:+,}127.0.0.1:${!dns}"
done

# resolve: the names through the LS on port $1, 4 clients at once.
resolve() {
    local i
    for i in 1 2 3 4; do
        "$bin" client 127.0.0.1 "$1" --input "$names" --output "$out/resolved-$i.txt" --pipeline 8 >/dev/null &
    done
    wait_clients
}
wait_clients() {
    local pid
    for pid in $(jobs -pr); do
        case " ${server_pids[*]} " in *" $pid "*) ;; *) wait "$pid" ;; esac
    done
}

# stop_ls: stops the LS (SIGINT), which prints its counters.
stop_ls() {
    kill -INT "$ls_pid"
    wait "$ls_pid" 2>/dev/null || true
}

for policy in first roundrobin leastoutstanding random chash; do
    echo "=== --policy $policy: $(wc -l <"$names") queries x 4 clients" >&2
    start_server ls "$bin" ls 0 --bind 127.0.0.1 --ts-protocol dns --pool "$members" --policy "$policy"
    resolve "$ls"
    stop_ls
done

echo "=== a replica frozen: --policy roundrobin --try-timeout 0.2 --health-interval 0.5" >&2
start_server ls "$bin" ls 0 --bind 127.0.0.1 --ts-protocol dns --pool "$members" \
    --policy roundrobin --try-timeout 0.2 --health-interval 0.5
echo "--- freezing r2 (SIGSTOP)" >&2
kill -STOP "$r2_pid"
resolve "$ls"
sleep 3.5 # the health checks' pace: three failed probes, each up to 0.5 s, 0.5 s apart
echo "--- thawing r2 (SIGCONT)" >&2
kill -CONT "$r2_pid"
sleep 2 # two good probes
resolve "$ls"
stop_ls
echo "--- answers in the last run, after the thaw:" \
    "$(cat "$out"/resolved-*.txt | grep -c ' A$') of $((4 * $(wc -l <"$names")))" >&2
