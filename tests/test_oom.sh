#!/usr/bin/env bash
# test_oom.sh - OOM policies, kill scope, grace and the post-mortem record
# (issue 18): real processes in a group at its limit under memgrpd.
# Usage: test_oom.sh MEMGRP MEMGRPD PROGS_DIR PYTHON_DIR LIBMEMGRP
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
memgrpd=$(realpath "$2")
progs=$(realpath "$3")
pydir=$(realpath "$4")
libmemgrp=$(realpath "$5")
sock=$tmp/memgrpd.sock
log=$tmp/memgrpd.log
dpid=
cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null
}
. "$(dirname "$0")/oomlib.sh"

start_memgrpd || exit 1

# start NAME MB [MORE [RUN-OPTIONS...]]: prog_hold of MB in group $g as
# process NAME (pid in pid_NAME), holding 30 s ($hold s if set); with MORE > 0 it touches
# MORE MB more once $tmp/go-NAME exists. Returns once it holds its MB, so
# that the processes' ages follow the order they were started in.
start() { hold_in "$g" "$1" "$2" "${hold:-30}" "${@:3}"; }

# After the trigger: waits until one of the named processes is gone and
# says which, or "none".
gone() { gone_within 20 "$@"; }

# Ends the case's processes still running and removes the group(s).
finish() {
	local p
	for p in "$@"; do
		eval "kill \$pid_$p 2>/dev/null; wait \$pid_$p 2>/dev/null"
	done
	wait_for 10 test "$(stat_field "$g" nr_processes 2>/dev/null)" = 0
}


# policy POLICY GROWER EXPECT [CREATE-OPTIONS...]: three processes in a
# group at 56M: A 24M (the oldest), B 8M, C 16M (the newest); GROWER
# touches 10M more and the group's charge is refused. EXPECT is the one
# the policy must kill; the other two must live (one death must leave
# room for the rest: with 16M more, B's left A at the limit, a second
# kill).
policy() {
	local pol=$1 grower=$2 want=$3 moreA=0 moreB=0 moreC=0
	shift 3
	npol=$((${npol:-0} + 1))
	g=t-pol-$pol-$npol-$sfx
	mg create "$g" -m 56M --oom-policy "$pol" "$@" || { bad "$pol" "create refused"; return; }
	eval "more$grower=10"
	start A 24 "$moreA"
	# growth: A's start (from nothing to 24M) out of the samples' window
	[ "$pol" = growth ] && sleep 2.5
	start B 8 "$moreB" ${prioB:+--oom-priority "$prioB"}
	start C 16 "$moreC"
	[ "$pol" = growth ] || sleep 2.5 # C's start out of the growth window: no matter here
	: >"$tmp/go-$grower"
	local dead
	dead=$(gone A B C)
	local st=
	[ "$dead" != none ] && st=$(status "$dead")
	local others=ok n
	for n in A B C; do
		[ "$n" = "$dead" ] && continue
		eval "alive \$pid_$n" || others="$n gone too"
	done
	[ "$dead" = "$want" ] && [ "$st" = 137 ] && [ "$others" = ok ] &&
		grep -q "group '$g' is out of memory.*killing pid [0-9]*" "$tmp/memgrpd.log" &&
		ok "--oom-policy $pol $*: $want killed (the grower was $grower), the others live" ||
		{ bad "policy_$pol" "killed '$dead' (status $st), want $want; others: $others"
		  grep "$g" "$tmp/memgrpd.log" | tail -5; }
	finish A B C
	rm -f "$tmp"/go-*
	mg rm "$g" 2>/dev/null
}

case_largest() { echo "--- --oom-policy largest (default)"; policy largest B A; }
run_case largest
case_newest() { echo "--- --oom-policy newest"; policy newest B C; }
run_case newest
case_oldest() { echo "--- --oom-policy oldest"; policy oldest B A; }
run_case oldest
case_priority() {
	echo "--- --oom-policy priority (memgrp run --oom-priority)"
	prioB=500 policy priority A B
	prioB=
}
run_case priority
case_growth() {
	# C (16M) started within the window; A grows 8M into the limit: the
	# fastest grower is C, not the largest (A) nor the one refused (A)
	echo "--- --oom-policy growth"
	policy growth A C
}
run_case growth
case_prefer() {
	echo "--- --oom-prefer / --oom-avoid"
	policy largest A B --oom-prefer 'prog_hold 8 30$'
	# A is the largest and the grower, but its command line is avoided
	policy largest A C --oom-avoid 'prog_hold 24 '
}
run_case prefer

case_record() {
	echo "--- the post-mortem record"
	local line
	line=$(grep -o 'oom-record {.*}' "$tmp/memgrpd.log" | tail -1 | sed 's/^oom-record //')
	python3 - "$line" <<'EOF' && ok "every kill has its JSON record (group, reason, policy, victim, stats, largest)" ||
import json, sys
r = json.loads(sys.argv[1])
v = r["victim"]
assert r["group"].startswith("t-pol-") and r["policy"] in ("largest", "newest", "oldest", "priority", "growth"), r
assert r["signal"] == "KILL" and r["scope"] == "process" and "nothing can be reclaimed" in r["reason"], r
assert v["pid"] > 0 and "prog_hold" in v["cmdline"] and v["charged"] > 0 and v["chosen"], v
assert r["stats"]["limit"] == 56 << 20 and r["stats"]["oom_kill"] >= 1, r["stats"]
assert 1 <= len(r["largest"]) <= 3 and r["largest"][0]["charged"] >= r["largest"][-1]["charged"], r
EOF
		bad record "$line"
	local kills records
	kills=$(grep -c "is out of memory.*: killing pid" "$tmp/memgrpd.log")
	records=$(grep -c "oom-record {" "$tmp/memgrpd.log")
	[ "$kills" -ge 1 ] && [ "$kills" = "$records" ] && ok "one record per kill ($records)" ||
		bad record_count "$kills kills, $records records"
}
run_case record largest

