#!/usr/bin/env bash
# The DNS comparison of docs/COMPARISON.md: dnsperf (UDP, 100 queries in
# flight) against a TS's DNS port directly, `dnslb ls --ts-protocol dns` in
# front of two TSes, the same LS with --cache 100000, and dnsdist (round
# robin, no packet cache) in front of the same two TSes. Prints one table on
# stdout, then the targets as ratios, each met or NOT MET; progress on stderr.
#
#   scripts/dns-compare.sh
#   DNS_SECONDS=10    seconds each dnsperf run lasts (default 10)
#   FAULT_QPS=10000   the fault rows' fixed rate, queries/s (default 10000)
#   FAULT_SECONDS=8   how long each fault row runs (default 8; at least 4)
#
# The two TSes hold the same table (2000 names): dnsdist sends each query
# to one TS only, so with different tables it would answer NXDOMAIN for
# the names the chosen TS lacks, while dnslb asks every TS. Identical tables
# make every row give the same answers (the NOERROR column shows it). One
# more row puts the LS in front of two TSes with disjoint tables (1000
# names each, the course's setting), where only dnslb answers every name.
# Four more set dnslb with the two TSes as one `--pool` (each query to one
# of them) against dnsdist with the same policy: roundrobin, and
# leastoutstanding against dnsdist's leastOutstanding. Last, the fault
# rows: the same pools and dnsdists at a fixed rate with a 1 s client
# timeout while one TS is frozen (SIGSTOP) for 2 s, each row with TSes of
# its own; a second table gives queries sent and lost.
# The query file has every 10th query a name no TS holds (NXDOMAIN), the
# others names drawn at random from the table. A row whose server does not
# start (an option the binary lacks, say) prints n/a.
#
# It also draws the tables as bar charts (scripts/plot.py): dns-qps.svg,
# dns-latency.svg and dns-fault.svg, with their figures in dns-compare.tsv
# and dns-fault.tsv, in $PLOT_DIR (default target/plots).
#
# Installs dnsperf and dnsdist with apt-get when they are missing. Needs
# bash, awk and python3 (to find a free port for dnsdist). The tool, the
# servers and the TSes share this machine's cores.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

