#!/usr/bin/env bash
# test_kbackend.sh - `--backend kernel`: groups a kernel memory cgroup accounts with no agent: static C, Go and a JVM held to their limits, thresholds, pressure and OOM events, stats, live limits, refusals.
# Usage: test_kbackend.sh MEMGRP MEMGRPD PROGS_DIR SOURCE_PROGS_DIR [EXAMPLES_DIR]
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
memgrpd=$(realpath "$2")
progs=$(realpath "$3")
srcprogs=$(realpath "$4")
examples=${5:+$(realpath "$5")}
chmod 755 "$tmp"
sock=$tmp/memgrpd.sock
esock=$tmp/embedded.sock # the embedded managers' (memgrp run without memgrpd)
dpid=
lpids=()
cleanup() {
	for p in "${lpids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
}
# what a failed case left: processes in this run's kernel cgroups, then the cgroups
kcg_track "$sock" "$esock" "$tmp/poll.sock"

# The programs run under the kernel backend are not instrumented (static C,
# Go, java): in the sanitizer build, the runtime lib.sh preloads is taken
# out again (a JVM with ASan preloaded fights it for SIGSEGV). The ASan
# build's instrumented programs (prog_notify, cache_server) are skipped:
# the kernel counts their shadow memory, which the figures below do not
# allow for.
asan=
if [ "$accounting" = 0 ]; then
	asan=1
	unset LD_PRELOAD
fi
if [ "$(id -u)" != 0 ]; then
	skip_all "the kernel backend needs root (cgroupfs)"
fi
mnt=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ {print $2; exit}' /proc/self/mounts)
if [ -z "$mnt" ]; then
	skip_all "no cgroup v1 memory hierarchy here (v2 is covered by test_kcgroup's fake tree)"
fi
self=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
cgdir=$mnt${self%/}
kbase() {
	python3 -c '
import sys
h = 2166136261
for b in sys.argv[1].encode(): h = ((h ^ b) * 16777619) & 0xffffffff
print("memgrp@%08x" % h)' "$1"
}
kdir=$cgdir/$(kbase "$sock")
stat_json() { "$memgrp" stat --json --socket "$sock" "$1" >"$tmp/st.json" 2>"$tmp/st.err"; }
mib() { echo $(( $1 >> 20 )); }

# A static C program (no dynamic linker: no agent could load). The
# sanitizer builds do not make prog_escape_static: built here, plain.
static=$progs/prog_escape_static
if [ ! -x "$static" ]; then
	static=$tmp/escape_static
	env -u LD_PRELOAD gcc -O2 -D_GNU_SOURCE -static -o "$static" "$srcprogs/escape.c" 2>"$tmp/gcc.err" || static=
fi

start_memgrpd() {
	"$memgrpd" --socket "$sock" --state-dir "$tmp/state" 2>>"$tmp/memgrpd.log" &
	dpid=$!
	for _ in $(seq 100); do [ -S "$sock" ] && "$memgrp" ls --socket "$sock" >/dev/null 2>&1 && return 0; sleep 0.05; done
	return 1
}
stop_memgrpd() {
	kill "$dpid" 2>/dev/null
	wait "$dpid" 2>/dev/null
	dpid=
}
# A listener (memgrp events, a libmemgrp client) on GROUP with OPTIONS,
# its output in FILE; returns once it is registered.
listen() {
	local file=$1 group=$2
	shift 2
	"$memgrp" events --socket "$sock" "$@" "$group" >"$file" 2>"$file.err" &
	lpids+=($!)
	for _ in $(seq 100); do grep -q watching "$file.err" && return 0; sleep 0.05; done
	return 1
}
# The events a listener printed: a line each, " xN" for N coalesced (the
# listener read them together).
events() { awk '{n = 1; for (i = 1; i <= NF; i++) if ($i ~ /^x[0-9]+$/) n = substr($i, 2); s += n} END {print s + 0}' "$1"; }
wait_lines() { # FILE N: up to 5 s for N events
	for _ in $(seq 100); do [ "$(events "$1")" -ge "$2" ] && return 0; sleep 0.05; done
	return 1
}