case_events() {
	echo "--- memgrp events --json: the kill's record"
	g=t-ev-$sfx
	mg create "$g" -m 32M || { bad events "create refused"; return; }
	mg events --json --oom --count 1 "$g" >"$tmp/ev.out" 2>"$tmp/ev.err" &
	local epid=$!
	track $epid
	wait_for 10 grep -q "watching" "$tmp/ev.err"
	mg run -g "$g" -- "$progs/prog_hold" 40 1 >"$tmp/ev-run.out" 2>&1; local rc=$?
	wait_for 10 eval '! alive $epid'
	python3 - "$tmp/ev.out" "$g" <<'EOF' && ok "events --json: the OOM event, then its kill's record (victim pid, command line, charged)" ||
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 2, lines
ev, rec = lines
assert ev["event"] == "oom" and ev["group"] == sys.argv[2] and ev["count"] == 1, ev
assert rec["event"] == "oom_kill" and rec["group"] == sys.argv[2] and rec["policy"] == "largest", rec
assert rec["victim"]["cmdline"].endswith("prog_hold 40 1") and rec["victim"]["charged"] >= 30 << 20, rec
EOF
		{ bad events "run rc $rc: $(cat "$tmp/ev.out" "$tmp/ev.err")"; }
	wait_for 10 test "$(stat_field "$g" nr_processes 2>/dev/null)" = 0
	mg rm "$g"
}
run_case events

case_group() {
	echo "--- --oom-kill group, an ancestor's OOM: the child group that pays"
	# t-grp 64M: a holds A 28M + B 8M, b holds C 24M; C grows 16M.
	# By groups (largest): a (36M) pays, as one unit: A and B die, C lives.
	local top=t-grp-$sfx
	mg create "$top" -m 64M --oom-kill group && mg create "$top/a" && mg create "$top/b" ||
		{ bad group "create refused"; return; }
	g=$top/a
	start A 28 0
	start B 8 0
	g=$top/b
	start C 24 16
	: >"$tmp/go-C"
	wait_for 20 eval '! alive $pid_A && ! alive $pid_B'
	local sa sb
	sa=$(status A) sb=$(status B)
	alive "$pid_C" && [ "$sa" = 137 ] && [ "$sb" = 137 ] &&
		grep -q "its child group '$top/a' pays" "$tmp/memgrpd.log" &&
		grep -q "\"scope\": \"group\"" "$tmp/memgrpd.log" &&
		ok "group scope: every process of $top/a killed (A $sa, B $sb), $top/b's C lives" ||
		{ bad group "A $sa, B $sb, C alive: $(alive "$pid_C" && echo yes || echo no)"
		  grep "$top" "$tmp/memgrpd.log" | tail -8; }
	wait_for 10 grep -q "holding 16 MB more" "$tmp/C.out" &&
		ok "C's refused fault resumed once the group was gone" || bad group_resume "$(cat "$tmp/C.out")"
	finish C
	rm -f "$tmp"/go-*
	mg rm "$top/a"; mg rm "$top/b"; mg rm "$top"
}
run_case group

# grace MODE: a termhold (40M) answering SIGTERM by MODE, and a grower
# (8M + 16M) in a 56M group with --oom-signal TERM --oom-grace 1s.
grace() {
	local mode=$1
	g=t-grace-$mode-$sfx
	mg create "$g" -m 56M --oom-signal TERM --oom-grace 1s || { bad "grace_$mode" "create refused"; return; }
	mg run -g "$g" -- "$progs/prog_termhold" 40 30 "$mode" >"$tmp/T.out" 2>&1 &
	pid_T=$!
	track $!
	wait_for 20 grep -q "^holding 40 MB" "$tmp/T.out"
	mg run -g "$g" -- "$progs/prog_hold" 8 1 16 "$tmp/go-G" >"$tmp/G.out" 2>&1 &
	pid_G=$!
	track $!
	wait_for 20 grep -q "^holding 8 MB" "$tmp/G.out"
	: >"$tmp/go-G"
	wait_for 20 eval '! alive $pid_T'
	local st sg
	st=$(status T)
	wait "$pid_G"; sg=$?
	if [ "$mode" = exit ]; then
		[ "$st" = 0 ] && grep -q "terminated cleanly" "$tmp/T.out" && [ "$sg" = 0 ] &&
			grep -q "group '$g' is out of memory.*sending SIGTERM to pid" "$tmp/memgrpd.log" &&
			! grep -q "group '$g': pid [0-9]* did not exit within" "$tmp/memgrpd.log" &&
			grep -q "holding 16 MB more" "$tmp/G.out" &&
			ok "SIGTERM first: the victim exits cleanly within its grace, the refused fault resumes" ||
			{ bad grace_exit "victim $st, grower $sg"; cat "$tmp/T.out" "$tmp/G.out"; grep "$g" "$tmp/memgrpd.log"; }
	else
		[ "$st" = 137 ] && [ "$sg" = 0 ] &&
			grep -q "group '$g' is out of memory.*sending SIGTERM to pid" "$tmp/memgrpd.log" &&
			grep -q "group '$g': pid [0-9]* did not exit within its 1000 ms grace: killing it" "$tmp/memgrpd.log" &&
			grep -q "holding 16 MB more" "$tmp/G.out" &&
			ok "a victim that ignores SIGTERM is killed when the grace ends; the refused fault resumes" ||
			{ bad grace_ignore "victim $st, grower $sg"; cat "$tmp/T.out" "$tmp/G.out"; grep "$g" "$tmp/memgrpd.log"; }
	fi
	wait_for 10 test "$(stat_field "$g" nr_processes 2>/dev/null)" = 0
	rm -f "$tmp"/go-*
	mg rm "$g" 2>/dev/null
}
case_grace() {
	echo "--- --oom-signal TERM --oom-grace"
	grace exit
	grace ignore
}
run_case grace

