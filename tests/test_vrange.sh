#!/usr/bin/env bash
# test_vrange.sh - volatile ranges (mg_vrange) in real processes: purged first under pressure, the exact report, both modes, fork, unmap, misuse.
# Usage: test_vrange.sh MEMGRP PROGS_DIR [EXAMPLES_BUILD_DIR EXAMPLES_SOURCE_DIR LIBMEMGRP]
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
progs=$(realpath "$2")
examples=${3:+$(realpath "$3")}
examples_src=${4:+$(realpath "$4")}
libmemgrp=${5:+$(realpath "$5")}

if [ "$(id -u)" != 0 ]; then
	skip_all "needs root (userfaultfd with UFFD_EVENT_FORK needs CAP_SYS_PTRACE)"
fi
# In a sanitizer build ASan's own memory is charged by the kernel and not
# by memgrp: the backstop is left off there (as tests/test_estimate.sh).
backstop=()
[ -n "${MEMGRP_TEST_PRELOAD:-}" ] && backstop=(--kernel-backstop off)

# vr NAME TIMEOUT MEMGRP-RUN-ARGS... -- prog_vrange ARGS: rc in $rc, output
# in $tmp/NAME.out, the group's final figures in $tmp/NAME.json.
vr() {
	local name=$1 secs=$2; shift 2
	timeout -k 5 "$secs" "$memgrp" run "${backstop[@]}" --stats-json "$tmp/$name.json" "$@" \
		>"$tmp/$name.out" 2>&1
	rc=$?
}
show() { sed 's/^/    /' "$tmp/$1.out" | tail -${2:-8}; }

# purge MODE: 40 MiB made volatile, then 40 MiB more touched under a 64M
# limit with no swap: only purging volatile pages makes room (without it
# the process is killed: tested below). The program checks the report
# against what is present (mincore) and every byte; here, the counter.
case_purge() {
	for mode in zero sigbus; do
		vr purge$mode 120 -m 64M -- "$progs/prog_vrange" purge 40 40 $mode
		local n counted
		n=$(sed -n 's/^purged \([0-9]*\) of.*/\1/p' "$tmp/purge$mode.out")
		counted=$(jget "$tmp/purge$mode.json" vrange_purged_pages 2>/dev/null || echo -1)
		if [ "$rc" = 0 ] && grep -q '^vrange purge ok' "$tmp/purge$mode.out" &&
			[ -n "$n" ] && [ "$n" = "$counted" ]; then
			ok "purge $mode: $n of 10240 volatile pages purged under 64M (counter $counted), report exact, the rest intact"
		else
			bad purge$mode "rc $rc, purged '$n', vrange_purged_pages $counted"; show purge$mode
		fi
	done
	# The same load with nothing volatile: the group has no room to make
	# (this is what the purge saved it from).
	timeout -k 5 120 "$memgrp" run "${backstop[@]}" -m 64M -- "$progs/prog_hold" 80 0 \
		>"$tmp/nopurge.out" 2>&1
	rc=$?
	if [ "$rc" != 0 ]; then
		ok "without volatile ranges the same 80 MiB under 64M fails (status $rc)"
	else
		bad nopurge "80 MiB held under 64M with no swap and nothing volatile"; show nopurge
	fi
}
run_case purge

# The atomic unpin: chunks of 1 MiB unpinned with mg_vrange_unpin one after
# another while another thread keeps the group at its limit (64M, no swap:
# purges all the time). A page purged during an unpin and left out of its
# report would read zeros where the program expects data: it checks every
# page of every unpin, in both modes.
case_unpinrace() {
	for mode in zero sigbus; do
		vr unpin$mode 90 -m 64M -- "$progs/prog_vrange" unpinrace 8 $mode
		if [ "$rc" = 0 ] && grep -q '^vrange unpinrace ok' "$tmp/unpin$mode.out"; then
			ok "unpin $mode under pressure: $(sed -n 's/^unpinrace: //p' "$tmp/unpin$mode.out"), every page reported or intact"
		else
			bad unpin$mode "rc $rc"; show unpin$mode
		fi
	done
}
run_case unpinrace

