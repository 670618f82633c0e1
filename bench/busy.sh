#!/usr/bin/env bash
# bench/busy.sh - many small groups thrashing at once on a host with more
# runnable work than CPUs: NGROUPS groups, each one `stress-ng --vm 1
# --vm-bytes VM_BYTES --verify` under a LIMIT it cannot fit in, first under
# memgrp (memgrp run -m LIMIT --swap-max SWAP_MAX, one run per group), then
# in as many kernel memcg v1 groups swapping to zram (bench/kswap.sh).
# Reports each group's bogo-ops and the agents' watchdog messages.
# Usage: bench/busy.sh [BUILD_DIR]   (as root)
# Environment: NGROUPS (20), SECS (60), LIMIT (64M), SWAP_MAX (1G),
#        VM_BYTES (128M), LOAD (0: CPU-bound processes beside both halves),
#        SIDES ("memgrp kernel"), CODEC (lz4), KEEP (a directory: the
#        groups' outputs are copied there).
# Exit status: 0 if every group of every side made progress and no
# watchdog message appeared, 1 otherwise, 2 on a setup failure.
set -euo pipefail
build=$(realpath "${1:-build}")
memgrp=$build/src/cli/memgrp
ngroups=${NGROUPS:-20}
secs=${SECS:-60}
limit=${LIMIT:-64M}
swap_max=${SWAP_MAX:-1G}
vm_bytes=${VM_BYTES:-128M}
load=${LOAD:-0}
sides=${SIDES:-memgrp kernel}
codec=${CODEC:-lz4}
limit_bytes=$(numfmt --from=iec "$limit")
swap_bytes=$(numfmt --from=iec "$swap_max")
tmp=$(mktemp -d)
# not "memgrp*": tests/test_backstop.sh takes any such cgroup for a leak
cg=/sys/fs/cgroup/memory/bench-busy-$$

command -v stress-ng >/dev/null || { echo "busy.sh: needs stress-ng" >&2; exit 2; }
[ -x "$memgrp" ] || { echo "busy.sh: no $memgrp (build first)" >&2; exit 2; }