case_libmemgrp() {
	echo "--- mg_oom_priority_set (the Python binding)"
	g=t-lib-$sfx
	mg create "$g" -m 56M --oom-policy priority || { bad libmemgrp "create refused"; return; }
	start A 24 10
	# B marks itself through libmemgrp, then holds 8M
	MEMGRP_LIB=$libmemgrp PYTHONPATH=$pydir mg run -g "$g" -- python3 -c '
import mmap, sys, time, memgrp
c = memgrp.Client("'"$sock"'")
c.oom_priority(700)
try:
    c.oom_priority(5000)
    print("out of range accepted")
except Exception as e:
    print("range refused:", e)
m = mmap.mmap(-1, 8 << 20)
m.write(b"x" * (8 << 20))
print("holding 8 MB", flush=True)
time.sleep(30)
' >"$tmp/B.out" 2>&1 &
	pid_B=$!
	track $!
	wait_for 20 grep -q "^holding 8 MB" "$tmp/B.out"
	start C 16 0
	: >"$tmp/go-A"
	local dead st
	dead=$(gone A B C)
	[ "$dead" != none ] && st=$(status "$dead")
	[ "$dead" = B ] && [ "$st" = 137 ] && alive "$pid_A" && alive "$pid_C" &&
		grep -q "range refused" "$tmp/B.out" && grep -q "OOM priority is 700" "$tmp/memgrpd.log" &&
		ok "a process marks itself (mg_oom_priority_set 700) and is the one killed; 5000 refused" ||
		{ bad libmemgrp "killed '$dead' ($st)"; cat "$tmp/B.out"; }
	finish A B C
	rm -f "$tmp"/go-*
	mg rm "$g" 2>/dev/null
}
run_case libmemgrp

case_bad_input() {
	echo "--- bad input: a clear error, nothing killed"
	local out rc
	expect_usage() {
		local want=$1
		shift
		out=$("$@" 2>&1); rc=$?
		[ $rc = 2 ] && grep -q -- "$want" <<<"$out" && ok "refused: ${*:2:6} ($want)" ||
			bad bad_input "rc $rc for '$*': $out"
	}
	expect_usage "--oom-policy: largest, newest, oldest, priority or growth, not 'biggest'" \
		mg create t-bad-$sfx --oom-policy biggest
	expect_usage "--oom-prefer '(web': not a regular expression" mg create t-bad-$sfx --oom-prefer '(web'
	expect_usage "--oom-avoid '\[': not a regular expression" mg set t-bad-$sfx --oom-avoid '['
	expect_usage "--oom-grace: a duration up to 5s" mg create t-bad-$sfx --oom-signal TERM --oom-grace 10s
	expect_usage "--oom-grace: a duration up to 5s" mg create t-bad-$sfx --oom-signal TERM --oom-grace soon
	expect_usage "--oom-grace goes with --oom-signal TERM" mg create t-bad-$sfx --oom-grace 1s
	expect_usage "--oom-signal: KILL or TERM, not 'HUP'" mg create t-bad-$sfx --oom-signal HUP
	expect_usage "--oom-kill: process or group" mg create t-bad-$sfx --oom-kill all
	expect_usage "--oom-priority: a number from -1000 to 1000" mg run --oom-priority 1001 -- true
	expect_usage "--oom-kill-disable: 1 (or nothing) pauses, 0 kills, not '2'" \
		mg create t-bad-$sfx --oom-kill-disable=2
	expect_usage "say --kill PID or --resume" mg oom t-bad-$sfx
	expect_usage "--kill and --resume exclude each other" mg oom t-bad-$sfx --kill 5 --resume
	expect_usage "--kill: a process id, not 'me'" mg oom t-bad-$sfx --kill me
	mg ls | grep -q "t-bad-$sfx" && bad bad_input "a refused create made the group" ||
		ok "no group was made by a refused create"
	# a client sending garbage: an OOM_PRIORITY out of range, a SET whose
	# regex the CLI would have refused, a truncated message; the group's
	# process must live through all of it
	g=t-raw-$sfx
	mg create "$g" -m 64M
	start A 8 0
	python3 - "$sock" "$g" "$pid_A" >"$tmp/raw.out" 2>&1 <<'EOF'
import socket, struct, sys
sock, group, pid = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
def send(mtype, body, length=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sock)
    n = 16 + len(body) if length is None else length
    s.send(struct.pack("<IHHII", 0x4d475250, 3, mtype, n, 0) + body)
    r = s.recv(4096)
    s.close()
    status = struct.unpack_from("<i", r, 16)[0]
    msg = r[24:].split(b"\0")[0].decode()
    print(mtype, status, msg)
send(40, struct.pack("<ii", pid, 5000))
send(40, struct.pack("<ii", -3, 1))
send(40, struct.pack("<ii", pid, 1), length=20)
keep = 2**64 - 1
body = group.ljust(128, b"\0") + struct.pack("<8Q", *([keep] * 8))
body += struct.pack("<6I", 8, 0, 0, 0, 0, 0) + b"(x".ljust(128, b"\0") + bytes(128) + bytes(264 + 16 + 24)
send(6, body)
body = group.ljust(128, b"\0") + struct.pack("<8Q", *([keep] * 8))
body += struct.pack("<6I", 1, 9, 0, 0, 0, 0) + bytes(256) + bytes(264 + 16 + 24)
send(6, body)
send(43, group.ljust(128, b"\0") + struct.pack("<iI", pid, 9))
send(43, group.ljust(128, b"\0") + struct.pack("<iI", pid, 1))
EOF
	grep -q "^40 -22 .*oom priority: -1000 to 1000" "$tmp/raw.out" &&
		grep -q "^40 -22 .*oom priority: pid out of range" "$tmp/raw.out" &&
		grep -q "^40 -71 bad request: message length" "$tmp/raw.out" &&
		grep -q "^6 -22 --oom-prefer '(x': " "$tmp/raw.out" &&
		grep -q "^6 -22 .*oom policy is largest" "$tmp/raw.out" &&
		grep -q "^43 -22 .*oom act: kill (1) or resume (2)" "$tmp/raw.out" &&
		grep -q "^43 -11 .*is not paused at OOM" "$tmp/raw.out" &&
		ok "garbage from a client: each refused with its reason" ||
		bad raw "$(cat "$tmp/raw.out")"
	alive "$pid_A" && [ "$(stat_field "$g" oom_kill)" = 0 ] && kill -0 "$dpid" &&
		ok "nothing killed by the garbage, memgrpd still serves" || bad raw_alive "A or memgrpd gone"
	finish A
	mg rm "$g"
}
run_case bad_input


# The command memgrp run NAME started (the process that joined): the
# last of the chain of single children below pid_NAME (a subshell, memgrp
# run, the command).
proc_of() {
	local p c
	eval "p=\$pid_$1"
	while c=$(env -u LD_PRELOAD pgrep -P "$p" | head -1) && [ -n "$c" ]; do
		p=$c
	done
	echo "$p"
}

