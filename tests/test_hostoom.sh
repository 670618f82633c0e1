#!/usr/bin/env bash
# test_hostoom.sh - memgrpd's host path (issue 18 item 8): the ladder across groups when the host is short, with --min-available set from this host's MemAvailable (no real shortage is made), --dry-run, the rule against a kill on a blip, bad input.
# Usage: test_hostoom.sh MEMGRP MEMGRPD PROGS_DIR PYTHON_DIR LIBMEMGRP
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
memgrpd=$(realpath "$2")
progs=$(realpath "$3")
pydir=$(realpath "$4")
libmemgrp=$(realpath "$5")
dpid=
n=0
cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null
	# the PSI case's kernel cgroup, if it ended early (its reader is tracked)
	[ -n "${psi_cg:-}" ] && { sleep 0.2; rmdir "$psi_cg" 2>/dev/null; }
}
. "$(dirname "$0")/oomlib.sh"

# MemAvailable now, in MiB
avail_mb() { awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo; }
# hog MB SECS: a process outside every group touches MB (one memset: a
# fast drop of MemAvailable), holds them SECS and exits
# (exec: the pid the caller gets is python's, and a kill of it frees the MB)
hog() { exec python3 -c "import sys, time; b = b'x' * ($1 << 20); print('hogging', flush=True); time.sleep($2)"; }

# start_d ARGS...: a memgrpd of its own (socket, log) for one case
start_d() {
	n=$((n + 1))
	sock=$tmp/hd$n.sock
	log=$tmp/hd$n.log
	start_memgrpd "$@"
}
stop_d() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
	dpid=
}

# hold NAME GROUP MB SECS: prog_hold of MB in GROUP as process NAME (pid
# in pid_NAME); returns once it holds them, so that ages follow the order
hold() {
	hold_in "$2" "$1" "$3" "$4" || bad "hold_$1" "did not start: $(cat "$tmp/$1.out")"
}

# groups, under one parent P (so that one `memgrp events --ladder P` sees
# every step): A the largest, under --oom-kill-disable (never the host's
# victim); B the largest of the others, two processes, its own policy
# newest (so the process that dies is not the largest: B2); C with a
# cooperating client. P's policy (largest, the default) picks the group.
groups() {
	local secs=$1
	gP=t-hop-$sfx
	gA=$gP/A gB=$gP/B gC=$gP/C
	mg create "$gP" && mg create "$gA" --oom-kill-disable && mg create "$gB" --oom-policy newest &&
		mg create "$gC" || { bad groups "create refused"; return 1; }
	hold A "$gA" 96 "$secs"
	hold B1 "$gB" 40 "$secs"
	hold B2 "$gB" 24 "$secs"
	hold C "$gC" 32 "$secs"
}

# a process's command line ("" once it is gone): names which prog_hold
# it is (each holds its own size)
cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }

# a client cooperating on group C, that frees nothing when asked
cooperate() {
	MEMGRP_LIB=$libmemgrp PYTHONPATH=$pydir python3 -c '
import memgrp
c = memgrp.Client("'"$sock"'")
efd = c.cooperate(100, group="'"$gC"'")
print("cooperating", flush=True)
while True:
    memgrp.Client.read_event(efd)
    print("asked", flush=True)
    c.done(efd)
' >"$tmp/coop$n.out" 2>&1 &
	cpid=$!
	track $cpid
	wait_for 10 grep -q cooperating "$tmp/coop$n.out"
}

# waits until one of the named processes is gone and says which, or none
gone() { gone_within "$@"; }

finish() {
	local p
	for p in A B1 B2 C; do
		eval "kill \$pid_$p 2>/dev/null; wait \$pid_$p 2>/dev/null"
	done
	for g in "$gA" "$gB" "$gC" "$gP"; do
		mg rm "$g" 2>/dev/null
	done
}

