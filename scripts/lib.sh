# Sourced by the other scripts: finds the repository and the dnslb binary,
# and starts and stops servers.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# dnslb_bin: builds the release binary (cargo does nothing when it is up to
# date) and prints its path. The first build shows cargo's progress on
# stderr; later ones are quiet.
dnslb_bin() {
    local bin=${CARGO_TARGET_DIR:-$root/target}/release/dnslb
    if [ -x "$bin" ]; then
        cargo build --release --quiet --manifest-path "$root/Cargo.toml" >&2
    else
        echo "building dnslb (release; the first build takes a minute or less)" >&2
        cargo build --release --manifest-path "$root/Cargo.toml" >&2
    fi
    echo "$bin"
}

# course_ts <n> <port> [dnslb ts options]: runs TS<n> of the course, with
# its table data/PROJ2-DNSTS<n>.txt, in place of the calling script.
course_ts() {
    local n=$1
    shift
    if [ $# -lt 1 ]; then
        echo "usage: $0 <port> [dnslb ts options]" >&2
        exit 2
    fi
    local port=$1
    shift
    exec "$(dnslb_bin)" ts "$port" --table "$root/data/PROJ2-DNSTS$n.txt" "$@"
}

# two_tables <dir>: writes <dir>/ts1.txt and <dir>/ts2.txt, two disjoint
# tables of 1000 names (host<i>.ts<n>.example, addresses 10.<n>.x.y), and
# <dir>/both.txt, the two together.
two_tables() {
    local ts
    for ts in 1 2; do
        awk -v ts="$ts" 'BEGIN { for (i = 0; i < 1000; i++)
            printf "host%d.ts%d.example 10.%d.%d.%d A\n", i, ts, ts, int(i / 256), i % 256 }' \
            >"$1/ts$ts.txt"
    done
    cat "$1/ts1.txt" "$1/ts2.txt" >"$1/both.txt"
}

# The servers start_server started; stop_servers stops them (the scripts
# call it from their EXIT trap).
server_pids=()

# label <name>: copies its input to stderr, each line after `<name>: `.
label() {
    local line
    while IFS= read -r line; do
        printf '%s: %s\n' "$1" "$line" >&2
    done
}

# start_server <var> <command...>: starts a server in the background, its
# stderr appended to $server_log (default: discarded; `-`: the script's own
# stderr, each line after `<var>: `), and reads its first
# line, `listening on <addr>:<port>`, waiting 10 s at most. Sets <var> to
# the port, <var>_addr to `<addr>:<port>`, <var>_pid to its pid and
# <var>_out to the descriptor of its stdout. Returns 1 when the server ends
# or says something else first (a port already taken, say).
start_server() {
    local var=$1 fd line
    shift
    if [[ ${server_log:-} == - ]]; then
        exec {fd}< <(exec "$@" 2> >(label "$var"))
    else
        exec {fd}< <(exec "$@" 2>>"${server_log:-/dev/null}")
    fi
    server_pids+=("$!")
    printf -v "${var}_pid" '%s' "$!"
    printf -v "${var}_out" '%s' "$fd"
    if ! read -r -t 10 line <&"$fd" || [[ $line != "listening on "* ]]; then
        return 1
    fi
    printf -v "${var}_addr" '%s' "${line#listening on }"
    printf -v "$var" '%s' "${line##*:}"
}

# stop_servers_on_exit [command]: runs `command` (if given), then
# stop_servers, when the script ends, however it ends (an error, Ctrl-C, a
# closed output pipe).
stop_servers_on_exit() {
    # shellcheck disable=SC2064 # the command is meant to be expanded now
    trap "${1:-}${1:+; }stop_servers" EXIT
    trap 'exit 130' INT TERM HUP
    trap 'exit 141' PIPE
}

# stop_servers: stops every server start_server started and waits for them.
stop_servers() {
    if ((${#server_pids[@]})); then
        kill "${server_pids[@]}" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
}

# read_dns_port <var>: after start_server <var> for a server started with
# --dns-port, reads its next stdout line, `listening on <addr>:<port> (dns
# udp+tcp)`, waiting 10 s at most, and sets <var>_dns to the port. Returns
# 1 when the server says something else or nothing.
read_dns_port() {
    local var=$1 fd line
    fd=${var}_out
    if ! read -r -t 10 line <&"${!fd}" || [[ $line != "listening on "*" (dns udp+tcp)" ]]; then
        return 1
    fi
    line=${line% (dns udp+tcp)}
    printf -v "${var}_dns" '%s' "${line##*:}"
}

# ratio <a> <b>: a / b to two decimals; n/a when either is missing or b is 0.
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
# target <what> <value> <op> <threshold> [<aside>]: one line, the value and
# `met` or `NOT MET` (n/a when the value is missing).
target() {
    local mark
    mark=$(awk -v v="$2" -v op="$3" -v t="$4" 'BEGIN {
        if (v == "" || v == "n/a") { print "n/a"; exit }
        ok = op == "<=" ? v + 0 <= t + 0 : op == ">=" ? v + 0 >= t + 0 : op == "<" ? v + 0 < t + 0 : v + 0 == t + 0
        print ok ? "met" : "NOT MET" }')
    local line
    printf -v line '  %-52s %9s  %-7s %s' "$1 ($3 $4):" "${2:-n/a}" "$mark" "${5:-}"
    echo "${line%"${line##*[! ]}"}"
}

# plot_dir: prints the directory the scripts write their charts to
# ($PLOT_DIR, default target/plots in the repository), creating it.
plot_dir() {
    local dir=${PLOT_DIR:-$root/target/plots}
    mkdir -p "$dir" && echo "$dir"
}

# plot <scripts/plot.py arguments...>: draws one chart (scripts/plot.py,
# which needs python3); a chart that cannot be drawn is said on stderr and
# does not end the script, whose table is already printed.
plot() {
    if ! command -v python3 >/dev/null; then
        echo "plot: no python3, no chart" >&2
        return 0
    fi
    python3 "$root/scripts/plot.py" "$@" || echo "plot: no chart (scripts/plot.py $1 ... failed)" >&2
}