# pause_setup NAME: a group at 32M with --oom-kill-disable; A holds 20M,
# B 4M and then touches 16M more (past the limit): the group pauses with
# A the largest.
pause_setup() {
	g=t-pause-$1-$sfx
	mg create "$g" -m 32M --oom-kill-disable || { bad "pause_$1" "create refused"; return 1; }
	start A 20 0
	start B 4 16
	: >"$tmp/go-B"
	wait_for 20 eval 'test "$(stat_field "$g" under_oom)" = 1' ||
		{ bad "pause_$1" "under_oom never 1"; grep "$g" "$tmp/memgrpd.log" | tail -5; return 1; }
}
# Like finish, but the commands too (killing the subshell of a backgrounded
# mg leaves memgrp run and its command running), and waits for the group
# to be empty.
finish_all() {
	local p c
	for p in "$@"; do
		c=$(proc_of "$p")
		kill -9 "$c" 2>/dev/null
		eval "kill \$pid_$p 2>/dev/null; wait \$pid_$p 2>/dev/null"
	done
	wait_for 10 eval 'test "$(stat_field "$g" nr_processes 2>/dev/null)" = 0'
}
pause_done() {
	finish_all A B
	rm -f "$tmp"/go-*
	mg rm "$g" 2>/dev/null
}

case_pause() {
	local hold=120 # (the sanitizer build is slow: nobody exits on its own meanwhile)
	echo "--- --oom-kill-disable: the group pauses; memgrp oom --kill PID"
	local epid out rc
	g=t-pause-kill-$sfx
	mg create "$g" -m 32M --oom-kill-disable || { bad pause "create refused"; return; }
	mg events --json --oom --count 1 "$g" >"$tmp/pev.out" 2>"$tmp/pev.err" &
	epid=$!
	track $epid
	wait_for 10 grep -q "watching" "$tmp/pev.err"
	start A 20 0
	start B 4 16
	: >"$tmp/go-B"
	wait_for 20 eval 'test "$(stat_field "$g" under_oom)" = 1' || bad pause "under_oom never 1"
	sleep 1.5 # the policy would have killed by now
	alive "$pid_A" && alive "$pid_B" && [ "$(stat_field "$g" oom_kill)" = 0 ] &&
		[ "$(stat_field "$g" under_oom)" = 1 ] && [ "$(stat_field "$g" oom_pauses)" = 1 ] &&
		! grep -q "holding 16 MB more" "$tmp/B.out" &&
		mg stat "$g" | grep -q "under_oom *1" &&
		grep -q "group '$g' is out of memory .*paused (--oom-kill-disable)" "$tmp/memgrpd.log" &&
		ok "paused at OOM: nobody killed, B's fault waits, under_oom 1 (stat and --json), oom_pauses 1" ||
		{ bad pause "A/B alive: $(alive "$pid_A" && echo y)/$(alive "$pid_B" && echo y), $(mg stat --json "$g")"
		  grep "$g" "$tmp/memgrpd.log" | tail -5; }
	wait_for 10 eval '! alive $epid'
	python3 - "$tmp/pev.out" "$g" <<'PY' && ok "the pause is an OOM event to the registration" ||
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
assert ev and ev[0]["event"] == "oom" and ev[0]["group"] == sys.argv[2], ev
PY
		bad pause_event "$(cat "$tmp/pev.out" "$tmp/pev.err")"
	# a pid that is not in the group: refused, nothing killed
	sleep 60 &
	local stranger=$!
	track $stranger
	out=$(mg oom "$g" --kill "$stranger" 2>&1); rc=$?
	[ $rc = 1 ] && grep -q "is not a process of group '$g'" <<<"$out" && alive "$stranger" &&
		alive "$pid_A" && alive "$pid_B" && [ "$(stat_field "$g" under_oom)" = 1 ] &&
		ok "memgrp oom --kill of a pid outside the group: refused ($out), nothing killed" ||
		bad pause_stranger "rc $rc: $out"
	kill $stranger
	out=$(mg oom "$g" --kill "$(proc_of A)" 2>&1); rc=$?
	wait_for 20 grep -q "holding 16 MB more" "$tmp/B.out"
	wait_for 10 eval '! alive $pid_A'
	local sa
	sa=$(status A)
	[ $rc = 0 ] && [ "$sa" = 137 ] && alive "$pid_B" && grep -q "holding 16 MB more" "$tmp/B.out" &&
		[ "$(stat_field "$g" under_oom)" = 0 ] && [ "$(stat_field "$g" oom_kill)" = 1 ] &&
		grep -q "\"chosen\": \"named by memgrp oom --kill\"" "$tmp/memgrpd.log" &&
		ok "memgrp oom --kill A: A killed ($sa), B's fault resumes, under_oom 0, its record written" ||
		{ bad pause_kill "rc $rc ($out), A $sa, B: $(cat "$tmp/B.out")"; grep "$g" "$tmp/memgrpd.log" | tail -5; }
	out=$(mg oom "$g" --resume 2>&1); rc=$?
	[ $rc = 1 ] && grep -q "not paused" <<<"$out" && ok "memgrp oom on a group not paused: refused ($out)" ||
		bad pause_notpaused "rc $rc: $out"
	pause_done
}
run_case pause

case_pause_raise() {
	local hold=120 # (the sanitizer build is slow: nobody exits on its own meanwhile)
	echo "--- a paused group waits past the agent's 10 s give-up; a raised limit resumes it"
	pause_setup raise || { pause_done; return; }
	sleep 11
	alive "$pid_A" && alive "$pid_B" && [ "$(stat_field "$g" under_oom)" = 1 ] &&
		! grep -q "ends itself" "$tmp/B.out" &&
		ok "11 s paused: nobody killed, not even by its own agent" ||
		{ bad pause_long "$(cat "$tmp/B.out")"; }
	mg set "$g" -m 64M
	wait_for 20 grep -q "holding 16 MB more" "$tmp/B.out"
	grep -q "holding 16 MB more" "$tmp/B.out" && alive "$pid_A" &&
		[ "$(stat_field "$g" under_oom)" = 0 ] && [ "$(stat_field "$g" oom_kill)" = 0 ] &&
		ok "memgrp set -m 64M: the waiting fault resumes, nobody killed, under_oom 0" ||
		bad pause_raise "$(cat "$tmp/B.out") $(mg stat --json "$g")"
	pause_done
}
run_case pause_raise