case_bad_input() {
	local out rc
	for arg in "full ten" "full 10" "medium 10%" "full 10%/20s" "full 0%"; do
		out=$("$memgrpd" --socket "$tmp/bad.sock" --host-pressure "$arg" 2>&1)
		rc=$?
		if [ $rc != 2 ] || ! grep -q -- "--host-pressure '$arg': " <<<"$out" || [ -e "$tmp/bad.sock" ]; then
			bad bad_pressure "'$arg': rc $rc, '$out'"
			return
		fi
	done
	ok "an unknown --host-pressure syntax: exit 2, the option and why named, nothing started"
	out=$("$memgrpd" --socket "$tmp/bad.sock" --min-available 1G --host-sustain 2min 2>&1)
	rc=$?
	[ $rc = 2 ] && grep -q -- "--host-sustain '2min'" <<<"$out" && ok "a bad --host-sustain: exit 2, said" ||
		bad bad_sustain "rc $rc, '$out'"
	out=$("$memgrpd" --socket "$tmp/bad.sock" --dry-run 2>&1)
	rc=$?
	[ $rc = 2 ] && grep -q -- "--min-available or --host-pressure" <<<"$out" &&
		ok "--dry-run without a host threshold: exit 2, said" || bad bad_dry_run "rc $rc, '$out'"
}
run_case bad_input

case_trigger() {
	# a threshold no idle host reaches: the trigger is set, nothing happens
	start_d --host-pressure "full 90%/2s" || return
	if grep -q "host: watching .*(PSI trigger)" "$log"; then
		ok "--host-pressure: a PSI trigger on /proc/pressure/memory"
	elif grep -q "refused the PSI trigger" "$log"; then
		ok "--host-pressure: the trigger refused here, periodic reads said: $(grep -o 'refused.*' "$log")"
	else
		bad trigger "$(cat "$log")"
	fi
	stop_d
}
run_case trigger

case_dry_run() {
	local a=$(avail_mb)
	# a floor above what is available: short from the first sample
	start_d --min-available "$((a + 2048))M" --host-sustain 1s --dry-run || return
	groups 60 || { stop_d; return; }
	# a would-be kill judged once all four run (one every sustain)
	local from=$(wc -l <"$log")
	wait_for 20 eval 'tail -n +$((from + 1)) "$log" | grep -q "host: --dry-run: would kill pid"'
	local line=$(tail -n +$((from + 1)) "$log" | grep -m1 "host: --dry-run: would kill pid")
	sleep 1
	local pid=$(grep -o "would kill pid [0-9]*" <<<"$line" | awk '{ print $4 }')
	if [[ $(cmdline "$pid") == *"prog_hold 24 "* ]] && alive "$pid_A" && alive "$pid_B1" &&
		alive "$pid_B2" && alive "$pid_C"; then
		ok "--dry-run: the log names the victim (B2: group B pays, its policy newest), nobody dies"
	else
		bad dry_run "'$line' (pid $pid: $(cmdline "$pid")); $(cat "$log")"
	fi
	local st=$(mg stat --json | grep -o '"host_[a-z_]*": [0-9]*' | tr '\n' ' ')
	[[ $st == *'"host_ladder_kill": 0'* && $st != *'"host_ladder_dry_run": 0'* ]] &&
		ok "--dry-run: host_ladder_kill 0, host_ladder_dry_run counted" || bad dry_run_stat "$st"
	finish
	stop_d
}
run_case dry_run