check_refused() { # NAME WANT-IN-MESSAGE ARGS...
	local name=$1 want=$2
	shift 2
	"$memgrp" "$@" >"$tmp/out" 2>&1
	local rc=$?
	if [ $rc != 0 ] && grep -q -- "$want" "$tmp/out"; then
		ok "$name (exit $rc: $(head -c 140 "$tmp/out" | tr '\n' ' '))"
	else
		bad "$name" "exit $rc, output: $(cat "$tmp/out")"
	fi
}

# --- refusals: what only the agent does, with a clear message ---
case_refusals() {
check_refused "refused: --mode estimate" "needs the agent" \
	run --socket "$esock" --backend kernel -m 64M --mode estimate -- true
check_refused "refused: --codec" "needs the agent" run --socket "$esock" --backend kernel -m 64M --codec zstd -- true
check_refused "refused: --swap-file" "needs the agent" run --socket "$esock" --backend kernel -m 64M --swap-file "$tmp" -- true
check_refused "refused: --backend bogus" "agent or kernel" run --socket "$esock" --backend bogus -- true
check_refused "refused: with --kernel-backstop off" "not with --kernel-backstop off" \
	run --socket "$esock" --backend kernel --kernel-backstop off -m 64M -- true
check_refused "refused: --memory-high on cgroup v1" "cgroup v1" \
	run --socket "$esock" --backend kernel -m 64M --memory-high 32M -- true
}
run_case refusals

# --- the command runs as it is: no agent, in the group's kernel cgroup ---
case_noagent() {
local out
out=$("$memgrp" run --socket "$esock" --backend kernel -g kb-plain-$sfx -m 64M -- sh -c \
	'echo "preload=[$LD_PRELOAD]"; grep -c libmemgrp-agent /proc/self/maps; grep memory /proc/self/cgroup' 2>&1)
if echo "$out" | grep -qx 'preload=\[\]' && echo "$out" | grep -qx 0 &&
	echo "$out" | grep -q "/memgrp@[0-9a-f]*/kb-plain-$sfx$"; then
	ok "no agent: LD_PRELOAD empty, no agent mapped, in the group's kernel cgroup ($(echo "$out" | tail -1))"
else
	bad "no agent" "$out"
fi
}
run_case noagent

# --- --swap-max: memsw = max + swap (this kernel accounts memsw; this
# machine has no swap device, so it bounds nothing more than memory) ---
case_swapmax() {
local out
out=$("$memgrp" run --socket "$esock" --backend kernel -g kb-sw-$sfx -m 64M --swap-max 32M -- sh -c \
	'cat "$1$(awk -F: "\$2 ~ /memory/ {print \$3}" /proc/self/cgroup)/memory.memsw.limit_in_bytes"' sh "$mnt" 2>&1)
if [ "$out" = $((96 << 20)) ]; then
	ok "--swap-max 32M with -m 64M: memory.memsw.limit_in_bytes 96M"
elif [ ! -e "$mnt/memory.memsw.limit_in_bytes" ]; then
	skip "--swap-max" "this kernel has no memsw accounting"
else
	bad "--swap-max" "$out"
fi
# no --swap-max: no swap (as the agent's groups), whatever swap the host has
out=$("$memgrp" run --socket "$esock" --backend kernel -g kb-nosw-$sfx -m 64M -- sh -c \
	'cat "$1$(awk -F: "\$2 ~ /memory/ {print \$3}" /proc/self/cgroup)/memory.memsw.limit_in_bytes"' sh "$mnt" 2>&1)
if [ "$out" = $((64 << 20)) ]; then
	ok "no --swap-max with -m 64M: memory.memsw.limit_in_bytes 64M (the group may not swap)"
elif [ ! -e "$mnt/memory.memsw.limit_in_bytes" ]; then
	skip "no swap" "this kernel has no memsw accounting"
else
	bad "no swap" "memsw limit $out"
fi
}
run_case swapmax