case_pause_resume() {
	local hold=120 # (the sanitizer build is slow: nobody exits on its own meanwhile)
	echo "--- memgrp oom --resume: the policy acts; memory freed by hand resumes too"
	pause_setup resume || { pause_done; return; }
	local out rc sa
	out=$(mg oom "$g" --resume 2>&1); rc=$?
	wait_for 20 grep -q "holding 16 MB more" "$tmp/B.out"
	wait_for 10 eval '! alive $pid_A'
	sa=$(status A)
	[ $rc = 0 ] && [ "$sa" = 137 ] && grep -q "holding 16 MB more" "$tmp/B.out" &&
		[ "$(stat_field "$g" under_oom)" = 0 ] &&
		ok "--resume: the largest (A, $sa) killed by the policy, B resumes ($out)" ||
		bad pause_resume "rc $rc ($out), A $sa, B: $(cat "$tmp/B.out")"
	pause_done
	pause_setup freed || { pause_done; return; }
	kill -9 "$(proc_of A)"
	wait_for 20 grep -q "holding 16 MB more" "$tmp/B.out"
	grep -q "holding 16 MB more" "$tmp/B.out" && [ "$(stat_field "$g" oom_kill)" = 0 ] &&
		[ "$(stat_field "$g" under_oom)" = 0 ] &&
		ok "memory freed (A killed from outside): B resumes, under_oom 0, no OOM kill counted" ||
		bad pause_freed "$(cat "$tmp/B.out") $(mg stat --json "$g")"
	pause_done
}
run_case pause_resume

case_pause_term() {
	echo "--- never a hang: SIGTERM to a paused memgrp run ends it"
	local mode rpid st gg want
	# hold: SIGTERM's default action ends the command (143); termhold
	# exit catches it (its handler runs, the fault waits again) and
	# termhold ignore ignores it: the pause ends, the policy kills (137)
	for mode in hold exit ignore; do
		gg=t-pterm-$mode-$sfx
		if [ $mode = hold ]; then
			set -- "$progs/prog_hold" 32 30; want=143
		else
			set -- "$progs/prog_termhold" 32 30 "$mode"; want=137
		fi
		"$memgrp" run -g "$gg" -m 16M --oom-kill-disable -- "$@" >"$tmp/pt.out" 2>"$tmp/pt.err" &
		rpid=$!
		track $rpid
		wait_for 20 grep -q "paused (--oom-kill-disable)" "$tmp/pt.err" ||
			{ bad "pause_term_$mode" "never paused: $(cat "$tmp/pt.err")"; kill -9 $rpid; continue; }
		sleep 0.5
		kill -TERM $rpid
		wait_for 15 eval '! alive $rpid'
		if alive $rpid; then
			bad "pause_term_$mode" "memgrp run still there 15 s after SIGTERM"
			dump_stuck $rpid
			kill -9 $rpid
			continue
		fi
		wait $rpid; st=$?
		[ "$st" = "$want" ] &&
			ok "SIGTERM to memgrp run paused at OOM ($mode): it ends ($st)" ||
			{ bad "pause_term_$mode" "status $st, want $want"; cat "$tmp/pt.err"; }
	done
}
run_case pause_term

