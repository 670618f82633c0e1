#!/usr/bin/env bash
# bench/metrics.sh - what Prometheus scraping costs memgrpd: its CPU time (utime+stime from
# /proc/PID/stat) at idle with 100 groups, without scrapes and with one scrape a second.
# Usage: bench/metrics.sh [BUILD_DIR]
# Environment: SECONDS_EACH (60: the length of each phase), GROUPS_N (100),
#        BACKSTOP (off: no kernel cgroups, so that the bench leaves no
#        memgrp-named cgroup beside the tests; on: each scrape also reads
#        every group's kernel cgroup files, as a real memgrpd does).
set -euo pipefail
build=$(realpath "${1:-build}")
memgrp=$build/src/cli/memgrp
memgrpd=$build/src/daemon/memgrpd
secs=${SECONDS_EACH:-60}
ngroups=${GROUPS_N:-100}
backstop=${BACKSTOP:-off}
tmp=$(mktemp -d)
dpid=

teardown() {
	if [ -n "$dpid" ]; then
		kill "$dpid" 2>/dev/null || true
		wait "$dpid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap teardown EXIT
trap 'exit 130' INT TERM

sock=$tmp/memgrpd.sock
"$memgrpd" --socket "$sock" --state-dir none --kernel-backstop "$backstop" --metrics-listen 0 \
	2>"$tmp/memgrpd.log" &
dpid=$!
for _ in $(seq 50); do grep -q "metrics served at" "$tmp/memgrpd.log" && break; sleep 0.1; done
port=$(sed -n 's|.*metrics served at http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' "$tmp/memgrpd.log")
[ -n "$port" ] || { echo "metrics.sh: memgrpd did not start"; cat "$tmp/memgrpd.log"; exit 1; }

# 100 groups: 10 top-level ones with 9 children each, limits on all.
made=0
for ((t = 0; made < ngroups; t++)); do
	"$memgrp" --socket "$sock" create "b$t" -m 1G
	made=$((made + 1))
	for ((c = 0; c < 9 && made < ngroups; c++)); do
		"$memgrp" --socket "$sock" create "b$t/c$c" -m 256M
		made=$((made + 1))
	done
done

tck=$(getconf CLK_TCK)
# utime + stime of memgrpd (all its threads), in clock ticks
cpu() { awk '{ print $14 + $15 }' "/proc/$dpid/stat"; }

sleep 1 # the creations' own work is done
c0=$(cpu)
sleep "$secs"
c1=$(cpu)
bytes=0 fails=0
for ((i = 0; i < secs; i++)); do
	t0=$(date +%s%N)
	if n=$(curl -sS --max-time 5 "http://127.0.0.1:$port/metrics" | wc -c); then bytes=$n; else fails=$((fails + 1)); fi
	t1=$(date +%s%N)
	left=$((1000000000 - (t1 - t0)))
	[ $left -gt 0 ] && sleep "0.$(printf '%09d' $left)"
done
c2=$(cpu)
# The cost of one scrape, from many back to back.
burst=200
cb0=$(cpu)
tb0=$(date +%s%N)
for ((i = 0; i < burst; i++)); do curl -sS --max-time 5 -o /dev/null "http://127.0.0.1:$port/metrics"; done
tb1=$(date +%s%N)
cb1=$(cpu)

ms() { echo "$(( $1 * 1000 / tck ))"; }
echo "memgrpd with $ngroups groups (kernel backstop $backstop), ${secs} s each; a scrape is $bytes bytes"
echo "  idle, no scrapes:        $(ms $((c1 - c0))) ms CPU in ${secs} s"
echo "  idle, 1 scrape a second: $(ms $((c2 - c1))) ms CPU in ${secs} s ($fails failed scrapes)"
echo "  $burst scrapes back to back: $(ms $((cb1 - cb0))) ms CPU, $(( (tb1 - tb0) / 1000000 )) ms wall:" \
	"$(( (cb1 - cb0) * 1000000 / tck / burst )) us CPU per scrape"
echo "  (CPU time in clock ticks of 1/$tck s from /proc/$dpid/stat, all of memgrpd's threads)"