# --- a static C program held to 64M: memgrp's OOM, its message ---
case_static() {
local rc
if [ -n "$static" ]; then
	"$memgrp" run --socket "$esock" --backend kernel -g kb-static-$sfx -m 64M --stats-json "$tmp/s.json" -- \
		"$static" anon 256 >"$tmp/static.out" 2>&1
	rc=$?
	if [ $rc = 137 ] && grep -q "is out of memory (usage .*, max 64M) and nothing can be reclaimed: killing pid" "$tmp/static.out" &&
		! grep -q "^done" "$tmp/static.out" && [ "$(jget "$tmp/s.json" oom_kill)" = 1 ] &&
		[ "$(jget "$tmp/s.json" max_usage)" -le $((64 << 20)) ] &&
		{ [ "$(jget "$tmp/s.json" failcnt)" -gt 0 ] || [ -e "$mnt/memory.memsw.limit_in_bytes" ]; }; then
		ok "static C, 256M under 64M: killed by memgrp (exit 137), max_usage $(mib "$(jget "$tmp/s.json" max_usage)") MiB, failcnt $(jget "$tmp/s.json" failcnt) (0 where memory + swap binds: this kernel counts no refusal there)"
	else
		bad "static C under 64M" "exit $rc: $(cat "$tmp/static.out")"
	fi
else
	skip "static C" "cannot link -static here (libc6-dev's libc.a): $(head -c 200 "$tmp/gcc.err")"
fi
}
run_case static

# --- libmemgrp's own test of thresholds, pressure and OOM registrations,
# written for the agent, run unchanged without it ---
case_notify() {
local rc
if [ -n "$asan" ]; then
	skip "prog_notify" "instrumented here: the kernel counts its ASan shadow memory"
else
	"$memgrp" run --socket "$esock" --backend kernel -m 64M -- "$progs/prog_notify" >"$tmp/notify.out" 2>&1
	rc=$?
	if [ $rc = 0 ] && grep -q "^notify ok" "$tmp/notify.out"; then
		ok "prog_notify (libmemgrp thresholds up/down, memsw, 40 round trips, pressure, remove): $(grep -c '^ok' "$tmp/notify.out") checks"
	else
		bad "prog_notify" "exit $rc: $(grep -v '^ok' "$tmp/notify.out")"
	fi
fi
}
run_case notify

# --- cooperation: asked at the ask watermark (90 % of the kernel's
# limit), freed memory measured by the kernel's usage; nobody killed ---
case_coop() {
local rc
if [ -z "$examples" ] || [ ! -x "$examples/cache_server" ]; then
	skip "cooperation" "examples/cache_server not given"
elif [ -n "$asan" ]; then
	skip "cooperation" "cache_server is instrumented here: the kernel counts its ASan shadow memory"
else
	# (--coop-wait 2000: at load 6 the default 200 ms was once too short
	# for cache_server to be scheduled, free and answer: it was killed)
	"$memgrp" run --socket "$esock" --backend kernel -m 64M --coop-wait 2000 --stats-json "$tmp/coop.json" -- \
		"$examples/cache_server" --when-asked 400 >"$tmp/coop.out" 2>&1
	rc=$?
	if [ $rc = 0 ] && grep -q "the rest verified" "$tmp/coop.out" &&
		grep -q "asking a cooperating client" "$tmp/coop.out" &&
		[ "$(jget "$tmp/coop.json" oom_kill)" = 0 ] && [ "$(jget "$tmp/coop.json" coop_requests)" -ge 1 ] &&
		[ "$(jget "$tmp/coop.json" coop_freed)" -gt 0 ] &&
		[ "$(jget "$tmp/coop.json" max_usage)" -le $((64 << 20)) ]; then
		ok "cooperation: cache_server asked $(jget "$tmp/coop.json" coop_requests) times before the kernel limit, $(mib "$(jget "$tmp/coop.json" coop_freed)") MiB freed (kernel's usage), max_usage $(mib "$(jget "$tmp/coop.json" max_usage)") MiB, nobody killed"
	else
		bad "cooperation" "exit $rc: $(tail -5 "$tmp/coop.out"); $(cat "$tmp/coop.json" 2>/dev/null | head -c 300)"
	fi
fi
}
run_case coop

