#!/usr/bin/env bash
# test_oomhandler.sh - the user-space OOM handler and its reserve (issue 18 items 6, 9, 10): real processes at a group's limit under memgrpd, real handlers (examples/oom_handler, examples/python/oom_handler.py, and misbehaving ones).
# Usage: test_oomhandler.sh MEMGRP MEMGRPD PROGS_DIR PYTHON_DIR LIBMEMGRP EXAMPLES_BUILD_DIR
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
memgrpd=$(realpath "$2")
progs=$(realpath "$3")
pydir=$(realpath "$4")
libmemgrp=$(realpath "$5")
examples=$(realpath "$6")
sock=$tmp/memgrpd.sock
log=$tmp/memgrpd.log
dpid=
cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null
}
. "$(dirname "$0")/oomlib.sh"

py() { MEMGRP_LIB=$libmemgrp PYTHONPATH=$pydir python3 "$@"; }

start_memgrpd || exit 1

# start NAME MB [MORE]: prog_hold of MB in group $g as process NAME (its
# memgrp run's pid in pid_NAME), holding $hold s; with MORE it touches MORE
# MB more once $tmp/go-NAME exists. Returns once it holds its MB, so that
# ages follow the order of the starts.
hold=30
start() { hold_in "$g" "$1" "$2" "$hold" "${3:-0}"; }

# gone NAME...: waits until one of them is gone and says which, or "none".
gone() { gone_within 10 "$@"; }

# The case's processes ended, its group removed.
finish() {
	local p
	for p in "$@"; do
		eval "kill \$pid_$p 2>/dev/null; wait \$pid_$p 2>/dev/null"
	done
	[ -n "${hpid:-}" ] && { kill "$hpid" 2>/dev/null; wait "$hpid" 2>/dev/null; }
	hpid=
	wait_for 10 test "$(stat_field "$g" nr_processes 2>/dev/null)" = 0
	rm -f "$tmp"/go-*
	mg rm "$g"
}

# the three of test_oom: A 24M (the oldest), B 8M growing 10M, C 16M (the newest), at 56M
three() {
	start A 24
	start B 8 10
	start C 16
}

# A handler of examples/ (C) outside the group, started before the processes.
c_handler() {
	"$examples/oom_handler" --socket "$sock" "$@" >"$tmp/h.out" 2>&1 &
	hpid=$!
	track $hpid
	wait_for 10 grep -qs "^handling" "$tmp/h.out"
}

case_newest() {
	echo "--- a handler (examples/oom_handler.c) keeps the oldest and kills the newest"
	g=t-oh-new-$sfx
	mg create "$g" -m 56M --oom-handler-timeout 3s || { bad newest "create refused"; return; }
	c_handler "$g"
	hold=6 three
	mg events --ladder "$g" >"$tmp/ev.out" 2>"$tmp/ev.err" &
	local epid=$!
	track $epid
	wait_for 10 grep -qs "watching" "$tmp/ev.err"
	: >"$tmp/go-B"
	local dead st
	dead=$(gone A B C)
	[ "$dead" != none ] && st=$(status "$dead")
	wait_for 10 grep -qs "^holding 10 MB more" "$tmp/B.out"
	local sa sb
	# they verify every byte they hold, then exit 0
	wait "$pid_A"; sa=$?
	wait "$pid_B"; sb=$?
	sleep 0.3
	kill "$epid" 2>/dev/null
	local killed asked fb
	killed=$(stat_field "$g" oom_handler_kill) asked=$(stat_field "$g" oom_handler_asked)
	fb=$(stat_field "$g" oom_handler_fallback)
	[ "$dead" = C ] && [ "${st:-}" = 137 ] && [ "$sa" = 0 ] && [ "$sb" = 0 ] &&
		[ "$killed" = 1 ] && [ "$asked" = 1 ] && [ "$fb" = 0 ] &&
		grep -q "killing the newest, pid [0-9]* (prog_hold.*: done" "$tmp/h.out" &&
		grep -q "group '$g'.*killed by its OOM handler" "$log" &&
		grep -q "\"chosen\": \"named by the group's OOM handler\"" "$log" &&
		ok "the handler killed C, the newest ($st); A and B kept every byte (exit $sa, $sb); B's waiting fault resumed; asked 1, kill 1" ||
		{ bad newest "dead '$dead' ($st), A $sa, B $sb, kill $killed asked $asked fallback $fb"
		  cat "$tmp/h.out"; grep "$g" "$log" | tail -5; }
	grep -A1 "$g ladder handler asked" "$tmp/ev.out" | grep -q "$g ladder handler kill" &&
		[ "$(grep -c "ladder oom kill" "$tmp/ev.out")" = 1 ] && ! grep -q "handler fallback" "$tmp/ev.out" &&
		ok "memgrp events --ladder: 'handler asked' then 'handler kill' (its one oom kill), no fallback" ||
		bad newest_events "$(cat "$tmp/ev.out")"
	finish A B C
}
run_case newest

