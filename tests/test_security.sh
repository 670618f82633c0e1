#!/usr/bin/env bash
# test_security.sh - the manager against hostile or unprivileged clients (a
# throwaway user), privilege drops under `memgrp run`, and limits that do
# not fit the counters. One case per finding of the security review.
# Usage: test_security.sh MEMGRP MEMGRPD PROGS_DIR
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
memgrpd=$(realpath "$2")
progs=$(realpath "$3")
probe=$here/sec_probe.py
# The system's python: the user's clients run it too (a python under
# root's home is out of their reach).
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)

if [ "$(id -u)" != 0 ] || ! command -v useradd >/dev/null || ! command -v setpriv >/dev/null; then
	skip_all "needs root, useradd and setpriv (a throwaway user is created)"
fi

user=mgsec$sfx
chmod 755 "$tmp" # the user's clients reach the socket in it
sock=$tmp/memgrpd.sock
dpid=
started=()
cleanup() {
	touch "$tmp/idle.done"
	for p in "${started[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
	userdel "$user" 2>/dev/null
}
if ! useradd -M -N -s /usr/sbin/nologin "$user" 2>"$tmp/useradd.err"; then
	skip_all "cannot create a throwaway user: $(cat "$tmp/useradd.err")"
fi
uid=$(id -u "$user")
gid=$(id -g "$user")
as_user() { setpriv --reuid "$uid" --regid "$gid" --clear-groups "$@"; }

mg() { "$memgrp" --socket "$sock" "$@"; }
nfds() { ls "/proc/$dpid/fd" | wc -l; }
answers() { timeout 5 "$memgrp" --socket "$sock" stat >/dev/null 2>&1; }

"$memgrpd" --socket "$sock" --state-dir none 2>"$tmp/memgrpd.log" &
dpid=$!
wait_socket "$sock"
[ -S "$sock" ] || { bad start "no socket"; cat "$tmp/memgrpd.log"; exit 1; }
mg create sec -m 256M && mg create a && mg create a/c && mg create b && mg create plant -m 16M &&
	mg create mixed -m 64M || { bad setup "cannot create groups"; exit 1; }

case_fds() {
echo "--- descriptors sent in messages"
# 300 empty messages with 9 fds each (2 700 fds): before, memgrpd kept
# every one and stopped answering once its table was full.
before=$(nfds)
as_user "$py" "$probe" fds "$sock" 300 >"$tmp/fds.out" 2>&1
# (the manager opens files of its own now and then, cgroup.procs on its
# scans: a count within 2 of the start, read again for up to 2 s; a leak
# would be thousands)
for _ in $(seq 20); do
	after=$(nfds)
	[ "$after" -le $((before + 2)) ] && break
	sleep 0.1
done
[ "$after" -le $((before + 2)) ] && answers &&
	ok "fds in messages are closed: memgrpd holds $after fds after 2 700 sent ($before before)" ||
	bad fds "memgrpd fds $before -> $after; $(cat "$tmp/fds.out")"
}
run_case fds

case_idle() {
echo "--- idle connections"
# The user holds 1 100 connections; root's stat and a new managed process
# must still be served.
(ulimit -n 4096; as_user "$py" "$probe" idle "$sock" 1100 "$tmp/idle.done") >"$tmp/idle.out" 2>&1 &
started+=($!)
for _ in $(seq 200); do grep -q connected "$tmp/idle.out" && break; sleep 0.1; done
mg run -g sec --stats-json "$tmp/idle.json" -- "$progs/prog_hold" 16 0.2 >"$tmp/idle-run.out" 2>&1; rc=$?
refused=$(sed -n 's/.*refused \([0-9]*\).*/\1/p' "$tmp/idle.out")
if [ $rc -eq 0 ] && answers && [ "$(jget "$tmp/idle.json" max_usage)" -ge $((16 << 20)) ] &&
	[ "${refused:-0}" -ge $((1100 - 64)) ] && grep -q "refused a connection of uid $uid" "$tmp/memgrpd.log"; then
	ok "1 100 idle connections of uid $uid ($(cat "$tmp/idle.out")): root's stat answered, a new process joined and was charged"
else
	bad idle "run rc $rc, $(cat "$tmp/idle.out"), max_usage $(jget "$tmp/idle.json" max_usage 2>/dev/null)"
	tail -5 "$tmp/idle-run.out"
fi
touch "$tmp/idle.done"
}
run_case idle

case_pipe_efd() {
echo "--- a pipe passed as an eventfd"
out=$(timeout 10 python3 "$probe" pipe "$sock" 2>&1)
grep -q "status -22: register: the descriptor sent is not an eventfd" <<<"$out" && answers &&
	ok "a full pipe is refused at registration; memgrpd keeps answering" || bad pipe "$out"
}
run_case pipe_efd