case_ladder() {
	local a=$(avail_mb) blip=4096
	if [ "$a" -lt $((3 * blip)) ]; then
		skip ladder "MemAvailable ${a}M: too little to hold ${blip}M for the test safely"
		return
	fi
	# A floor the host stays above while the groups start (by 2G: other
	# tests on this host move MemAvailable by a gigabyte in seconds); then
	# a process outside every group holds enough to take MemAvailable
	# under it until the end (far from a real shortage: a sixth of this
	# host's memory at most).
	start_d --min-available "$((a - blip / 2))M" --host-sustain 3s || return
	# (held long enough for a sanitizer build's slow start: nobody may
	# exit on its own before the kill)
	groups $((accounting ? 40 : 120)) || { stop_d; return; }
	# a pre-kill hook on the groups' parent (inherited): it runs before
	# the host's kill, told of its victim while it still lives
	cat >"$tmp/hhook.sh" <<HOOK
#!/bin/sh
{ env | grep '^MEMGRP_OOM_' | sort
  kill -0 "\$MEMGRP_OOM_VICTIM_PID" 2>/dev/null && echo "victim alive"; } >"$tmp/hhook.env"
exit 0
HOOK
	chmod +x "$tmp/hhook.sh"
	mg set "$gP" --oom-prekill "$tmp/hhook.sh" --oom-prekill-timeout 3s || bad hook_set "set refused"
	cooperate
	mg events --ladder --json "$gP" >"$tmp/ev.out" 2>"$tmp/ev.err" &
	local epid=$!
	track $epid
	wait_for 10 grep -q "watching" "$tmp/ev.err"
	if grep -q "host: short" "$log"; then
		skip ladder "the host's other load took MemAvailable under the floor before the test did: $(grep host: "$log" | head -3)"
		stop_d
		finish
		kill $cpid $epid 2>/dev/null
		return
	fi
	hog $blip 60 >"$tmp/holder.out" 2>&1 &
	local hpid=$!
	track $hpid
	local who=$(gone 30 A B1 B2 C)
	local st=$(mg stat --json 2>/dev/null | grep -o '"host_[a-z_]*": [0-9]*' | tr '\n' ' ')
	# the next kill would come a sustain later: the manager goes first
	stop_d
	kill $hpid $epid 2>/dev/null
	if [ "$who" = B2 ] && alive "$pid_A" && alive "$pid_B1" && alive "$pid_C" &&
		grep "oom-record" "$log" | grep -q '"cmdline": "[^"]*prog_hold 24 '; then
		ok "the host path killed the policy's victim (B2), and only it"
	else
		bad victim "gone: $who; $(cat "$log")"
	fi
	local hook_at=$(grep -n "running --oom-prekill" "$log" | head -1 | cut -d: -f1)
	local kill_at=$(grep -n "is out of memory (the host is short" "$log" | grep -v "running --oom-prekill" |
		head -1 | cut -d: -f1)
	local b2=$(grep '^MEMGRP_OOM_VICTIM_PID=' "$tmp/hhook.env" 2>/dev/null | cut -d= -f2)
	[ -n "$hook_at" ] && [ -n "$kill_at" ] && [ "$hook_at" -lt "$kill_at" ] &&
		grep -q "^victim alive$" "$tmp/hhook.env" &&
		grep -q "^MEMGRP_OOM_REASON=(the host is short: MemAvailable" "$tmp/hhook.env" &&
		grep -q "^MEMGRP_OOM_VICTIM_GROUP=$gB$" "$tmp/hhook.env" &&
		grep -q "^MEMGRP_OOM_VICTIM_CMDLINE=.*prog_hold 24 " "$tmp/hhook.env" &&
		grep -q -- "--oom-prekill (pid [0-9]*) exited with status 0 after [0-9]* ms; the host's kill follows" "$log" &&
		grep "oom-record" "$log" | grep -q "\"pid\": $b2," &&
		ok "--oom-prekill ran before the host's kill, told of B2 (pid $b2, alive then) and the host's shortage; the record names it" ||
		bad host_prekill "hook at '$hook_at', kill at '$kill_at': $(cat "$tmp/hhook.env" 2>&1)"
	local coop_at=$(grep -n "host: short.*asking the cooperating clients" "$log" | head -1 | cut -d: -f1)
	local kill_at=$(grep -n "is out of memory (the host is short" "$log" | head -1 | cut -d: -f1)
	[ -n "$coop_at" ] && [ -n "$kill_at" ] && [ "$coop_at" -lt "$kill_at" ] && grep -q asked "$tmp/coop$n.out" &&
		ok "the cooperating client of group C was asked before the kill" ||
		bad coop_first "coop at '$coop_at', kill at '$kill_at'"
	[[ $st != *'"host_ladder_coop": 0'* && $st == *'"host_ladder_kill": 1'* && $st != *'"host_short": 0'* ]] &&
		ok "counters: $st" || bad counters "$st"
	python3 - "$tmp/ev.out" <<'PY' && ok "events --ladder: coop asked, then oom kill" ||
import json, sys
steps = [(e["rung"], e["outcome"]) for e in map(json.loads, open(sys.argv[1]))]
assert ("coop", "asked") in steps and ("oom", "kill") in steps, steps
assert steps.index(("coop", "asked")) < steps.index(("oom", "kill")), steps
PY
		bad events "$(cat "$tmp/ev.out" "$tmp/ev.err")"
	# the others keep their bytes: prog_hold checks them at its end
	local rc_all=
	for p in A B1 C; do
		eval "wait \$pid_$p"
		rc_all+="$p:$? "
	done
	[ "$rc_all" = "A:0 B1:0 C:0 " ] && ok "A, B1 and C kept their bytes (prog_hold verified them)" ||
		bad bytes "$rc_all"
	kill $cpid 2>/dev/null
}
run_case ladder

