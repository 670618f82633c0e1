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

case_liar() {
echo "--- a process of tl/liar claims more usage than it holds, while its sibling needs room"
# tl/liar's process (uid $uid) holds 8 MB and adds 48 MB to its group's
# usage in its own accounting part; its grant then must cover the claim
# (its agent asks for it). Its sibling tl/sib needs 60 MB of tl's 96M.
# The manager believes the claim only as far as the kernel's figures for
# the liar's processes go: the liar's grant is cut, the sibling gets its
# room, the liar is reported, and when it asks for more it is the one
# killed.
mg create tl -m 96M && mg create tl/liar && mg create tl/sib
rm -f "$tmp/liar.go"
timeout -k 5 120 "$memgrp" --socket "$sock" run -g tl/liar -- sh -c \
	"p=\$LD_PRELOAD; LD_PRELOAD= setpriv --reuid=$uid --regid=$gid --groups=$gid \
	 env LD_PRELOAD=\"\$p\" '$progs/prog_grantuse' claim 8 48 '$tmp/liar.go' 4 30; echo rc=\$?" \
	>"$tmp/liar.out" 2>&1 &
lpid=$!
wait_for 60 grep -q "^claimed" "$tmp/liar.out"
liar_claim=$(stat_field tl/liar usage) tl_claimed=$(stat_field tl usage)
kills=$(grep -c "killing pid" "$tmp/memgrpd.log")
mg run -g tl/sib -- "$progs/prog_hold" 60 0.5 >"$tmp/sib.out" 2>&1; src=$?
tl_after=$(stat_field tl usage) tl_max=$(stat_field tl max_usage)
touch "$tmp/liar.go"
wait $lpid
if grep -q "^claimed 48 MB" "$tmp/liar.out" && [ "${liar_claim:-0}" -ge $((56 << 20)) ] &&
	[ "${tl_claimed:-0}" -ge $((56 << 20)) ]; then
	ok "the liar claims $liar_claim bytes in use (it holds 8 MB): tl counts $tl_claimed"
else
	bad liar_claim "claim $liar_claim, tl $tl_claimed"; cat "$tmp/liar.out"
fi
if [ $src -eq 0 ] && grep -q "holding 60 MB" "$tmp/sib.out" &&
	! grep "killing pid" "$tmp/memgrpd.log" | tail -n +$((kills + 1)) | grep -q "tl/sib\|prog_hold"; then
	ok "the sibling got 60 MB of tl's 96M beside the liar's claim, nobody of it killed (tl max_usage $tl_max)"
else
	bad liar_sibling "sibling rc $src"; cat "$tmp/sib.out"; tail -5 "$tmp/memgrpd.log"
fi
report=$(grep -m1 -o "group 'tl/liar': its accounting was tampered with: it claims [^;]*; its grant is cut to [0-9]* KiB" "$tmp/memgrpd.log")
if [ -n "$report" ] && [ "$(stat_field tl tamper_reports)" -ge 1 ]; then
	ok "the liar is reported: $report; tl's tamper_reports $(stat_field tl tamper_reports)"
else
	bad liar_report "no report (tamper_reports $(stat_field tl tamper_reports))"; grep "tl/liar" "$tmp/memgrpd.log" | tail -5
fi
if grep -q "^rc=137" "$tmp/liar.out" && ! grep -q "^grew" "$tmp/liar.out" &&
	grep -q "group 'tl/liar' is out of memory (it claims .*killing pid [0-9]* (prog_grantuse)" "$tmp/memgrpd.log" &&
	[ "$(grep -c "group 'tl/liar' is out of memory" "$tmp/memgrpd.log")" = 1 ] &&
	grep -q "group 'tl/liar' lost a process while its claim stood: its usage is recounted" "$tmp/memgrpd.log"; then
	ok "asking for more, the liar is the one killed: $(grep -o "group 'tl/liar' is out of memory.*" "$tmp/memgrpd.log" | head -1)"
else
	bad liar_killed "$(tail -3 "$tmp/liar.out")"; grep "tl/liar" "$tmp/memgrpd.log" | tail -5
fi
for _ in $(seq 50); do [ "$(stat_field tl/liar nr_processes 2>/dev/null)" = 0 ] && break; sleep 0.1; done
rm_out=$(mg rm tl/liar 2>&1 && mg rm tl/sib 2>&1) && tl_end=$(stat_field tl usage) &&
	[ "$tl_end" -le $((64 << 12)) ] && mg rm tl &&
	ok "tl/liar's claim is forgotten once its processes are gone: removed, tl's usage back to $tl_end" ||
	bad liar_gone "$rm_out; tl usage $(stat_field tl usage)"
}
run_case liar

case_garbage_state() {
echo "--- a state file with a valid header and a garbage body"
mg create tp/hit -m 64M
mg run -g tp/hit -- "$progs/prog_hold" 8 30 >"$tmp/hit.out" 2>&1 &
hpid=$!
for _ in $(seq 100); do [ "$(stat_field tp/hit nr_processes 2>/dev/null)" = 1 ] && break; sleep 0.1; done
for _ in $(seq 100); do [ "$(stat_field tp/hit usage 2>/dev/null)" -ge $((8 << 20)) ] && break; sleep 0.1; done
# tp's usage counts tp/hit's grant (at least its 8 MB) beside tp/good's
tp_before=$(stat_field tp usage)
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
	# tp/hit's grant is not trusted, so not returned: tp's usage is
	# recounted from what the manager trusts (tp/good's grant; tp has no
	# process of its own)
	tp_after=$(stat_field tp usage) good_granted_max=$((good_usage + (64 << 12)))
	if [ "${tp_before:-0}" -ge $((good_usage + (8 << 20))) ] && [ "$tp_after" -ge "$good_usage" ] &&
		[ "$tp_after" -le "$good_granted_max" ] &&
		grep -q "group 'tp': memory usage [0-9]* KiB, but its processes hold 0 KiB and its groups below [0-9]* KiB of grant .*recomputed" "$tmp/restart.log"; then
		ok "tp's usage recomputed without the set-aside tp/hit's grant: $tp_before -> $tp_after (tp/good holds $good_usage)"
	else
		bad statefile_parent "tp usage $tp_before -> $tp_after, tp/good $good_usage"
		grep "group 'tp'" "$tmp/restart.log"
	fi
fi
stop "$hpid"
hpid=
}
run_case garbage_state hostile