case_forged_oom() {
echo "--- a forged OOM_KILL"
timeout 3 "$memgrp" --socket "$sock" events --oom --count 1 sec >"$tmp/ev.out" 2>&1 &
epid=$!
sleep 1
out=$(env -u LD_PRELOAD python3 "$probe" forge "$sock" sec 2>&1)
wait $epid
if grep -q "joined True" <<<"$out" && ! grep -q oom "$tmp/ev.out" && ! grep -q "^memgrpd: 00:00:00 FORGED" "$tmp/memgrpd.log" &&
	grep -q "refused an OOM_KILL report from pid" "$tmp/memgrpd.log" && [ "$(stat_field sec oom_kill)" = 0 ]; then
	ok "a forged OOM_KILL gives no event and injects no log line"
else
	bad forge "$out / events: $(cat "$tmp/ev.out")"; grep -n "FORGED\|OOM_KILL" "$tmp/memgrpd.log"
fi
}
run_case forged_oom

case_list() {
echo "--- LIST by an unprivileged user"
out_none=$(as_user "$py" "$probe" list "$sock" 2>&1)
# A child of a process of group a may join a: it then sees a and below.
out_a=$(mg run -g a -- sh -c "env -u LD_PRELOAD setpriv --reuid $uid --regid $gid --clear-groups '$py' '$probe' list '$sock' a 2>/dev/null; true" 2>&1 | grep names)
out_root=$(python3 "$probe" list "$sock" 2>&1)
if [ "$out_none" = "names: " ] && [ "$out_a" = "names: a a/c" ] && grep -q " b" <<<"$out_root"; then
	ok "LIST: uid $uid outside any group sees none, in group a sees 'a a/c', root sees all"
else
	bad list "none '$out_none', in a '$out_a', root '$out_root'"
fi
}
run_case list

case_planted() {
echo "--- a planted pid"
# A client tries to write the pid of a root process outside every group
# into a slot it was not given (the control part, read-only to it: refused),
# gives a free slot a huge charge in the accounting part it may write,
# fills its group's counter and asks for an OOM kill.
sleep 60 &
spid=$!
started+=($spid)
env -u LD_PRELOAD "$progs/prog_plant" "$sock" plant "$spid" >"$tmp/plant.out" 2>&1; prc=$?
sleep 0.5
if kill -0 "$spid" 2>/dev/null && grep -q "planted" "$tmp/plant.out" &&
	grep -q "group 'plant': its accounting was tampered with: free slot [0-9]* says it holds" "$tmp/memgrpd.log"; then
	ok "a pid cannot be planted (control part read-only); the planted charge is reported and nobody outside is signalled (the planter exited $prc)"
else
	bad plant "sleep alive: $(kill -0 "$spid" 2>/dev/null && echo yes || echo no), plant rc $prc: $(cat "$tmp/plant.out")"
	grep -n "plant" "$tmp/memgrpd.log" | tail -5
fi
kill "$spid" 2>/dev/null
}
run_case planted