# --- memgrpd: create --backend kernel, run -g without the agent, events ---
G=kb-$sfx
case_daemon() {
if ! start_memgrpd; then
	bad "memgrpd" "did not start: $(cat "$tmp/memgrpd.log")"
	exit 1
fi
"$memgrp" create --socket "$sock" kb-agent-$sfx -m 64M >/dev/null 2>&1
check_refused "refused: a kernel group under an agent group" "may not be made under group" \
	create --socket "$sock" kb-agent-$sfx/k --backend kernel
"$memgrp" rm --socket "$sock" kb-agent-$sfx >/dev/null 2>&1
if "$memgrp" create --socket "$sock" --backend kernel -m 64M "$G" 2>"$tmp/create.err" &&
	stat_json "$G" && [ "$(jget "$tmp/st.json" backend)" = 1 ] &&
	[ "$(cat "$kdir/$G/memory.limit_in_bytes")" = $((64 << 20)) ] &&
	[ "$(cat "$kdir/$G/memory.oom_control" | awk '/oom_kill_disable/ {print $2}')" = 1 ] &&
	"$memgrp" ls --socket "$sock" | grep -q "^$G .* kernel$"; then
	ok "create --backend kernel: memory.limit_in_bytes 64M exactly, the kernel's killer off, ls says kernel"
else
	bad "create --backend kernel" "$(cat "$tmp/create.err" "$tmp/st.err" 2>/dev/null)"
fi
check_refused "refused: an agent child of a kernel group" "are too" \
	create --socket "$sock" "$G/sub" --backend agent
"$memgrp" create --socket "$sock" "$G/sub" >/dev/null 2>&1
if stat_json "$G/sub" && [ "$(jget "$tmp/st.json" backend)" = 1 ]; then
	ok "a child of a kernel group is a kernel group"
else
	bad "kernel child" "$(cat "$tmp/st.err")"
fi
"$memgrp" rm --socket "$sock" "$G/sub" >/dev/null 2>&1
check_refused "refused: set --mode estimate" "estimate mode needs the agent" \
	set --socket "$sock" "$G" --mode estimate
check_refused "refused: set --backend agent" "fixed at its creation" \
	set --socket "$sock" "$G" --backend agent
check_refused "refused: run -g with --codec" "needs the agent" \
	run --socket "$sock" -g "$G" --codec zstd -- true
}
run_case daemon

