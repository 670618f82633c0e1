#!/usr/bin/env bash
# bench/reclaim.sh - memgrp's compressed swap beside the kernel's memcg v1 +
# zram (lz4) under the same limit: swap-out/in throughput, the latency of a
# fault on an evicted page, and a Zipf working set of 4x the limit.
# Usage: bench/reclaim.sh [BUILD_DIR]   (as root; sets up and removes its own
#        zram swap device and memcg group)
# Environment: LIMIT (default 64M), RUNS (3; the median is shown),
#        SAMPLES (20000 faults), OPS (2000000 Zipf operations),
#        CODECS (memgrp's columns, default "lz4 zstd"), BACKSTOP (on: the
#        default; off: memgrp run --kernel-backstop off; both: a column of
#        each per codec, "-nobs" for off), LOAD (0: N CPU-bound processes,
#        stress-ng --cpu N or else busy shell loops, run beside every run of
#        every column, the kernel's alike: a busy host), KERNEL (on; off:
#        no memcg+zram column, for comparing memgrp's settings quickly),
#        SCHEDS (a list of MEMGRP_HANDLER_SCHED values, e.g. "auto off rt
#        slice nice": a column of each per codec, interleaved with the
#        others; "auto", the default, keeps the plain column name).
set -euo pipefail
build=$(realpath "${1:-build}")
memgrp=$build/src/cli/memgrp
prog=$build/bench/bench_reclaim
limit=${LIMIT:-64M}
runs=${RUNS:-3}
samples=${SAMPLES:-20000}
ops=${OPS:-2000000}
codecs=${CODECS:-lz4 zstd}
load=${LOAD:-0}
limit_bytes=$(numfmt --from=iec "$limit")
ws_mib=$((4 * limit_bytes >> 20))
secs=300  # per run: a hang in memgrp (under development) must not stall the table
tmp=$(mktemp -d)
# not "memgrp*": tests/test_backstop.sh takes any such cgroup for a leak
cg=/sys/fs/cgroup/memory/bench-reclaim-$$

. "$(dirname "$0")/kswap.sh"
trap teardown EXIT
trap 'exit 130' INT TERM

cols="native"
if [ "${KERNEL:-on}" = off ]; then
	:
elif setup_kernel; then
	cols="$cols memcg"
else
	echo "reclaim.sh: no kernel column: $why" >&2
fi
backstop=${BACKSTOP:-on}
for c in $codecs; do
	if [ -n "${SCHEDS:-}" ]; then
		for s in $SCHEDS; do
			[ "$s" = auto ] && cols="$cols memgrp-$c" || cols="$cols memgrp-$c@$s"
		done
		continue
	fi
	[ "$backstop" != off ] && cols="$cols memgrp-$c"
	[ "$backstop" != on ] && cols="$cols memgrp-$c-nobs"
done

# load_start/load_stop: LOAD CPU-bound processes for the length of one run
# (started afresh for each, so that every column meets the same load).
loadpid=
load_start() {
	[ "$load" -gt 0 ] || return 0
	if command -v stress-ng >/dev/null; then
		stress-ng --cpu "$load" --cpu-method int64 -t $((secs + 10)) >/dev/null 2>&1 &
		loadpid=$!
	else
		# a process group of busy loops, killed as one (and bounded)
		setsid sh -c 'for _ in $(seq "$1"); do timeout "$2" sh -c "while :; do :; done" & done; wait' \
			sh "$load" $((secs + 10)) &
		loadpid=-$!
	fi
	sleep 0.2  # their workers up before the measured run starts
}
load_stop() {
	[ -n "$loadpid" ] || return 0
	kill -- "$loadpid" 2>/dev/null || true
	wait "${loadpid#-}" 2>/dev/null || true
	loadpid=
}

vmstat() { awk -v k="$1" '$1 == k {print $2}' /proc/vmstat; }
cgstat() { awk -v k="$1" '$1 == k {print $2}' "$cg/$2"; }

# poll CMD...: runs CMD every 0.2 s into $tmp/poll until killed; for the
# compressed sizes, which are back to 0 once the group has exited.
poll() {
	while :; do "$@" 2>/dev/null || true; sleep 0.2; done >"$tmp/poll"
}