case_prekill() {
	local hold=120 # (the sanitizer build is slow: nobody exits on its own meanwhile)
	echo "--- --oom-prekill: a hook before the kill, its environment, its timeout"
	# the hook (no shell between: memgrpd execs the script itself) records
	# its arguments, environment and whether the victim still lives
	cat >"$tmp/hook.sh" <<HOOK
#!/bin/sh
echo \$\$ >"$tmp/hook.pid"
{ echo "args \$*"; env | grep '^MEMGRP_OOM_' | sort
  kill -0 "\$MEMGRP_OOM_VICTIM_PID" 2>/dev/null && echo "victim alive"; } >"$tmp/hook.env"
[ "\$1" = slow ] && { echo started >>"$tmp/hook.env"; exec sleep 30; }
exit 3
HOOK
	chmod +x "$tmp/hook.sh"
	g=t-pk-$sfx
	mg create "$g" -m 40M --oom-prekill "$tmp/hook.sh first  second" ||
		{ bad prekill "create refused"; return; }
	start A 24 0
	start B 8 16
	: >"$tmp/go-B"
	local dead st= va
	dead=$(gone A B)
	[ "$dead" != none ] && st=$(status "$dead")
	va=$(grep '^MEMGRP_OOM_VICTIM_PID=' "$tmp/hook.env" | cut -d= -f2)
	[ "$dead" = A ] && [ "$st" = 137 ] && wait_for 10 grep -q "holding 16 MB more" "$tmp/B.out" &&
		grep -q "^args first second$" "$tmp/hook.env" && grep -q "^victim alive$" "$tmp/hook.env" &&
		grep -q "^MEMGRP_OOM_GROUP=$g$" "$tmp/hook.env" &&
		grep -q "^MEMGRP_OOM_VICTIM_CMDLINE=.*prog_hold 24 120$" "$tmp/hook.env" &&
		grep -q "^MEMGRP_OOM_VICTIM_COMM=prog_hold$" "$tmp/hook.env" &&
		grep -q "^MEMGRP_OOM_POLICY=largest$" "$tmp/hook.env" &&
		grep -q "^MEMGRP_OOM_LIMIT=$((40 << 20))$" "$tmp/hook.env" &&
		[ "$(grep '^MEMGRP_OOM_VICTIM_CHARGED=' "$tmp/hook.env" | cut -d= -f2)" -ge $((24 << 20)) ] &&
		[ -n "$va" ] && grep -q "killing pid $va " "$tmp/memgrpd.log" &&
		grep -q "group '$g': --oom-prekill (pid [0-9]*) exited with status 3 after [0-9]* ms; the kill follows" "$tmp/memgrpd.log" &&
		ok "the hook ran before the kill with its words, the victim (pid $va, alive then) and the figures; then the kill, and B resumed" ||
		{ bad prekill "dead $dead ($st)"; cat "$tmp/hook.env"; grep "$g" "$tmp/memgrpd.log" | tail -6; }
	finish_all A B
	rm -f "$tmp"/go-* "$tmp/hook.env"

	# a hook that does not end: the loop serves meanwhile, the hook is
	# killed at its timeout, the kill goes on
	mg set "$g" --oom-prekill "$tmp/hook.sh slow" --oom-prekill-timeout 2s || bad prekill_set "set refused"
	start A 24 0
	start B 8 16
	: >"$tmp/go-B"
	wait_for 20 grep -q "^started" "$tmp/hook.env"
	local hp=
	hp=$(cat "$tmp/hook.pid" 2>/dev/null); hp=${hp:-0}
	local srv=no
	mg stat "$g" >/dev/null && srv=yes
	[ $srv = yes ] && alive "$hp" && alive "$pid_A" &&
		ok "while the hook runs, memgrpd answers (stat) and the victim waits for it" ||
		bad prekill_loop "stat answered: $srv, hook $hp $(alive "$hp" && echo alive), A $(alive "$pid_A" && echo alive)"
	dead=$(gone A B)
	[ "$dead" != none ] && st=$(status "$dead")
	wait_for 10 grep -q "holding 16 MB more" "$tmp/B.out"
	wait_for 5 eval '! alive $hp'
	[ "$dead" = A ] && [ "$st" = 137 ] && grep -q "holding 16 MB more" "$tmp/B.out" && ! alive "$hp" &&
		grep -q "group '$g': --oom-prekill (pid $hp) did not finish within [0-9]* ms: killed; the kill follows" "$tmp/memgrpd.log" &&
		ok "a hook past its timeout (2s) is killed and reaped; the kill goes on, B resumes" ||
		{ bad prekill_timeout "dead $dead ($st), hook $hp $(alive "$hp" && echo alive)"; grep "$g" "$tmp/memgrpd.log" | tail -6; }
	finish_all A B
	rm -f "$tmp"/go-*

	# a hook that cannot run: said, and the kill goes on
	mg set "$g" --oom-prekill "$tmp/no-such-hook" || bad prekill_set "set refused"
	start A 24 0
	start B 8 16
	: >"$tmp/go-B"
	dead=$(gone A B)
	[ "$dead" = A ] && grep -q "group '$g': --oom-prekill '$tmp/no-such-hook' could not run: No such file or directory; the kill goes on" "$tmp/memgrpd.log" &&
		ok "a hook that cannot run: said in the log, the kill goes on" ||
		{ bad prekill_missing "dead $dead"; grep "$g" "$tmp/memgrpd.log" | tail -4; }
	finish_all A B
	rm -f "$tmp"/go-*
	mg rm "$g"
	local out rc
	out=$(mg create "t-bad-$sfx" --oom-prekill /bin/true --oom-prekill-timeout 5s 2>&1); rc=$?
	[ $rc = 2 ] && grep -q -- "--oom-prekill-timeout: a duration from 1ms to 4s" <<<"$out" &&
		out=$(mg create "t-bad-$sfx" --oom-prekill-timeout 1s 2>&1); rc2=$?
	[ $rc = 2 ] && [ "${rc2:-0}" = 2 ] && grep -q -- "--oom-prekill-timeout goes with --oom-prekill" <<<"$out" &&
		! mg ls | grep -q "t-bad-$sfx" &&
		ok "bad --oom-prekill-timeout values refused (exit 2), no group made" || bad prekill_bad "$rc ${rc2:-}: $out"
}
run_case prekill