# ancestor LIMITED: a handler (examples/oom_handler.c) registered on $top,
# A in LIMITED/a, B and C in LIMITED/b; LIMITED (56M) is $top itself or
# $top/mid. B's growth is refused by LIMITED's limit, an ancestor of its
# own group: the handler registered on LIMITED, or the nearest above it,
# is asked with the snapshot of LIMITED's subtree (all three), and kills C.
ancestor() {
	local limited=$1 name=$2
	mg create "$top" && { [ "$limited" = "$top" ] || mg create "$limited"; } &&
		mg set "$limited" -m 56M --oom-handler-timeout 3s && mg create "$limited/a" &&
		mg create "$limited/b" || { bad "$name" "create refused"; return; }
	c_handler "$top"
	g=$limited/a hold=8 start A 24
	g=$limited/b hold=8 start B 8 10
	g=$limited/b hold=8 start C 16
	: >"$tmp/go-B"
	local dead st sa sb
	dead=$(gone A B C)
	[ "$dead" != none ] && st=$(status "$dead")
	wait_for 10 grep -qs "^holding 10 MB more" "$tmp/B.out"
	wait "$pid_A"; sa=$?
	wait "$pid_B"; sb=$?
	local asked killed
	asked=$(stat_field "$limited" oom_handler_asked) killed=$(stat_field "$limited" oom_handler_kill)
	local reg="(pid [0-9]*)"
	[ "$limited" != "$top" ] && reg="(pid [0-9]*, registered on '$top')"
	[ "$dead" = C ] && [ "${st:-}" = 137 ] && [ "$sa" = 0 ] && [ "$sb" = 0 ] && [ "$asked" = 1 ] &&
		[ "$killed" = 1 ] &&
		grep -q "group '$limited' is out of memory .*: its OOM handler $reg decides.*3 processes" "$log" &&
		grep -q "snapshot [0-9]*: 3 processes, killing the newest, pid [0-9]* (prog_hold.*: done" "$tmp/h.out" &&
		ok "B's charge refused by '$limited' (above its group): the handler on '$top' asked with the 3 processes of '$limited''s subtree, killed C ($st); A and B kept every byte" ||
		{ bad "$name" "dead '$dead' ($st), A $sa, B $sb, asked $asked, kill $killed"
		  cat "$tmp/h.out"; grep "$top" "$log" | tail -6; }
	local p
	for p in A B C; do eval "kill \$pid_$p 2>/dev/null; wait \$pid_$p 2>/dev/null"; done
	kill "$hpid" 2>/dev/null; wait "$hpid" 2>/dev/null; hpid=
	wait_for 10 test "$(stat_field "$top" nr_processes 2>/dev/null)" = 0
	rm -f "$tmp"/go-*
	mg rm "$limited/a"; mg rm "$limited/b"
	[ "$limited" = "$top" ] || mg rm "$limited"
	mg rm "$top"
}
case_ancestor() {
	echo "--- an ancestor's limit: its own handler decides, with its subtree's snapshot"
	top=t-oh-anc-$sfx
	ancestor "$top" ancestor
}
run_case ancestor
case_nearest() {
	echo "--- a limit with no handler of its own: the nearest handler above it decides"
	top=t-oh-near-$sfx
	ancestor "$top/mid" nearest
}
run_case nearest