# run COL MODE ARGS...: one run of MODE in column COL; prints its result
# line. The first run of a column and mode that finishes also records what
# its swap did, in $tmp/note.COL.MODE.
run() {
	local col=$1 mode=$2 ppid='' rc=0 out cmd
	shift 2
	local args=("$prog" "$mode" "$ws_mib" "$@")
	local note=$tmp/note.$col.$mode
	case $col in
	native)
		cmd=("${args[@]}")
		;;
	memcg)
		local in0 out0 maj0 oom0
		in0=$(vmstat pswpin) out0=$(vmstat pswpout)
		maj0=$(cgstat total_pgmajfault memory.stat) oom0=$(cgstat oom_kill memory.oom_control)
		echo 0 > "$cg/memory.max_usage_in_bytes"
		[ -e "$note" ] || { poll cat "/sys/block/$zdev/mm_stat" & ppid=$!; }
		cmd=(sh -c 'echo $$ > "$1/tasks" && shift && exec "$@"' sh "$cg" "${args[@]}")
		;;
	memgrp-*)
		local grp=memgrp-reclaim-$BASHPID json=$tmp/stats.json
		[ -e "$note" ] || { poll sh -c "'$memgrp' stat --json '$grp' && echo" & ppid=$!; }
		local codec=${col#memgrp-} bs=on sched=()
		[ "${codec%-nobs}" != "$codec" ] && bs=off
		[ "${codec%@*}" != "$codec" ] && sched=(env "MEMGRP_HANDLER_SCHED=${codec#*@}") codec=${codec%@*}
		cmd=("${sched[@]}" "$memgrp" run -g "$grp" -m "$limit" --swap-max 4G --codec "${codec%-nobs}"
			--kernel-backstop $bs --stats-json "$json" -- "${args[@]}")
		;;
	esac
	load_start
	out=$(timeout -k 5 $secs "${cmd[@]}" 2>"$tmp/err") || rc=$?
	load_stop
	if [ -n "$ppid" ]; then
		kill "$ppid"
		wait "$ppid" 2>/dev/null || true
	fi
	if [ $rc != 0 ]; then
		if [ "$col" = memcg ] && [ "$(cgstat oom_kill memory.oom_control)" != "$oom0" ]; then
			# The kernel's verdict on the workload, not a broken run: counted
			# and shown under the table.
			echo "$mode" >>"$tmp/oom"
		else
			echo "reclaim.sh: $(label "$col"), $mode: exit status $rc$([ $rc = 124 ] && echo " (timeout ${secs} s)")" >&2
			echo "    command: ${cmd[*]}" >&2
			sed 's/^/    /' "$tmp/err" | tail -20 >&2
			touch "$tmp/failed"  # run is in a subshell: a variable would not get out
		fi
		return 1
	fi
	if [ -n "$ppid" ] && [ "$col" = memcg ]; then
		# mm_stat: orig_data_size compr_data_size mem_used_total ...
		python3 - "$tmp/poll" "$(($(vmstat pswpout) - out0))" "$(($(vmstat pswpin) - in0))" \
			"$(($(cgstat total_pgmajfault memory.stat) - maj0))" "$(cat "$cg/memory.max_usage_in_bytes")" \
			>"$note" <<-'PY'
		import sys
		rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
		out, inn, maj, mx = map(int, sys.argv[2:])
		peak = max(rows, key=lambda r: r[0]) if rows else [0, 0]
		ratio = "%.2f:1" % (peak[0] / peak[1]) if peak[1] else "n/a"
		print("pswpout %d, pswpin %d, pgmajfault %d, max_usage %d MiB; zram at its peak: %d MiB in %d MiB (%s)"
		      % (out, inn, maj, mx >> 20, peak[0] >> 20, peak[1] >> 20, ratio))
		PY
	elif [ -n "$ppid" ]; then
		python3 - "$json" "$tmp/poll" >"$note" <<-'PY'
		import json, sys
		d = json.load(open(sys.argv[1]))
		live = []
		for l in open(sys.argv[2]):
		    try:
		        live.append(json.loads(l))
		    except ValueError:
		        pass
		peak = max(live, key=lambda s: s["stored_pages"], default=None)
		if peak and peak["compressed_bytes"]:
		    store = "store at its peak: %d MiB in %d MiB (%.2f:1)" % (
		        peak["stored_pages"] >> 8, peak["compressed_bytes"] >> 20,
		        peak["stored_pages"] * 4096 / peak["compressed_bytes"])
		else:
		    store = "store not sampled while running"
		print("pswpout %d, pswpin %d, pgmajfault %d, max_usage %d MiB; %s; reclaim stalls %d (p50 %d us, p99 %d us)"
		      % (d["pswpout"], d["pswpin"], d["pgmajfault"], d["max_usage"] >> 20, store,
		         d["reclaim_stalls"], d["reclaim_stall_p50_us"], d["reclaim_stall_p99_us"]))
		PY
	fi
	echo "$out"
}