# A threshold, a pressure level and OOM, registered by libmemgrp clients
# (memgrp events) before the programs run.
case_events() {
local rc k_max k_fail
listen "$tmp/thr" "$G" --threshold 32M || bad "listener" "$(cat "$tmp/thr.err")"
listen "$tmp/prs" "$G" --pressure low || bad "listener" "$(cat "$tmp/prs.err")"
listen "$tmp/oom" "$G" --oom || bad "listener" "$(cat "$tmp/oom.err")"
if [ -n "$static" ]; then
	"$memgrp" run --socket "$sock" -g "$G" -- "$static" anon 52 >"$tmp/s52.out" 2>&1
	rc=$?
	# up at 32M and down at exit: 2; pressure low (48M) entered once
	if [ $rc = 0 ] && grep -q "^done" "$tmp/s52.out" && wait_lines "$tmp/thr" 2 &&
		wait_lines "$tmp/prs" 1; then
		ok "static C, 52M under 64M: done; threshold 32M crossed up and down ($(events "$tmp/thr") events), pressure low entered ($(events "$tmp/prs"))"
	else
		bad "threshold / pressure" "exit $rc: $(cat "$tmp/s52.out"); threshold: $(cat "$tmp/thr"); pressure: $(cat "$tmp/prs")"
	fi
	sleep 0.3
	[ "$(events "$tmp/prs")" = 1 ] && ok "pressure: the exit (downwards) is not an event" ||
		bad "pressure" "$(cat "$tmp/prs")"
	[ ! -s "$tmp/oom" ] && ok "no OOM event before an OOM" || bad "oom events" "$(cat "$tmp/oom")"
	"$memgrp" run --socket "$sock" -g "$G" -- "$static" anon 256 >"$tmp/s256.out" 2>&1
	rc=$?
	if [ $rc = 137 ] && wait_lines "$tmp/oom" 1 && grep -q "oom" "$tmp/oom" &&
		grep -q "group '$G' is out of memory (usage .*, max 64M) and nothing can be reclaimed: killing pid" "$tmp/memgrpd.log"; then
		ok "static C, 256M: killed by memgrp, the OOM event delivered ($(head -1 "$tmp/oom"))"
	else
		bad "OOM under memgrpd" "exit $rc: $(cat "$tmp/s256.out"); events: $(cat "$tmp/oom"); log: $(tail -3 "$tmp/memgrpd.log")"
	fi
	# stats in memgrp's names are the kernel's own figures
	if stat_json "$G"; then
		k_max=$(cat "$kdir/$G/memory.max_usage_in_bytes")
		# refusals at memory and at memory + swap (memsw is the limit
		# plus the swap limit: hit first when no swap is allowed)
		k_fail=$(( $(cat "$kdir/$G/memory.failcnt") + $(cat "$kdir/$G/memory.memsw.failcnt" 2>/dev/null || echo 0) ))
		if [ "$(jget "$tmp/st.json" max_usage)" = "$k_max" ] &&
			[ "$(jget "$tmp/st.json" failcnt)" = "$k_fail" ] &&
			[ "$(jget "$tmp/st.json" oom_kill)" = 1 ] &&
			[ "$(jget "$tmp/st.json" limit)" = $((64 << 20)) ]; then
			ok "stats: max_usage $(mib "$k_max") MiB and failcnt $k_fail are the kernel's, oom_kill 1"
		else
			bad "stats" "$(cat "$tmp/st.json"); kernel max $k_max failcnt $k_fail"
		fi
	else
		bad "stats" "$(cat "$tmp/st.err")"
	fi
	# a live limit: 96M lets 80M through
	"$memgrp" set --socket "$sock" "$G" -m 96M --memory-soft 32M 2>"$tmp/set.err"
	"$memgrp" run --socket "$sock" -g "$G" -- "$static" anon 80 >"$tmp/s80.out" 2>&1
	rc=$?
	if [ $rc = 0 ] && grep -q "^done" "$tmp/s80.out" &&
		[ "$(cat "$kdir/$G/memory.limit_in_bytes")" = $((96 << 20)) ] &&
		[ "$(cat "$kdir/$G/memory.soft_limit_in_bytes")" = $((32 << 20)) ] &&
		stat_json "$G" && [ "$(jget "$tmp/st.json" limit)" = $((96 << 20)) ]; then
		ok "set -m 96M --memory-soft 32M: the kernel's files follow, 80M runs through"
	else
		bad "set" "exit $rc: $(cat "$tmp/set.err" "$tmp/s80.out")"
	fi
	"$memgrp" set --socket "$sock" "$G" -m 64M >/dev/null 2>&1
else
	skip "static C under memgrpd" "no static libc"
fi
}
run_case events daemon