case_raise() {
	echo "--- a handler (examples/python/oom_handler.py) raises the limit"
	g=t-oh-raise-$sfx
	mg create "$g" -m 32M || { bad raise "create refused"; return; }
	py "$pydir/oom_handler.py" --socket "$sock" --step 16M --count 1 "$g" >"$tmp/h.out" 2>&1 &
	hpid=$!
	track $hpid
	wait_for 10 grep -qs "^handling" "$tmp/h.out"
	hold=30 start A 24 16
	: >"$tmp/go-A"
	wait_for 10 grep -qs "^holding 16 MB more" "$tmp/A.out"
	local limit kills raised
	limit=$(stat_field "$g" limit) kills=$(stat_field "$g" oom_kill) raised=$(stat_field "$g" oom_handler_raise)
	alive "$pid_A" && grep -q "^holding 16 MB more" "$tmp/A.out" && [ "$limit" = $((48 << 20)) ] &&
		[ "$kills" = 0 ] && [ "$raised" = 1 ] && grep -q "limit raised to" "$tmp/h.out" &&
		ok "the limit raised to 48M by the handler: the waiting fault resumed, nobody killed" ||
		{ bad raise "limit $limit, kills $kills, raised $raised"; cat "$tmp/h.out" "$tmp/A.out"; }
	finish A
}
run_case raise

case_reserve() {
	echo "--- --oom-reserve: a handler inside the group allocates at OOM"
	g=t-oh-res-$sfx
	mg create "$g" -m 40M --oom-reserve 8M --oom-handler-timeout 3s ||
		{ bad reserve "create refused"; return; }
	"$memgrp" --socket "$sock" run -g "$g" -- "$examples/oom_handler" --socket "$sock" --touch 4 --count 1 "$g" \
		>"$tmp/h.out" 2>&1 &
	hpid=$!
	track $hpid
	wait_for 10 grep -qs "^handling" "$tmp/h.out"
	hold=30
	start A 20
	start B 8 12
	: >"$tmp/go-B"
	local dead st
	dead=$(gone A B)
	[ "$dead" != none ] && st=$(status "$dead")
	wait_for 10 grep -qs "snapshot" "$tmp/h.out"
	local maxu limit fb
	maxu=$(stat_field "$g" max_usage) limit=$(stat_field "$g" limit) fb=$(stat_field "$g" oom_handler_fallback)
	# the 4M touched past the limit, within it and its 8M reserve (a
	# fault-around window, 256K, may pass the check's edge)
	local used=yes
	[ "$accounting" = 1 ] && { [ "$maxu" -gt $((limit + (3 << 20))) ] && [ "$maxu" -le $((limit + (8 << 20) + (256 << 10))) ] || used=no; }
	[ "$dead" = B ] && [ "${st:-}" = 137 ] && alive "$pid_A" && [ "$fb" = 0 ] && [ "$used" = yes ] &&
		grep -q "killing the newest.*: done" "$tmp/h.out" && ! grep -q "touching" "$tmp/h.out" &&
		ok "the handler in the group touched 4M past the limit (max_usage $maxu, limit $limit) and decided in time: B, the newest, killed" ||
		{ bad reserve "dead '$dead' ($st), max_usage $maxu limit $limit fallback $fb"
		  cat "$tmp/h.out"; grep "$g" "$log" | tail -5; }
	finish A B

	echo "--- past its reserve the handler waits: the policy acts at the timeout"
	g=t-oh-res2-$sfx
	mg create "$g" -m 40M --oom-reserve 8M --oom-handler-timeout 1s ||
		{ bad reserve_past "create refused"; return; }
	"$memgrp" --socket "$sock" run -g "$g" -- "$examples/oom_handler" --socket "$sock" --touch 16 --count 1 "$g" \
		>"$tmp/h.out" 2>&1 &
	hpid=$!
	track $hpid
	wait_for 10 grep -qs "^handling" "$tmp/h.out"
	start A 20
	start B 8 12
	: >"$tmp/go-B"
	dead=$(gone A B)
	[ "$dead" != none ] && st=$(status "$dead")
	wait_for 10 grep -qs "snapshot" "$tmp/h.out"
	maxu=$(stat_field "$g" max_usage) fb=$(stat_field "$g" oom_handler_fallback)
	used=yes
	[ "$accounting" = 1 ] && [ "$maxu" -gt $((limit + (8 << 20) + (256 << 10))) ] && used=no
	[ "$dead" = A ] && [ "${st:-}" = 137 ] && [ "$fb" = 1 ] && [ "$used" = yes ] &&
		grep -q "group '$g': its OOM handler (pid [0-9]*) did not answer in time" "$log" &&
		grep -q "not the one awaited" "$tmp/h.out" &&
		ok "16M asked with an 8M reserve: refused past it (max_usage $maxu), the policy killed A (the largest) at the timeout, the late answer refused" ||
		{ bad reserve_past "dead '$dead' ($st), max_usage $maxu, fallback $fb"
		  cat "$tmp/h.out"; grep "$g" "$log" | tail -5; }
	finish A B
}
run_case reserve

