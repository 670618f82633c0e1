#!/usr/bin/env bash
# bench/coop.sh - a cache whose data is 4x its group's limit, under memgrp:
# the application frees entries when memgrp asks (coop: mg_cooperate_add)
# versus memgrp evicting its pages to the compressed store (evict), versus
# idle entries lent back as volatile ranges (vrange: mg_vrange), and the
# kernel's column: the same cache with MADV_FREE in a memcg v1 group with
# the same limit (mfree, no memgrp). Prints
# the throughput and latency of the gets, what the cooperation did, and what
# memgrp swapped, for the median run of each mode.
# Usage: bench/coop.sh [BUILD_DIR]   (as root)
# Environment: MODES (default "coop evict vrange mfree"; also vrange@evict
#        and mfree@evict: the same with the limit set to what the evict run
#        of the same round cost the host, i.e. the peak of its kernel
#        cgroup: memory plus the compressed store plus the agent; list them
#        after evict), LIMIT (default 64M), RUNS (3; the median run by ops/s is
#        shown), KEYS (16384 values of 16 KiB: 256 MiB), OPS (400000 timed
#        gets, after OPS/4 untimed), MISS_US (50: what a miss spins, the
#        simulated backend fetch), FAULT_AROUND (1; memgrp's default is
#        64, see below), COOP_UNPIN_AGE (1: vrange and mfree unpin an
#        entry not got in the last N passes of 1024 gets), COOP_LOG=1
#        (bench_coop logs each request on stderr, shown only when a run
#        fails).
# Why --fault-around 1: the values are 4 pages side by side in one arena,
# so filling one looks like a sequential run to memgrp, which then maps and
# charges up to 64 pages: the neighbouring slots too, zero pages the
# application never wrote and cannot give back. Measured with the default
# (64): at the first cooperation request the group was at 57.7M with 88
# values (1.4M) in the cache, and coop mode ended up evicting about as much
# as evict mode (pswpout 1.26M vs 1.71M pages). With 1, memgrp charges what
# the application touches, as the kernel does for anonymous memory.
set -euo pipefail
build=$(realpath "${1:-build}")
memgrp=$build/src/cli/memgrp
prog=$build/bench/bench_coop
limit=${LIMIT:-64M}
runs=${RUNS:-3}
keys=${KEYS:-16384}
ops=${OPS:-400000}
miss_us=${MISS_US:-50}
secs=300  # per run: a hang in memgrp (under development) must not stall the table
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "coop.sh: run as root (memgrp's eviction needs CAP_SYS_PTRACE)" >&2; exit 1; }
for f in "$memgrp" "$prog"; do
	[ -x "$f" ] || { echo "coop.sh: $f is missing: meson compile -C ${1:-build}" >&2; exit 1; }