missing=()
command -v dnsperf >/dev/null || missing+=(dnsperf)
command -v dnsdist >/dev/null || missing+=(dnsdist)
command -v dig >/dev/null || missing+=(bind9-dnsutils)
if ((${#missing[@]})); then
    echo "dns-compare: installing ${missing[*]}" >&2
    apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2
fi
bin=$(dnslb_bin)
seconds=${DNS_SECONDS:-10}
work=$(mktemp -d)
stop_servers_on_exit 'rm -rf "$work"'
server_log=$work/servers.log

two_tables "$work"
awk 'BEGIN { srand(1) }
    { name[n++] = $1 }
    END { for (i = 0; i < 20000; i++)
        if (i % 10 == 9) printf "miss%d.example A\n", i
        else printf "%s A\n", name[int(rand() * n)] }' "$work/both.txt" >"$work/queries.txt"

# start <var> <dnslb args...>: starts dnslb with --dns-port 0; sets
# <var>_dns and <var>_pid, or returns 1 when it does not start.
start() {
    local var=$1
    shift
    if start_server "$var" "$bin" "$@" --bind 127.0.0.1 --dns-port 0 && read_dns_port "$var"; then
        return 0
    fi
    echo "dns-compare: \`dnslb $*\` did not start:" >&2
    tail -n 3 "$server_log" >&2 || true
    return 1
}

# The two TSes every row uses, and two with disjoint tables.
start tsa ts 0 --table "$work/both.txt"
start tsb ts 0 --table "$work/both.txt"
start ts1 ts 0 --table "$work/ts1.txt"
start ts2 ts 0 --table "$work/ts2.txt"
# shellcheck disable=SC2154 # set by start
ls_args=(127.0.0.1 "$tsa_dns" 127.0.0.1 "$tsb_dns" --ts-protocol dns)
ls_dns='' cached_dns='' disjoint_dns=''
start ls ls 0 "${ls_args[@]}" || true
start cached ls 0 "${ls_args[@]}" --cache 100000 || true
# shellcheck disable=SC2154
start disjoint ls 0 127.0.0.1 "$ts1_dns" 127.0.0.1 "$ts2_dns" --ts-protocol dns || true
pool_rr_dns='' pool_lo_dns=''
pool_args=(--pool "127.0.0.1:$tsa_dns,127.0.0.1:$tsb_dns" --ts-protocol dns)
start pool_rr ls 0 "${pool_args[@]}" --policy roundrobin || true
start pool_lo ls 0 "${pool_args[@]}" --policy leastoutstanding || true

# dnsdist: round robin over the same two TSes, no packet cache (none is
# configured), no security poll (it would ask the Internet).
free_port() {
    python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
# start_dnsdist <port> <policy> [<ts port> <ts port>]: dnsdist on <port>
# over two TSes (default: the two every row uses); its pid in dnsdist_pid.
# No health-check settings: dnsdist's defaults (a query for
# a.root-servers.net every second, 1 s timeout, down after 1 failure, up
# after 1 success; any rcode but SERVFAIL counts as alive).
start_dnsdist() {
    cat >"$work/dnsdist-$1.conf" <<EOF
setLocal("127.0.0.1:$1")
newServer{address="127.0.0.1:${3:-$tsa_dns}"}
newServer{address="127.0.0.1:${4:-$tsb_dns}"}
setServerPolicy($2)
setSecurityPollSuffix("")
EOF
    dnsdist --supervised --disable-syslog -C "$work/dnsdist-$1.conf" >>"$server_log" 2>&1 &
    dnsdist_pid=$!
    server_pids+=("$dnsdist_pid")
    # Wait (5 s at most) until dnsdist answers.
    for _ in $(seq 20); do
        if dig +short +time=1 +tries=1 @127.0.0.1 -p "$1" host1.ts1.example 2>/dev/null |
            grep -q '^10\.'; then
            break
        fi
        sleep 0.25
    done
}
dnsdist_port=$(free_port)
start_dnsdist "$dnsdist_port" roundrobin
dnsdist_lo_port=$(free_port)
start_dnsdist "$dnsdist_lo_port" leastOutstanding

rows=()
printf 'target\tserver\tqps\tavg ms\n' >"$work/plot.tsv"
printf 'target\tserver\tsent\tlost\tlost %%\n' >"$work/plot-fault.tsv"
# kind <label>: the server a row measures, which colours its bar.
kind() {
    case $1 in
    dnsdist*) echo dnsdist ;;
    ts*) echo "dnslb ts" ;;
    *) echo "dnslb ls" ;;
    esac
}
# row <label> <port>: runs dnsperf against 127.0.0.1:<port> and appends a
# table row; n/a when the port is empty or dnsperf reports nothing. Keeps
# the figures in fig_<key>_qps and fig_<key>_lost.
row() {
    local label=$1 port=$2 figures=
    echo "dns-compare: dnsperf -> $label" >&2
    if [[ -n $port ]]; then
        dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -q 100 -l "$seconds" \
            >"$work/out" 2>&1 || true
        figures=$(awk '
            $1 == "Queries" && $2 == "sent:" { sent = $3 }
            $1 == "Queries" && $2 == "lost:" { lost = $3 }
            $1 == "Queries" && $2 == "per" { qps = $4 }
            $1 == "Average" && $2 == "Latency" { lat = $4 * 1000 }
            $1 == "Response" && $2 == "codes:" {
                for (i = 3; i <= NF; i++) if ($i == "NOERROR") { ok = $(i + 2); gsub(/[(),%]/, "", ok) } }
            END { if (qps != "" && sent > 0)
                printf "%.0f %.3f %.3f %s\n", qps, lat, 100 * lost / sent, (ok == "" ? "0" : ok) }' "$work/out")
    fi
    if [[ -z $figures ]]; then
        rows+=("$(printf '%-32s %10s %10s %8s %9s' "$label" n/a n/a n/a n/a)")
        printf '%s\t%s\tn/a\tn/a\n' "$label" "$(kind "$label")" >>"$work/plot.tsv"
        return 0
    fi
    local qps lat lost ok key
    read -r qps lat lost ok <<<"$figures"
    printf '%s\t%s\t%s\t%s\n' "$label" "$(kind "$label")" "$qps" "$lat" >>"$work/plot.tsv"
    rows+=("$(printf '%-32s %10s %10s %8s %9s' "$label" "$qps" "$lat" "$lost" "$ok")")
    key=${label//[^a-zA-Z0-9]/_}
    printf -v "fig_${key}_qps" '%s' "$qps"
    printf -v "fig_${key}_lost" '%s' "$lost"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
row "ts direct" "$tsa_dns"
row "dnslb ls" "$ls_dns"
row "dnslb ls --cache 100000" "$cached_dns"
row "dnsdist" "$dnsdist_port"
row "dnslb ls, disjoint TSes" "$disjoint_dns"
row "dnslb ls --pool roundrobin" "$pool_rr_dns"
row "dnsdist roundrobin" "$dnsdist_port"
row "dnslb ls --pool leastoutstanding" "$pool_lo_dns"
row "dnsdist leastOutstanding" "$dnsdist_lo_port"

# The fault rows: dnsperf at a fixed rate (FAULT_QPS, default 10,000
# queries/s, well within what every front end sustains here) with a 1 s
# timeout for FAULT_SECONDS (default 8); one second in, one of the two TSes
# is frozen (SIGSTOP) for 2 s, then thawed (SIGCONT). Each row starts its
# own two TSes and front end and stops them after, so that a frozen TS
# never reaches another row. Keeps fig_fault_<key>_lost.
fault_qps=${FAULT_QPS:-10000}
fault_seconds=${FAULT_SECONDS:-8}
fault_rows=()
# fault_row <label> dnslb|dnsdist <policy>
fault_row() {
    local label=$1 front=$2 policy=$3 port='' figures='' pids=()
    echo "dns-compare: fault -> $label" >&2
    # shellcheck disable=SC2154 # fa_*, fb_*, fl_* are set by start
    if start fa ts 0 --table "$work/both.txt" && start fb ts 0 --table "$work/both.txt"; then
        pids+=("$fa_pid" "$fb_pid")
        if [[ $front == dnslb ]]; then
            if start fl ls 0 --pool "127.0.0.1:$fa_dns,127.0.0.1:$fb_dns" --ts-protocol dns \
                --policy "$policy"; then
                port=$fl_dns
            fi
            pids+=("$fl_pid")
        else
            port=$(free_port)
            start_dnsdist "$port" "$policy" "$fa_dns" "$fb_dns"
            pids+=("$dnsdist_pid")
        fi
    fi
    if [[ -n $port ]]; then
        dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" -Q "$fault_qps" -q 20000 -t 1 \
            -l "$fault_seconds" >"$work/out" 2>&1 &
        local perf=$!
        sleep 1
        kill -STOP "$fa_pid"
        sleep 2
        kill -CONT "$fa_pid"
        wait "$perf" || true
        figures=$(awk '
            $1 == "Queries" && $2 == "sent:" { sent = $3 }
            $1 == "Queries" && $2 == "lost:" { lost = $3 }
            END { if (sent > 0) printf "%d %d %.3f\n", sent, lost, 100 * lost / sent }' "$work/out")
    fi
    kill -CONT "${pids[@]}" 2>/dev/null || true
    kill "${pids[@]}" 2>/dev/null || true
    if [[ -z $figures ]]; then
        fault_rows+=("$(printf '%-36s %8s %8s %8s' "$label" n/a n/a n/a)")
        printf '%s\t%s\tn/a\tn/a\tn/a\n' "$label" "$(kind "$label")" >>"$work/plot-fault.tsv"
        return 0
    fi
    local sent lost pct key
    read -r sent lost pct <<<"$figures"
    printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$(kind "$label")" "$sent" "$lost" "$pct" >>"$work/plot-fault.tsv"
    fault_rows+=("$(printf '%-36s %8s %8s %8s' "$label" "$sent" "$lost" "$pct")")
    key=${label//[^a-zA-Z0-9]/_}
    printf -v "fig_fault_${key}_lost" '%s' "$pct"
}
fault_row "dnslb ls --pool roundrobin" dnslb roundrobin
fault_row "dnsdist roundrobin" dnsdist roundrobin
fault_row "dnslb ls --pool leastoutstanding" dnslb leastoutstanding
fault_row "dnsdist leastOutstanding" dnsdist leastOutstanding

echo "# scripts/dns-compare.sh on $(nproc) cores, $(uname -sr); dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }'), $(dnsdist --version 2>&1 | head -n 1)"
echo "# dnsperf -q 100 -l $seconds over UDP, 10 % of queries NXDOMAIN; dnsperf, servers and TSes share the cores"
echo "# load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-32s %10s %10s %8s %9s\n' target qps "avg ms" "lost %" "NOERROR %"
printf '%s\n' "${rows[@]}"
echo
echo "# fault: dnsperf -Q $fault_qps -t 1 -l $fault_seconds; one of the two TSes frozen (SIGSTOP) from 1 s to 3 s"
printf '%-36s %8s %8s %8s\n' target sent lost "lost %"
printf '%s\n' "${fault_rows[@]}"

echo
echo "targets (this run, as docs/COMPARISON.md states them):"
target "dnslb ls qps / dnsdist qps" "$(ratio "${fig_dnslb_ls_qps:-}" "${fig_dnsdist_qps:-}")" ">=" 0.5
target "dnslb ls qps / direct TS qps" "$(ratio "${fig_dnslb_ls_qps:-}" "${fig_ts_direct_qps:-}")" ">=" 0.2
target "dnslb ls lost %" "${fig_dnslb_ls_lost:-}" "<" 0.1
target "cached ls qps / direct TS qps" \
    "$(ratio "${fig_dnslb_ls___cache_100000_qps:-}" "${fig_ts_direct_qps:-}")" ">=" 1
target "pool roundrobin qps / dnsdist roundrobin qps" \
    "$(ratio "${fig_dnslb_ls___pool_roundrobin_qps:-}" "${fig_dnsdist_roundrobin_qps:-}")" ">=" 1
target "pool roundrobin lost %" "${fig_dnslb_ls___pool_roundrobin_lost:-}" "<" 0.1
target "pool leastoutstanding qps / dnsdist leastOutstanding qps" \
    "$(ratio "${fig_dnslb_ls___pool_leastoutstanding_qps:-}" "${fig_dnsdist_leastOutstanding_qps:-}")" ">=" 1
target "pool leastoutstanding lost %" "${fig_dnslb_ls___pool_leastoutstanding_lost:-}" "<" 0.1
for p in roundrobin:roundrobin leastoutstanding:leastOutstanding; do
    a=fig_fault_dnslb_ls___pool_${p%%:*}_lost b=fig_fault_dnsdist_${p##*:}_lost
    target "fault ${p%%:*}: lost %" "${!a:-}" "<=" 0.5
    # n/a when dnsdist's row has no figure.
    target "fault ${p%%:*}: lost %, dnsdist's" "${!b:+${!a:-}}" "<=" "${!b:-}"
done

# The charts (scripts/plot.py): a bar per row, coloured by server.
plots=$(plot_dir)
cp "$work/plot.tsv" "$plots/dns-compare.tsv"
cp "$work/plot-fault.tsv" "$plots/dns-fault.tsv"
plot bar "$plots/dns-compare.tsv" --label target --value qps --group server \
    --title "DNS over UDP: queries/s (dnsperf, 100 in flight)" \
    --xlabel "queries/s (higher is better)" --out "$plots/dns-qps.svg"
plot bar "$plots/dns-compare.tsv" --label target --value "avg ms" --group server --format .3f \
    --title "DNS over UDP: average latency (dnsperf, 100 in flight)" \
    --xlabel "ms (lower is better)" --out "$plots/dns-latency.svg"
plot bar "$plots/dns-fault.tsv" --label target --value "lost %" --group server --format .3f \
    --title "One of two TSes frozen for 2 s: queries lost" \
    --xlabel "% of queries lost (dnsperf -Q $fault_qps -t 1 -l $fault_seconds)" --out "$plots/dns-fault.svg"
echo "dns-compare: charts in $plots (dns-qps.svg, dns-latency.svg, dns-fault.svg; the figures in dns-compare.tsv, dns-fault.tsv)" >&2
