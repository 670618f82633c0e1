#!/usr/bin/env bash
# test_metrics.sh - the Prometheus endpoint and textfile of memgrpd and memgrp run: promtool, a real Prometheus, bad input.
# Usage: test_metrics.sh MEMGRP MEMGRPD PROGS_DIR
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
memgrpd=$(realpath "$2")
progs=$(realpath "$3")
sock=$tmp/memgrpd.sock
dpid= ppid=
kcg_track "$sock"
cleanup() {
	[ -n "$ppid" ] && kill "$ppid" 2>/dev/null
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null
	[ -n "$dpid" ] && wait "$dpid" 2>/dev/null
}

if [ ! -e /dev/userfaultfd ] && [ "$(id -u)" != 0 ]; then
	skip_all "userfaultfd is not available to this user"
fi
command -v curl >/dev/null || skip_all "curl is not installed (scripts/setup.sh installs it)"

mg() { "$memgrp" --socket "$sock" "$@"; }
# curl hangs with a sanitizer runtime preloaded (measured: past its own
# --max-time): it runs without it, like the other third-party programs.
curl() { env -u LD_PRELOAD curl "$@"; }
# The value of metric $2 (name{labels}) in exposition file $1.
mval() { awk -v k="$2" '$1 == k { print $2; exit }' "$1"; }
scrape() { curl -sS --max-time 10 "http://127.0.0.1:$port/metrics" -o "$1"; }
# A port nobody listens on now (the kernel's pick).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$memgrpd" --socket "$sock" --state-dir none --metrics-listen 0 --metrics-file "$tmp/memgrp.prom" \
	2>"$tmp/memgrpd.log" &
dpid=$!
wait_socket "$sock"
wait_for 5 grep -q "metrics served at" "$tmp/memgrpd.log"
port=$(sed -n 's|.*metrics served at http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' "$tmp/memgrpd.log")
[ -S "$sock" ] && [ -n "$port" ] && ok "memgrpd serves metrics on a port it picked ($port) and its socket" ||
	{ bad start "no socket or no port"; cat "$tmp/memgrpd.log"; exit 1; }

case_promtool() {
echo "--- the exposition: promtool, values against memgrp stat"
mg create web -m 64M && mg create web/api -m 48M
# A held figure: usage stays still while it is compared.
"$memgrp" --socket "$sock" run -g web/api -- "$progs/prog_hold" 24 60 >"$tmp/hold.out" 2>&1 &
hpid=$!
track $hpid
wait_for 20 bash -c "[ \"\$('$memgrp' --socket '$sock' stat --json web/api | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"nr_processes\"])')\" = 1 ]"
sleep 0.5
scrape "$tmp/m1.txt"; rc=$?
usage=$(stat_field web/api usage)
limit=$(stat_field web/api limit)
pf=$(stat_field web/api pgfault)
musage=$(mval "$tmp/m1.txt" 'memgrp_usage_bytes{group="web/api"}')
mlimit=$(mval "$tmp/m1.txt" 'memgrp_limit_bytes{group="web/api"}')
mpf=$(mval "$tmp/m1.txt" 'memgrp_page_faults_total{group="web/api"}')
mroot=$(mval "$tmp/m1.txt" 'memgrp_limit_bytes{group="/"}')
if ! command -v promtool >/dev/null; then
	skip promtool "promtool is not installed (Debian package prometheus; scripts/setup.sh installs it)"
elif promtool check metrics <"$tmp/m1.txt" >"$tmp/promtool.out" 2>&1; then
	ok "promtool check metrics accepts /metrics ($(grep -vc '^#' "$tmp/m1.txt") samples)"
else
	bad promtool "$(cat "$tmp/promtool.out")"
fi
{ [ "$accounting" = 0 ] || [ "$usage" -ge $((24 << 20)) ]; } && [ $rc -eq 0 ] &&
	[ "$musage" = "$usage" ] && [ "$mlimit" = "$limit" ] && [ "$mpf" = "$pf" ] && [ "$mroot" = "+Inf" ] &&
	ok "/metrics matches memgrp stat for web/api: usage $musage, limit $mlimit, faults $mpf; the root's limit +Inf" ||
	bad values "curl rc $rc; metrics usage $musage limit $mlimit faults $mpf root $mroot; stat usage $usage limit $limit faults $pf"
grep -q '^memgrp_reclaim_stall_seconds_bucket{group="web/api",le="+Inf"} ' "$tmp/m1.txt" &&
	grep -q '^# TYPE memgrp_oom_kills_total counter' "$tmp/m1.txt" &&
	grep -q '^memgrp_pressure_level{group="web/api"} ' "$tmp/m1.txt" &&
	ok "histogram, counters and the pressure level are there" || bad families "$(grep -c . "$tmp/m1.txt") lines"
# The file: rewritten every 5 s, whole (renamed into place).
wait_for 12 bash -c "awk '\$1 == \"memgrp_usage_bytes{group=\\\"web/api\\\"}\" && \$2 == $usage { f = 1 } END { exit !f }' '$tmp/memgrp.prom'"
fusage=$(mval "$tmp/memgrp.prom" 'memgrp_usage_bytes{group="web/api"}')
[ "$fusage" = "$usage" ] && ! ls "$tmp"/memgrp.prom.tmp >/dev/null 2>&1 &&
	{ ! command -v promtool >/dev/null || promtool check metrics <"$tmp/memgrp.prom" >/dev/null 2>&1; } &&
	ok "--metrics-file holds the same text (usage $fusage), no temporary left" ||
	bad file "file usage '$fusage', stat $usage; $(ls "$tmp")"
}
run_case promtool