done
opts=(-m "$limit" --swap-max 1G --fault-around "${FAULT_AROUND:-1}")
modes=${MODES:-coop evict vrange mfree}
limit_bytes=$(python3 -c '
import sys
s = sys.argv[1].upper(); m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
print(int(s[:-1]) * m[s[-1]] if s[-1] in m else int(s))' "$limit")
if [[ " $modes " == *" mfree "* ]] && [ ! -d /sys/fs/cgroup/memory ]; then
	echo "coop.sh: mfree needs the memory cgroup v1 at /sys/fs/cgroup/memory" >&2; exit 1
fi
export MISS_US=$miss_us

# run MODE I: one run; writes its bench line plus the figures of memgrp's
# stats JSON (whole run: warm-up and final check included) to
# $tmp/MODE.I.line, its stderr to $tmp/MODE.I.err. Returns 1 if it failed.
# The kernel's column (mfree): bench_coop alone in a memory cgroup v1 with
# the same limit (no memgrp); its figures from the cgroup's files, as
# stats JSON. Named bench-*: test_backstop's leak check looks for memgrp-*.
run_kernel() {
	local mode=$1 json=$2 err=$3 lim=$4 cg=/sys/fs/cgroup/memory/bench-coop-$$ rc=0
	mkdir -p "$cg"
	echo "$lim" >"$cg/memory.limit_in_bytes"
	timeout -k 5 $secs sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$cg" \
		env LD_PRELOAD= "$prog" "$mode" "$keys" "$ops" 2>"$err" || rc=$?
	python3 - "$cg" >"$json" <<-'PY'
	import json, sys
	cg = sys.argv[1]
	r = lambda f: int(open(f"{cg}/{f}").read().split()[0])
	oom = dict(l.split() for l in open(f"{cg}/memory.oom_control"))
	print(json.dumps({"max_usage": r("memory.max_usage_in_bytes"), "pswpout": 0, "pswpin": 0,
	                  "pgmajfault": 0, "oom_kill": int(oom.get("oom_kill", 0)), "coop_requests": 0,
	                  "coop_freed": 0, "reclaim_stalls": 0, "vrange_purged_pages": 0}))
	PY
	rmdir "$cg" 2>/dev/null || true
	return $rc
}

run() {
	local mode=$1 i=$2 rc=0 out base=${1%@*} lim=$limit_bytes
	local json=$tmp/$mode.$i.json err=$tmp/$mode.$i.err
	if [ "$base" != "$mode" ]; then
		# the budget evict's run of this round had (its kernel peak)
		lim=$(val "$(cat "$tmp/${mode#*@}.$i.line" 2>/dev/null)" kmax)
		if [ -z "$lim" ] || [ "$lim" -le 0 ]; then
			echo "coop.sh: $mode, run $i: no kernel peak from ${mode#*@}'s run" >&2
			return 1
		fi
		echo "$lim" >"$tmp/$mode.$i.limit"
	fi
	local cmd=("$memgrp" run "${opts[@]}" -m "$lim" --stats-json "$json" -- "$prog" "$base" "$keys" "$ops")
	if [ "$base" = mfree ]; then
		cmd=(memcg-v1 "bench-coop-$$" "limit $lim" -- "$prog" "$base" "$keys" "$ops")
		out=$(run_kernel "$base" "$json" "$err" "$lim") || rc=$?
	else
		out=$(timeout -k 5 $secs "${cmd[@]}" 2>"$err") || rc=$?
	fi
	if [ $rc != 0 ]; then
		local why="exit status $rc"
		case $rc in
		2) grep -q 'DATA LOSS' "$err" && why="$why: a value read back wrong (DATA LOSS)" ;;
		124|137) why="$why (timeout ${secs} s, or killed)" ;;
		esac
		if [ -s "$json" ] && python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["oom_kill"] == 0)' "$json"; then
			why="$why; memgrp's OOM path killed it"
		fi
		echo "coop.sh: $mode, run $i: $why" >&2
		echo "    command: MISS_US=$miss_us ${cmd[*]}" >&2
		grep -v '^memgrp run: .*cooperating client\|^bench_coop: [0-9s]' "$err" | tail -20 | sed 's/^/    /' >&2
		return 1
	fi
	python3 - "$json" "$out" >"$tmp/$mode.$i.line" <<-'PY'
	import json, sys
	d = json.load(open(sys.argv[1]))
	print(sys.argv[2].strip(), " ".join("mg_%s=%d" % (k, d[k]) for k in (
	    "max_usage", "pswpout", "pswpin", "pgmajfault", "oom_kill", "coop_requests",
	    "coop_freed", "reclaim_stalls", "vrange_purged_pages")))
	PY
}

# val LINE KEY: the value of KEY in a key=value line
val() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }

start=$(date +%s)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
failed=0
notes=()
for i in $(seq "$runs"); do
	for mode in $modes; do  # interleaved: drift in the host hits all
		run "$mode" "$i" || failed=1
	done
done

echo "coop: a cache of $keys values of 16 KiB ($((keys * 16 / 1024)) MiB) in a group limited to $limit, keys Zipf(s = 0.99);"
echo "  a get that misses spins MISS_US = $miss_us us (the backend fetch) and writes the value;"
echo "  coop: the application drops entries (CLOCK) when memgrp asks; evict: it never drops, memgrp evicts;"
echo "  vrange: entries idle for $((1024 * ${COOP_UNPIN_AGE:-1})) gets (COOP_UNPIN_AGE=${COOP_UNPIN_AGE:-1}) are made volatile (mg_vrange), memgrp purges them first;"
echo "  mfree: the same with MADV_FREE, no memgrp, in a memcg v1 group limited to $limit (the kernel's column)"
echo "  command: MISS_US=$miss_us $memgrp run ${opts[*]} --stats-json FILE -- $prog coop|evict|vrange $keys $ops"
echo "  mfree: MISS_US=$miss_us $prog mfree $keys $ops in /sys/fs/cgroup/memory/bench-coop-PID (memory.limit_in_bytes $limit_bytes)"
echo "  $ops timed gets after $((ops / 4)) untimed; the median run by ops/s of $runs"
if [ "${FAULT_AROUND:-1}" = 1 ]; then
	echo "  (--fault-around 1: memgrp's default, 64, charges the untouched neighbours of each value"
	echo "  filled, which the application cannot free; see the comment at the top of bench/coop.sh)"