label() {
	case $1 in
	native) echo native ;;
	memcg) echo memcg+zram ;;
	memgrp-*) echo "memgrp ${1#memgrp-}" ;;
	esac
}

declare -A vals  # "COL KEY" -> the values of the runs that finished
measure() { # measure MODE ARGS...: RUNS runs of MODE in every column, interleaved
	local mode=$1 line kv col
	shift
	for _ in $(seq "$runs"); do
		for col in $cols; do
			line=$(run "$col" "$mode" "$@") || continue
			for kv in $line; do
				vals["$col ${kv%%=*}"]+="${kv#*=} "
			done
		done
	done
}

# cell COL KEY median|spread: the median of the runs that finished ("fail"
# if none), or their spread, (max - min) / median.
cell() {
	local v=${vals["$1 $2"]:-}
	[ -n "$v" ] || { echo fail; return; }
	printf '%s\n' $v | sort -g | awk -v what="$3" '{a[NR] = $1} END {
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		if (what == "spread")
			printf "%d%%\n", m ? 100 * (a[NR] - a[1]) / m : 0
		else
			printf "%.10g\n", m
	}'
}

start=$(date +%s)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
measure seq
measure lat "$samples"
measure zipf "$ops"

# memgrp/memcg (lz4 over the kernel's) follows the memgrp lz4 column.
ratio=0
case " $cols " in *" memcg "*"memgrp-lz4 "*) ratio=1 ;; esac
header() {
	local col
	printf '%-28s' "$1"
	for col in $cols; do
		printf ' %12s' "$(label "$col")"
		if [ "$col" = memgrp-lz4 ] && [ $ratio = 1 ] && [ -n "$2" ]; then printf ' %13s' "$2"; fi
	done
	echo
}
row() { # row LABEL KEY median|spread
	local col m k=
	printf '%-28s' "$1"
	for col in $cols; do
		m=$(cell "$col" "$2" "$3")
		# a * marks a median the kernel's OOM kills left short of RUNS runs
		if [ "$col" = memcg ] && [ "$m" != fail ] && [ "$3" = median ] &&
			[ "$(printf '%s\n' ${vals["$col $2"]} | wc -l)" -lt "$runs" ]; then
			m="$m*"
		fi
		printf ' %12s' "$m"
		[ "$col" = memcg ] && k=${m%\*}
		if [ "$col" = memgrp-lz4 ] && [ $ratio = 1 ] && [ "$3" = median ]; then
			if [ "$m" != fail ] && [ "$k" != fail ]; then
				printf ' %13s' "$(awk -v a="$m" -v b="$k" 'BEGIN {printf "%.2fx", a / b}')"
			else
				printf ' %13s' ""
			fi
		fi
	done
	echo
}
table() { # table median|spread
	row "swap-out MB/s" write_mbps "$1"
	row "swap-in MB/s" read_mbps "$1"
	row "evicted-page fault p50 us" p50_us "$1"
	row "evicted-page fault p99 us" p99_us "$1"
	row "evicted-page fault p99.9 us" p999_us "$1"
	row "zipf 4x limit ops/s" ops_per_s "$1"
}

echo "reclaim: $limit limit, ${ws_mib}M working set (4x), median of $runs runs$([ "$load" -gt 0 ] && echo ", $load CPU-bound processes beside each run")"
header "" memgrp/memcg
table median
echo "(MB/s and ops/s: higher is better; us: lower is better)"
if [ -e "$tmp/oom" ]; then
	sort "$tmp/oom" | uniq -c | while read -r k mode; do
		echo "* memcg+zram, $mode: the kernel's memcg OOM killer killed $k of $runs runs; the median is of the rest"
	done
fi
echo
echo "spread over the runs, (max - min) / median"
header "" ""
table spread
echo
echo "what the first finished run of each mode swapped (sizes sampled every 0.2 s)"
for col in $cols; do
	[ "$col" = native ] && continue
	for mode in seq lat zipf; do
		if [ -s "$tmp/note.$col.$mode" ]; then
			printf '  %-11s %-5s %s\n' "$(label "$col")" "$mode" "$(cat "$tmp/note.$col.$mode")"
		fi
	done
done
echo "($(( $(date +%s) - start )) s; load average $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end)"
if [ -e "$tmp/failed" ]; then
	echo "reclaim.sh: some runs failed (above); their cells say fail or are medians of fewer runs" >&2
	exit 1
fi