. "$(dirname "$0")/kswap.sh"
pids=()
loadpid=
cleanup() {
	local p
	for p in "${pids[@]}" $loadpid; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [ -n "${KEEP:-}" ]; then
		mkdir -p "$KEEP" && cp -r "$tmp"/. "$KEEP"/ 2>/dev/null || true
	fi
	for d in "$cg"/g*; do
		[ -d "$d" ] && { rmdir "$d" 2>/dev/null || echo "busy.sh: could not remove $d" >&2; }
	done
	teardown
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load_start() {
	[ "$load" -gt 0 ] || return 0
	stress-ng --cpu "$load" --cpu-method int64 -t $((secs + 30)) >/dev/null 2>&1 &
	loadpid=$!
}
load_stop() {
	[ -n "$loadpid" ] || return 0
	kill "$loadpid" 2>/dev/null || true
	wait "$loadpid" 2>/dev/null || true
	loadpid=
}

# The workload, the same on both sides: its figures as YAML in $1.
workload() {
	echo stress-ng --vm 1 --vm-bytes "$vm_bytes" --verify -t "${secs}s" --metrics-brief --yaml "$1"
}

# bogo YAML: the vm stressor's bogo-ops, or "none" (it reported nothing).
bogo() {
	awk '/stressor: vm/ {vm = 1} vm && /bogo-ops:/ {print $2; found = 1; exit}
		END {if (!found) print "none"}' "$1" 2>/dev/null || echo none
}

# side_memgrp / side_kernel: NGROUPS groups at once, each into $tmp/SIDE.I.*
side_memgrp() {
	local i
	for i in $(seq "$ngroups"); do
		timeout -k 10 $((secs + 60)) "$memgrp" run -g "busy-$$-$i" -m "$limit" \
			--swap-max "$swap_max" --codec "$codec" -- \
			$(workload "$tmp/memgrp.$i.yaml") >"$tmp/memgrp.$i.out" 2>"$tmp/memgrp.$i.err" &
		pids+=($!)
	done
}
side_kernel() {
	local i
	for i in $(seq "$ngroups"); do
		mkdir "$cg/g$i"
		echo "$limit_bytes" > "$cg/g$i/memory.limit_in_bytes"
		if [ -e "$cg/g$i/memory.memsw.limit_in_bytes" ]; then
			echo $((limit_bytes + swap_bytes)) > "$cg/g$i/memory.memsw.limit_in_bytes"
		fi
		echo 60 > "$cg/g$i/memory.swappiness"
		timeout -k 10 $((secs + 60)) sh -c 'echo $$ > "$1/tasks" && shift && exec "$@"' sh \
			"$cg/g$i" $(workload "$tmp/kernel.$i.yaml") >"$tmp/kernel.$i.out" 2>"$tmp/kernel.$i.err" &
		pids+=($!)
	done
}

stalled=0
report() { # report SIDE: one line per group, then a summary
	local side=$1 i b n=0 zero=0 sum=0 wd=0 lost=0 w l
	printf '%-7s' "$side"
	for i in $(seq "$ngroups"); do
		b=$(bogo "$tmp/$side.$i.yaml")
		printf ' %s' "$b"
		if [ "$b" = none ] || [ "$b" = 0 ]; then
			zero=$((zero + 1))
		else
			n=$((n + 1)) sum=$((sum + b))
		fi
		w=$(grep -c 'watchdog' "$tmp/$side.$i.err" || true)
		l=$(grep -c 'lost fault' "$tmp/$side.$i.err" || true)
		wd=$((wd + w)) lost=$((lost + l))
	done
	echo
	printf '        %d of %d groups made progress; bogo-ops total %d, per group min %s median %s max %s;\n' \
		"$n" "$ngroups" "$sum" $(for i in $(seq "$ngroups"); do bogo "$tmp/$side.$i.yaml"; done |
		sed 's/none/0/' | sort -n | awk '{a[NR] = $1} END {print a[1], a[int((NR + 1) / 2)], a[NR]}')
	printf '        watchdog messages %d (lost faults %d), exit statuses: %s\n' "$wd" "$lost" \
		"$(sort "$tmp/$side.rc" | uniq -c | awk '{printf "%s%dx%s", (NR > 1 ? ", " : ""), $1, $2}')"
	if [ "$side" = kernel ]; then
		local kills=0 k
		for i in $(seq "$ngroups"); do
			k=$(awk '$1 == "oom_kill" {print $2}' "$cg/g$i/memory.oom_control" 2>/dev/null || true)
			kills=$((kills + ${k:-0}))
		done
		# stress-ng restarts a killed worker, and its count starts over
		printf '        the kernel'"'"'s memcg OOM killer killed %d workers\n' "$kills"
	fi
	[ "$zero" = 0 ] && [ "$wd" = 0 ] || stalled=1
	if [ "$wd" != 0 ]; then
		grep -h 'watchdog' "$tmp/$side".*.err | sed 's/^[^:]*: //; s/[0-9]\+ thread/N thread/' |
			sort | uniq -c | sed 's/^/        /' | head -5
	fi
}

run_side() {
	local side=$1 p
	pids=()
	load_start
	"side_$side"
	for p in "${pids[@]}"; do
		wait "$p" && echo 0 || echo $?
	done >"$tmp/$side.rc"
	pids=()
	load_stop
}

start=$(date +%s)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
case " $sides " in
*" kernel "*)
	# the parent memcg has no limit of its own; each group gets LIMIT below
	limit_bytes_each=$limit_bytes limit_bytes=-1
	if ! setup_kernel; then
		echo "busy.sh: no kernel side: $why" >&2
		sides=${sides/kernel/}
	fi
	limit_bytes=$limit_bytes_each
	;;
esac
echo "busy: $ngroups groups at once, each stress-ng --vm 1 --vm-bytes $vm_bytes --verify -t ${secs}s" \
	"under $limit (memgrp: --swap-max $swap_max --codec $codec; kernel: memcg v1 + zram lz4)$(
	[ "$load" -gt 0 ] && echo ", $load CPU-bound processes beside"); $(nproc) CPUs"
echo "bogo-ops per group:"
for side in $sides; do
	run_side "$side"
	report "$side"
done
echo "($(( $(date +%s) - start )) s; load average $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end)"
exit $stalled