fi
printf '%-12s %9s %7s %8s %9s %7s %6s %7s %8s %8s %9s %9s %4s %9s %8s %6s %6s %8s %7s\n' mode ops/s p50_us p99_us p99.9_us \
	max_ms hit% coop_rq dropped max_use pswpout pswpin oom purged_M rebuilt limit host_M calls/op us/call
for mode in $modes; do
	lines=$(cat "$tmp/$mode".*.line 2>/dev/null || true)
	if [ -z "$lines" ]; then
		printf '%-12s %9s\n' "$mode" "fail"
		continue
	fi
	n=$(wc -l <<<"$lines")
	# the median run by throughput (the lower middle one for an even count)
	med=$(awk '{for (i = 1; i <= NF; i++) if ($i ~ /^ops_per_s=/) print substr($i, 11), $0}' <<<"$lines" |
		sort -g | sed -n "$(((n + 1) / 2))p" | cut -d' ' -f2-)
	medrun=$(grep -l -F -- "$med" "$tmp/$mode".*.line | head -1)
	mlim=$limit
	[ -e "${medrun%.line}.limit" ] && mlim="$(($(cat "${medrun%.line}.limit") >> 20))M"
	calls=$(($(val "$med" pin_calls) + $(val "$med" unpin_calls)))
	cus=$(awk -v n="$calls" -v t="$(val "$med" pin_us)" -v u="$(val "$med" unpin_us)" \
		'BEGIN { if (n) printf "%.1f", (t + u) / n; else print "-" }')
	printf '%-12s %9s %7s %8s %9s %7s %6s %7s %8s %8s %9s %9s %4s %9s %8s %6s %6s %8s %7s\n' "$mode" \
		"$(val "$med" ops_per_s)" "$(val "$med" p50_us)" "$(val "$med" p99_us)" \
		"$(val "$med" p999_us)" "$(awk -v u="$(val "$med" max_us)" 'BEGIN {printf "%.1f", u / 1000}')" "$(awk -v h="$(val "$med" hit_ratio)" 'BEGIN {printf "%.1f", 100 * h}')" \
		"$(val "$med" coop_requests)" "$(val "$med" entries_dropped)" \
		"$(($(val "$med" mg_max_usage) >> 20))M" "$(val "$med" mg_pswpout)" "$(val "$med" mg_pswpin)" \
		"$(val "$med" mg_oom_kill)" "$(($(val "$med" mg_vrange_purged_pages) * 4096 >> 20))" \
		"$(val "$med" rebuilt)" "$mlim" "$(($(val "$med" kmax) >> 20))" \
		"$(awk -v n="$calls" -v o="$ops" 'BEGIN {printf "%.2f", n / o}')" "$cus"
	all=$(awk '{for (i = 1; i <= NF; i++) if ($i ~ /^ops_per_s=/) printf " %s", substr($i, 11)}' <<<"$lines")
	notes+=("  $mode: ops/s of the $n runs:$all; the median run: memgrp asked $(val "$med" mg_coop_requests) times in all, measured $(($(val "$med" mg_coop_freed) >> 20)) MiB freed by the application; $(val "$med" mg_pgmajfault) faults decompressed; $(val "$med" mg_reclaim_stalls) faults waited for room")
done
echo "(ops/s, hit%: higher is better; latencies per get; coop_rq and dropped: the cooperator's, timed gets"
echo " only; max_use, pswpout, pswpin (pages), oom: memgrp's stats JSON, whole run (mfree: the memcg's);"
echo " purged_M: MiB of volatile pages memgrp purged (whole run); rebuilt: unpinned entries found"
echo " purged (vrange) or with a page the kernel freed (mfree) at a get, timed gets only;"
echo " limit: the group's (@evict: evict's host_M of the same round); host_M: the peak of the kernel"
echo " cgroup the cache ran in, whole run (memory, compressed store, agent: what the mode cost the host);"
echo " calls/op, us/call: mg_vrange to pin and unpin (vrange), madvise to unpin (mfree; its pin is page writes), per timed get)"
printf '%s\n' "${notes[@]}"
# What memgrp said beyond its routine cooperation log: warnings, OOM.
for f in "$tmp"/*.err; do
	[ -e "$f" ] || continue
	w=$(grep -v '^memgrp run: .*cooperating client\|^bench_coop: [0-9s]' "$f" || true)
	if [ -n "$w" ]; then
		r=${f##*/}
		echo "  memgrp said, ${r%.err} (mode.run):"
		head -5 <<<"$w" | sed 's/^/    /'
	fi
done
echo "($(($(date +%s) - start)) s; load average $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end)"
if [ $failed = 1 ]; then
	echo "coop.sh: some runs failed (above); the medians are of the rest" >&2
	exit 1
fi