case_drops() {
echo "--- privilege drops under memgrp run"
# The kernel gives uid $uid no userfaultfd of its own here (unless the
# sysctl allows it), but the root manager lends its agent /dev/userfaultfd:
# a program exec'd as that user stays managed. Without that device it runs
# unmanaged, with a message; it must never die of the drop.
uffd_user=0
[ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" = 1 ] && uffd_user=1
[ -c /dev/userfaultfd ] && uffd_user=1
dropcase() { # NAME -- command...: runs it in group sec, checks exit 0 and managed or said why
	local name=$1; shift 2
	mg run -g sec/$name --stats-json "$tmp/$name.json" -- "$@" >"$tmp/$name.out" 2>&1
	local rc=$? mu
	mu=$(jget "$tmp/$name.json" max_usage 2>/dev/null || echo 0)
	# (setpriv used to die of SIGABRT here: its KEEPCAPS and capset are
	# per thread, and glibc's set*id broadcast failed in the agent's
	# threads; src/agent/creds.c.)
	if [ $rc -eq 0 ] && { [ "$mu" -ge $((16 << 20)) ] ||
		{ [ $uffd_user = 0 ] && grep -q "not managed" "$tmp/$name.out"; }; }; then
		ok "$name: exit 0; $([ "$mu" -ge $((16 << 20)) ] && echo "managed, max_usage $((mu >> 20))M" || echo "unmanaged, said why: $(grep -m1 -o "[^:]*: this process is not managed" "$tmp/$name.out")")"
	else
		bad "$name" "rc $rc, max_usage $mu"; tail -5 "$tmp/$name.out"
	fi
}
dropcase setpriv -- setpriv --reuid "$uid" --regid "$gid" --clear-groups "$progs/prog_hold" 16 0.5
if command -v runuser >/dev/null; then
	dropcase runuser -- runuser -u "$user" -- "$progs/prog_hold" 16 0.5
else
	skip runuser "no runuser"
fi
if command -v su >/dev/null; then
	dropcase su -- su -s /bin/sh "$user" -c "'$progs/prog_hold' 16 0.5"
else
	skip su "no su"
fi
# After the drop, under a limit with swap, the program forks: its agent
# needs fork events to evict (a child would read evicted pages as zeros),
# which the kernel grants only with CAP_SYS_PTRACE; the manager turns them
# on for it (UFFD_FEATURES). Before, nothing could be evicted and the group
# was OOM-killed (postgres' backends under runuser were).
if command -v runuser >/dev/null && [ $uffd_user = 1 ]; then
	# (a group of its own: sec has no swap, and a child's is bounded by it)
	mg create dropfork -m 24M --swap-max 1G &&
	mg run -g dropfork --stats-json "$tmp/dropfork.json" -- \
		runuser -u "$user" -- "$progs/prog_forkcheck" 64 >"$tmp/dropfork.out" 2>&1; rc=$?
	out=$(jget "$tmp/dropfork.json" pswpout 2>/dev/null || echo 0)
	if [ $rc -eq 0 ] && grep -q "fork ok" "$tmp/dropfork.out" && [ "$out" -gt 0 ]; then
		ok "runuser, then 64 MiB under 24M and a fork: evicted ($out pages), every byte right in both"
	else
		bad dropfork "rc $rc, pswpout $out"; tail -5 "$tmp/dropfork.out"
	fi
else
	skip dropfork "needs runuser and /dev/userfaultfd"
fi
# Dropping inside the program keeps its agent: it stays managed.
for mode in plain keepcaps; do
	mg run -g sec/drop-$mode --stats-json "$tmp/drop-$mode.json" -- "$progs/prog_dropper" "$uid" "$gid" 32 0.5 $mode \
		>"$tmp/drop-$mode.out" 2>&1; rc=$?
	mu=$(jget "$tmp/drop-$mode.json" max_usage 2>/dev/null || echo 0)
	if [ $rc -eq 0 ] && grep -q verified "$tmp/drop-$mode.out" && [ "$mu" -ge $((32 << 20)) ]; then
		ok "setresuid inside the program ($mode): keeps running, managed (max_usage $((mu >> 20))M)"
	else
		bad "drop-$mode" "rc $rc, max_usage $mu"; tail -5 "$tmp/drop-$mode.out"
	fi
done
}
run_case drops

case_two_users() {
echo "--- a group of two users"
# root's process holds 40M of a 64M group; uid $uid's (dropped inside the
# program, managed) needs 40M: the manager kills root's, the larger, and
# the other goes on. Before, the user's agent tried, got EPERM, and the
# fault stalled until root's process ended on its own.
mg run -g mixed -- "$progs/prog_hold" 40 30 >"$tmp/mixed-root.out" 2>&1 &
rpid=$!
started+=($rpid)
for _ in $(seq 100); do
	[ "$(stat_field mixed usage 2>/dev/null || echo 0)" -ge $((39 << 20)) ] && break
	sleep 0.1
done
t0=$(date +%s%N)
mg run -g mixed -- "$progs/prog_dropper" "$uid" "$gid" 40 0.2 >"$tmp/mixed-user.out" 2>&1; urc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
wait $rpid; rrc=$?
if [ $urc -eq 0 ] && [ $rrc -eq 137 ] && grep -q verified "$tmp/mixed-user.out" &&
	grep -q "group 'mixed' is out of memory.*killing pid [0-9]* (prog_hold)" "$tmp/memgrpd.log" &&
	! grep -q "killed pid" "$tmp/mixed-user.out"; then
	ok "mixed users: the manager killed root's larger process (exit $rrc); uid $uid's finished in ${ms} ms"
else
	bad mixed "user rc $urc, root rc $rrc, ${ms} ms"; tail -5 "$tmp/mixed-user.out"; grep mixed "$tmp/memgrpd.log" | tail -5
fi
}
run_case two_users

case_sizes() {
echo "--- sizes"
expect_usage() { # NAME PATTERN -- args
	local name=$1 pat=$2; shift 3
	local out rc
	out=$("$@" 2>&1); rc=$?
	[ $rc -eq 2 ] && grep -q -- "$pat" <<<"$out" && ok "$name: refused ($out)" || bad "$name" "rc $rc: $out"
}
expect_usage "-m 2^64-1" "beyond the largest limit" -- "$memgrp" run -m 18446744073709551615 -- true
expect_usage "-m 8E" "beyond the largest limit" -- "$memgrp" run -m 8E -- true
expect_usage "--memory-high above -m" "above --memory-max" -- "$memgrp" run -m 64M --memory-high 128M -- true
expect_usage "--memory-low above -m (create)" "above --memory-max" -- mg create lowtest -m 64M --memory-low 128M
out=$(python3 "$probe" set "$sock" sec 9223372036854775808 18446744073709551615 2>&1)
grep -q "status -34" <<<"$out" && ok "SET over the socket: 8E refused ($out)" || bad set_range "$out"
out=$(python3 "$probe" set "$sock" sec $((64 << 20)) $((128 << 20)) 2>&1)
grep -q "status -22" <<<"$out" && [ "$(stat_field sec limit)" = $((256 << 20)) ] &&
	ok "SET over the socket: high above max refused, limit unchanged ($out)" || bad set_high "$out"
}
run_case sizes
