#!/usr/bin/env bash
# The DNS hierarchy on one machine: a root server, TLD servers for com, edu
# and org, and authoritative servers for the course's names (zone files
# under data/hierarchy/), each a `dnslb ts --zone` on its own loopback
# address (127.0.0.2, .3, ...) and one port; then an LS that resolves
# iteratively from the root (`dnslb ls --root 127.0.0.2 --server-port
# PORT -v`), its steps on stderr, and the course client resolving
# data/PROJ2-HNS.txt through it: its RESOLVED.txt must be the sample's.
# With dig installed it also shows a referral from the root and from a
# TLD, and a cached TTL counting down.
#
# Usage: scripts/hierarchy-demo.sh [PORT]   (default 5300; any user may run it)
# Exit 0 when every expectation held, 1 otherwise; everything started is
# stopped.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

port=${1:-5300}
bin=$(dnslb_bin)
work=$(mktemp -d)
stop_servers_on_exit 'rm -rf "$work"'
server_log=$work/servers.log
zones=$root/data/hierarchy
failed=0

# serve <last byte> <zone files...>: a TS for those zones on 127.0.0.<n>:$port.
serve() {
    local n=$1 args=()
    shift
    for zone in "$@"; do args+=(--zone "$zones/$zone"); done
    if ! start_server "ts$n" "$bin" ts 0 "${args[@]}" --bind "127.0.0.$n" --dns-port "$port" ||
        ! read_dns_port "ts$n"; then
        echo "hierarchy-demo: the server on 127.0.0.$n:$port did not start (port taken? give another: $0 PORT)" >&2
        tail -n 5 "$server_log" >&2 || true
        exit 1
    fi
    echo "127.0.0.$n:$port serves $*"
}

serve 2 root.zone
serve 3 com.zone
serve 4 edu.zone
serve 5 org.zone
serve 10 rutgers.com.zone
serve 11 princeton.edu.zone
serve 12 princeton.edu.zone
serve 13 hosting.com.zone amazon.org.zone

# The LS's steps go to the script's stderr.
server_log=-
if ! start_server ls "$bin" ls 0 --root 127.0.0.2 --server-port "$port" \
    --bind 127.0.0.1 --dns-port 0 -v || ! read_dns_port ls; then
    echo "hierarchy-demo: the iterative LS did not start" >&2
    exit 1
fi
# shellcheck disable=SC2154 # set by start_server and read_dns_port
echo "iterative LS: course protocol on 127.0.0.1:$ls, DNS on 127.0.0.1:$ls_dns"

echo
echo "== the course client, through the iterative LS"
(cd "$work" && "$bin" client 127.0.0.1 "$ls" --input "$root/data/PROJ2-HNS.txt" --output RESOLVED.txt)
if diff -u "$root/data/example-RESOLVED.txt" "$work/RESOLVED.txt"; then
    echo "ok: RESOLVED.txt is the sample's"
else
    echo "FAILED: RESOLVED.txt differs from data/example-RESOLVED.txt"
    failed=1
fi

if command -v dig >/dev/null; then
    show() {
        echo
        echo "\$ $*"
        "$@" || true
    }
    echo
    echo "== what the LS did, one server at a time"
    show dig @127.0.0.2 -p "$port" +norec www.princeton.edu A
    show dig @127.0.0.4 -p "$port" +norec www.princeton.edu A
    show dig @127.0.0.11 -p "$port" +norec www.princeton.edu A
    echo
    echo "== the LS's cache: the TTL counts down"
    show dig @127.0.0.1 -p "$ls_dns" +noall +answer www.princeton.edu A
    sleep 2
    show dig @127.0.0.1 -p "$ls_dns" +noall +answer www.princeton.edu A
else
    echo "(dig is not installed: the referrals and TTLs are not shown)"
fi
exit "$failed"
