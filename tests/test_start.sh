#!/usr/bin/env bash
# test_start.sh - the agent's deferred start: no handler until a process needs one, the limit from the first page.
# Usage: test_start.sh MEMGRP PROGS_DIR
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
progs=$(realpath "$2")
prog=$progs/prog_lazystart

if [ ! -e /dev/userfaultfd ] && [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" != 1 ] &&
   [ "$(id -u)" != 0 ]; then
	skip_all "userfaultfd is not available to this user"
fi

# What the program reports at start while deferred (one thread; the
# userfaultfd is opened at start all the same), and once its handler runs.
# In the sanitizer build the ASan runtime's own regions are larger than the
# allowance: processes start with their handler there, and only what does
# not depend on it is checked.
deferred="threads=1 uffd=1"
started="threads=[2-9][0-9]* uffd=1"
[ "$accounting" = 0 ] && deferred="threads=[0-9]* uffd=1"

json() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }

# mrun NAME TIMEOUT -- memgrp-run-args...: output in $tmp/NAME.out, figures
# in $tmp/NAME.json; prints the exit status.
mrun() {
	local name=$1 secs=$2 rc=0
	shift 3
	timeout -k 5 "$secs" "$memgrp" run --stats-json "$tmp/$name.json" "$@" >"$tmp/$name.out" 2>&1 || rc=$?
	echo "$rc"
}

case_deferred() {
	if [ "$accounting" = 0 ]; then
		skip deferred "sanitizer build: the ASan runtime's regions exceed the allowance at start"
		return
	fi
	# A small process runs its whole life without the agent's threads
	# (nothing registered on its userfaultfd); with
	# MEMGRP_START_ALLOWANCE=0 it has them from the start (the control:
	# the check can fail).
	local rc
	rc=$(mrun small 60 -- -m 64M -- "$prog" small)
	if [ "$rc" = 0 ] && grep -q "^start: $deferred" "$tmp/small.out"; then
		ok "a small process runs deferred: one thread (its userfaultfd open, nothing registered)"
	else
		bad deferred "exit $rc, $(head -3 "$tmp/small.out" | tr '\n' ' ')"
	fi
	rc=$(MEMGRP_START_ALLOWANCE=0 mrun full 60 -- -m 64M -- "$prog" small)
	if [ "$rc" = 0 ] && grep -q "^start: $started" "$tmp/full.out"; then
		ok "MEMGRP_START_ALLOWANCE=0: the handler threads from the start"
	else
		bad deferred_off "exit $rc, $(head -3 "$tmp/full.out" | tr '\n' ' ')"
	fi
	# charged at size while deferred: the group counted it
	local max
	max=$(json "$tmp/small.json" max_usage)
	if [ "$max" -gt 0 ]; then ok "a deferred process is charged (max_usage $max)"; else bad deferred_charge "max_usage $max"; fi
}
run_case deferred

# burst_runs NAME MODE CASE WHAT: 20 runs of "$prog MODE 64" under -m 16M,
# each stopped by memgrp's count (its OOM path, at the limit, within one
# fault-around batch), not by the kernel backstop's larger bound.
burst_runs() {
	local name=$1 mode=$2 case=$3 what=$4
	local n=20 stopped=0 worst=0 rc max slack=$((64 * 4096))
	for ((i = 0; i < n; i++)); do
		rc=$(mrun "$name" 60 -- -m 16M -- "$prog" "$mode" 64)
		max=$(json "$tmp/$name.json" max_usage 2>/dev/null || echo 999999999999)
		[ "$max" -gt "$worst" ] && worst=$max
		if [ "$rc" = 137 ] && [ "$max" -le $((16 * 1024 * 1024 + slack)) ] &&
		   [ "$max" -ge $((16 * 1024 * 1024 - slack)) ] &&
		   grep -q "out of memory (usage 16M, max 16M)" "$tmp/$name.out"; then
			stopped=$((stopped + 1))
		else
			echo "$name run $i: exit $rc, max_usage $max"
			tail -3 "$tmp/$name.out"
		fi
	done
	if [ "$stopped" = "$n" ]; then
		ok "$what: stopped at the limit $n times of $n (max_usage at most $worst)"
	else
		bad "$case" "stopped at the limit $stopped times of $n (max_usage up to $worst)"
	fi
}

