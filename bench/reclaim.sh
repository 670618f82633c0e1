#!/usr/bin/env bash
# bench/reclaim.sh - memgrp's compressed swap beside the kernel's memcg v1 +
# zram (lz4) under the same limit: swap-out/in throughput, the latency of a
# fault on an evicted page, and a Zipf working set of 4x the limit.
# Usage: bench/reclaim.sh [BUILD_DIR]   (as root; sets up and removes its own
#        zram swap device and memcg group)
# Environment: LIMIT (default 64M), RUNS (3, the median is shown),
#        SAMPLES (20000 faults), OPS (2000000 Zipf operations),
#        CODECS (memgrp's columns, default "lz4 zstd").
set -euo pipefail
build=$(realpath "${1:-build}")
memgrp=$build/src/cli/memgrp
prog=$build/bench/bench_reclaim
limit=${LIMIT:-64M}
runs=${RUNS:-3}
samples=${SAMPLES:-20000}
ops=${OPS:-2000000}
codecs=${CODECS:-lz4 zstd}
limit_bytes=$(numfmt --from=iec "$limit")
ws_mib=$((4 * limit_bytes >> 20))
secs=300  # per run: a hang in memgrp (under development) must not stall the table
tmp=$(mktemp -d)
cg=/sys/fs/cgroup/memory/memgrp-reclaim-bench-$$
zdev=          # zramN once we own one
zhot=0         # 1 if we created it with hot_add (then we remove it)
zswap=0        # 1 once it is our swap