# A handler in Python that misbehaves: MODE never (reads, never answers),
# die (reads, exits), stranger (names a pid outside the group), resume
# (answers resume to every snapshot).
py_handler() {
	py - "$sock" "$g" "$1" "${2:-0}" >"$tmp/h.out" 2>&1 <<'PY' &
import os, sys, time
import memgrp
sock, group, mode, stranger = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = memgrp.Client(sock)
c.oom_handler(group)
print("handling", group, flush=True)
snap = c.oom_handler_read()
print("snapshot", snap.seq, "timeout", snap.timeout_ms, "reserve", snap.reserve,
      [(p.pid, p.comm, p.charged) for p in snap.procs], flush=True)
if mode == "die":
    os._exit(3)
while mode == "resume":
    c.oom_answer(snap.seq)
    print("resumed", snap.seq, flush=True)
    snap = c.oom_handler_read(5000)
    if snap is None:
        break
if mode == "stranger":
    try:
        c.oom_answer(snap.seq, kill=[stranger])
        print("accepted", flush=True)
    except memgrp.Error as e:
        print("refused:", e.errno, e, flush=True)
time.sleep(100)
PY
	hpid=$!
	track $hpid
	wait_for 10 grep -qs "^handling" "$tmp/h.out"
}

# misbehave MODE WHY: the three, a Python handler in MODE; the policy
# (largest) must kill A, and B's fault resume.
misbehave() {
	local mode=$1 why=$2
	local top=t-oh-$mode-$sfx
	# the settings from the group above: inherited
	g=$top/kid
	mg create "$top" --oom-handler-timeout 500ms --oom-reserve 2M && mg create "$g" -m 56M ||
		{ bad "$mode" "create refused"; return; }
	sleep 60 &
	local outsider=$!
	track $outsider
	py_handler "$mode" "$outsider"
	hold=30 three
	: >"$tmp/go-B"
	local dead st
	dead=$(gone A B C)
	[ "$dead" != none ] && st=$(status "$dead")
	wait_for 10 grep -qs "^holding 10 MB more" "$tmp/B.out"
	local fb
	fb=$(stat_field "$g" oom_handler_fallback)
	[ "$dead" = A ] && [ "${st:-}" = 137 ] && alive "$pid_B" && alive "$pid_C" && alive "$outsider" &&
		grep -q "^holding 10 MB more" "$tmp/B.out" && [ "$fb" = 1 ] &&
		grep -q "group '$g': its OOM handler (pid [0-9]*) $why" "$log" &&
		grep -q "^snapshot [0-9]* timeout 500 reserve 2097152 \[.*prog_hold" "$tmp/h.out" &&
		ok "a misbehaving handler ($mode; timeout 500ms and reserve 2M inherited from the group above): '$why' in the log, the policy killed A (the largest), B resumed, nothing else killed" ||
		{ bad "$mode" "dead '$dead' ($st), fallback $fb, outsider $(alive $outsider && echo alive || echo gone)"
		  cat "$tmp/h.out"; grep "$g" "$log" | tail -5; }
	kill "$outsider" 2>/dev/null
	finish A B C
	mg rm "$top"
}

case_never() { echo "--- a handler that never answers"; misbehave never "did not answer in time"; }
run_case never
case_dies() { echo "--- a handler that dies while deciding"; misbehave die "went away while deciding"; }
run_case dies
case_stranger() {
	echo "--- a handler that names a pid outside the group"
	misbehave stranger "sent a decision that was refused (pid [0-9]* is not a process of group"
	grep -q "^refused: 3 " "$tmp/h.out" && ok "its client heard -ESRCH, nothing killed by its word" ||
		bad stranger_reply "$(cat "$tmp/h.out")"
}
run_case stranger

