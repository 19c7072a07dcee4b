#!/usr/bin/env bash
# The side-by-side comparison of docs/COMPARISON.md: dnslb's LS against the
# course's select() design (scripts/select_ls.py), with a TS measured
# directly as the floor. Prints one table on stdout; progress on stderr.
#
#   scripts/compare.sh
#
# Builds the release binary, generates two TS tables of 1000 names each in a
# temporary directory, starts two `dnslb ts`, `dnslb ls` and select_ls.py in
# front of them (both LSes with --timeout 0.5 so that the miss workloads are
# quick; hits never wait for the timeout), then runs the same `dnslb bench`
# workloads against each (the direct TS rows with four times the queries,
# so that they last long enough to measure). Every bench run checks every
# answer (the `wrong` column) and is stopped after BENCH_LIMIT seconds
# (default 30). Threads and
# RSS are those of the process benchmarked (the LS, or the TS for the direct
# rows), the highest seen while the workload ran (sampled every 0.1 s from
# /proc/<pid>/status). A row that cannot run (e.g. a feature the binary
# lacks) prints n/a. Everything started is stopped on exit.
#
# With DNSLB_BASELINE=<path to another dnslb binary> (an earlier build, say),
# an LS from that binary runs beside the others, in front of the same TSes,
# and gets its own rows ("base ls"): before and after measured in one run.
#
# It also draws the hits rows as charts against the number of clients
# (scripts/plot.py): compare-throughput.svg and compare-latency.svg, with
# their figures in compare.tsv, in $PLOT_DIR (default target/plots).
#
# Needs bash, awk, python3, coreutils `timeout`, and Linux's /proc.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bin=$(dnslb_bin)
limit=${BENCH_LIMIT:-30}
work=$(mktemp -d)
bench=
cleanup() {
    if [[ -n $bench ]]; then
        kill "$bench" 2>/dev/null || true
    fi
    rm -rf "$work"
}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
stop_servers_on_exit cleanup
server_log=$work/servers.log

two_tables "$work"

# start <var> <command...>: start_server, with the servers' log on failure.
start() {
    if ! start_server "$@"; then
        echo "compare: ${*:2} did not start (see below)" >&2
        tail -n 3 "$server_log" >&2 || true
        return 1
    fi
}

start ts1 "$bin" ts 0 --bind 127.0.0.1 --table "$work/ts1.txt"
start ts2 "$bin" ts 0 --bind 127.0.0.1 --table "$work/ts2.txt"
start ls "$bin" ls 0 127.0.0.1 "$ts1" 127.0.0.1 "$ts2" --bind 127.0.0.1 --timeout 0.5
start py python3 "$root/scripts/select_ls.py" 0 127.0.0.1 "$ts1" 127.0.0.1 "$ts2" --bind 127.0.0.1 --timeout 0.5
baseline=${DNSLB_BASELINE:-}
if [[ -n $baseline ]]; then
    start base "$baseline" ls 0 127.0.0.1 "$ts1" 127.0.0.1 "$ts2" --bind 127.0.0.1 --timeout 0.5
fi
# base_row <row args...>: the same row against the baseline LS, if any.
base_row() {
    if [[ -n $baseline ]]; then
        # shellcheck disable=SC2154
        row "$1" "base ls" "$base_pid" "$base" "${@:2}"
    fi
}

# Highest Threads and VmRSS (kB) of $1 seen so far, in max_threads / max_rss.
sample() {
    local threads rss
    read -r threads rss < <(awk '/^Threads:/ { t = $2 } /^VmRSS:/ { r = $2 } END { print t + 0, r + 0 }' \
        "/proc/$1/status" 2>/dev/null || echo "0 0")
    ((threads > max_threads)) && max_threads=$threads
    ((rss > max_rss)) && max_rss=$rss
    return 0
}

