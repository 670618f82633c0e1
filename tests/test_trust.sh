#!/usr/bin/env bash
# test_trust.sh - what a managed process can write, it can only use to hurt
# itself: a process of a throwaway unprivileged user tries to write its
# group's control part and scribbles over every accounting part it maps;
# memgrpd, a sibling group, the parent's limit and a process outside every
# group are unharmed. A process that truncates its accounting file (a state
# file) leaves memgrpd serving. Then a state file with a valid header and a garbage
# body is set aside at restart, and nobody is killed.
# Usage: test_trust.sh MEMGRP MEMGRPD PROGS_DIR
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
memgrpd=$(realpath "$2")
progs=$(realpath "$3")

if [ "$(id -u)" != 0 ] || ! command -v useradd >/dev/null || ! command -v setpriv >/dev/null ||
	[ ! -c /dev/userfaultfd ]; then
	skip_all "needs root, useradd, setpriv and /dev/userfaultfd"
fi

chmod 755 "$tmp" # the throwaway user reaches the socket
sock=$tmp/memgrpd.sock
user=mgtrust$$ grp=mgtrustuffd$$
dpid= spid= gpid= hpid=
kcg_track "$sock" # what memgrpd left in place
uffd_mode=$(stat -c %a /dev/userfaultfd) uffd_group=$(stat -c %g /dev/userfaultfd)
# Ends a `memgrp run` started here and the command it runs.
stop() {
	local p
	for p in $(env -u LD_PRELOAD pgrep -P "$1" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	kill -KILL "$1" 2>/dev/null
}
cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null
	[ -n "$spid" ] && kill "$spid" 2>/dev/null
	[ -n "$gpid" ] && stop "$gpid"
	[ -n "$hpid" ] && stop "$hpid"
	if id "$user" >/dev/null 2>&1; then
		env -u LD_PRELOAD pkill -KILL -u "$user" 2>/dev/null
		userdel "$user" 2>/dev/null
	fi
	chgrp "$uffd_group" /dev/userfaultfd 2>/dev/null
	chmod "$uffd_mode" /dev/userfaultfd 2>/dev/null
	getent group "$grp" >/dev/null && groupdel "$grp" 2>/dev/null
}

if ! useradd -M -N -r -s /usr/sbin/nologin -d /nonexistent "$user" 2>"$tmp/useradd.err" ||
	! groupadd -r "$grp" 2>>"$tmp/useradd.err"; then
	skip_all "cannot create a throwaway user: $(cat "$tmp/useradd.err")"
fi
uid=$(id -u "$user") gid=$(getent group "$grp" | cut -d: -f3)
# userfaultfd for that user alone (vm.unprivileged_userfaultfd stays 0):
# /dev/userfaultfd through a group only it is in, put back at the end.
chgrp "$grp" /dev/userfaultfd && chmod 660 /dev/userfaultfd

mg() { "$memgrp" --socket "$sock" "$@"; }
start_daemon() {
	"$memgrpd" --socket "$sock" 2>>"$tmp/${1:-memgrpd}.log" &
	dpid=$!
	wait_socket "$sock"
}

start_daemon
[ -S "$sock" ] || { bad start "no socket"; cat "$tmp/memgrpd.log"; exit 1; }
mg create tp -m 256M && mg create tp/evil -m 64M && mg create tp/good -m 128M || {
	bad setup "cannot create the groups"; exit 1; }