case_prometheus() {
echo "--- a real Prometheus scraping memgrpd"
if ! command -v prometheus >/dev/null; then
	skip prometheus "prometheus is not installed (Debian package prometheus; scripts/setup.sh installs it)"
	return
fi
pport=$(free_port)
mkdir -p "$tmp/prom"
cat >"$tmp/prom.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: memgrp
    static_configs:
      - targets: ['127.0.0.1:$port']
EOF
env -u LD_PRELOAD prometheus --config.file="$tmp/prom.yml" --storage.tsdb.path="$tmp/prom" \
	--web.listen-address="127.0.0.1:$pport" >"$tmp/prometheus.log" 2>&1 &
ppid=$!
track $ppid
q="http://127.0.0.1:$pport/api/v1/query?query=memgrp_usage_bytes%7Bgroup%3D%22web%2Fapi%22%7D"
value() { curl -sS --max-time 5 "$q" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null; }
got=
for _ in $(seq 60); do
	got=$(value)
	[ -n "$got" ] && break
	sleep 0.5
done
usage=$(stat_field web/api usage)
# The held usage does not move, so the last scrape (1 s old at most) says it.
[ -n "$got" ] && [ "$got" = "$usage" ] &&
	ok "Prometheus scraped memgrpd: its API says web/api usage $got, memgrp stat $usage" ||
	{ bad prometheus "query gave '$got', stat $usage"; tail -20 "$tmp/prometheus.log"; }
up=$(curl -sS --max-time 5 "http://127.0.0.1:$pport/api/v1/query?query=up" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["result"][0]["value"][1])' 2>/dev/null)
[ "$up" = 1 ] && ok "Prometheus's target is up" || bad up "up '$up'"
kill $ppid; wait $ppid 2>/dev/null; ppid=
}
run_case prometheus promtool

case_http() {
echo "--- only /metrics, loopback, hostile clients"
c1=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")
c2=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics/x")
c3=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x=1 "http://127.0.0.1:$port/metrics")
[ "$c1" = 404 ] && [ "$c2" = 404 ] && [ "$c3" = 405 ] &&
	ok "/ and /metrics/x answer 404, POST /metrics 405" || bad paths "codes $c1 $c2 $c3"
listening=$(ss -Hltn "sport = :$port" | awk '{print $4}')
[ "$listening" = "127.0.0.1:$port" ] && ok "it listens on loopback only by default ($listening)" ||
	bad loopback "ss says '$listening'"
# Clients that connect and say nothing, or send garbage, then stay.
python3 - "$port" >"$tmp/raw.out" 2>&1 <<'EOF' &
import socket, sys, time
port = int(sys.argv[1])
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
junk = socket.create_connection(("127.0.0.1", port))
junk.sendall(b"\x00\xff\x16\x03\x01 GARBAGE\r\n\r\n" * 50)
half = socket.create_connection(("127.0.0.1", port))
half.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # headers never end
print("connected", flush=True)
time.sleep(8)
EOF
rpid=$!
track $rpid
wait_for 5 grep -q connected "$tmp/raw.out"
t0=$(date +%s%N)
scrape "$tmp/m2.txt"; rc=$?
t1=$(date +%s%N)
alive=$(kill -0 "$dpid" 2>/dev/null && echo yes)
[ $rc -eq 0 ] && grep -q '^memgrp_usage_bytes{group="web"} ' "$tmp/m2.txt" && [ "$alive" = yes ] && mg ls >/dev/null &&
	ok "with silent, garbage and half-sent clients connected, a scrape still works ($(( (t1 - t0) / 1000000 )) ms) and memgrpd answers" ||
	bad hostile "curl rc $rc, alive '$alive'; $(cat "$tmp/raw.out")"