rows=()
: >"$work/plot.tsv"
total_wrong=0
# row <workload> <target label> <pid> <port> <bench args...>: runs one bench
# and appends a table row (and keeps its figures in fig_<key>).
row() {
    local workload=$1 label=$2 pid=$3 port=$4 status=0
    shift 4
    echo "compare: $workload -> $label" >&2
    max_threads=0 max_rss=0
    timeout "$limit" "$bin" bench 127.0.0.1 "$port" "$@" >"$work/out" 2>"$work/err" &
    bench=$!
    sample "$pid"
    while kill -0 "$bench" 2>/dev/null; do
        sleep 0.1
        sample "$pid"
    done
    wait "$bench" || status=$?
    bench=
    local figures
    figures=$(awk '
        $1 == "queries" { q = $2 }
        $1 == "elapsed" { e = $2 }
        $1 == "throughput" { t = $2 }
        $1 == "latency" && $3 == "p50" { p50 = $4; p99 = $8 }
        $1 == "wrong" && NF == 2 { w = $2 }
        END { if (t != "" && w != "") print q, e, t, p50, p99, w }' "$work/out")
    if [[ -z $figures ]] || ((status != 0 && status != 1)); then
        rows+=("$(printf '%-22s %-14s %8s %8s %9s %9s %9s %6s %8s %8s' \
            "$workload" "$label" n/a n/a n/a n/a n/a n/a n/a n/a)")
        echo "compare: no result (exit $status): $(tail -n 2 "$work/err" | tr '\n' ' ')" >&2
        return 0
    fi
    local q e t p50 p99 w
    read -r q e t p50 p99 w <<<"$figures"
    total_wrong=$((total_wrong + w))
    local rss
    rss=$(awk -v kb="$max_rss" 'BEGIN { printf "%.1f", kb / 1024 }')
    rows+=("$(printf '%-22s %-14s %8s %8s %9s %9s %9s %6s %8s %8s' \
        "$workload" "$label" "$q" "$e" "$t" "$p50" "$p99" "$w" "$max_threads" "$rss")")
    printf '%s\t%s\t%s\t%s\t%s\n' "$workload" "$label" "$t" "$p50" "$p99" >>"$work/plot.tsv"
    local key="${workload}_${label}"
    key=${key//[^a-zA-Z0-9]/_}
    printf -v "fig_${key}_qps" '%s' "$t"
    printf -v "fig_${key}_p50" '%s' "$p50"
    printf -v "fig_${key}_elapsed" '%s' "$e"
}

hits=(--names "$work/both.txt" --timeout 10)
# Hits only, one query at a time per client; 20,000 or 32,000 queries a row.
for spec in 1:20000 8:4000 16:2000 64:500; do
    clients=${spec%%:*} queries=${spec##*:}
    row "hits c=$clients" "dnslb ls" "$ls_pid" "$ls" --clients "$clients" --queries "$queries" "${hits[@]}"
    base_row "hits c=$clients" --clients "$clients" --queries "$queries" "${hits[@]}"
    row "hits c=$clients" "select_ls.py" "$py_pid" "$py" --clients "$clients" --queries "$queries" "${hits[@]}"
    # The floor runs four times the queries: at its speed the same count
    # would be over in a fraction of a second, too short to measure well.
    row "hits c=$clients" "ts1 direct" "$ts1_pid" "$ts1" --clients "$clients" --queries $((queries * 4)) \
        --names "$work/ts1.txt" --timeout 2
done
# 10 % misses: each miss waits for the LS's 0.5 s timeout.
for clients in 1 8 64; do
    row "10% miss c=$clients" "dnslb ls" "$ls_pid" "$ls" --clients "$clients" --queries 50 --miss-ratio 0.1 "${hits[@]}"
    base_row "10% miss c=$clients" --clients "$clients" --queries 50 --miss-ratio 0.1 "${hits[@]}"
    row "10% miss c=$clients" "select_ls.py" "$py_pid" "$py" --clients "$clients" --queries 50 --miss-ratio 0.1 "${hits[@]}"
done
# One pipelined client, 64 queries outstanding.
row "hits c=1 pipe=64" "dnslb ls" "$ls_pid" "$ls" --queries 200000 --pipeline 64 "${hits[@]}"
base_row "hits c=1 pipe=64" --queries 200000 --pipeline 64 "${hits[@]}"
row "hits c=1 pipe=64" "select_ls.py" "$py_pid" "$py" --queries 20000 --pipeline 64 "${hits[@]}"
row "hits c=1 pipe=64" "ts1 direct" "$ts1_pid" "$ts1" --queries 200000 --pipeline 64 \
    --names "$work/ts1.txt" --timeout 2
# 10,000 queries, half misses, one pipelined client, TSes answering misses
# (`dnslb ts --answer-misses`); n/a when the binary has no such option.
if start ts1n "$bin" ts 0 --bind 127.0.0.1 --table "$work/ts1.txt" --answer-misses &&
    start ts2n "$bin" ts 0 --bind 127.0.0.1 --table "$work/ts2.txt" --answer-misses &&
    start lsn "$bin" ls 0 127.0.0.1 "$ts1n" 127.0.0.1 "$ts2n" --bind 127.0.0.1; then
    # shellcheck disable=SC2154
    row "50% miss neg pipe=4096" "dnslb ls" "$lsn_pid" "$lsn" --queries 10000 --miss-ratio 0.5 --pipeline 4096 "${hits[@]}"
else
    rows+=("$(printf '%-22s %-14s %8s %8s %9s %9s %9s %6s %8s %8s' \
        "50% miss neg pipe=4096" "dnslb ls" n/a n/a n/a n/a n/a n/a n/a n/a)")
fi

echo "# scripts/compare.sh on $(nproc) cores, $(uname -sr); bench, LS and TSes share the cores"
echo "# load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-22s %-14s %8s %8s %9s %9s %9s %6s %8s %8s\n' \
    workload target queries "time s" "qps" "p50 ms" "p99 ms" wrong threads "RSS MiB"
printf '%s\n' "${rows[@]}"

# The targets of docs/COMPARISON.md ("Targets"), judged on figures from this run.
echo
echo "targets (this run, as docs/COMPARISON.md states them):"
target "1 client, LS p50 / select_ls.py p50" \
    "$(ratio "${fig_hits_c_1_dnslb_ls_p50:-}" "${fig_hits_c_1_select_ls_py_p50:-}")" "<=" 0.7
target "1 client, LS p50 / TS p50" \
    "$(ratio "${fig_hits_c_1_dnslb_ls_p50:-}" "${fig_hits_c_1_ts1_direct_p50:-}")" "<=" 2.5 \
    "(select_ls.py $(ratio "${fig_hits_c_1_select_ls_py_p50:-}" "${fig_hits_c_1_ts1_direct_p50:-}"))"
target "16 clients, LS qps / TS qps" \
    "$(ratio "${fig_hits_c_16_dnslb_ls_qps:-}" "${fig_hits_c_16_ts1_direct_qps:-}")" ">=" 0.33 \
    "(select_ls.py $(ratio "${fig_hits_c_16_select_ls_py_qps:-}" "${fig_hits_c_16_ts1_direct_qps:-}"))"
target "1 pipelined client, LS hits/s" "${fig_hits_c_1_pipe_64_dnslb_ls_qps:-}" ">=" 100000
target "10,000 names, half misses, negative TSes, s" \
    "${fig_50__miss_neg_pipe_4096_dnslb_ls_elapsed:-}" "<" 0.5
target "wrong answers, every row" "$total_wrong" "=" 0
if [[ -n $baseline ]]; then
    # "Nothing slower than before" is judged over several runs (the noise
    # of one run is larger than the differences): figures only.
    echo "against the baseline LS ($baseline), this build / baseline:"
    echo "  1 client p50 (lower is better):   $(ratio "${fig_hits_c_1_dnslb_ls_p50:-}" "${fig_hits_c_1_base_ls_p50:-}")"
    for c in 1 8 16 64; do
        a=fig_hits_c_${c}_dnslb_ls_qps b=fig_hits_c_${c}_base_ls_qps
        echo "  $c clients qps (higher is better): $(ratio "${!a:-}" "${!b:-}")"
    done
    echo "  1 pipelined client qps:           $(ratio "${fig_hits_c_1_pipe_64_dnslb_ls_qps:-}" "${fig_hits_c_1_pipe_64_base_ls_qps:-}")"
fi

# The charts: the hits rows, one query at a time per client, against the
# number of clients, one line per target (scripts/plot.py).
plots=$(plot_dir)
awk -F '\t' 'BEGIN { OFS = "\t"; print "clients", "target", "qps", "p50", "p99" }
    $1 ~ /^hits c=[0-9]+$/ { c = $1; sub(/^hits c=/, "", c); print c, $2, $3, $4, $5 }' \
    "$work/plot.tsv" >"$plots/compare.tsv"
plot line "$plots/compare.tsv" --x clients --y qps --series target --log-x \
    --title "Hits, one query at a time per client: throughput" \
    --xlabel "clients" --ylabel "queries/s" --out "$plots/compare-throughput.svg"
plot line "$plots/compare.tsv" --x clients --y p50 --y p99 --series target --log-x --log-y \
    --title "Hits, one query at a time per client: latency" \
    --xlabel "clients" --ylabel "latency, ms (log scale)" --out "$plots/compare-latency.svg"
echo "compare: charts in $plots (compare-throughput.svg, compare-latency.svg; the figures in compare.tsv)" >&2