case_hostile() {
echo "--- a hostile process of uid $uid in tp/evil"
# Root processes the hostile one must not be able to touch: one outside
# every group, one in the sibling group holding 32 MiB.
sleep 600 &
spid=$!
mg run -g tp/good -- "$progs/prog_hold" 32 600 >"$tmp/good.out" 2>&1 &
gpid=$!
for _ in $(seq 100); do
	[ "$(stat_field tp/good usage 2>/dev/null || echo 0)" -ge $((32 << 20)) ] && break
	sleep 0.1
done
good_usage=$(stat_field tp/good usage) good_limit=$(stat_field tp/good limit)
tp_limit=$(stat_field tp limit) evil_limit=$(stat_field tp/evil limit)
# tp's figures count its children through their grants (docs/design.md,
# Trust and permissions): once tp/good's grant has settled (the manager
# takes back what it holds beyond its usage and a batch, once a second),
# tp's usage is what the hostile process must not change.
tp_usage=$(stat_field tp usage)
for _ in $(seq 30); do
	sleep 0.1
	u=$(stat_field tp usage)
	[ "$u" = "$tp_usage" ] && [ "$u" -le $((good_usage + (64 << 12))) ] && break
	tp_usage=$u
done

# A root shell of tp/evil starts the hostile program as the throwaway user
# (a child of a group's process may join it). setpriv itself runs without
# the agent (a managed process changing its uid aborts: see docs/design.md)
# and execs env, which puts the agent back for the program.
timeout -k 5 120 "$memgrp" --socket "$sock" run -g tp/evil -- sh -c \
	"p=\$LD_PRELOAD; LD_PRELOAD= setpriv --reuid=$uid --regid=$gid --groups=$gid \
	 env LD_PRELOAD=\"\$p\" '$progs/prog_scribble' 2 256; echo rc=\$?" >"$tmp/evil.out" 2>&1
erc=$?
for _ in $(seq 100); do
	[ "$(stat_field tp/evil nr_processes 2>/dev/null)" = 0 ] && break
	sleep 0.1
done

grep -q "^uid $uid$" "$tmp/evil.out" && grep -q "^scribbling over [1-9]" "$tmp/evil.out" &&
	ok "the hostile process ran managed as uid $uid, mapping accounting parts ($(grep -o 'over [0-9]* accounting' "$tmp/evil.out"))" ||
	{ bad hostile "it did not run managed as uid $uid (rc $erc)"; cat "$tmp/evil.out"; }
tried=$(sed -n 's/^control: \([0-9]*\) ways tried, \([0-9]*\) refused$/\1 \2/p' "$tmp/evil.out")
# per control fd: mmap, write, reopen, truncate (one fd per level: 2); per
# control mapping: mprotect
if [ -n "$tried" ] && [ "${tried% *}" -ge 10 ] && [ "${tried% *}" = "${tried#* }" ] &&
	! grep -q WRITABLE "$tmp/evil.out"; then
	ok "the control parts could not be made writable: ${tried% *} attempts (mmap, write, /proc reopen, ftruncate, mprotect), all refused"
else
	bad control "tried/refused: '$tried'"
	grep -E "refused|WRITABLE" "$tmp/evil.out"
fi
anc=$(sed -n "s/^ancestors' accounting: \([0-9]*\) mappings read-only, \([0-9]*\) ways tried, \([0-9]*\) refused$/\1 \2 \3/p" "$tmp/evil.out")
read -r anc_maps anc_tried anc_refused <<<"${anc:-0 0 0}"
if [ "$anc_maps" -ge 1 ] && [ "$anc_tried" -ge 5 ] && [ "$anc_tried" = "$anc_refused" ] &&
	! grep -q "WRITABLE.*ancestor" "$tmp/evil.out"; then
	ok "tp's accounting part is read-only to tp/evil's process: $anc_maps mapping(s) and its fd, $anc_tried attempts (mmap, write, /proc reopen, ftruncate, mprotect), all refused"
else
	bad ancestor_readonly "ancestors' accounting: '$anc'"
	grep -E "ancestor|scribbling" "$tmp/evil.out"
fi
# The process's agent: every accounting fd above its group's own level is
# open read-only, every such mapping lacks write permission (its
# /proc/PID/fdinfo and maps, read while it runs).
timeout -k 5 60 "$memgrp" --socket "$sock" run -g tp/evil -- "$progs/prog_hold" 8 3.25 >"$tmp/hold_evil.out" 2>&1 &
hpid=$!
fdinfo_rw= maps_rw= acct_fds=0
for _ in $(seq 100); do
	hp=
	for p in $(env -u LD_PRELOAD pgrep -x prog_hold); do
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q " 8 3.25 $" && hp=$p
	done
	[ -n "$hp" ] && grep -q "account" "/proc/$hp/maps" 2>/dev/null && break
	sleep 0.1
done
if [ -n "$hp" ]; then
	for fd in /proc/$hp/fd/*; do
		t=$(readlink "$fd" 2>/dev/null) || continue
		case "$t" in *memgrp-account*|*/account-*) ;; *) continue ;; esac
		acct_fds=$((acct_fds + 1))
		flags=$(sed -n 's/^flags:\s*//p' "/proc/$hp/fdinfo/${fd##*/}")
		[ $((8#$flags & 3)) = 2 ] && fdinfo_rw="$fdinfo_rw ${fd##*/}"
	done
	maps_rw=$(grep -E "memgrp-account|/account-" "/proc/$hp/maps" | awk '$2 ~ /w/' | wc -l)
	maps_ro=$(grep -E "memgrp-account|/account-" "/proc/$hp/maps" | awk '$2 !~ /w/' | wc -l)
fi
[ -n "$hp" ] && kill -KILL "$hp" 2>/dev/null
stop "$hpid"; wait "$hpid" 2>/dev/null; hpid=
for _ in $(seq 100); do
	[ "$(stat_field tp/evil nr_processes 2>/dev/null)" = 0 ] && break
	sleep 0.1
done
# its own group's part read-write (one fd, one mapping), tp's read-only
[ -n "$hp" ] && [ "$acct_fds" = 2 ] && [ "$(echo $fdinfo_rw | wc -w)" = 1 ] && [ "$maps_rw" = 1 ] &&
	[ "$maps_ro" = 1 ] &&
	ok "a tp/evil process holds tp's accounting part only read-only: 2 accounting fds, 1 writable (its own group's); 1 writable mapping, 1 read-only" ||
	bad agent_fds "pid $hp: $acct_fds accounting fds, writable:$fdinfo_rw; mappings: $maps_rw writable, ${maps_ro:-?} read-only"
kill -0 "$dpid" 2>/dev/null && mg stat tp >/dev/null 2>&1 &&
	ok "memgrpd did not crash" || { bad crash "memgrpd is gone"; tail -20 "$tmp/memgrpd.log"; }
g2_usage=$(stat_field tp/good usage) g2_limit=$(stat_field tp/good limit)
[ "$g2_usage" = "$good_usage" ] && [ "$g2_limit" = "$good_limit" ] && kill -0 "$gpid" 2>/dev/null &&
	ok "the sibling tp/good: limit $g2_limit and usage $g2_usage unchanged, its process alive" ||
	bad sibling "usage $good_usage -> $g2_usage, limit $good_limit -> $g2_limit"
[ "$(stat_field tp limit)" = "$tp_limit" ] && [ "$(stat_field tp/evil limit)" = "$evil_limit" ] &&
	ok "the limits of tp ($tp_limit) and of tp/evil itself ($evil_limit) unchanged" ||
	bad limits "tp $(stat_field tp limit) (was $tp_limit), tp/evil $(stat_field tp/evil limit)"
kill -0 "$spid" 2>/dev/null && ok "a root sleep outside every group is alive" ||
	bad outsider "the root sleep was killed"
grep -q "group 'tp/evil': its accounting was tampered with" "$tmp/memgrpd.log" &&
	ok "the tampering is reported: $(grep -m1 -o "group 'tp/evil': its accounting was tampered with: [^(]*" "$tmp/memgrpd.log")" ||
	{ bad report "no tampering reported"; tail -20 "$tmp/memgrpd.log"; }
rm_out=$(mg rm tp/evil 2>&1) && ok "tp/evil is removed once its processes are gone" ||
	bad remove "$rm_out"
tp_after=
for _ in $(seq 30); do
	tp_after=$(stat_field tp usage)
	[ "$tp_after" = "$tp_usage" ] && break
	sleep 0.1
done
tp_max=$(stat_field tp max_usage)
[ "$tp_after" = "$tp_usage" ] && [ "$tp_max" -le "$tp_limit" ] &&
	ok "memgrp stat tp: usage $tp_usage before, $tp_after once tp/evil is gone (its grant returned); max_usage $tp_max within the limit $tp_limit" ||
	bad parent_figures "tp usage $tp_usage -> $tp_after, max_usage $tp_max, limit $tp_limit"
grep -q "killing pid $spid\b\|killing pid $gpid\b" "$tmp/memgrpd.log" &&
	bad kills "memgrpd killed a process it should not have"
}
run_case hostile

case_truncate() {
echo "--- a process truncates its group's accounting file (a state file: no seals)"
mg create tp/cut -m 64M
cut_before=$(stat_field tp/good usage)
timeout -k 5 60 "$memgrp" --socket "$sock" run -g tp/cut -- sh -c \
	"p=\$LD_PRELOAD; LD_PRELOAD= setpriv --reuid=$uid --regid=$gid --groups=$gid \
	 env LD_PRELOAD=\"\$p\" '$progs/prog_scribble' --truncate" >"$tmp/cut.out" 2>&1
cut_file=$(sed -n 's/^truncating: //p' "$tmp/cut.out")
for _ in $(seq 50); do
	grep -q "group 'tp/cut': its accounting was tampered with: its accounting file was truncated" \
		"$tmp/memgrpd.log" && break
	mg stat tp >/dev/null 2>&1
	sleep 0.1
done
if [ -z "$cut_file" ]; then
	bad truncate "the process did not truncate its accounting file"; cat "$tmp/cut.out"
elif kill -0 "$dpid" 2>/dev/null && mg stat tp/cut >/dev/null 2>&1 &&
	[ "$(stat_field tp/good usage)" = "$cut_before" ] && kill -0 "$gpid" 2>/dev/null &&
	[ "$(stat -c %s "$cut_file")" = "$(stat -c %s "$(ls "$sock.groups"/account-* | grep -v "$cut_file" | head -1)")" ]; then
	ok "$cut_file truncated by its process ($(grep -q '^truncated' "$tmp/cut.out" && echo 'it lived on' || echo 'its own agent then died of SIGBUS')): memgrpd serves on, tp/good's usage $cut_before unchanged, the file's size restored"
else
	bad truncate "memgrpd alive? $(kill -0 "$dpid" 2>/dev/null && echo yes || echo no); tp/good usage $cut_before -> $(stat_field tp/good usage 2>/dev/null); size $(stat -c %s "$cut_file" 2>&1)"
	tail -5 "$tmp/memgrpd.log"
fi
grep -q "group 'tp/cut': its accounting was tampered with: its accounting file was truncated" "$tmp/memgrpd.log" &&
	ok "the truncation is reported: $(grep -m1 -o "its accounting file was truncated[^)]*)" "$tmp/memgrpd.log")" ||
	{ bad truncate-report "not reported"; tail -5 "$tmp/memgrpd.log"; }
mg rm tp/cut >/dev/null 2>&1 || bad truncate-rm "tp/cut cannot be removed"
# memgrp run's embedded manager keeps its segments in memfds, sealed
# against shrinking: the same truncation is refused.
"$memgrp" --socket "$tmp/embedded.sock" run -- "$progs/prog_scribble" --truncate >"$tmp/cut-memfd.out" 2>&1
if grep -q "^refused: ftruncate() of .*memgrp-account.*(Operation not permitted)" "$tmp/cut-memfd.out" &&
	! grep -q "^truncated" "$tmp/cut-memfd.out"; then
	ok "under memgrp run (memfds, F_SEAL_SHRINK) the truncation is refused: $(grep -c '^refused' "$tmp/cut-memfd.out") accounting fds, EPERM"
else
	bad truncate-memfd "$(cat "$tmp/cut-memfd.out")"
fi
}
run_case truncate hostile

case_garbage_state() {
echo "--- a state file with a valid header and a garbage body"
mg create tp/hit -m 64M
mg run -g tp/hit -- "$progs/prog_hold" 8 30 >"$tmp/hit.out" 2>&1 &
hpid=$!
for _ in $(seq 100); do [ "$(stat_field tp/hit nr_processes 2>/dev/null)" = 1 ] && break; sleep 0.1; done
kill -KILL "$dpid"; wait "$dpid" 2>/dev/null
# tp/hit's files: a valid header (the first 64 bytes: magic, version, size,
# name), the rest of both parts garbage.
f=$(python3 - "$sock.groups" <<'PY'
import os, sys
d = sys.argv[1]
for n in os.listdir(d):
    if n.startswith("segment-") and "." not in n:
        with open(os.path.join(d, n), "rb") as f:
            if f.read(64)[16:16 + 7] == b"tp/hit\0":
                print(n)
PY
)
if [ -z "$f" ]; then
	bad statefile "no segment file of tp/hit in $sock.groups"
else
	a=account-${f#segment-}
	python3 - "$sock.groups/$f" "$sock.groups/$a" <<'PY'
import os, random, sys
rnd = random.Random(7)
for i, path in enumerate(sys.argv[1:]):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        start = 64 if i == 0 else 0
        f.seek(start)
        f.write(bytes(rnd.randrange(256) for _ in range(size - start)))
PY
	start_daemon restart
	for _ in $(seq 50); do mg stat tp >/dev/null 2>&1 && break; sleep 0.1; done
	sleep 2 # the survivors rejoin (tp/hit's is refused: its group is gone)
	if grep -q "$f: .*; set aside as $f.rejected" "$tmp/restart.log" && [ -e "$sock.groups/$f.rejected" ] &&
		[ -e "$sock.groups/$a.rejected" ] && ! mg stat tp/hit >/dev/null 2>&1 &&
		[ "$(stat_field tp/good usage)" = "$good_usage" ] && kill -0 "$gpid" 2>/dev/null &&
		kill -0 "$spid" 2>/dev/null && kill -0 "$hpid" 2>/dev/null &&
		! grep -q "killing pid" "$tmp/restart.log"; then
		ok "the garbage file is set aside ($(grep -o "$f: [^;]*" "$tmp/restart.log" | head -1)); tp and tp/good are served; nobody is killed"
	else
		bad statefile "set aside? $(grep "$f" "$tmp/restart.log")"
		cat "$tmp/restart.log"
	fi
fi
stop "$hpid"
hpid=
}
run_case garbage_state hostile
