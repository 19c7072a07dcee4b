#!/usr/bin/env bash
# The zone-file differential check: the same zone files served by
# `dnslb ts --zone` and by NSD, on distinct ports of 127.0.0.1, asked the
# same questions with dig; prints each question whose answers differ
# (flags, rcode, or any section, records compared as sets), then a count.
# Exits 1 when any differ.
#
#   scripts/zone-vs-nsd.sh [ZONE_FILE...]
#   (default: data/zones/example.test.zone and data/zones/cs.example.test.zone)
#   DNSLB=path/to/dnslb   use this binary instead of building the release one
#
# The questions are every owner name of the files, each with every
# supported type over UDP and type A over TCP, plus names that do not exist, names under the
# delegations and the apexes in other cases. NSD runs with
# `minimal-responses: yes`, which leaves the zone's NS set out of the
# authority section of positive answers, as dnslb does; in that mode NSD
# also leaves out the addresses of MX targets, which dnslb adds (as NSD
# does without it), so the MX answer at example.test (asked in two cases)
# differs in its additional section. dig asks without EDNS, so the
# answers do not differ by the OPT record's payload size. Type ANY is not
# asked: NSD answers it with one RRset (RFC 8482), dnslb with them all.
#
# Installs nsd (and dig) with apt-get when they are missing, waiting up to
# five minutes for another apt to release its lock. Needs bash, awk and
# python3 (to find a free port for NSD).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

missing=()
command -v nsd >/dev/null || missing+=(nsd)
command -v dig >/dev/null || missing+=(bind9-dnsutils)
if ((${#missing[@]})); then
    echo "zone-vs-nsd: installing ${missing[*]}" >&2
    apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >&2
fi
if (($#)); then
    zones=("$@")
else
    zones=("$root/data/zones/example.test.zone" "$root/data/zones/cs.example.test.zone")
fi
bin=${DNSLB:-$(dnslb_bin)}
work=$(mktemp -d)
stop_servers_on_exit 'rm -rf "$work"'
server_log=$work/servers.log

# Each file's apex: the owner of its SOA, as dnslb reads it.
apex_of() {
    awk '
        { sub(/;.*/, "") }
        $1 == "$ORIGIN" { origin = $2; next }
        $1 == "$TTL" || NF == 0 { next }
        /^[^ \t]/ { owner = $1 }
        { for (i = 1; i <= NF; i++) if (toupper($i) == "SOA") {
              if (owner == "@") print origin
              else if (owner ~ /\.$/) print owner
              else print owner "." origin
              exit } }' "$1"
}

nsd_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{
    cat <<CONF
server:
    ip-address: 127.0.0.1@$nsd_port
    port: $nsd_port
    username: ""
    chroot: ""
    database: ""
    zonelistfile: "$work/zone.list"
    xfrdfile: "$work/xfrd.state"
    pidfile: "$work/nsd.pid"
    logfile: "$work/nsd.log"
    server-count: 1
    hide-version: yes
    minimal-responses: ${NSD_MINIMAL:-yes}
    refuse-any: no
    verbosity: 1
remote-control:
    control-enable: no
CONF
    for zone in "${zones[@]}"; do
        printf 'zone:\n    name: "%s"\n    zonefile: "%s"\n' "$(apex_of "$zone")" "$(realpath "$zone")"
    done
} >"$work/nsd.conf"
nsd-checkconf "$work/nsd.conf"
nsd -d -c "$work/nsd.conf" 2>>"$server_log" &
server_pids+=("$!")

zone_args=()
for zone in "${zones[@]}"; do
    zone_args+=(--zone "$zone")
done
if ! start_server dnslb "$bin" ts 0 --bind 127.0.0.1 --dns-port 0 "${zone_args[@]}" ||
    ! read_dns_port dnslb; then
    echo "zone-vs-nsd: dnslb did not start:" >&2
    cat "$server_log" >&2
    exit 1
fi

# ask <port> <name> <type> [dig options]: dig's answer without the ID,
# timings and server lines, each section's records sorted (dnslb rotates
# RRsets).
ask() {
    dig @127.0.0.1 -p "$1" "$2" "$3" "${@:4}" +noedns +tries=1 +time=2 +nostats +nocmd \
        +noall +comments +question +answer +authority +additional 2>&1 |
        awk '
            /^;; ->>HEADER<<-/ { sub(/, id: [0-9]+/, ""); print; next }
            /^;; flags:/ { print; next }
            /^;; [A-Z]+ SECTION:/ { flush(); print; next }
            /^;/ || NF == 0 { next }
            { lines[n++] = $0 }
            function flush(   i, j, t) {
                for (i = 1; i < n; i++) for (j = i; j > 0 && lines[j - 1] > lines[j]; j--) {
                    t = lines[j]; lines[j] = lines[j - 1]; lines[j - 1] = t }
                for (i = 0; i < n; i++) print lines[i]
                n = 0 }
            END { flush() }'
}

# Wait (bounded) for NSD to answer.
for _ in $(seq 50); do
    if dig @127.0.0.1 -p "$nsd_port" "$(apex_of "${zones[0]}")" SOA +noedns +tries=1 +time=1 +short >/dev/null 2>&1 &&
        [ -n "$(dig @127.0.0.1 -p "$nsd_port" "$(apex_of "${zones[0]}")" SOA +noedns +tries=1 +time=1 +short 2>/dev/null)" ]; then
        break
    fi
    sleep 0.1
done

# The questions: every owner name (as the files write it, made absolute),
# names that do not exist, under the delegations, and in other cases.
names=()
for zone in "${zones[@]}"; do
    apex=$(apex_of "$zone")
    while IFS= read -r name; do names+=("$name"); done < <(awk -v origin="$apex" '
        { sub(/;.*/, "") }
        $1 == "$ORIGIN" { origin = $2; next }
        $1 == "$TTL" || NF == 0 || /^[ \t]/ { next }
        { owner = $1
          if (owner == "@") print origin
          else if (owner ~ /\.$/) print owner
          else print owner "." origin }' "$zone" | sort -u)
    names+=("nothere.$apex" "a.b.nothere.$apex" "$(echo "$apex" | tr '[:lower:]' '[:upper:]')")
done
names+=("www.nowhere.invalid." "deep.www.cs.example.test." "x.ns.cs.example.test." "rooms.example.test." "lab.rooms.example.test.")
types=(A AAAA NS SOA CNAME MX TXT PTR)
mapfile -t names < <(printf '%s\n' "${names[@]}" | awk '!seen[$0]++')

asked=0
differ=0
for name in "${names[@]}"; do
    for type in "${types[@]}"; do
        asked=$((asked + 1))
        ours=$(ask "$dnslb_dns" "$name" "$type")
        theirs=$(ask "$nsd_port" "$name" "$type")
        if [[ $ours != "$theirs" ]]; then
            differ=$((differ + 1))
            echo "=== $name $type: dnslb (<) and NSD (>) differ"
            diff <(echo "$ours") <(echo "$theirs") | grep '^[<>]' || true
        fi
    done
    # The A question once more over TCP.
    asked=$((asked + 1))
    ours=$(ask "$dnslb_dns" "$name" A +tcp)
    theirs=$(ask "$nsd_port" "$name" A +tcp)
    if [[ $ours != "$theirs" ]]; then
        differ=$((differ + 1))
        echo "=== $name A over TCP: dnslb (<) and NSD (>) differ"
        diff <(echo "$ours") <(echo "$theirs") | grep '^[<>]' || true
    fi
done
echo "zone-vs-nsd: $asked questions, $differ answered differently"
((differ == 0))