# A user-space OOM handler (examples/oom_handler.c, --pick newest) on a
# kernel-backend group: at the kernel limit memgrpd asks it first, with the
# kernel cgroup's processes (no agent runs there). A (36M, older) is the
# largest: the policy would kill it; the handler names B (newer, growing).
case_handler() {
local h=kb-oh-$sfx hpid apid bpid
"$memgrp" create --socket "$sock" --backend kernel -m 64M --oom-handler-timeout 2s "$h" 2>"$tmp/ohc.err" ||
	{ bad handler_create "$(cat "$tmp/ohc.err")"; return; }
"$examples/oom_handler" --socket "$sock" "$h" >"$tmp/oh.out" 2>&1 &
hpid=$!
lpids+=($hpid)
wait_for 10 grep -qs "^handling" "$tmp/oh.out" || bad handler_register "$(cat "$tmp/oh.out")"
"$memgrp" run --socket "$sock" -g "$h" -- python3 -c "import time; b = b'a' * (36 << 20); print('holding', flush=True); time.sleep(30)" >"$tmp/ohA.out" 2>&1 &
apid=$!
lpids+=($apid)
wait_for 20 grep -qs holding "$tmp/ohA.out"
sleep 0.5
"$memgrp" run --socket "$sock" -g "$h" -- python3 -c "b = b'b' * (40 << 20); print('grew', flush=True)" >"$tmp/ohB.out" 2>&1 &
bpid=$!
wait "$bpid"
local brc=$?
sleep 0.3
stat_json "$h"
if [ "$brc" = 137 ] && kill -0 "$apid" 2>/dev/null &&
	grep -q "group '$h' is out of memory (at its kernel limit: usage .*): its OOM handler (pid $hpid) decides" "$tmp/memgrpd.log" &&
	grep -q "group '$h' is out of memory at its kernel limit .*: killed by its OOM handler (pid $hpid): pid" "$tmp/memgrpd.log" &&
	grep "oom-record" "$tmp/memgrpd.log" | grep "\"group\": \"$h\"" | grep -q "named by the group's OOM handler" &&
	grep -q "killing the newest, pid [0-9]* (python3.*: done" "$tmp/oh.out" &&
	[ "$(jget "$tmp/st.json" oom_handler_asked)" = 1 ] && [ "$(jget "$tmp/st.json" oom_handler_kill)" = 1 ]; then
	ok "kernel limit: the handler was asked with the kernel cgroup's processes, killed B (137, the newest), A (the largest) lives; the kill recorded"
else
	bad handler "B $brc, A $(kill -0 $apid 2>/dev/null && echo alive || echo gone): $(cat "$tmp/oh.out"); $(grep "$h" "$tmp/memgrpd.log" | tail -6)"
fi
kill "$apid" "$hpid" 2>/dev/null; wait "$apid" "$hpid" 2>/dev/null
"$memgrp" rm --socket "$sock" "$h" >/dev/null 2>&1
}
run_case handler daemon

# --- Go, built static (no dynamic linker: no agent could load) ---
# Builds $tmp/gohold once; status 1 if it cannot be built.
build_go() {
	local gohome=$tmp/go
	[ -x "$tmp/gohold" ] && return 0
	mkdir -p "$gohome"
	(cd "$srcprogs/gohold" && HOME=$gohome GOCACHE=$gohome/cache GOPATH=$gohome/path \
		CGO_ENABLED=0 go build -o "$tmp/gohold" main.go) >"$tmp/gobuild.out" 2>&1
}
case_go() {
local rc n0 gpid grc
if command -v go >/dev/null; then
	listen "$tmp/goom" "$G" --oom || bad "listener" "$(cat "$tmp/goom.err")"
	if build_go; then
		"$memgrp" run --socket "$sock" -g "$G" -- "$tmp/gohold" 32 >"$tmp/go32.out" 2>&1
		rc=$?
		[ $rc = 0 ] && grep -q "^done 32" "$tmp/go32.out" &&
			ok "Go (static, CGO_ENABLED=0), 32M under 64M: done" ||
			bad "Go under the limit" "exit $rc: $(cat "$tmp/go32.out")"
		n0=$(events "$tmp/goom")
		"$memgrp" run --socket "$sock" -g "$G" -- "$tmp/gohold" 256 >"$tmp/go256.out" 2>&1
		rc=$?
		if [ $rc = 137 ] && wait_lines "$tmp/goom" $((n0 + 1)) &&
			grep -q "killing pid [0-9]* (gohold)" "$tmp/memgrpd.log"; then
			ok "Go, 256M under 64M: killed by memgrp (gohold), OOM event delivered"
		else
			bad "Go over the limit" "exit $rc: $(cat "$tmp/go256.out"); log: $(tail -2 "$tmp/memgrpd.log")"
		fi
		# a lower limit than the usage the kernel cannot reclaim (no swap):
		# refused with the kernel's EBUSY, the old limit kept
		"$memgrp" run --socket "$sock" -g "$G" -- "$tmp/gohold" 40 4 >"$tmp/go40.out" 2>&1 &
		gpid=$!
		for _ in $(seq 100); do grep -q holding "$tmp/go40.out" && break; sleep 0.05; done
		"$memgrp" set --socket "$sock" "$G" -m 16M >"$tmp/set16.out" 2>&1
		rc=$?
		wait $gpid
		grc=$?
		if [ $rc != 0 ] && grep -qE "could not (reclaim|bring)" "$tmp/set16.out" &&
			[ "$(cat "$kdir/$G/memory.limit_in_bytes")" = $((64 << 20)) ] &&
			stat_json "$G" && [ "$(jget "$tmp/st.json" limit)" = $((64 << 20)) ] &&
			[ $grc = 0 ] && grep -q "^done 40" "$tmp/go40.out"; then
			ok "set -m 16M under 40M held: refused ($(head -c 120 "$tmp/set16.out")), 64M kept, the program unharmed"
		else
			bad "set below usage" "exit $rc: $(cat "$tmp/set16.out"); program exit $grc: $(cat "$tmp/go40.out")"
		fi
	else
		bad "Go build" "$(cat "$tmp/gobuild.out")"
	fi
else
	skip "Go" "go is not installed (Debian: golang-go; scripts/setup.sh installs it)"
fi
}
run_case go daemon