case_resume() {
	echo "--- a handler that resumes again and again with no room made"
	misbehave resume "resumed 3 times in a row and no room came"
	[ "$(grep -c '^resumed' "$tmp/h.out")" = 3 ] && ok "3 resumes, then the policy" ||
		bad resume_count "$(cat "$tmp/h.out")"
}
run_case resume

case_pause() {
	echo "--- a handler before the pause (--oom-kill-disable): asked once, then the group pauses"
	g=t-oh-pause-$sfx
	mg create "$g" -m 56M --oom-kill-disable --oom-handler-timeout 300ms ||
		{ bad pause "create refused"; return; }
	py_handler never 0
	# (long: under ASan and a loaded host, the checks below took 30 s)
	hold=90 three
	: >"$tmp/go-B"
	wait_for 10 test "$(stat_field "$g" under_oom)" = 1
	sleep 1.5 # the faults ask every 100 ms meanwhile
	local asked paused kills
	asked=$(stat_field "$g" oom_handler_asked) paused=$(stat_field "$g" oom_pauses) kills=$(stat_field "$g" oom_kill)
	alive "$pid_A" && alive "$pid_B" && alive "$pid_C" && [ "$asked" = 1 ] && [ "$paused" = 1 ] &&
		[ "$kills" = 0 ] && [ "$(grep -c '^snapshot' "$tmp/h.out")" = 1 ] &&
		ok "the handler asked once; at its timeout the group paused (its policy), nobody killed, not asked again while paused" ||
		{ bad pause "asked $asked, pauses $paused, kills $kills, alive: $(for n in A B C; do eval "alive \$pid_$n" && echo -n "$n "; done)"
		  cat "$tmp/h.out"; grep "$g" "$log" | tail -5; }
	local out
	out=$(mg oom "$g" --resume 2>&1)
	echo "$out" | grep -q "resumed: its policy killed" &&
		wait_for 10 grep -qs "^holding 10 MB more" "$tmp/B.out" && wait_for 5 eval "! alive $pid_A" &&
		ok "memgrp oom --resume: the policy killed A, B's fault resumed ($out)" ||
		bad pause_resume "$out"
	finish A B C
}
run_case pause

case_garbage() {
	echo "--- a handler that answers garbage bytes"
	g=t-oh-garb-$sfx
	mg create "$g" -m 56M --oom-handler-timeout 2s || { bad garbage "create refused"; return; }
	# a raw client: OOM_HANDLER by hand, then bytes that are no message
	python3 - "$sock" "$g" >"$tmp/h.out" 2>&1 <<'PY' &
import socket, struct, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.send(struct.pack("<IHHII128s", 0x4D475250, 3, 44, 144, 0, sys.argv[2].encode()))
status = struct.unpack_from("<i", s.recv(65536), 16)[0]
print("handling" if status == 0 else "refused %d" % status, flush=True)
snap = s.recv(65536)
print("snapshot of %d bytes" % len(snap), flush=True)
s.send(b"\x50\x52\x47\x4d garbage, not a decision" * 3)
print("answer:", s.recv(65536)[24:100], flush=True)
time.sleep(30)
PY
	hpid=$!
	track $hpid
	wait_for 10 grep -qs "^handling" "$tmp/h.out"
	hold=30 three
	: >"$tmp/go-B"
	local dead st
	dead=$(gone A B C)
	[ "$dead" != none ] && st=$(status "$dead")
	wait_for 10 grep -qs "^holding 10 MB more" "$tmp/B.out"
	[ "$dead" = A ] && [ "${st:-}" = 137 ] && alive "$pid_B" && alive "$pid_C" &&
		grep -q "answer:.*bad request" "$tmp/h.out" &&
		grep -q "group '$g': its OOM handler (pid [0-9]*) sent a message that is no decision (protocol version mismatch)" "$log" &&
		grep -q "group '$g': its OOM handler (pid [0-9]*) went away while deciding" "$log" &&
		ok "garbage: refused with a clear error ($(grep -o 'bad request[^\\]*' "$tmp/h.out" | head -1)), the connection dropped, the policy killed A, no one else" ||
		{ bad garbage "dead '$dead' ($st)"; cat "$tmp/h.out"; grep "$g" "$log" | tail -5; }
	finish A B C
}
run_case garbage