case_steps() {
	local a=$(avail_mb) blip=4096
	if [ "$a" -lt $((3 * blip)) ]; then
		skip steps "MemAvailable ${a}M: too little to hold ${blip}M for the test safely"
		return
	fi
	# as in 'ladder': the groups start with room, then a hog outside them
	# takes MemAvailable under the floor until the end; no kill within the
	# case (sustain 600 s): the soft-limit step, then eviction into the
	# groups' swap
	start_d --min-available "$((a - blip / 2))M" --host-sustain 600s || return
	gS=t-hoS-$sfx gE=t-hoE-$sfx
	mg create "$gS" --memory-soft 8M --swap-max 256M && mg create "$gE" --swap-max 256M ||
		{ bad steps "create refused"; stop_d; return; }
	hold S "$gS" 48 40
	hold E "$gE" 64 40
	if grep -q "host: short" "$log"; then
		skip steps "the host's other load took MemAvailable under the floor before the test did"
		stop_d
		kill "$pid_S" "$pid_E" 2>/dev/null
		return
	fi
	hog $blip 60 >"$tmp/hog-steps.out" 2>&1 &
	local hpid=$!
	track $hpid
	local soft_re="evicting toward its soft limit / memory.low group '$gS'|reclaiming group '$gS' toward its soft limit"
	wait_for 30 grep -qE "$soft_re" "$log"
	wait_for 30 grep -q "host: short.*: evicting group" "$log"
	local soft_at=$(grep -nE "$soft_re" "$log" | head -1 | cut -d: -f1)
	local evict_at=$(grep -n "host: short.*: evicting group" "$log" | head -1 | cut -d: -f1)
	wait_for 20 test "$(stat_field "$gS" pswpout)" -gt 0
	wait_for 20 test "$(stat_field "$gE" pswpout)" -gt 0
	local st=$(mg stat --json | grep -o '"host_[a-z_]*": [0-9]*' | tr '\n' ' ')
	if [ -n "$soft_at" ] && [ -n "$evict_at" ] && [ "$soft_at" -lt "$evict_at" ] &&
		[ "$(stat_field "$gS" pswpout)" -gt 0 ] && [ "$(stat_field "$gE" pswpout)" -gt 0 ] &&
		[[ $st != *'"host_ladder_evict": 0'* && $st == *'"host_ladder_kill": 0'* ]]; then
		ok "soft limit first (S above its 8M), then eviction into the groups' swap; nobody killed ($st)"
	else
		bad steps "soft at '$soft_at', evict at '$evict_at', pswpout S $(stat_field "$gS" pswpout) E $(stat_field "$gE" pswpout); $st; $(grep -E "host:|soft" "$log" | head -8)"
	fi
	# their bytes come back from the stores: prog_hold checks them
	stop_d
	kill $hpid 2>/dev/null
	local rc_all=
	for p in S E; do
		eval "wait \$pid_$p"
		rc_all+="$p:$? "
	done
	[ "$rc_all" = "S:0 E:0 " ] && ok "S and E kept their bytes through eviction" || bad steps_bytes "$rc_all"
}
run_case steps

case_blip() {
	local a=$(avail_mb) blip=4096
	if [ "$a" -lt $((3 * blip)) ]; then
		skip blip "MemAvailable ${a}M: too little to make a ${blip}M blip safely"
		return
	fi
	# a floor the blip takes MemAvailable under only with its last 1G
	# (the host's other load moves it by a gigabyte in seconds), held a
	# second: short for far less than --host-sustain
	start_d --min-available "$((a - blip + 1024))M" --host-sustain 30s || return
	gA=t-hoA-$sfx
	mg create "$gA" || { bad blip "create refused"; stop_d; return; }
	hold A "$gA" 16 60
	(hog $blip 1) >"$tmp/blip.out" 2>&1
	sleep 1
	if ! grep -q "host: short" "$log"; then
		skip blip "the blip did not show (the host's other load freed as much meanwhile?): $(grep host: "$log")"
	elif grep -q "is out of memory\|would kill" "$log" || ! alive "$pid_A"; then
		bad blip "a kill on a blip: $(grep host: "$log" | tail -5)"
	else
		ok "a blip under the floor ($(grep -o 'room again after [0-9.]* s' "$log" | head -1), sustain 30 s) killed nothing"
	fi
	kill "$pid_A" 2>/dev/null
	wait "$pid_A" 2>/dev/null
	mg rm "$gA" 2>/dev/null
	stop_d
}
run_case blip

