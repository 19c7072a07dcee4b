#!/usr/bin/env bash
# The web endpoint in a real browser: the two course TSes and an LS with
# --web 127.0.0.1:0, a steady load of course queries through
# the LS, then headless Chromium loads the dashboard, and the check reads
# the page it rendered: it names every backend, shows them up, and shows
# live figures (a queries/s above 0). A screenshot is written too. When
# promtool is at hand (apt-get install prometheus), /metrics is also run
# through `promtool check metrics`.
#
# Usage: scripts/web-check.sh [SCREENSHOT.png]   (default: a temporary file)
# Installs chromium (apt-get) when it is missing, waiting up to 5 minutes
# for another apt-get to finish. DNSLB_BIN runs that binary instead of the
# release build. Exit 0 when every check passed, 1 otherwise.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# apt_install <package...>: installs the packages, waiting (bounded) while
# another apt-get or dpkg holds the lock.
apt_install() {
    local tries
    for tries in $(seq 60); do
        if ! fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock \
            >/dev/null 2>&1; then
            break
        fi
        echo "web-check: apt is busy; waiting ($tries/60)" >&2
        sleep 5
    done
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || {
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
    }
}

browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $browser ]]; then
    echo "web-check: installing chromium" >&2
    apt_install chromium
    browser=$(command -v chromium)
fi
bin=${DNSLB_BIN:-$(dnslb_bin)}
work=$(mktemp -d)
stop_servers_on_exit 'rm -rf "$work"'
server_log=$work/servers.log
shot=${1:-$work/dashboard.png}

start_server ts1 "$bin" ts 0 --bind 127.0.0.1 --table "$root/data/PROJ2-DNSTS1.txt"
start_server ts2 "$bin" ts 0 --bind 127.0.0.1 --table "$root/data/PROJ2-DNSTS2.txt"
start_server ls "$bin" ls 0 127.0.0.1 "$ts1" 127.0.0.1 "$ts2" --bind 127.0.0.1 \
    --timeout 0.5 --web 127.0.0.1:0
read -r -t 10 line <&"$ls_out"
[[ $line == "listening on "*" (http)" ]] || { echo "web-check: no http line: $line" >&2; exit 1; }
web=${line#listening on }
web=${web% (http)}
echo "web-check: LS on 127.0.0.1:$ls, dashboard at http://$web/" >&2

# A steady load for the dashboard to show, until the script ends: clients
# pipelining the course names, and one asking made-up names now and then
# (they time out).
(
    while :; do
        "$bin" bench 127.0.0.1 "$ls" --clients 4 --queries 20000 --pipeline 8 \
            --timeout 5 >/dev/null 2>&1 || true
    done
) &
server_pids+=("$!")
(
    while :; do
        "$bin" bench 127.0.0.1 "$ls" --queries 20 --miss-ratio 0.2 \
            --timeout 5 >/dev/null 2>&1 || true
    done
) &
server_pids+=("$!")

failed=0
check() { # check <what> <command...>
    if "${@:2}"; then
        echo "ok:   $1"
    else
        echo "FAIL: $1"
        failed=1
    fi
}

chrome() {
    "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
        --no-first-run --user-data-dir="$(mktemp -d -p "$work")" \
        --virtual-time-budget=5000 --timeout=6000 "$@" 2>>"$work/chromium.log"
}

chrome --dump-dom "http://$web/" >"$work/dom.html" || true
dom=$work/dom.html
check "the page renders (its title)" grep -q '<h1 id="title">dnslb ls ' "$dom"
check "it names ts1 and ts2" grep -q '</span>ts2</td>' "$dom"
check "every backend shows UP" test "$(grep -o 'class="badge up"' "$dom" | wc -l)" -eq 2
check "it is live (updated)" grep -q 'live, updated' "$dom"
check "it shows a queries/s above 0" \
    grep -Eq 'id="qps">([1-9][0-9,]*(\.[0-9])?|0\.[1-9])<' "$dom"
check "it shows the cache hit ratio (none: no --cache)" grep -q 'id="cache">–<' "$dom"
check "it shows the backends' queries/s" \
    grep -Eq '</span>ts1</td>.*<td>([1-9][0-9,]*(\.[0-9])?|0\.[1-9])</td>' "$dom"
check "it shows threads" grep -Eq 'id="threads">[1-9][0-9]*<' "$dom"
check "it shows a recent p50 and p99 (last 10 s)" \
    grep -Eq '</span>ts1</td>.*<td class="p50">[0-9.,]+</td><td class="p99">[0-9.,]+</td>' "$dom"

chrome --window-size=1280,900 --hide-scrollbars --screenshot="$shot" "http://$web/" \
    >/dev/null || true
check "a screenshot was taken ($shot)" test -s "$shot"

curl_get() { # curl_get <path>: the body, with bash only
    local fd
    exec {fd}<>"/dev/tcp/${web%:*}/${web##*:}"
    printf 'GET %s HTTP/1.1\r\nHost: %s\r\n\r\n' "$1" "$web" >&"$fd"
    sed '1,/^\r$/d' <&"$fd"
    exec {fd}>&-
}
curl_get /metrics >"$work/metrics.txt"
check "/metrics has the backend series" grep -q '^dnslb_backend_up{backend="ts2"} 1$' \
    "$work/metrics.txt"
if command -v promtool >/dev/null; then
    check "promtool check metrics" promtool check metrics <"$work/metrics.txt"
else
    echo "skip: promtool is not installed (apt-get install prometheus)"
fi

if ((failed)); then
    echo "web-check: the page as rendered: $dom" >&2
    cp "$dom" "${TMPDIR:-/tmp}/web-check-dom.html"
    echo "web-check: kept at ${TMPDIR:-/tmp}/web-check-dom.html" >&2
fi
exit "$failed"