case_busy() {
	echo "--- one handler per group"
	g=t-oh-busy-$sfx
	mg create "$g" -m 32M && mg create "$g-2" -m 32M && mg create "$g-3" -m 32M ||
		{ bad busy "create refused"; return; }
	c_handler "$g"
	local out
	out=$(py - "$sock" "$g" <<'PY' 2>&1
import errno, sys
import memgrp
c = memgrp.Client(sys.argv[1])
try:
    c.oom_handler(sys.argv[2])
    print("second registration accepted")
except memgrp.Error as e:
    print("second:", errno.errorcode[e.errno], e)
c.oom_handler(sys.argv[2] + "-2")
try:
    c.oom_handler(sys.argv[2] + "-3")
except memgrp.Error as e:
    print("other group on the same client:", errno.errorcode[e.errno])
PY
)
	echo "$out" | grep -q "^second: EBUSY .*has an OOM handler already" &&
		echo "$out" | grep -q "same client: EBUSY" &&
		ok "a second registration refused (EBUSY), one group per client" ||
		bad busy "$out"
	kill "$hpid"; wait "$hpid" 2>/dev/null
	out=$(py - "$sock" "$g" <<'PY' 2>&1
import sys
import memgrp
memgrp.Client(sys.argv[1]).oom_handler(sys.argv[2])
print("registered")
PY
)
	[ "$out" = registered ] && ok "the handler's connection closed: the group takes a new handler" ||
		bad busy_after "$out"
	hpid=
	mg rm "$g-2"
	mg rm "$g-3"
	finish
}
run_case busy

case_bad_input() {
	echo "--- bad settings and decisions"
	local out rc
	out=$(mg create t-oh-bad-$sfx --oom-handler-timeout 5s 2>&1); rc=$?
	[ $rc -ne 0 ] && echo "$out" | grep -q -- "--oom-handler-timeout: a duration from 1ms to 4s" &&
		ok "--oom-handler-timeout 5s refused: $out" || bad bad_timeout "rc $rc: $out"
	out=$(mg create t-oh-bad-$sfx --oom-reserve lots 2>&1); rc=$?
	[ $rc -ne 0 ] && echo "$out" | grep -q -- "--oom-reserve 'lots': a size" &&
		ok "--oom-reserve lots refused: $out" || bad bad_reserve "rc $rc: $out"
	g=t-oh-bad-$sfx
	mg create "$g" -m 32M --oom-handler-timeout 250ms --oom-reserve 1M &&
		mg create "$g/kid" || { bad bad_input "create refused"; return; }
	out=$(py - "$sock" "$g" <<'PY' 2>&1
import sys
import memgrp
c = memgrp.Client(sys.argv[1])
c.oom_handler(sys.argv[2])
try:
    c.oom_answer(1, kill=list(range(2, 20)))
except ValueError as e:
    print("python:", e)
try:
    c.oom_answer(1, limit=0)
except memgrp.Error as e:
    print("client:", e.errno, e)
try:
    c.oom_answer(1)
except memgrp.Error as e:
    print("manager:", e.errno, e)
c.oom_handler(sys.argv[2])  # still registered: the bad answers dropped nothing
PY
)
	echo "$out" | grep -q "^python: at most 16 pids" &&
		echo "$out" | grep -q "^client: 22 .*raise names a limit" &&
		echo "$out" | grep -q "^manager: 110 .*too late, the policy acted" &&
		echo "$out" | grep -q "has an OOM handler already" &&
		ok "bad decisions refused before the manager (17 pids, limit 0), a stray one by it (ETIMEDOUT); the registration stays" ||
		bad bad_decisions "$out"
	mg rm "$g/kid"
	finish
	g=t-oh-kb-$sfx
	if mg create "$g" -m 32M --backend kernel 2>"$tmp/kb.err"; then
		out=$(py - "$sock" "$g" <<'PY' 2>&1
import errno, sys
import memgrp
try:
    memgrp.Client(sys.argv[1]).oom_handler(sys.argv[2])
    print("registered")
except memgrp.Error as e:
    print(errno.errorcode[e.errno], e)
PY
)
		# (asked at its kernel limit: test_kbackend.sh 'handler')
		echo "$out" | grep -qx "registered" &&
			ok "a handler for a kernel-backend group is registered (asked at its kernel limit)" ||
			bad kbackend "$out"
		mg rm "$g"
	else
		skip kbackend "no kernel-backend group here: $(cat "$tmp/kb.err")"
	fi
}
run_case bad_input