kill $rpid 2>/dev/null; wait $rpid 2>/dev/null
scrape "$tmp/m3.txt" && ok "and after they go" || bad after "curl failed"
}
run_case http promtool

case_bad_input() {
echo "--- bad input: a clear error at start, nothing else disturbed"
out=$("$memgrpd" --socket "$sock" --state-dir none --metrics-listen "$port" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "127.0.0.1:$port: the port is in use" <<<"$out" && [ -S "$sock" ] && mg ls >/dev/null &&
	scrape "$tmp/m4.txt" &&
	ok "a port in use: exit 1, '$out'; the running memgrpd keeps its socket and port" ||
	bad port_in_use "rc $rc: $out"
out=$("$memgrpd" --socket "$tmp/other.sock" --metrics-listen 256.1.1.1:9 2>&1); rc=$?
out2=$("$memgrpd" --socket "$tmp/other.sock" --metrics-listen 10.255.255.254:0 2>&1); rc2=$?
[ $rc -eq 2 ] && grep -q "not an IPv4 address" <<<"$out" && [ $rc2 -eq 1 ] &&
	grep -q "no interface of this host has that address" <<<"$out2" && [ ! -e "$tmp/other.sock" ] &&
	ok "a bad address: exit 2 ('$out'); one not on this host: exit 1 ('$out2'); no socket made" ||
	bad address "rc $rc/$rc2: $out / $out2"
: >"$tmp/afile"
out=$("$memgrpd" --socket "$tmp/other.sock" --metrics-file "$tmp/afile/m.prom" 2>&1); rc=$?
out2=$("$memgrpd" --socket "$tmp/other.sock" --metrics-file "$tmp/nodir/m.prom" 2>&1); rc2=$?
out3=$("$memgrpd" --socket "$tmp/other.sock" --metrics-file "$tmp" 2>&1); rc3=$?
[ $rc -eq 1 ] && grep -q "afile/m.prom: Not a directory" <<<"$out" && [ $rc2 -eq 1 ] &&
	grep -q "its directory does not exist" <<<"$out2" && [ $rc3 -eq 1 ] && grep -q "not a regular file" <<<"$out3" &&
	[ ! -e "$tmp/other.sock" ] &&
	ok "an unwritable metrics file: exit 1 with why ('$out'; '$out2'; '$out3')" ||
	bad file "rc $rc/$rc2/$rc3: $out / $out2 / $out3"
out=$("$memgrp" run -g t-met-$sfx --metrics-listen "$port" -- true 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "memgrp run: --metrics-listen 127.0.0.1:$port: the port is in use" <<<"$out" &&
	[ ! -e "/run/memgrp/t-met-$sfx.sock" ] &&
	ok "memgrp run: a port in use is said before anything starts ('$out')" || bad run_port "rc $rc: $out"
}
run_case bad_input promtool

case_run() {
echo "--- memgrp run's embedded manager"
g=t-met-$sfx
"$memgrp" run -g "$g" -m 32M --metrics-listen 0 --metrics-file "$tmp/run.prom" -- \
	"$progs/prog_hold" 8 6 >"$tmp/run.out" 2>&1 &
rpid=$!
track $rpid
wait_for 5 grep -q "metrics served at" "$tmp/run.out"
rport=$(sed -n 's|.*metrics served at http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' "$tmp/run.out")
rsock=/run/memgrp/$g.sock
wait_for 10 bash -c "[ \"\$('$memgrp' --socket '$rsock' stat --json '$g' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"nr_processes\"])')\" = 1 ]"
sleep 0.3
curl -sS --max-time 10 "http://127.0.0.1:$rport/metrics" -o "$tmp/run.txt"; rc=$?
usage=$("$memgrp" --socket "$rsock" stat --json "$g" | python3 -c 'import json,sys; print(json.load(sys.stdin)["usage"])')
musage=$(mval "$tmp/run.txt" "memgrp_usage_bytes{group=\"$g\"}")
mlimit=$(mval "$tmp/run.txt" "memgrp_limit_bytes{group=\"$g\"}")
wait $rpid; prc=$?
[ $rc -eq 0 ] && [ -n "$musage" ] && [ "$musage" = "$usage" ] && [ "$mlimit" = $((32 << 20)) ] &&
	! grep -q 'group="/"' "$tmp/run.txt" && [ $prc -eq 0 ] && [ -s "$tmp/run.prom" ] &&
	ok "memgrp run serves its group ($g: usage $musage, limit $mlimit) and only it; the file was written" ||
	{ bad run "curl rc $rc, usage $musage vs $usage, limit $mlimit, run rc $prc"; cat "$tmp/run.out"; }
}
run_case run