case_first_page() {
	# A process that writes far over its limit at once, started many
	# times: stopped at the limit every time, never past it by more than
	# one fault-around batch.
	burst_runs burst grow first_page "a process writing 64M at start under -m 16M"
	# The same through malloc's heap (64 KiB blocks: glibc grows the heap
	# with its own brk, seen only in the blocks the malloc family returns).
	if [ "$accounting" = 0 ]; then
		skip first_page_heap "sanitizer build: the ASan allocator's heap is a reservation memgrp does not count"
		return
	fi
	burst_runs heap heap first_page_heap "the same through malloc's heap"
}
run_case first_page

case_evict() {
	# Deferred at start, then grows past its allowance: the handler
	# started then serves eviction, every byte checked.
	local rc out
	rc=$(mrun evict 120 -- -m 32M --swap-max 512M -- "$prog" grow 96)
	out=$(tr '\n' ' ' <"$tmp/evict.out")
	if [ "$rc" = 0 ] && grep -q "^start: $deferred" "$tmp/evict.out" &&
	   grep -q "^grown: $started" "$tmp/evict.out" &&
	   grep -q "^bytes ok: 96 MB" "$tmp/evict.out"; then
		ok "deferred, then 96M under -m 32M: the late handler evicted and restored every byte"
	else
		bad evict "exit $rc: $out"
	fi
	local sw max
	sw=$(json "$tmp/evict.json" pswpout 2>/dev/null || echo 0)
	max=$(json "$tmp/evict.json" max_usage 2>/dev/null || echo 0)
	if [ "$sw" -gt 0 ] && [ "$max" -le $((32 * 1024 * 1024 + 64 * 4096)) ]; then
		ok "it evicted ($sw pages) within the limit (max_usage $max)"
	else
		bad evict_figures "pswpout $sw, max_usage $max"
	fi
}
run_case evict

case_fork() {
	# The child of a deferred process joins on its own (deferred too),
	# then grows and is served by its own late handler.
	local rc out
	rc=$(mrun fork 120 -- -m 32M --swap-max 512M -- "$prog" fork 64)
	out=$(tr '\n' ' ' <"$tmp/fork.out")
	if [ "$rc" = 0 ] && grep -q "^child: $deferred" "$tmp/fork.out" &&
	   grep -q "^child grown: $started" "$tmp/fork.out" &&
	   grep -q "^bytes ok: 64 MB" "$tmp/fork.out" &&
	   grep -q "^parent after child: $deferred" "$tmp/fork.out"; then
		ok "a deferred process's child starts deferred, grows, every byte checked; the parent stays deferred"
	else
		bad fork "exit $rc: $out"
	fi
}
run_case fork

case_shell() {
	# A shell loop of short processes: each joins and leaves; the group
	# holds nothing once they are gone (no charge at size left behind).
	local rc usage
	rc=$(mrun shell 120 -- -m 64M -- sh -c "for i in \$(seq 50); do $prog small >/dev/null || exit 1; done")
	usage=$(json "$tmp/shell.json" usage 2>/dev/null || echo -1)
	if [ "$rc" = 0 ] && [ "$usage" = 0 ]; then
		ok "50 short processes from a shell: all ran, nothing left charged at the end"
	else
		bad shell "exit $rc, usage at the end $usage"
	fi
}
run_case shell

# jq-less reads of `memgrp stat --json GROUP`: usage, and a process's charge
# (-1 when it is not listed).
stat_usage() { "$memgrp" stat --json "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['usage'])"; }
stat_charged() {
	"$memgrp" stat --json "$1" | python3 -c "
import json,sys
d = json.load(sys.stdin)
print(next((p['charged'] for p in d['processes'] if p['pid'] == int(sys.argv[1])), -1))" "$2"
}