teardown() {
	if [ "$zswap" = 1 ]; then
		swapoff "/dev/$zdev" || echo "reclaim.sh: swapoff /dev/$zdev failed" >&2
	fi
	if [ -n "$zdev" ]; then
		echo 1 > "/sys/block/$zdev/reset" 2>/dev/null || true
		[ "$zhot" = 1 ] && echo "${zdev#zram}" > /sys/class/zram-control/hot_remove 2>/dev/null
	fi
	[ -d "$cg" ] && { rmdir "$cg" 2>/dev/null || echo "reclaim.sh: could not remove $cg" >&2; }
	rm -rf "$tmp"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# setup_kernel: a zram swap device (lz4, 4G) and a memcg v1 group with the
# limit; on failure returns 1 with the reason in $why.
why=
setup_kernel() {
	local dev
	[ "$(id -u)" = 0 ] || { why="not root"; return 1; }
	[ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ] ||
		{ why="no cgroup v1 memory controller at /sys/fs/cgroup/memory"; return 1; }
	if [ ! -e /sys/class/zram-control ]; then
		modprobe zram 2>/dev/null || true
	fi
	# A device of our own: reading hot_add creates one and names it. Without
	# zram-control, an unused (never sized) one.
	if [ -r /sys/class/zram-control/hot_add ] && dev=$(cat /sys/class/zram-control/hot_add 2>/dev/null); then
		zdev=zram$dev
		zhot=1
	else
		for dev in /sys/block/zram*; do
			[ -e "$dev/disksize" ] && [ "$(cat "$dev/disksize")" = 0 ] &&
				! grep -q "^/dev/${dev##*/} " /proc/swaps && { zdev=${dev##*/}; break; }
		done
	fi
	[ -n "$zdev" ] || { why="no zram device (modprobe zram failed, or all in use)"; return 1; }
	grep -qw lz4 "/sys/block/$zdev/comp_algorithm" ||
		{ why="zram has no lz4 ($(cat "/sys/block/$zdev/comp_algorithm"))"; return 1; }
	echo lz4 > "/sys/block/$zdev/comp_algorithm" &&
		echo 4G > "/sys/block/$zdev/disksize" ||
		{ why="could not configure /sys/block/$zdev"; return 1; }
	mkswap "/dev/$zdev" >/dev/null 2>&1 || { why="mkswap /dev/$zdev failed"; return 1; }
	# The highest priority: the kernel swaps there first, whatever else is on.
	swapon -p 32767 "/dev/$zdev" || { why="swapon /dev/$zdev failed"; return 1; }
	zswap=1
	mkdir "$cg" 2>/dev/null || { why="cannot create $cg"; return 1; }
	echo "$limit_bytes" > "$cg/memory.limit_in_bytes" || { why="cannot set the memcg limit"; return 1; }
	if [ -e "$cg/memory.memsw.limit_in_bytes" ]; then
		echo -1 > "$cg/memory.memsw.limit_in_bytes"
	fi
	echo 60 > "$cg/memory.swappiness"
}

cols="native"
if setup_kernel; then
	cols="$cols memcg"
else
	echo "reclaim.sh: no kernel column: $why" >&2
fi
for c in $codecs; do cols="$cols memgrp-$c"; done

vmstat() { awk -v k="$1" '$1 == k {print $2}' /proc/vmstat; }
cgstat() { awk -v k="$1" '$1 == k {print $2}' "$cg/memory.stat"; }

# poll CMD...: runs CMD every 0.2 s into $tmp/poll until killed; for the
# compressed figures, which are back to 0 when the group has exited.
poll() {
	while :; do "$@" 2>/dev/null || true; sleep 0.2; done >"$tmp/poll"
}

# run COL N MODE ARGS...: run N of MODE in column COL; prints the result line.
# The first run of a column also records what its swap did, for the notes.
run() {
	local col=$1 n=$2 mode=$3 ppid=
	shift 3
	local args=("$prog" "$mode" "$ws_mib" "$@") out
	local err=$tmp/err
	case $col in
	native)
		out=$(timeout -k 5 $secs "${args[@]}" 2>"$err") || { fail "$col" "${args[*]}"; return 1; }
		;;
	memcg)
		local in0 out0 maj0
		in0=$(vmstat pswpin) out0=$(vmstat pswpout) maj0=$(cgstat total_pgmajfault)
		echo 0 > "$cg/memory.max_usage_in_bytes"
		[ "$n" = 1 ] && { poll cat "/sys/block/$zdev/mm_stat" & ppid=$!; }
		out=$(timeout -k 5 $secs sh -c 'echo $$ > "$1/tasks" && shift && exec "$@"' sh "$cg" "${args[@]}" 2>"$err") ||
			{ [ -n "$ppid" ] && kill "$ppid"; fail "$col" "${args[*]} (in $cg)"; return 1; }
		if [ -n "$ppid" ]; then
			kill "$ppid"
			wait "$ppid" 2>/dev/null || true
			# mm_stat: orig_data_size compr_data_size mem_used_total ...
			python3 - "$tmp/poll" "$(($(vmstat pswpout) - out0))" "$(($(vmstat pswpin) - in0))" \
				"$(($(cgstat total_pgmajfault) - maj0))" "$(cat "$cg/memory.max_usage_in_bytes")" \
				>"$tmp/note.$col.$mode" <<-'PY'
			import sys
			rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
			out, inn, maj, mx = map(int, sys.argv[2:])
			peak = max(rows, key=lambda r: r[0]) if rows else [0, 0]
			ratio = "%.2f:1" % (peak[0] / peak[1]) if peak[1] else "n/a"
			print("pswpout %d, pswpin %d, pgmajfault %d, max_usage %d MiB; zram at its peak: %d MiB in %d MiB (%s)"
			      % (out, inn, maj, mx >> 20, peak[0] >> 20, peak[1] >> 20, ratio))
			PY
		fi
		;;
	memgrp-*)
		local grp=memgrp-reclaim-$$-$n json=$tmp/$col.$mode.json
		[ "$n" = 1 ] && { poll sh -c "'$memgrp' stat --json '$grp' && echo" & ppid=$!; }
		out=$(timeout -k 5 $secs "$memgrp" run -g "$grp" -m "$limit" --swap-max 4G --codec "${col#memgrp-}" \
			--stats-json "$json" -- "${args[@]}" 2>"$err") ||
			{ [ -n "$ppid" ] && kill "$ppid"; fail "$col" "$memgrp run -g $grp -m $limit --swap-max 4G --codec ${col#memgrp-} -- ${args[*]}"; return 1; }
		if [ -n "$ppid" ]; then
			kill "$ppid"
			wait "$ppid" 2>/dev/null || true
			python3 - "$json" "$tmp/poll" >"$tmp/note.$col.$mode" <<-'PY'
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
			    store = "store at its peak: %d pages, %d MiB in %d MiB (%.2f:1)" % (
			        peak["stored_pages"], peak["stored_pages"] >> 8, peak["compressed_bytes"] >> 20,
			        peak["stored_pages"] * 4096 / peak["compressed_bytes"])
			else:
			    store = "store not sampled while running"
			print("pswpout %d, pswpin %d, pgmajfault %d, max_usage %d MiB; %s; reclaim stalls %d (p50 %d us, p99 %d us)"
			      % (d["pswpout"], d["pswpin"], d["pgmajfault"], d["max_usage"] >> 20, store,
			         d["reclaim_stalls"], d["reclaim_stall_p50_us"], d["reclaim_stall_p99_us"]))
			PY
		fi
		;;
	esac
	echo "$out"
}

