#!/usr/bin/env bash
# dnslb over real DNS, shown with dig: two `dnslb ts --dns-port` and a
# `dnslb ls --dns-port --ts-protocol dns --cache 1000` in front of them, then
# dig queries through the LS showing an answer, TC and the retry over TCP,
# NXDOMAIN, round robin, a cached TTL counting down, and (through a second
# LS whose other TS never answers, with --dns-timeout 1) SERVFAIL. Each
# step prints the dig command, what it shows, and whether dig saw what was
# expected.
#
# Usage: scripts/dns-demo.sh
# Installs dig (apt-get install bind9-dnsutils) when it is missing. Exit 0
# when every expectation held, 1 otherwise; everything started is stopped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if ! command -v dig >/dev/null; then
    echo "dns-demo: installing dig (bind9-dnsutils)" >&2
    apt-get update -qq >&2 && apt-get install -y -qq bind9-dnsutils >&2
fi
bin=$(dnslb_bin)
work=$(mktemp -d)
stop_servers_on_exit 'rm -rf "$work"'
server_log=$work/servers.log

# TS1: a name with 100 addresses (too many for one UDP answer), a name
# with three (round robin), and one more. TS2: two names of its own.
{
    for i in $(seq 1 100); do echo "many.example 10.1.$((i / 256)).$((i % 256)) A"; done
    echo "rr.example 10.1.1.1 A"
    echo "rr.example 10.1.1.2 A"
    echo "rr.example 10.1.1.3 A"
    echo "www.ts1.example 10.1.2.1 A"
} >"$work/ts1.txt"
{
    echo "www.ts2.example 10.2.0.1 A"
    echo "cached.example 10.2.0.2 A"
} >"$work/ts2.txt"

# start <var> <dnslb args...>: starts dnslb with --dns-port 0 and reads
# both of its listening lines (sets <var>, <var>_dns, <var>_pid).
start() {
    local var=$1
    shift
    if ! start_server "$var" "$bin" "$@" --bind 127.0.0.1 --dns-port 0 || ! read_dns_port "$var"; then
        echo "dns-demo: \`dnslb $*\` did not start:" >&2
        tail -n 5 "$server_log" >&2 || true
        exit 1
    fi
}

start ts1 ts 0 --table "$work/ts1.txt" --ttl 60
start ts2 ts 0 --table "$work/ts2.txt" --ttl 60
# shellcheck disable=SC2154 # set by start
start ls ls 0 127.0.0.1 "$ts1_dns" 127.0.0.1 "$ts2_dns" --ts-protocol dns --cache 1000
# A TS that accepts connections and never answers, for the SERVFAIL step.
# shellcheck disable=SC2016 # Python source, not shell
start_server silent python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
print("listening on 127.0.0.1:%d" % s.getsockname()[1], flush=True)
held = []
while True:
    held.append(s.accept()[0])
'
# shellcheck disable=SC2154 # set by start_server
start ls2 ls 0 127.0.0.1 "$ts2_dns" 127.0.0.1 "$silent" --ts-protocol dns --dns-timeout 1
echo "TS1 DNS on 127.0.0.1:$ts1_dns, TS2 DNS on 127.0.0.1:$ts2_dns"
# shellcheck disable=SC2154
echo "LS DNS on 127.0.0.1:$ls_dns (cache 1000); LS2 DNS on 127.0.0.1:$ls2_dns (TS2 and a silent TS, --dns-timeout 1)"

failures=0
out=
# ask <explanation> <port> <dig args...>: prints the explanation and the dig
# command, runs it (RD clear: the LS does not recurse), shows its output.
ask() {
    local explanation=$1 port=$2
    shift 2
    local cmd=(dig @127.0.0.1 -p "$port" +norecurse +time=4 +tries=1 "$@")
    echo
    echo "== $explanation"
    echo "\$ ${cmd[*]}"
    out=$("${cmd[@]}" 2>&1) || true
    # shellcheck disable=SC2001 # a prefix on every line
    sed 's/^/    /' <<<"$out"
}
# expect <what> <extended regex>: checks that dig's last output matches.
expect() {
    if grep -qE -- "$2" <<<"$out"; then
        echo "ok: $1"
    else
        echo "MISMATCH: $1 (no /$2/ in dig's output)"
        failures=$((failures + 1))
    fi
}
# check <what> <condition words...>: checks a condition.
check() {
    local what=$1
    shift
    if "$@"; then
        echo "ok: $what"
    else
        echo "MISMATCH: $what"
        failures=$((failures + 1))
    fi
}

ask "An answer: TS2 holds www.ts2.example; the LS relays its A record." \
    "$ls_dns" +noall +comments +answer www.ts2.example A
expect "NOERROR" 'status: NOERROR'
expect "the address from TS2's table" 'www\.ts2\.example\.[[:space:]]+[0-9]+[[:space:]]+IN[[:space:]]+A[[:space:]]+10\.2\.0\.1'

ask "TC: 100 addresses do not fit dig's 1232-byte UDP limit; with +ignore dig shows the truncated UDP answer." \
    "$ls_dns" +ignore +noall +comments many.example A
expect "TC set" 'flags:[^;]* tc'
expect "no answer records in the truncated answer" 'ANSWER: 0'

ask "TCP retry: without +ignore dig sees TC and asks again over TCP, where all 100 fit." \
    "$ls_dns" +noall +comments many.example A
expect "dig retried over TCP" 'Truncated, retrying in TCP mode'
expect "all 100 addresses" 'ANSWER: 100'

ask "NXDOMAIN: neither TS holds the name; both say so, and the LS answers at once." \
    "$ls_dns" +noall +comments nothere.example A
expect "NXDOMAIN" 'status: NXDOMAIN'

echo
echo "== Round robin: three queries for rr.example; the first address rotates."
firsts=()
for i in 1 2 3; do
    ask "rr.example, query $i" "$ls_dns" +short rr.example A
    firsts+=("$(head -n 1 <<<"$out")")
done
check "three different first addresses (${firsts[*]})" \
    test "$(printf '%s\n' "${firsts[@]}" | grep -E '^10\.1\.1\.[123]$' | sort -u | wc -l)" -eq 3

ttl_of() { awk '$1 == "cached.example." && $4 == "A" { print $2; exit }' <<<"$out"; }
ask "A cached TTL: the first query fills the LS's cache (TTL 60 from TS2)..." \
    "$ls_dns" +noall +answer cached.example A
first_ttl=$(ttl_of)
sleep 2
ask "... and two seconds later the LS answers from its cache, the TTL counted down." \
    "$ls_dns" +noall +answer cached.example A
second_ttl=$(ttl_of)
check "the TTL went down by 1 to 3 seconds (${first_ttl:-none} then ${second_ttl:-none})" \
    test -n "$first_ttl" -a -n "$second_ttl" -a "$((${first_ttl:-0} - ${second_ttl:-0}))" -ge 1 \
    -a "$((${first_ttl:-0} - ${second_ttl:-0}))" -le 3

ask "SERVFAIL: through LS2, TS2 says NXDOMAIN but the silent TS never answers; after --dns-timeout 1 the LS gives up." \
    "$ls2_dns" +noall +comments www.ts1.example A
expect "SERVFAIL" 'status: SERVFAIL'
ask "The same LS2 answers a name TS2 holds at once: the first positive answer does not wait for the silent TS." \
    "$ls2_dns" +noall +comments +answer www.ts2.example A
expect "NOERROR" 'status: NOERROR'

echo
if ((failures > 0)); then
    echo "dns-demo: $failures expectation(s) not met"
    exit 1
fi
echo "dns-demo: every expectation met"