# Another process's volatile pages: B needs room that only A's volatile
# pages can give (no swap). The manager asks A first (the ladder's first
# rung, before cooperators and before any kill): both live, A's report is
# exact and its other pages intact.
case_manager() {
	local ready=$tmp/ready go=$tmp/go
	timeout -k 5 120 "$memgrp" run "${backstop[@]}" --stats-json "$tmp/mgr.json" -m 64M -- sh -c \
		"'$progs/prog_vrange' hold 40 '$ready' '$go' & a=\$!
		 while [ ! -e '$ready' ]; do sleep 0.05; done
		 '$progs/prog_hold' 40 0; b=\$?; touch '$go'; wait \$a; a=\$?
		 echo statuses \$a \$b; [ \$a = 0 ] && [ \$b = 0 ]" >"$tmp/mgr.out" 2>&1
	rc=$?
	local n rungs
	n=$(sed -n 's/^holder: purged \([0-9]*\) of.*/\1/p' "$tmp/mgr.out")
	rungs=$(jget "$tmp/mgr.json" ladder_purge 2>/dev/null || echo -1)
	if [ "$rc" = 0 ] && [ "${n:-0}" -gt 0 ] && [ "$rungs" -gt 0 ]; then
		ok "the manager had another process purge: $n of its 10240 volatile pages, $rungs purge episodes, nobody killed"
	else
		bad manager "rc $rc, holder purged '$n', ladder_purge $rungs"; show mgr 12
	fi
}
run_case manager

# holder_pair NAME RUN-ARGS... -- B-COMMAND...: under `memgrp run RUN-ARGS`,
# A (prog_vrange hold 40: 40 MiB volatile; with hold_swap=swap, pages not
# purged may be absent: evicted) starts and waits; B-COMMAND
# runs; then A checks its report against what is present and every page it
# kept. rc: 0 when both exited 0; $n: the pages A says were purged.
holder_pair() {
	local name=$1; shift
	local run=() ready=$tmp/$name.ready go=$tmp/$name.go
	while [ "$1" != -- ]; do run+=("$1"); shift; done
	shift
	timeout -k 5 120 "$memgrp" run "${backstop[@]}" --stats-json "$tmp/$name.json" "${run[@]}" -- \
		sh -c '"$1" hold 40 "$2" "$3" $4 & a=$!
		 while [ ! -e "$2" ]; do sleep 0.05; done
		 shift 4; "$@"; b=$?; touch "'"$go"'"; wait $a; a=$?
		 echo statuses $a $b; [ $a = 0 ] && [ $b = 0 ]' sh "$progs/prog_vrange" "$ready" "$go" \
		"${hold_swap:-}" "$@" \
		>"$tmp/$name.out" 2>&1
	rc=$?
	n=$(sed -n 's/^holder: purged \([0-9]*\) of.*/\1/p' "$tmp/$name.out")
}

# memory.high: 30 MiB more under a high limit of 48M (swap allowed) is
# brought back under it by the background eviction; A's volatile pages
# (40 MiB, more than the excess) go first: what is compressed is less than
# what was purged (measured: 32 pages, a background reclaim's aging of the
# group's other processes, against ~6000 purged; see docs/design.md).
case_high() {
	hold_swap=swap holder_pair high -m 256M --memory-high 48M --swap-max 1G -- "$progs/prog_hold" 30 3
	local out purged
	out=$(jget "$tmp/high.json" pswpout 2>/dev/null || echo -1)
	purged=$(jget "$tmp/high.json" vrange_purged_pages 2>/dev/null || echo -1)
	if [ "$rc" = 0 ] && [ "${n:-0}" -gt 0 ] && [ "$n" = "$purged" ] && [ "$out" -ge 0 ] &&
		[ "$out" -lt "$n" ]; then
		ok "memory.high: $n volatile pages purged in the background, $out pages evicted"
	else
		bad high "rc $rc, holder purged '$n', vrange_purged_pages $purged, pswpout $out"; show high 12
	fi
}
run_case high