fail() { # fail COL COMMAND: report a failed run with its command and output
	echo "reclaim.sh: $1 failed: $2" >&2
	sed 's/^/    /' "$tmp/err" | tail -20 >&2
	touch "$tmp/failed"  # run is in a subshell: a variable would not get out
}

declare -A vals  # "col key" -> the values of all runs
measure() { # measure MODE ARGS...: RUNS runs of MODE in every column, interleaved
	local mode=$1 line kv
	shift
	for n in $(seq "$runs"); do
		for col in $cols; do
			line=$(run "$col" "$n" "$mode" "$@") || continue
			for kv in $line; do
				vals["$col ${kv%%=*}"]+="${kv#*=} "
			done
		done
	done
}

median() { # median COL KEY: the median of the runs, "fail" if none ran
	local v=${vals["$1 $2"]:-}
	[ -n "$v" ] || { echo fail; return; }
	printf '%s\n' $v | sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else printf "%.10g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

start=$(date +%s)
measure seq
measure lat "$samples"
measure zipf "$ops"

label() {
	case $1 in
	native) echo native ;;
	memcg) echo memcg+zram ;;
	memgrp-*) echo "memgrp ${1#memgrp-}" ;;
	esac
}
echo "reclaim: $limit limit, ${ws_mib}M working set (4x), median of $runs runs"
printf '%-28s' ""
# memgrp/memcg (lz4 over the kernel's) follows the memgrp lz4 column.
ratio=0
case " $cols " in *" memcg "*"memgrp-lz4 "*) ratio=1 ;; esac
for col in $cols; do
	printf ' %12s' "$(label "$col")"
	[ "$col" = memgrp-lz4 ] && [ $ratio = 1 ] && printf ' %13s' "memgrp/memcg"
done
echo
row() { # row LABEL KEY
	local col m k=
	printf '%-28s' "$1"
	for col in $cols; do
		m=$(median "$col" "$2")
		printf ' %12s' "$m"
		[ "$col" = memcg ] && k=$m
		if [ "$col" = memgrp-lz4 ] && [ $ratio = 1 ]; then
			if [ "$m" != fail ] && [ "$k" != fail ]; then
				printf ' %13s' "$(awk -v a="$m" -v b="$k" 'BEGIN {printf "%.2fx", a / b}')"
			else
				printf ' %13s' -
			fi
		fi
	done
	echo
}
row "swap-out MB/s" write_mbps
row "swap-in MB/s" read_mbps
row "evicted-page fault p50 us" p50_us
row "evicted-page fault p99 us" p99_us
row "zipf 4x limit ops/s" ops_per_s
echo "(MB/s and ops/s: higher is better; us: lower is better)"

echo
echo "what the first run of each mode swapped (stores sampled every 0.2 s)"
for col in $cols; do
	[ "$col" = native ] && continue
	for mode in seq lat zipf; do
		[ -s "$tmp/note.$col.$mode" ] && printf '  %-11s %-5s %s\n' "$(label "$col")" "$mode" "$(cat "$tmp/note.$col.$mode")"
	done
done
echo "($(( $(date +%s) - start )) s)"
if [ -e "$tmp/failed" ]; then
	echo "reclaim.sh: some runs failed (above); their cells say fail" >&2
	exit 1
fi