case_prekill_more() {
	local hold=120 # (the sanitizer build is slow: nobody exits on its own meanwhile)
	echo "--- --oom-prekill before memgrp oom --kill and before the backstop's kill"
	# the hook records its environment and whether the victim lives, and
	# takes 0.5 s: the kill must wait for it
	cat >"$tmp/hook2.sh" <<HOOK
#!/bin/sh
{ env | grep '^MEMGRP_OOM_' | sort
  kill -0 "\$MEMGRP_OOM_VICTIM_PID" 2>/dev/null && echo "victim alive"; } >"$tmp/hook2.env"
sleep 0.5
kill -0 "\$MEMGRP_OOM_VICTIM_PID" 2>/dev/null && echo "victim alive at the end" >>"$tmp/hook2.env"
exit 0
HOOK
	chmod +x "$tmp/hook2.sh"
	local out rc sa va pa
	g=t-pkh-$sfx
	mg create "$g" -m 32M --oom-kill-disable --oom-prekill "$tmp/hook2.sh" ||
		{ bad prekill_hand "create refused"; return; }
	start A 20 0
	start B 4 16
	: >"$tmp/go-B"
	wait_for 20 eval 'test "$(stat_field "$g" under_oom)" = 1' || bad prekill_hand "under_oom never 1"
	[ -e "$tmp/hook2.env" ] && bad prekill_hand_pause "the hook ran at the pause: $(cat "$tmp/hook2.env")"
	pa=$(proc_of A)
	out=$(mg oom "$g" --kill "$pa" 2>&1); rc=$?
	wait_for 20 grep -q "holding 16 MB more" "$tmp/B.out"
	wait_for 10 eval '! alive $pid_A'
	sa=$(status A)
	va=$(grep '^MEMGRP_OOM_VICTIM_PID=' "$tmp/hook2.env" 2>/dev/null | cut -d= -f2)
	[ $rc = 0 ] && grep -q "is killed when --oom-prekill (pid [0-9]*) ends" <<<"$out" &&
		[ "$va" = "$pa" ] && grep -q "^victim alive at the end$" "$tmp/hook2.env" &&
		grep -q "^MEMGRP_OOM_GROUP=$g$" "$tmp/hook2.env" && [ "$sa" = 137 ] &&
		grep -q "holding 16 MB more" "$tmp/B.out" &&
		grep -q "group '$g': --oom-prekill (pid [0-9]*) exited with status 0 after [0-9]* ms; killed by hand: pid $pa" "$tmp/memgrpd.log" &&
		grep -q "\"chosen\": \"named by memgrp oom --kill\"" "$tmp/memgrpd.log" &&
		ok "memgrp oom --kill: the hook ran first (told of pid $pa, alive to its end), then the kill ($sa); B resumed ($out)" ||
		{ bad prekill_hand "rc $rc ($out), A $sa, hook told $va"; cat "$tmp/hook2.env"; grep "$g" "$tmp/memgrpd.log" | tail -6; }
	finish_all A B
	rm -f "$tmp"/go-* "$tmp/hook2.env"
	mg rm "$g"

	# the backstop: A (40M, older) and B (36M, newer) run without the
	# agent under 48M; --oom-policy newest names B; the hook first
	g=t-pkb-$sfx
	mg create "$g" -m 48M --oom-policy newest --oom-prekill "$tmp/hook2.sh" ||
		{ bad prekill_backstop "create refused"; return; }
	rm -f "$tmp/A.out" "$tmp/B.out"
	mg run -g "$g" -- env -u LD_PRELOAD "$progs/prog_hold" 40 120 >"$tmp/A.out" 2>&1 &
	pid_A=$!
	track $!
	wait_for 20 grep -q "^holding 40 MB" "$tmp/A.out"
	sleep 0.3
	mg run -g "$g" -- env -u LD_PRELOAD "$progs/prog_hold" 36 120 >"$tmp/B.out" 2>&1 &
	pid_B=$!
	track $!
	local dead st=
	dead=$(gone A B)
	[ "$dead" != none ] && st=$(status "$dead")
	va=$(grep '^MEMGRP_OOM_VICTIM_PID=' "$tmp/hook2.env" 2>/dev/null | cut -d= -f2)
	if ! grep -q "group '$g' is out of memory at its kernel limit" "$tmp/memgrpd.log" &&
		[ "$dead" = none ] && grep -q "^holding 36 MB" "$tmp/B.out"; then
		skip prekill_backstop "no kernel cgroup behind the group here (both fit)"
	else
		[ "$dead" = B ] && [ "$st" = 137 ] && alive "$pid_A" && [ -n "$va" ] &&
			grep -q "^victim alive at the end$" "$tmp/hook2.env" &&
			grep -q "^MEMGRP_OOM_POLICY=newest$" "$tmp/hook2.env" &&
			grep -q "group '$g': --oom-prekill (pid [0-9]*) exited with status 0 after [0-9]* ms; the kill follows if the group still waits at its kernel limit" "$tmp/memgrpd.log" &&
			grep -q "group '$g' is out of memory at its kernel limit.*killing pid $va " "$tmp/memgrpd.log" &&
			ok "at the kernel limit: the hook first (told of pid $va, alive to its end), then the kill of that pid (B, $st); A lives" ||
			{ bad prekill_backstop "dead $dead ($st), hook told $va"; cat "$tmp/hook2.env"; grep "$g" "$tmp/memgrpd.log" | tail -6; }
	fi
	finish_all A B
	rm -f "$tmp/hook2.env"
	mg rm "$g"
}
run_case prekill_more

case_ladder() {
	local hold=120 # (the sanitizer build is slow: nobody exits on its own meanwhile)
	echo "--- the ladder's steps as events (memgrp events --ladder) and counters"
	# a cooperator that frees nothing, then no swap: coop asked, then the
	# OOM kill, in that order
	g=t-lad-$sfx
	mg create "$g" -m 32M || { bad ladder "create refused"; return; }
	MEMGRP_LIB=$libmemgrp PYTHONPATH=$pydir python3 -c '
import sys, memgrp
c = memgrp.Client("'"$sock"'")
efd = c.cooperate(100, group="'"$g"'")
print("cooperating", flush=True)
while True:
    memgrp.Client.read_event(efd)
    c.done(efd)
' >"$tmp/coop.out" 2>&1 &
	local cpid=$!
	track $cpid
	wait_for 10 grep -q cooperating "$tmp/coop.out"
	mg events --ladder --json "$g" >"$tmp/lad.out" 2>"$tmp/lad.err" &
	local epid=$!
	track $epid
	wait_for 10 grep -q "watching" "$tmp/lad.err"
	mg run -g "$g" -- "$progs/prog_hold" 40 1 >"$tmp/lad-run.out" 2>&1
	wait_for 10 grep -q '"rung": "oom"' "$tmp/lad.out"
	kill $epid
	# (the ask watermark, 90 %, asks the cooperator too: one or two coop
	# episodes before the kill)
	python3 - "$tmp/lad.out" "$g" <<'PY' && ok "events --ladder: coop asked, then oom kill, in order" ||
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
steps = [(e["rung"], e["outcome"]) for e in ev]
assert all(e["event"] == "ladder" and e["group"] == sys.argv[2] for e in ev), ev
assert steps[-1] == ("oom", "kill") and set(steps[:-1]) == {("coop", "asked")}, steps
PY
		bad ladder "$(cat "$tmp/lad.out" "$tmp/lad.err")"
	[ "$(stat_field "$g" ladder_coop)" -ge 1 ] && [ "$(stat_field "$g" ladder_coop_enough)" = 0 ] &&
		[ "$(stat_field "$g" oom_kill)" = 1 ] &&
		ok "counters: ladder_coop $(stat_field "$g" ladder_coop), ladder_coop_enough 0, oom_kill 1" ||
		bad ladder_counters "$(mg stat --json "$g")"
	# the Python binding reads the same counts as memgrp stat --json
	local pylad
	pylad=$(MEMGRP_LIB=$libmemgrp PYTHONPATH=$pydir python3 - "$sock" "$g" "$memgrp" <<'PY' 2>&1
import json, os, subprocess, sys
import memgrp
c = memgrp.Client(sys.argv[1])
efd = c.ladder(sys.argv[2])
lad = c.ladder_read(sys.argv[2])
st = json.loads(subprocess.run([sys.argv[3], "--socket", sys.argv[1], "stat", "--json",
                                sys.argv[2]], capture_output=True, check=True).stdout)
want = {"coop": "ladder_coop", "coop_enough": "ladder_coop_enough", "evict": "ladder_evict",
        "oom_kill": "oom_kill", "oom_pauses": "oom_pauses", "under_oom": "under_oom"}
got = {k: getattr(lad, k) for k in want}
assert efd > 0 and all(got[k] == st[v] for k, v in want.items()), (efd, got, st)
assert lad.oom_kill == 1 and lad.coop >= 1, got
try:
    c.ladder_read("no/such/group")
    raise SystemExit("no error for a missing group")
except memgrp.Error as e:
    assert e.errno > 0 and "no/such/group" in str(e), e
print(got)
PY
)
	[ $? = 0 ] && ok "Python ladder_read (mg_ladder_read) equals memgrp stat: $pylad; a missing group raises" ||
		bad ladder_python "$pylad"
	kill $cpid
	wait_for 10 eval 'test "$(stat_field "$g" nr_processes 2>/dev/null)" = 0'
	mg rm "$g"

	# swap: A (cold) holds 24M, B touches 24M at a 32M limit: the
	# manager has A evict (evict asked), and nobody dies
	g=t-lad-ev-$sfx
	mg create "$g" -m 32M --swap-max 64M || { bad ladder_evict "create refused"; return; }
	mg events --ladder "$g" >"$tmp/lad2.out" 2>"$tmp/lad2.err" &
	epid=$!
	track $epid
	wait_for 10 grep -q "watching" "$tmp/lad2.err"
	start A 24 0
	start B 4 20
	: >"$tmp/go-B"
	wait_for 30 grep -q "holding 20 MB more" "$tmp/B.out"
	wait_for 10 grep -q " ladder evict asked " "$tmp/lad2.out"
	grep -q "holding 20 MB more" "$tmp/B.out" && alive "$pid_A" &&
		grep -q "^[0-9:]* $g ladder evict asked usage " "$tmp/lad2.out" &&
		[ "$(stat_field "$g" ladder_evict)" -ge 1 ] && [ "$(stat_field "$g" oom_kill)" = 0 ] &&
		ok "eviction for a refused charge: 'ladder evict asked' ($(grep -c evict "$tmp/lad2.out") lines), ladder_evict $(stat_field "$g" ladder_evict), nobody killed" ||
		{ bad ladder_evict "$(cat "$tmp/lad2.out" "$tmp/B.out")"; mg stat "$g"; }
	kill $epid
	finish_all A B
	rm -f "$tmp"/go-*
	mg rm "$g"
}
run_case ladder