# A parent's limit: A in top/a holds 40 MiB volatile, B in top/b needs 40
# MiB under top's 64M (no swap): top's refused charges purge A's pages (a
# sibling group's), nobody is killed.
case_parent() {
	local top=vr-par-$sfx
	holder_pair parent -g "$top" -m 64M -- "$memgrp" run -g "$top/b" -- "$progs/prog_hold" 40 0
	local rungs purged
	rungs=$(jget "$tmp/parent.json" ladder_purge 2>/dev/null || echo -1)
	purged=$(jget "$tmp/parent.json" vrange_purged_pages 2>/dev/null || echo -1)
	if [ "$rc" = 0 ] && [ "${n:-0}" -gt 0 ] && [ "$n" = "$purged" ] && [ "$rungs" -gt 0 ]; then
		ok "a parent's limit: $n volatile pages of one child group purged for another, $rungs purge episodes, nobody killed"
	else
		bad parent "rc $rc, holder purged '$n', vrange_purged_pages $purged, ladder_purge $rungs"; show parent 12
	fi
}
run_case parent

# The kernel backstop's limit: B runs without the agent (memgrp does not
# count it: only the group's kernel cgroup does) and needs 60 MiB beside
# A's 40 MiB volatile; the kernel limit (64M + slack) makes the group wait
# there and the manager has A purge before it would kill anyone.
case_backstop() {
	if [ ${#backstop[@]} -gt 0 ]; then
		skip backstop "sanitizer build: the kernel backstop is off (ASan's memory is not memgrp's)"
		return
	fi
	holder_pair backstop -m 64M -- env -u LD_PRELOAD "$progs/prog_hold" 60 0
	local rungs kills
	rungs=$(jget "$tmp/backstop.json" ladder_purge 2>/dev/null || echo -1)
	kills=$(jget "$tmp/backstop.json" oom_kill 2>/dev/null || echo -1)
	if grep -q "cannot find this manager's memory cgroup\|cannot use the kernel memory cgroup\|cannot make its kernel cgroup" \
		"$tmp/backstop.out"; then
		skip backstop "no kernel backstop here: $(grep -m1 'cannot' "$tmp/backstop.out")"
	elif [ "$rc" = 0 ] && [ "${n:-0}" -gt 0 ] && [ "$rungs" -gt 0 ] && [ "$kills" = 0 ] &&
		! grep -q 'did not answer a request to evict' "$tmp/backstop.out"; then
		# (at the kernel limit the holder's answer cannot be sent: it
		# comes through its slot, at once, not after a 2 s wait)
		ok "the kernel backstop's limit: $n volatile pages purged for a process without the agent, $rungs purge episodes, nobody killed, every request answered"
	else
		bad backstop "rc $rc, holder purged '$n', ladder_purge $rungs, oom_kill $kills"; show backstop 12
	fi
}
run_case backstop

case_fork() {
	vr fork 60 -m 256M -- "$progs/prog_vrange" fork
	if [ "$rc" = 0 ] && grep -q '^vrange fork ok' "$tmp/fork.out"; then
		ok "fork: the child inherits the volatile marks; both keep their data"
	else
		bad fork "rc $rc"; show fork
	fi
}
run_case fork

case_unmap() {
	vr unmap 60 -m 256M -- "$progs/prog_vrange" unmap
	if [ "$rc" = 0 ] && grep -q '^vrange unmap ok' "$tmp/unmap.out"; then
		ok "unmap and mremap while volatile: no longer volatile there, moved data intact"
	else
		bad unmap "rc $rc"; show unmap
	fi
}
run_case unmap

case_misuse() {
	vr misuse 60 -m 256M -- "$progs/prog_vrange" misuse
	if [ "$rc" = 0 ] && grep -q '^vrange misuse ok' "$tmp/misuse.out"; then
		ok "misuse (unaligned, bad mode, overlapping, not managed, two threads): error codes"
	else
		bad misuse "rc $rc"; show misuse
	fi
	env -u LD_PRELOAD ${MEMGRP_TEST_PRELOAD:+LD_PRELOAD=$MEMGRP_TEST_PRELOAD} \
		"$progs/prog_vrange" noagent >"$tmp/noagent.out" 2>&1
	rc=$?
	if [ "$rc" = 0 ]; then
		ok "without the agent: -ENOTSUP"
	else
		bad noagent "rc $rc"; show noagent
	fi
}
run_case misuse

# Estimate mode: a fast region (not registered) made volatile is turned
# slow by the call (registered: smaps VmFlags um) and stays slow while
# volatile, even faulting often well under the limit; then the
# purge case's checks under 64M in estimate mode (report exact against
# mincore, data of the rest, the counter equal to the report).
case_estimate() {
	vr estimate 120 -m 64M --mode estimate -- "$progs/prog_vrange" estimate purge
	local n counted sw
	n=$(sed -n 's/^purged \([0-9]*\) of.*/\1/p' "$tmp/estimate.out")
	counted=$(jget "$tmp/estimate.json" vrange_purged_pages 2>/dev/null || echo -1)
	sw=$(jget "$tmp/estimate.json" mode_switches 2>/dev/null || echo 0)
	if [ "$rc" = 0 ] && grep -q '^estimate: volatile 0$' "$tmp/estimate.out" &&
		grep -q '^vrange purge ok' "$tmp/estimate.out" && [ -n "$n" ] && [ "$n" = "$counted" ] &&
		[ "$sw" -ge 2 ]; then
		ok "estimate mode: $(sed -n 's/^estimate: 16 MiB/16 MiB/p' "$tmp/estimate.out"); under 64M $n of 10240 volatile pages purged (counter $counted), report exact, the rest intact; $sw mode switches; $(sed -n 's/^estimate: a volatile region/a volatile region/p' "$tmp/estimate.out")"
	else
		bad estimate "rc $rc, purged '$n', counter $counted, switches $sw"; show estimate
	fi
}
run_case estimate

# The examples (C and Python): a cache of 512 entries of 64 KiB, idle
# entries volatile, then 40 MiB (C) or 28 MiB (Python, whose interpreter
# holds some 8 MiB) of other memory under 64M: each rebuilds exactly the
# entries that lost a page, and checks every entry.
case_examples() {
	if [ -z "$examples" ]; then
		skip examples "no examples directory given"
		return
	fi
	vr exc 60 -m 64M -- "$examples/vrange_cache" 512 40
	if [ "$rc" = 0 ] && grep -q 'wrong 0$' "$tmp/exc.out" &&
		! grep -q 'pages purged 0,' "$tmp/exc.out"; then
		ok "examples/vrange_cache.c: $(grep -o 'pages purged [0-9]*, entries rebuilt [0-9]*' "$tmp/exc.out")"
	else
		bad example_c "rc $rc"; show exc
	fi
	local py
	py=$(env -u LD_PRELOAD python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
	if [ -z "$py" ]; then
		skip example_python "no python3"
		return
	fi
	vr expy 60 -m 64M -- env MEMGRP_LIB="$libmemgrp" "$py" "$examples_src/python/vrange_cache.py" 512 28
	if [ "$rc" = 0 ] && grep -q 'wrong 0$' "$tmp/expy.out" &&
		! grep -q 'pages purged 0,' "$tmp/expy.out"; then
		ok "examples/python/vrange_cache.py: $(grep -o 'pages purged [0-9]*, entries rebuilt [0-9]*' "$tmp/expy.out")"
	else
		bad example_python "rc $rc"; show expy
	fi
}
run_case examples
