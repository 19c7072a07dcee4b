#!/usr/bin/env bash
# Scale check of docs/COMPARISON.md: the LS's threads and resident memory at
# rest and with 2,000 idle clients connected, then 2,000 concurrent clients
# of 25 queries each through it (every answer checked by `dnslb bench`).
#
#   scripts/scale.sh [clients]      # default 2000
#
# Each client costs the LS four threads and seven descriptors (client
# socket, its shutdown handle and reader; two per TS link); the script raises
# its descriptor limit to the hard limit for the servers it starts.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bin=$(dnslb_bin)
clients=${1:-2000}
work=$(mktemp -d)
stop_servers_on_exit 'rm -rf "$work"'
ulimit -n "$(ulimit -Hn)"

start() {
    start_server "$@" || { echo "scale: ${*:2} did not start" >&2; exit 1; }
}

two_tables "$work"
start ts1 "$bin" ts 0 --bind 127.0.0.1 --table "$work/ts1.txt"
start ts2 "$bin" ts 0 --bind 127.0.0.1 --table "$work/ts2.txt"
start ls "$bin" ls 0 127.0.0.1 "$ts1" 127.0.0.1 "$ts2" --bind 127.0.0.1 --max-clients $((clients + 100))

status() { awk '/^(Threads|VmRSS):/ { printf "%s %s %s  ", $1, $2, $3 } END { print "" }' "/proc/$1/status"; }

echo
echo "# dnslb ls at rest: $(status "$ls_pid")"
python3 - "$ls" "$clients" "$ls_pid" <<'PY'
import socket, sys, time
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
# One query on the last connection: when it is answered, every earlier
# connection has been accepted and has its worker.
conns[-1].sendall(b"host1.ts1.example\n")
conns[-1].recv(100)
def status():
    fields = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status"))
    return fields["Threads"].strip(), fields["VmRSS"].strip()
threads, rss = status()
print(f"# dnslb ls with {n} idle clients connected: Threads {threads}  VmRSS {rss}")
PY

echo
echo "# $clients clients x 25 queries through dnslb ls ($(nproc) cores)"
"$bin" bench 127.0.0.1 "$ls" --clients "$clients" --queries 25 --names "$work/both.txt" --timeout 10