# --- where the kernel has no usage thresholds (cgroup v2), they are polled
# (every 100 ms): the same code made to run on v1 (MEMGRP_KBACKEND_POLL=1) ---
case_poll() {
local psock ppid P sock_saved rc
if command -v go >/dev/null && build_go; then
	psock=$tmp/poll.sock
	MEMGRP_KBACKEND_POLL=1 "$memgrpd" --socket "$psock" --state-dir none 2>"$tmp/poll.log" &
	ppid=$!
	for _ in $(seq 100); do "$memgrp" ls --socket "$psock" >/dev/null 2>&1 && break; sleep 0.05; done
	P=kbp-$sfx
	"$memgrp" create --socket "$psock" --backend kernel -m 64M "$P" >/dev/null 2>&1
	sock_saved=$sock sock=$psock
	listen "$tmp/pthr" "$P" --threshold 32M || bad "listener" "$(cat "$tmp/pthr.err")"
	listen "$tmp/pprs" "$P" --pressure low || bad "listener" "$(cat "$tmp/pprs.err")"
	sock=$sock_saved
	"$memgrp" run --socket "$psock" -g "$P" -- "$tmp/gohold" 52 1 >"$tmp/poll.out" 2>&1
	rc=$?
	if [ $rc = 0 ] && wait_lines "$tmp/pthr" 2 && wait_lines "$tmp/pprs" 1 && sleep 0.3 &&
		[ "$(events "$tmp/pthr")" = 2 ] && [ "$(events "$tmp/pprs")" = 1 ] &&
		grep -q "usage is read every 100 ms" "$tmp/poll.log"; then
		ok "polled thresholds (v2's way): 32M crossed up and down (2 events), pressure low entered once, Go holding 52M for 1 s"
	else
		bad "polled thresholds" "exit $rc: $(cat "$tmp/poll.out"); threshold: $(cat "$tmp/pthr"); pressure: $(cat "$tmp/pprs"); log: $(tail -3 "$tmp/poll.log")"
	fi
	"$memgrp" rm --socket "$psock" "$P" >/dev/null 2>&1
	kill "$ppid" 2>/dev/null
	wait "$ppid" 2>/dev/null
	env -u LD_PRELOAD python3 "$srcprogs/../kcg_clean.py" --kill "$psock" >/dev/null 2>&1
else
	skip "polled thresholds" "no Go program built"
fi
}
run_case poll

