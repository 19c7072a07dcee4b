#!/usr/bin/env bash
# Traces of the course sample through dnslb's LS (a thread per connection)
# and through the course's select() design (scripts/select_ls.py), drawn as
# sequence diagrams side by side on one HTML page, with a pipelined run
# where many queries overlap (docs/OBSERVE.md, "Drawing a trace").
#
#   scripts/trace-compare.sh [OUT_DIR]
#
# Starts the two course TSes (data/PROJ2-DNSTS1.txt, data/PROJ2-DNSTS2.txt)
# on loopback, then, in turn, `dnslb ls --trace` and `select_ls.py --trace`
# in front of them: each resolves data/PROJ2-HNS.txt with the course client
# (one query at a time), then the same names three times over with
# `dnslb client --pipeline 12` (all twelve sent at once). Each LS is stopped
# before its trace is read. `dnslb trace` draws each trace (--svg) and
# summarises it; OUT_DIR/index.html shows them. OUT_DIR defaults to a new
# temporary directory; its path is printed at the end.
#
# TRACE_TIMEOUT sets both LSes' timeout in seconds (default 5, as in the
# course; the name no TS holds waits for it in every run).
#
# Needs bash and python3. Fails (exit 2) when this dnslb's LS has no --trace.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bin=$(dnslb_bin)
timeout=${TRACE_TIMEOUT:-5}
out=${1:-$(mktemp -d)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if ! "$bin" ls --help | grep -q -- '--trace'; then
    echo "trace-compare: $bin: dnslb ls has no --trace option, so there is no trace of its threads to draw (build a dnslb whose LS writes traces)" >&2
    exit 2
fi

stop_servers_on_exit
server_log=$out/servers.log
: >"$server_log"
start_server ts1 "$bin" ts 0 --bind 127.0.0.1 --table "$root/data/PROJ2-DNSTS1.txt"
start_server ts2 "$bin" ts 0 --bind 127.0.0.1 --table "$root/data/PROJ2-DNSTS2.txt"

# The pipelined run's names: the course sample three times.
for _ in 1 2 3; do cat "$root/data/PROJ2-HNS.txt"; done >"$out/names-x3.txt"

# stop <var>: stops the server start_server set <var>_pid for, and waits
# for it to end (its trace is complete then).
stop() {
    local pid=${1}_pid tries=0
    kill "${!pid}" 2>/dev/null || true
    wait "${!pid}" 2>/dev/null || true
    # wait does not wait for a process substitution in every bash: wait
    # here for the process to be gone, 10 s at most.
    while kill -0 "${!pid}" 2>/dev/null && ((tries++ < 200)); do
        sleep 0.05
    done
}

# run <label> <command...>: starts the LS `command` (with --trace
# $out/<label>.jsonl added), resolves the course sample through it one
# query at a time, stops it; then the same with a fresh LS and the
# pipelined client, into $out/<label>-pipelined.jsonl.
run() {
    local label=$1
    shift
    local run
    for run in "$label" "$label-pipelined"; do
        if ! start_server ls "$@" --trace "$out/$run.jsonl"; then
            echo "trace-compare: $label did not start (see $server_log)" >&2
            exit 1
        fi
        echo "trace-compare: $run: resolving through $label on port $ls (timeout $timeout s)" >&2
        if [[ $run == *-pipelined ]]; then
            "$bin" client 127.0.0.1 "$ls" --pipeline 12 \
                --input "$out/names-x3.txt" --output "$out/$run-RESOLVED.txt" >/dev/null
        else
            "$bin" client 127.0.0.1 "$ls" \
                --input "$root/data/PROJ2-HNS.txt" --output "$out/$run-RESOLVED.txt" >/dev/null
        fi
        stop ls
    done
}

run threads "$bin" ls 0 127.0.0.1 "$ts1" 127.0.0.1 "$ts2" --bind 127.0.0.1 --timeout "$timeout"
run select python3 "$root/scripts/select_ls.py" 0 127.0.0.1 "$ts1" 127.0.0.1 "$ts2" \
    --bind 127.0.0.1 --timeout "$timeout"

for run in threads select threads-pipelined select-pipelined; do
    first=10
    [[ $run == *-pipelined ]] && first=12
    "$bin" trace "$out/$run.jsonl" --first "$first" --svg "$out/$run.svg"
    "$bin" trace "$out/$run.jsonl" --first "$first" >"$out/$run.txt"
done

# html <file>: the file's text, escaped for HTML.
html() {
    sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' "$1"
}

# figure <run> <caption>: one diagram, its summary and its links. Its
# share of the row is the diagram's width, so that the two of a pair are
# drawn at one scale.
figure() {
    local width
    width=$(grep -o -m1 'width="[0-9]*"' "$out/$1.svg" | tr -dc 0-9)
    cat <<EOF
<figure style="flex-grow: ${width:-1}">
<figcaption>$2</figcaption>
<a href="$1.svg"><img src="$1.svg" alt="sequence diagram of $1.jsonl"></a>
<pre>$(html "$out/$1.txt")</pre>
<p class="files"><a href="$1.jsonl">$1.jsonl</a> · <a href="$1.svg">$1.svg</a> (full size)</p>
</figure>
EOF
}

{
    cat <<EOF
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dnslb: threads and select(), traced</title>
<style>
body { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 2em; margin: 0 0 .3em; }
h2 { font-size: 1.6em; margin: 1.2em 0 .4em; }
p { font-size: 1.2em; max-width: 70em; }
.pair { display: flex; gap: 2em; align-items: flex-start; }
figure { flex: 1 1 0; margin: 0; min-width: 0; }  /* flex-grow: set per figure */
figcaption { font-size: 1.4em; font-weight: bold; margin-bottom: .4em; }
img { width: 100%; height: auto; border: 1px solid #ccc; }
pre { font-size: 1em; white-space: pre-wrap; background: #f6f6f6; padding: .6em; }
.files { font-size: 1em; }
</style>
</head>
<body>
<h1>One query's path: dnslb's threads beside the select() loop</h1>
<p>The course sample (data/PROJ2-HNS.txt) through two TSes, timeout $timeout s.
Each lane is a client, a thread or a TS; time runs down, and long idle
stretches (the timeout of the name no TS holds) are drawn as breaks.
Labels give each step's time since its query arrived. The two diagrams of
a row are drawn at one scale; click one for its full size.</p>
<h2>The course client, one query at a time</h2>
<div class="pair">
EOF
    figure threads "dnslb ls (a thread per connection)"
    figure select "select_ls.py (one thread per client, select() on the TSes)"
    cat <<EOF
</div>
<h2>Pipelined: twelve queries sent at once (dnslb client --pipeline 12)</h2>
<div class="pair">
EOF
    figure threads-pipelined "dnslb ls"
    figure select-pipelined "select_ls.py"
    cat <<EOF
</div>
</body>
</html>
EOF
} >"$out/index.html"
echo "trace-compare: wrote $out/index.html" >&2
echo "$out/index.html"