case_fork_spare() {
	# A deferred process's child takes its parent's spare slot (a
	# socketpair and one message on the parent's connection: no connect,
	# no wait), and is then a process of the group like any: listed,
	# charged, uncharged when it dies. In the sanitizer build the ASan
	# runtime's regions need a larger allowance (and limit) to start
	# deferred, and LeakSanitizer cannot run under strace.
	local g=t-spare-$$ out=$tmp/spare.out child="" c0 u0 u1 c1 lim=64M
	local -x MEMGRP_START_ALLOWANCE=${MEMGRP_START_ALLOWANCE:-}
	if [ "$accounting" = 0 ]; then
		lim=8G MEMGRP_START_ALLOWANCE=1G
		local -x ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
	fi
	[ -n "$MEMGRP_START_ALLOWANCE" ] || unset MEMGRP_START_ALLOWANCE
	timeout -k 5 60 "$memgrp" run -g "$g" -m "$lim" -- strace -f -qq -e trace=socketpair,connect \
		-o "$tmp/spare.strace" "$prog" hold 1 >"$out" 2>&1 &
	local job=$!
	for _ in $(seq 200); do
		child=$(sed -n 's/^child \([0-9]*\) ready$/\1/p' "$out")
		[ -n "$child" ] && break
		sleep 0.1
	done
	if [ -z "$child" ]; then
		bad fork_spare "the child never said it was ready: $(tr '\n' ' ' <"$out")"
		kill "$job" 2>/dev/null; wait "$job" 2>/dev/null
		return
	fi
	if grep -Eq "^$child +socketpair" "$tmp/spare.strace" && ! grep -Eq "^$child +connect" "$tmp/spare.strace"; then
		ok "the child took its parent's spare slot (a socketpair, no connect to the manager)"
	else
		bad fork_spare_path "child $child: $(grep -E "^$child +" "$tmp/spare.strace" | tr '\n' ' ')"
	fi
	c0=$(stat_charged "$g" "$child")
	u0=$(stat_usage "$g")
	if [ "$c0" -ge $((1024 * 1024)) ]; then
		ok "the child is listed in memgrp stat, its 1M charged ($c0 bytes)"
	else
		bad fork_spare_listed "child $child charged $c0 (-1: not listed)"
	fi
	local parent
	parent=$(awk '/^PPid:/ {print $2}' "/proc/$child/status")
	kill -KILL "$child"
	wait_for 30 grep -q "^child killed: signal 9" "$out"
	sleep 0.5
	c1=$(stat_charged "$g" "$child")
	u1=$(stat_usage "$g")
	if [ "$c1" = -1 ] && [ "$u1" -le $((u0 - 1024 * 1024)) ]; then
		ok "its death released it: no longer listed, usage $u0 -> $u1"
	else
		bad fork_spare_released "child listed with $c1, usage $u0 -> $u1"
	fi
	kill -TERM "$parent" 2>/dev/null
	wait "$job"
}
run_case fork_spare

case_fork_oom() {
	if [ "$accounting" = 0 ]; then
		skip fork_oom "sanitizer build: under -m 16M the ASan runtime's regions start the parent's handler (no deferred parent to fork from)"
		return
	fi
	# A child that took the spare and writes 64M at once under -m 16M,
	# 20 times: the manager knows it (it picks it and kills it at OOM)
	# and the group never goes past its limit by more than one
	# fault-around batch.
	local n=20 stopped=0 worst=0 rc max slack=$((64 * 4096))
	for ((i = 0; i < n; i++)); do
		rc=$(mrun forkoom 60 -- -m 16M -- "$prog" forkgrow 64)
		max=$(json "$tmp/forkoom.json" max_usage 2>/dev/null || echo 999999999999)
		[ "$max" -gt "$worst" ] && worst=$max
		if [ "$rc" = 0 ] && grep -q "^child killed: signal 9" "$tmp/forkoom.out" &&
		   [ "$max" -le $((16 * 1024 * 1024 + slack)) ] &&
		   grep -q "out of memory (usage 16M, max 16M)" "$tmp/forkoom.out"; then
			stopped=$((stopped + 1))
		else
			echo "forkoom run $i: exit $rc, max_usage $max"
			tail -3 "$tmp/forkoom.out"
		fi
	done
	if [ "$stopped" = "$n" ]; then
		ok "a forked child writing 64M at once under -m 16M: killed at the limit $n times of $n (max_usage at most $worst)"
	else
		bad fork_oom "killed at the limit $stopped times of $n (max_usage up to $worst)"
	fi
}
run_case fork_oom
