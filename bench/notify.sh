#!/usr/bin/env bash
# bench/notify.sh - usage-threshold notifications under memgrp (its agent,
# and its kernel backend, `memgrp run --backend kernel`) beside the
# kernel's memcg v1 (cgroup.event_control + memory.usage_in_bytes): the
# latency from the crossing to the application's wake-up, and the cost of
# 0, 1, 8 and 64 registered thresholds on first touch and read bandwidth
# (seed 000 §4.3). What each figure is: the comment at the top of
# bench/notify.c.
# Usage: bench/notify.sh [BUILD_DIR]   (as root; creates and removes its
#        own memcg v1 group)
# Environment: ROUNDS (1000 crossings per latency row), RUNS (3 runs per
#        overhead cell; the median is shown).
set -euo pipefail
build=$(realpath "${1:-build}")
memgrp=$build/src/cli/memgrp
prog=$build/bench/bench_notify
rounds=${ROUNDS:-1000}
runs=${RUNS:-3}
cg=/sys/fs/cgroup/memory/bench-notify-$$
kernel=1

teardown() {
	if [ -d "$cg" ]; then
		rmdir "$cg" 2>/dev/null || echo "notify.sh: could not remove $cg" >&2
	fi
}
trap teardown EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" != 0 ] || [ ! -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
	echo "notify.sh: not root or no cgroup v1 memory controller: memgrp columns only" >&2
	kernel=0
else
	mkdir "$cg"
	echo 1G >"$cg/memory.limit_in_bytes"
fi

# Each measurement is one process (a fresh group; the kernel's event
# registrations end with it), under a time limit so a hang cannot stall.
kern() { timeout 300 "$prog" "$1" "kernel:$cg" "${@:2}"; }
mg() { # mg FAULT_AROUND ARGS...
	timeout 300 "$memgrp" run -m 1G --fault-around "$1" -- "$prog" "$2" memgrp "${@:3}"
}
# memgrp's kernel backend: the same libmemgrp calls, no agent; the manager
# arms cgroup.event_control and passes each wake-up on (one wake-up more).
mgk() { timeout 300 "$memgrp" run --backend kernel -m 1G -- "$prog" "$1" memgrp "${@:2}"; }

echo "crossing -> wake-up latency, $rounds crossings per row (bench_notify latency)"
echo "  steady: the application goes on allocating until woken; stop: it stops at the crossing and waits 100 ms"
printf '  %-40s %7s %9s %9s %9s %7s %7s %11s\n' "" "woken" "p50 us" "p99 us" "max us" "early" "missed" \
	"pages past"
lrow() { # lrow LABEL "rounds p50 p99 max min early missed past50 pastmax"
	local n p50 p99 max min early missed past50 pastmax
	read -r n p50 p99 max min early missed past50 pastmax <<<"$2"
	printf '  %-40s %7s %9s %9s %9s %7s %7s %11s\n' "$1" "$n" "$p50" "$p99" "$max" \
		"$early" "$missed" "$past50/$pastmax"
}
for mode in steady stop; do
	# A notifier that checks every N charges misses most stops: fewer rounds.
	r=$rounds
	[ "$mode" = stop ] && r=$((rounds / 10 > 20 ? rounds / 10 : 20))
	if [ "$kernel" = 1 ]; then
		lrow "kernel memcg v1, $mode" "$(kern latency "$r" "$mode")"
	fi
	if [ "$kernel" = 1 ]; then
		lrow "memgrp --backend kernel, $mode" "$(mgk latency "$r" "$mode")"
	fi
	lrow "memgrp, fault-around 1, $mode" "$(mg 1 latency "$rounds" "$mode")"
	lrow "memgrp, fault-around 64 (default), $mode" "$(mg 64 latency "$rounds" "$mode")"
done
echo "  woken: rounds with a wake-up (percentiles over those); early: of them, woken before the"
echo "  crossing page was written (charged ahead); missed: no wake-up within 100 ms; pages past:"
echo "  p50/max pages written after the crossing page before the wake-up was seen"

# median CMD...: runs CMD $runs times; prints the line with the median
# first-touch figure (field 2).
median() {
	for _ in $(seq "$runs"); do "$@"; done | sort -n -k2 | sed -n "$(((runs + 1) / 2))p"
}

echo
echo "cost of registered thresholds (seed 000 §4.3), median of $runs runs, each the median of 9 passes"
echo "  first touch: ns per page writing a fresh 64 MiB; read: MB/s summing 64 MiB already written"
printf '  %-10s %18s %18s %18s %18s %18s %18s\n' "thresholds" "kernel touch ns" "kernel read MB/s" \
	"memgrp touch ns" "memgrp read MB/s" "--backend kernel ns" "--backend kernel MB/s"
read -r _ nat_touch nat_read < <(median "$prog" overhead native 0)
printf '  %-10s %18s %18s   (native: no group, no thresholds)\n' "native" "$nat_touch" "$nat_read"
for k in 0 1 8 64; do
	kt=- kr=- bt=- br=-
	if [ "$kernel" = 1 ]; then
		read -r _ kt kr < <(median kern overhead "$k")
		read -r _ bt br < <(median mgk overhead "$k")
	fi
	read -r _ mt mr < <(median mg 64 overhead "$k")
	printf '  %-10s %18s %18s %18s %18s %18s %18s\n' "$k" "$kt" "$kr" "$mt" "$mr" "$bt" "$br"
done