case_backstop_policy() {
	echo "--- the kill at the kernel limit (the backstop) follows the group's --oom-policy"
	# A (40M, older) and B (36M, newer) run without the agent: only the
	# group's kernel cgroup (48M + slack) bounds them. largest would take
	# A; newest must take B.
	g=t-bsp-$sfx
	mg create "$g" -m 48M --oom-policy newest || { bad backstop_policy "create refused"; return; }
	rm -f "$tmp/A.out" "$tmp/B.out"
	mg run -g "$g" -- env -u LD_PRELOAD "$progs/prog_hold" 40 120 >"$tmp/A.out" 2>&1 &
	pid_A=$!
	track $!
	wait_for 20 grep -q "^holding 40 MB" "$tmp/A.out"
	sleep 0.3
	mg run -g "$g" -- env -u LD_PRELOAD "$progs/prog_hold" 36 120 >"$tmp/B.out" 2>&1 &
	pid_B=$!
	track $!
	local dead st=
	dead=$(gone A B)
	[ "$dead" != none ] && st=$(status "$dead")
	if ! grep -q "group '$g' is out of memory at its kernel limit" "$tmp/memgrpd.log"; then
		if [ "$dead" = none ] && grep -q "^holding 36 MB" "$tmp/B.out"; then
			skip backstop_policy "no kernel cgroup behind the group here (both fit)"
		else
			bad backstop_policy "no kill at the kernel limit: dead $dead ($st)"
		fi
	else
		[ "$dead" = B ] && [ "$st" = 137 ] && alive "$pid_A" &&
			grep -q "\"policy\": \"newest\".*\"chosen\": \"the newest" "$tmp/memgrpd.log" &&
			ok "at the kernel limit --oom-policy newest kills B (the newer, smaller), A lives" ||
			{ bad backstop_policy "dead $dead ($st)"; grep "$g" "$tmp/memgrpd.log" | tail -4; }
	fi
	finish_all A B
	mg rm "$g"
}
run_case backstop_policy

case_priority_restart() {
	echo "--- --oom-priority outlives a memgrpd restart (kept in the slot)"
	local hold=120
	g=t-prs-$sfx
	mg create "$g" -m 40M --oom-policy priority || { bad priority_restart "create refused"; return; }
	start A 28 0
	start B 4 16
	# set from outside (mg_oom_priority_set, as root): nothing in B's
	# environment would tell a new manager (memgrp run --oom-priority's
	# MEMGRP_OOM_PRIORITY is sent again by the agent when it rejoins)
	MEMGRP_LIB=$libmemgrp PYTHONPATH=$pydir python3 -c '
import memgrp
memgrp.Client("'"$sock"'").oom_priority(500, pid='"$(proc_of B)"')' ||
		{ bad priority_restart "mg_oom_priority_set refused"; finish_all A B; return; }
	wait_for 10 grep -q "pid [0-9]*'s OOM priority is 500" "$tmp/memgrpd.log"
	kill "$dpid"; wait "$dpid" 2>/dev/null
	"$memgrpd" --socket "$sock" 2>>"$tmp/memgrpd.log" &
	dpid=$!
	wait_socket "$sock" || { bad priority_restart "memgrpd did not listen again"; return; }
	wait_for 20 eval 'test "$(stat_field "$g" nr_processes 2>/dev/null)" = 2' ||
		{ bad priority_restart "the processes did not rejoin: $(mg stat "$g" 2>&1 | head -8)"; finish_all A B; return; }
	: >"$tmp/go-B"
	local dead st=
	dead=$(gone A B)
	[ "$dead" != none ] && st=$(status "$dead")
	# without the kept priority both rank 0 and the largest (A) would die
	[ "$dead" = B ] && [ "$st" = 137 ] && alive "$pid_A" &&
		ok "after a restart B (priority 500 set by mg_oom_priority_set, 12M to A's 28M) is still the one killed under --oom-policy priority" ||
		{ bad priority_restart "dead $dead ($st)"; grep "$g" "$tmp/memgrpd.log" | tail -5; }
	finish_all A B
	rm -f "$tmp"/go-*
	mg rm "$g"
}
run_case priority_restart