# --- a JVM: -Xmx under the limit finishes; heap allowed past the limit:
# memgrp kills; -Xmx under the limit with more live data than it: Java's
# own OutOfMemoryError (the heap limit acts before the group's) ---
case_jvm() {
local J rc
if command -v java >/dev/null; then
	J=kbj-$sfx
	"$memgrp" create --socket "$sock" --backend kernel -m 256M "$J" >/dev/null 2>&1
	"$memgrp" run --socket "$sock" -g "$J" -- java -Xmx64m "$srcprogs/Hold.java" 32 >"$tmp/j32.out" 2>&1
	rc=$?
	[ $rc = 0 ] && grep -q "^done 32" "$tmp/j32.out" &&
		ok "JVM -Xmx64m holding 32M under 256M: done" || bad "JVM under" "exit $rc: $(tail -3 "$tmp/j32.out")"
	listen "$tmp/joom" "$J" --oom || bad "listener" "$(cat "$tmp/joom.err")"
	"$memgrp" run --socket "$sock" -g "$J" -- java -Xmx1g "$srcprogs/Hold.java" 600 >"$tmp/j600.out" 2>&1
	rc=$?
	if [ $rc = 137 ] && wait_lines "$tmp/joom" 1 &&
		grep -q "group '$J' is out of memory (usage .*, max 256M) .*killing pid [0-9]* (java)" "$tmp/memgrpd.log"; then
		ok "JVM -Xmx1g holding 600M under 256M: killed by memgrp, OOM event delivered"
	else
		bad "JVM over" "exit $rc: $(tail -3 "$tmp/j600.out"); log: $(tail -2 "$tmp/memgrpd.log")"
	fi
	"$memgrp" run --socket "$sock" -g "$J" -- java -Xmx64m "$srcprogs/Hold.java" 200 >"$tmp/jheap.out" 2>&1
	rc=$?
	[ $rc = 1 ] && grep -q "java.lang.OutOfMemoryError" "$tmp/jheap.out" &&
		ok "JVM -Xmx64m holding 200M: Java's own OutOfMemoryError (exit 1), no kill" ||
		bad "JVM heap" "exit $rc: $(tail -3 "$tmp/jheap.out")"
	"$memgrp" rm --socket "$sock" "$J" >/dev/null 2>&1
else
	skip "JVM" "java is not installed (Debian: default-jdk-headless)"
fi
}
run_case jvm daemon

# --- a restarted memgrpd keeps the backend (the segment's control part) ---
case_restart() {
stop_memgrpd
for p in "${lpids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
lpids=()
if start_memgrpd && stat_json "$G" && [ "$(jget "$tmp/st.json" backend)" = 1 ] &&
	[ "$(cat "$kdir/$G/memory.limit_in_bytes")" = $((64 << 20)) ] &&
	"$memgrp" run --socket "$sock" -g "$G" -- sh -c 'echo "[$LD_PRELOAD]"' 2>&1 | grep -qx '\[\]'; then
	ok "memgrpd restarted: '$G' is still a kernel group (limit 64M), run -g starts without the agent"
else
	bad "restart" "$(cat "$tmp/st.err" 2>/dev/null; tail -3 "$tmp/memgrpd.log")"
fi
"$memgrp" rm --socket "$sock" "$G" >/dev/null 2>&1
stop_memgrpd
}
run_case restart daemon

# --- bad input: no cgroup to write (an unprivileged user) ---
case_unprivileged() {
local rc
if command -v setpriv >/dev/null; then
	mkdir -p "$tmp/user" && chmod 777 "$tmp/user"
	setpriv --reuid=65534 --regid=65534 --clear-groups "$memgrp" run --backend kernel \
		--socket "$tmp/user/u.sock" -m 64M -- true >"$tmp/user.out" 2>&1
	rc=$?
	if [ $rc != 0 ] && grep -q "needs a kernel memory cgroup" "$tmp/user.out"; then
		ok "a user who cannot write cgroupfs: refused (exit $rc): $(tail -1 "$tmp/user.out" | head -c 120)"
	else
		bad "unwritable cgroupfs" "exit $rc: $(cat "$tmp/user.out")"
	fi
else
	skip "unwritable cgroupfs" "no setpriv"
fi
}
run_case unprivileged

# --- last: nothing left in the kernel's tree (a case that failed may
# leave some; lib.sh removes them at exit all the same) ---
case_leftovers() {
local left
[ -n "$dpid" ] && stop_memgrpd
left=$(find "$kdir" "$cgdir/$(kbase "$esock")" "$cgdir/$(kbase "$tmp/poll.sock")" -maxdepth 0 2>/dev/null; find "$cgdir" -maxdepth 2 -name "*$sfx*" 2>/dev/null)
[ -z "$left" ] && ok "no kernel cgroup left behind" || bad "cleanup" "left: $left"
}
run_case leftovers