# A real PSI stall fires --host-pressure: a reader in a kernel memcg (v1)
# of 16M, no swap, reading a 256M file from disk over and over (its file
# pages reclaimed at the limit: the reader stalls in reclaim and on the
# disk). Measured on this host (2 CPUs): /proc/pressure/memory some avg10
# from 0.4 to 8-12 % within 4 s. --dry-run: memgrpd logs whom it would
# kill and nobody dies.
psi_cg=
case_psi() {
	local mnt
	mnt=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ {print $2; exit}' /proc/self/mounts)
	if [ "$(id -u)" != 0 ] || [ -z "$mnt" ] || [ ! -r /proc/pressure/memory ]; then
		skip psi "needs root, a cgroup v1 memory hierarchy and /proc/pressure/memory"
		return
	fi
	start_d --host-pressure "some 8%/2s" --host-sustain 2s --dry-run || return
	groups 60 || { stop_d; return; }
	sleep 2 # (a stall of the groups' own start would show now)
	if grep -q "host: short (" "$log"; then
		skip psi "the host stalled before the reader started: $(grep "host: short (" "$log" | head -1)"
		finish; stop_d; return
	fi
	local f
	f=$(mktemp -p /var/tmp memgrp-psi.XXXXXX) || { skip psi "no file under /var/tmp"; finish; stop_d; return; }
	# written, then dropped from the page cache: every read goes to disk
	python3 -c "
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
b = os.urandom(1 << 20)
for _ in range(256): os.write(fd, b)
os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)" "$f"
	psi_cg=$mnt/memgrp-psi-$sfx
	mkdir "$psi_cg" && echo 16M >"$psi_cg/memory.limit_in_bytes" || { bad psi "cgroup $psi_cg not made"; rm -f "$f"; finish; stop_d; return; }
	local before=$(awk '/^some/ { print $2 }' /proc/pressure/memory)
	local from=$(wc -l <"$log")
	sh -c 'echo $$ >"$1/cgroup.procs"; while [ ! -e "$2.stop" ]; do cat "$2" >/dev/null; done' sh "$psi_cg" "$f" &
	local rpid=$!
	track $rpid
	wait_for 40 eval 'tail -n +$((from + 1)) "$log" | grep -q "host: --dry-run: would kill pid"'
	local during=$(awk '/^some/ { print $2 }' /proc/pressure/memory) fails=$(cat "$psi_cg/memory.failcnt")
	: >"$f.stop"
	wait $rpid
	rmdir "$psi_cg" && psi_cg=
	rm -f "$f" "$f.stop"
	local short=$(tail -n +$((from + 1)) "$log" | grep -m1 "host: short (.*some stall")
	local line=$(tail -n +$((from + 1)) "$log" | grep -m1 "host: --dry-run: would kill pid")
	local pid=$(grep -o "would kill pid [0-9]*" <<<"$line" | awk '{ print $4 }')
	if [ -n "$short" ] && [ -n "$line" ] && [[ $(cmdline "$pid") == *"prog_hold 24 "* ]] &&
		alive "$pid_A" && alive "$pid_B1" && alive "$pid_B2" && alive "$pid_C"; then
		local how="its PSI trigger"
		grep -q "refused the PSI trigger" "$log" && how="its periodic PSI reads (this kernel refused the trigger)"
		ok "a real stall (reader at a 16M memcg: failcnt $fails; PSI some $before -> $during) fired --host-pressure through $how: '${short#*host: }'; --dry-run named B2 (pid $pid), nobody died"
	elif [ -z "$short" ]; then
		skip psi "the reader did not stall the host past 8%/2s here (PSI some $before -> $during, failcnt $fails): $(grep host: "$log" | tail -2)"
	else
		bad psi "short: '$short'; dry run: '$line' (pid $pid: $(cmdline "$pid")); $(grep host: "$log" | tail -5)"
	fi
	finish
	stop_d
}
run_case psi
