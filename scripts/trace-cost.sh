#!/usr/bin/env bash
# What `ls --trace` costs (docs/COMPARISON.md, "Cost of --trace"): two LSes
# from the same release binary in front of the same two TSes, one with
# --trace FILE and one without, driven by the same `dnslb bench` workloads
# in one run, alternating which goes first. Prints one table and the ratio
# traced / untraced per workload on stdout; progress on stderr. At the end
# the traced LS is stopped with SIGINT and its "trace: N events written, M
# dropped" line and the trace's size are printed.
#
#   scripts/trace-cost.sh [rounds]     (default 2)
#
# Workloads: one client one query at a time (hits c=1), 16 clients
# (hits c=16), one client pipelining 64 queries (hits c=1 pipe=64), as in
# scripts/compare.sh. With DNSLB_BASELINE=<another dnslb binary> (a build
# without --trace, say), an untraced LS from it runs beside the two ("base
# ls"): what the trace costs when off, in the same run. Needs bash, awk,
# coreutils `timeout`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bin=$(dnslb_bin)
rounds=${1:-2}
limit=${BENCH_LIMIT:-30}
work=$(mktemp -d)
stop_servers_on_exit "rm -rf '$work'"
server_log=$work/servers.log

two_tables "$work"

start_server ts1 "$bin" ts 0 --bind 127.0.0.1 --table "$work/ts1.txt"
start_server ts2 "$bin" ts 0 --bind 127.0.0.1 --table "$work/ts2.txt"
start_server off "$bin" ls 0 127.0.0.1 "$ts1" 127.0.0.1 "$ts2" --bind 127.0.0.1 --timeout 0.5
server_log=$work/traced.log
start_server on "$bin" ls 0 127.0.0.1 "$ts1" 127.0.0.1 "$ts2" --bind 127.0.0.1 --timeout 0.5 \
    --trace "$work/trace.jsonl"
server_log=$work/servers.log
baseline=${DNSLB_BASELINE:-}
if [[ -n $baseline ]]; then
    start_server base "$baseline" ls 0 127.0.0.1 "$ts1" 127.0.0.1 "$ts2" --bind 127.0.0.1 --timeout 0.5
fi

hits=(--names "$work/both.txt" --timeout 10)
rows=()
# row <workload> <label> <port> <bench args...>: one bench run, one row;
# its qps added to sum_<workload>_<label>.
row() {
    local workload=$1 label=$2 port=$3
    shift 3
    echo "trace-cost: $workload -> $label" >&2
    timeout "$limit" "$bin" bench 127.0.0.1 "$port" "$@" >"$work/out" 2>"$work/err" || true
    local figures
    figures=$(awk '
        $1 == "throughput" { t = $2 }
        $1 == "latency" && $3 == "p50" { p50 = $4; p99 = $8 }
        $1 == "wrong" && NF == 2 { w = $2 }
        END { if (t != "") print t, p50, p99, w }' "$work/out")
    if [[ -z $figures ]]; then
        rows+=("$(printf '%-18s %-14s %9s %9s %9s %6s' "$workload" "$label" n/a n/a n/a n/a)")
        return 0
    fi
    local t p50 p99 w
    read -r t p50 p99 w <<<"$figures"
    rows+=("$(printf '%-18s %-14s %9s %9s %9s %6s' "$workload" "$label" "$t" "$p50" "$p99" "$w")")
    local key="${workload}_${label}"
    key=sum_${key//[^a-zA-Z0-9]/_}
    printf -v "$key" '%s' "$(awk -v a="${!key:-0}" -v b="$t" 'BEGIN { print a + b }')"
}

# <workload>|<bench args>
specs=("hits c=1|--clients 1 --queries 20000"
    "hits c=16|--clients 16 --queries 2000"
    "hits c=1 pipe=64|--queries 200000 --pipeline 64")
for ((r = 1; r <= rounds; r++)); do
    # Odd rounds run the untraced LS first, even rounds the traced one.
    order=(off on ${baseline:+base})
    ((r % 2 == 0)) && order=(${baseline:+base} on off)
    for spec in "${specs[@]}"; do
        workload=${spec%%|*}
        read -r -a args <<<"${spec##*|}"
        for which in "${order[@]}"; do
            port_var=$which
            label="ls"
            [[ $which == on ]] && label="ls --trace"
            [[ $which == base ]] && label="base ls"
            row "$workload" "$label" "${!port_var}" "${args[@]}" "${hits[@]}"
        done
    done
done

echo "# scripts/trace-cost.sh on $(nproc) cores, $(uname -sr), $rounds rounds; bench, LSes and TSes share the cores"
printf '%-18s %-14s %9s %9s %9s %6s\n' workload target qps "p50 ms" "p99 ms" wrong
printf '%s\n' "${rows[@]}"
echo
# ratios <what> <label> <over>: per workload, the qps summed for <label>
# over that summed for <over>.
ratios() {
    echo "$1, qps summed over the rounds:"
    local spec workload num den
    for spec in "${specs[@]}"; do
        workload=${spec%%|*}
        num=sum_${workload//[^a-zA-Z0-9]/_}_${2//[^a-zA-Z0-9]/_}
        den=sum_${workload//[^a-zA-Z0-9]/_}_${3//[^a-zA-Z0-9]/_}
        printf '  %-18s %s\n' "$workload" "$(ratio "${!num:-}" "${!den:-}")"
    done
}
ratios "traced / untraced" "ls --trace" ls
if [[ -n $baseline ]]; then
    ratios "untraced / base ls ($baseline)" ls "base ls"
fi

# The traced LS's own account, once it has written the trace out.
# shellcheck disable=SC2154
kill -INT "$on_pid"
for _ in $(seq 100); do
    kill -0 "$on_pid" 2>/dev/null || break
    sleep 0.1
done
echo
grep -h "trace: " "$work/traced.log" || echo "(no trace line: the traced LS did not stop in 10 s)"
echo "trace file: $(wc -l <"$work/trace.jsonl") lines, $(du -h "$work/trace.jsonl" | cut -f1)"
