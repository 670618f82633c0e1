#!/usr/bin/env bash
# test_thp.sh - huge pages as Ingens manages them, in real processes: promotion seen in smaps, sparse blocks left alone, bytes across fork, mremap and eviction, the limit, per-group settings and counters through memgrpd.
# Usage: test_thp.sh MEMGRP PROGS_DIR MEMGRPD
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
progs=$(realpath "$2")
memgrpd=$(realpath "$3")
dpid=
cleanup() { [ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null; }

# As in test_estimate.sh: under a sanitizer the kernel backstop would
# count the runtime's own memory against these limits.
backstop=()
[ -n "${MEMGRP_TEST_PRELOAD:-}" ] && backstop=(--kernel-backstop off)
if [ "$(id -u)" != 0 ]; then
	skip_all "needs root (userfaultfd for every process)"
fi
if ! grep -q '\[\(always\|madvise\|never\)\]' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null; then
	skip_all "no transparent huge pages in this kernel"
fi

MB=$((1 << 20))
# Generous: a collapse took 11-16 ms a block on a quiet host, up to 255 ms
# under load (bench/thpprobe); nothing here is timed.
WAIT=60

# run NAME SECS ENV... -- memgrp-run-args... -- prog args: rc in $rc,
# output in $tmp/NAME.out, final figures in $tmp/NAME.json.
run() {
	local name=$1 secs=$2; shift 2
	local envs=()
	while [ "$1" != "--" ]; do envs+=("$1"); shift; done
	shift
	env "${envs[@]}" timeout -k 5 "$secs" "$memgrp" run -g "t-thp-$name-$sfx" "${backstop[@]}" \
		--stats-json "$tmp/$name.json" "$@" >"$tmp/$name.out" 2>&1
	rc=$?
}
val() { grep -o "\b$2=[0-9]*" "$tmp/$1.out" | tail -1 | cut -d= -f2; }
show() { sed 's/^/    /' "$tmp/$1.out" | tail -${2:-8}; }

case_promote() {
echo "--- a dense region is promoted, and the fill is charged"
# 95 % of each block written (scattered: no fault-around fills the rest),
# 64 MiB: every block must end up a huge page; while the process holds,
# the group is charged for whole blocks (the fill's pages are its memory).
local g=t-thp-promote-$sfx
MEMGRP_THP=ingens timeout -k 5 120 "$memgrp" run -g "$g" "${backstop[@]}" -- \
	"$progs/prog_thp" 64 95 wait $WAIT hold 3 >"$tmp/promote.out" 2>&1 &
local pid=$! usage=0
track $pid
wait_for $WAIT grep -q huge_kb "$tmp/promote.out"
usage=$(env -u LD_PRELOAD "$memgrp" stat --json "$g" 2>/dev/null |
	python3 -c "import json,sys; print(json.load(sys.stdin)['usage'])" 2>/dev/null || echo 0)
wait $pid
rc=$?
local huge region
huge=$(val promote huge_kb) region=$(val promote region_kb)
if [ "$rc" = 0 ] && [ -n "$huge" ] && [ "$huge" = "$region" ] && grep -q '^bad=0' "$tmp/promote.out" &&
   { [ "$accounting" = 0 ] || [ "$usage" -ge $((region * 1024)) ]; }; then
	ok "AnonHugePages $huge kB of $region kB, every byte right, usage $((usage / 1024)) KiB while held (>= the region)"
else
	bad promote "rc $rc, huge_kb '$huge' of '$region', usage $usage"
	show promote
fi
}
run_case promote

case_sparse() {
echo "--- a sparse region is never promoted; nor anything with huge pages off"
# 50 % and 89 % (455 pages, under the default 460) stay base pages for
# the whole wait; the same dense region with MEMGRP_THP unset too (the
# ranges stay MADV_NOHUGEPAGE, as before this feature).
local p
for p in 50 89; do
	run sparse$p 60 MEMGRP_THP=ingens -- -- "$progs/prog_thp" 32 $p wait 5
	if [ "$rc" = 0 ] && [ "$(val sparse$p huge_kb)" = 0 ] && grep -q '^bad=0' "$tmp/sparse$p.out"; then
		ok "$p % of every block: no huge page after 5 s, every byte right"
	else
		bad sparse$p "rc $rc, huge_kb '$(val sparse$p huge_kb)'"
		show sparse$p
	fi
done
run never 60 MEMGRP_THP=never -- -- "$progs/prog_thp" 32 100 wait 5
if [ "$rc" = 0 ] && [ "$(val never huge_kb)" = 0 ] && grep -q '^bad=0' "$tmp/never.out"; then
	ok "huge pages off: a dense region stays base pages"
else
	bad never "rc $rc, huge_kb '$(val never huge_kb)'"
	show never
fi
# A threshold of 40 % promotes the 50 % region (the option is read).
run low 120 MEMGRP_THP=ingens MEMGRP_THP_THRESHOLD=40 -- -- "$progs/prog_thp" 32 50 wait $WAIT
if [ "$rc" = 0 ] && [ "$(val low huge_kb)" = "$(val low region_kb)" ] && grep -q '^bad=0' "$tmp/low.out"; then
	ok "MEMGRP_THP_THRESHOLD=40: the 50 % region is promoted, untouched pages read zeros"
else
	bad low "rc $rc, huge_kb '$(val low huge_kb)'"
	show low
fi
}
run_case sparse

case_always() {
echo "--- always: promoted at the first fault of a block"
run always 120 MEMGRP_THP=always -- -- "$progs/prog_thp" 32 5 wait $WAIT
if [ "$rc" = 0 ] && [ "$(val always huge_kb)" = "$(val always region_kb)" ] && grep -q '^bad=0' "$tmp/always.out"; then
	ok "5 % of every block: all promoted, every byte right"
else
	bad always "rc $rc, huge_kb '$(val always huge_kb)'"
	show always
fi
}
run_case always

case_fork_mremap() {
echo "--- bytes across mremap of a huge region and fork"
run forkmove 180 MEMGRP_THP=ingens -- -- "$progs/prog_thp" 64 95 wait $WAIT mremap fork
local huge moved region
huge=$(val forkmove huge_kb) moved=$(val forkmove moved_huge_kb) region=$(val forkmove region_kb)
if [ "$rc" = 0 ] && [ "$huge" = "$region" ] && [ -n "$moved" ] && grep -q '^child_bad=0' "$tmp/forkmove.out" &&
   grep -q '^bad=0' "$tmp/forkmove.out"; then
	ok "promoted ($huge kB), moved by mremap ($moved kB still huge), forked: parent and child read every byte right"
else
	bad forkmove "rc $rc, huge_kb '$huge', moved '$moved' of '$region'"
	show forkmove
fi
}
run_case fork_mremap

case_demote() {
echo "--- a promoted block that falls under the threshold stays split"
# 95 % written and promoted; then 100 pages of every block given back
# (MADV_DONTNEED: the kernel splits the huge page), 15 s more: at 75 % the
# blocks are not promoted again; the given-back pages read zeros, the
# rest their pattern.
run demote 120 MEMGRP_THP=ingens -- -- "$progs/prog_thp" 32 95 wait 15 drop 100
local huge dropped region
huge=$(val demote huge_kb) dropped=$(val demote dropped_huge_kb) region=$(val demote region_kb)
if [ "$rc" = 0 ] && [ "$huge" = "$region" ] && [ "$dropped" = 0 ] && grep -q '^bad=0' "$tmp/demote.out"; then
	ok "promoted ($huge kB), then 100 pages a block given back: $dropped kB huge 15 s later, every byte right"
else
	bad demote "rc $rc, huge_kb '$huge' of '$region', after the drop '$dropped'"
	show demote
fi
}
run_case demote

case_evict() {
echo "--- eviction and restore of promoted blocks"
# 64 MiB promoted, then 64 MiB more written under a 96M limit with swap:
# the promoted blocks' pages are evicted (the kernel splits them) and come
# back byte for byte; the limit holds.
run evict 300 MEMGRP_THP=ingens -- -m 96M --swap-max 256M -- "$progs/prog_thp" 64 95 wait $WAIT press 64
local max swap
max=$(jget "$tmp/evict.json" max_usage 2>/dev/null || echo 0)
swap=$(jget "$tmp/evict.json" swap_max_usage 2>/dev/null || echo 0)
if [ "$rc" = 0 ] && [ "$(val evict huge_kb)" = "$(val evict region_kb)" ] && grep -q '^bad=0' "$tmp/evict.out" &&
   [ "$max" -le $((96 * MB)) ] && [ "$swap" -gt 0 ]; then
	ok "promoted, then $((swap / MB)) MiB evicted at most, huge kB after $(val evict pressed_huge_kb); every byte right, max_usage $((max / MB)) MiB of 96"
else
	bad evict "rc $rc, huge_kb '$(val evict huge_kb)', max_usage $max, swap $swap"
	show evict
fi
}
run_case evict

case_limit() {
echo "--- the limit holds with promotion on"
# 64 MiB at 90 % (57.5 MiB written) under 48M with swap: the fill is
# charged like any page, so usage never passes the limit; eviction makes
# the room (the promoted blocks' pages among the evicted); no kill, every
# written byte right. (Without swap the same run is killed where it is
# not without huge pages: docs/design.md, "Huge pages", gaps.)
run limit 300 MEMGRP_THP=ingens -- -m 48M --swap-max 128M -- "$progs/prog_thp" 64 90 wait 5 touched-only
local max kills
max=$(jget "$tmp/limit.json" max_usage 2>/dev/null || echo $((999 * MB)))
kills=$(jget "$tmp/limit.json" oom_kill 2>/dev/null || echo 1)
if [ "$rc" = 0 ] && [ "$kills" = 0 ] && [ "$max" -le $((48 * MB)) ] && grep -q '^bad=0' "$tmp/limit.out"; then
	ok "max_usage $((max / 1024)) KiB of $((48 * 1024)), $(val limit huge_kb) kB huge at the end, no kill, every byte right"
else
	bad limit "rc $rc, oom_kill $kills, max_usage $max, huge_kb '$(val limit huge_kb)'"
	show limit
fi
}
run_case limit

case_options() {
echo "--- memgrp run --thp, --thp-threshold, --thp-rate"
# The options reach the agent: --thp ingens --thp-threshold 40 promotes
# the 50 % region; bad values are refused before anything runs.
run opt 120 MEMGRP_THP=never -- --thp ingens --thp-threshold 40 --thp-rate 1000 -- \
	"$progs/prog_thp" 32 50 wait $WAIT
if [ "$rc" = 0 ] && [ "$(val opt huge_kb)" = "$(val opt region_kb)" ] && grep -q '^bad=0' "$tmp/opt.out"; then
	ok "--thp ingens --thp-threshold 40: the 50 % region promoted (the option wins over the environment)"
else
	bad opt "rc $rc, huge_kb '$(val opt huge_kb)'"
	show opt
fi
local a
for a in "--thp sometimes" "--thp-threshold 0" "--thp-threshold 101" "--thp-threshold 9x" "--thp-rate -1" \
	"--thp-rate 1000001"; do
	# shellcheck disable=SC2086
	"$memgrp" run $a -- touch "$tmp/ran" >"$tmp/badopt.out" 2>&1
	rc=$?
	if [ "$rc" = 2 ] && [ ! -e "$tmp/ran" ] && grep -q -- "${a%% *}" "$tmp/badopt.out"; then
		ok "memgrp run $a: status 2, nothing run, the option named"
	else
		bad "badopt $a" "rc $rc, $(head -1 "$tmp/badopt.out")"
	fi
	rm -f "$tmp/ran"
done
}
run_case options

case_group() {
echo "--- memgrpd: --thp per group (inherited below), the env still wins, the counters"
local sock=$tmp/thpd.sock g=t-thpg-$sfx
"$memgrpd" --socket "$sock" >"$tmp/thpd.log" 2>&1 &
dpid=$!
wait_socket "$sock"
mg() { env -u MEMGRP_THP -u MEMGRP_THP_THRESHOLD -u MEMGRP_THP_RATE "$memgrp" --socket "$sock" "$@"; }
sj() { mg stat --json "$1" 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])" 2>/dev/null; }
mg create "$g" --thp ingens --thp-threshold 40 --thp-rate 1000 &&
	mg create "$g/in" && mg create "$g/off" --thp never
local crc=$?
# 50 % of every block: promoted only by the inherited 40 % (the default is 90).
mg run -g "$g/in" -- "$progs/prog_thp" 32 50 wait $WAIT hold 4 >"$tmp/gin.out" 2>&1 &
local pid=$! held=
track $pid
wait_for $WAIT grep -q huge_kb "$tmp/gin.out"
sleep 1
held=$(sj "$g" thp_huge_pages)
wait $pid
local irc=$? huge region
huge=$(val gin huge_kb) region=$(val gin region_kb)
if [ "$crc" = 0 ] && [ "$irc" = 0 ] && [ -n "$huge" ] && [ "$huge" = "$region" ] && grep -q '^bad=0' "$tmp/gin.out" &&
   [ "$held" = $((region / 2048)) ]; then
	ok "$g/in inherits --thp ingens --thp-threshold 40: the 50 % region promoted ($huge kB), thp_huge_pages $held while held"
else
	bad group_inherit "create rc $crc, rc $irc, huge_kb '$huge' of '$region', thp_huge_pages '$held'"
	show gin
fi
# A group's own setting wins over its parent's; the environment over the group's.
mg run -g "$g/off" -- "$progs/prog_thp" 32 100 wait 5 >"$tmp/goff.out" 2>&1; local orc=$?
MEMGRP_THP=never "$memgrp" --socket "$sock" run -g "$g/in" -- "$progs/prog_thp" 32 100 wait 5 \
	>"$tmp/genv.out" 2>&1; local erc=$?
if [ "$orc" = 0 ] && [ "$erc" = 0 ] && [ "$(val goff huge_kb)" = 0 ] && [ "$(val genv huge_kb)" = 0 ] &&
   grep -q '^bad=0' "$tmp/goff.out" && grep -q '^bad=0' "$tmp/genv.out"; then
	ok "$g/off (--thp never under an ingens parent) and MEMGRP_THP=never in $g/in: a dense region stays base pages"
else
	bad group_override "rc $orc/$erc, huge_kb '$(val goff huge_kb)' / '$(val genv huge_kb)'"
	show goff; show genv
fi
# Promoted, then 10 pages a block given back (the kernel splits each
# huge page): demotions counted; the fill is the bloat (>= half of 32 MiB
# from the first run alone).
mg run -g "$g/in" -- "$progs/prog_thp" 32 50 wait $WAIT drop 10 >"$tmp/gdrop.out" 2>&1; local drc=$?
local pro dem fill
pro=$(sj "$g" thp_promotions) dem=$(sj "$g" thp_demotions) fill=$(sj "$g" thp_fill_bytes)
if [ "$drc" = 0 ] && grep -q '^bad=0' "$tmp/gdrop.out" && [ "${pro:-0}" -ge 32 ] && [ "${dem:-0}" -ge 16 ] &&
   [ "${fill:-0}" -ge $((16 * MB)) ] && [ "$(sj "$g/off" thp_promotions)" = 0 ]; then
	ok "stat $g: thp_promotions $pro, thp_demotions $dem, thp_fill_bytes $((fill / 1024)) KiB; $g/off none"
else
	bad group_counters "rc $drc, promotions '$pro', demotions '$dem', fill '$fill'"
	show gdrop
fi
mg stat "$g" >"$tmp/gstat.txt" 2>&1
grep -q "thp_promotions" "$tmp/gstat.txt" && ok "memgrp stat names the thp counters" ||
	bad group_stat_text "$(head -3 "$tmp/gstat.txt")"
local a
for a in "--thp sometimes" "--thp-threshold 0" "--thp-rate 1000001"; do
	# shellcheck disable=SC2086
	mg set "$g/in" $a >"$tmp/gset.out" 2>&1
	rc=$?
	[ "$rc" = 2 ] && grep -q -- "${a%% *}" "$tmp/gset.out" && ok "memgrp set $a: status 2, the option named" ||
		bad "gset $a" "rc $rc, $(head -1 "$tmp/gset.out")"
done
mg rm "$g/in"; mg rm "$g/off"; mg rm "$g"
kill "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null; dpid=
}
run_case group

case_share() {
echo "--- memgrpd: huge pages scarce, a group at its share promotes no more"
# The free order-9 blocks are what memgrpd reads in MEMGRP_BUDDYINFO's
# file: 4, scarce (under 64). A and B (weight 100 each) under the root:
# A's share is a third of what it holds plus the 4 free, so it stops at
# 2-3 huge pages of the 16 it could have (at 2 promotions a second, the
# 20 s wait would see all 16 otherwise: case group).
local sock=$tmp/thps.sock g=t-thps-$sfx
printf 'Node 0, zone   Normal  100 50 20 10 5 2 1 0 0 4 0\n' >"$tmp/buddyinfo"
MEMGRP_BUDDYINFO=$tmp/buddyinfo "$memgrpd" --socket "$sock" --thp-compact-rate 1 >"$tmp/thps.log" 2>&1 &
dpid=$!
wait_socket "$sock"
mg() { env -u MEMGRP_THP -u MEMGRP_THP_THRESHOLD -u MEMGRP_THP_RATE "$memgrp" --socket "$sock" "$@"; }
sj() { mg stat --json "$1" 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])" 2>/dev/null; }
mg create "$g-a" --thp ingens --thp-threshold 40 --thp-rate 2 --thp-weight 100 &&
	mg create "$g-b" --thp ingens --thp-weight 100
local crc=$?
mg run -g "$g-a" -- "$progs/prog_thp" 32 50 wait 20 hold 3 >"$tmp/sa.out" 2>&1 &
local pid=$! share=
track $pid
wait_for 40 grep -q huge_kb "$tmp/sa.out"
share=$(sj "$g-a" thp_share)
wait $pid
local arc=$? huge
huge=$(val sa huge_kb)
if [ "$crc" = 0 ] && [ "$arc" = 0 ] && grep -q '^bad=0' "$tmp/sa.out" && [ -n "$huge" ] &&
   [ "$huge" -gt 0 ] && [ "$huge" -le $((8 * 2048)) ] && [ -n "$share" ] && [ "$share" -le 4 ]; then
	ok "4 free order-9 blocks: $g-a promoted $((huge / 2048)) of 16 blocks and stopped (thp_share $share), every byte right"
else
	bad share "create rc $crc, rc $arc, huge_kb '$huge', thp_share '$share'"
	show sa
fi
# While A waited under its share, memgrpd asked the kernel to compact:
# once (1 a minute), its CPU counted at the root.
local nc cpu
nc=$(mg stat --json 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['thp_compactions'])" 2>/dev/null)
cpu=$(mg stat --json 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['thp_compact_cpu_us'])" 2>/dev/null)
if [ "$nc" = 1 ] && grep -q "compacted" "$tmp/thps.log"; then
	ok "--thp-compact-rate 1: one compaction while promotions waited, $cpu us of memgrpd's CPU ($(grep -o 'compacted.*' "$tmp/thps.log" | head -1))"
else
	bad compact "thp_compactions '$nc', cpu '$cpu'"
	tail -3 "$tmp/thps.log"
fi
mg set "$g-a" --thp-weight 0 >"$tmp/sw.out" 2>&1
[ $? = 2 ] && grep -q -- "--thp-weight" "$tmp/sw.out" && ok "memgrp set --thp-weight 0: status 2, the option named" ||
	bad thp_weight_bad "$(head -1 "$tmp/sw.out")"
mg rm "$g-a"; mg rm "$g-b"
kill "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null; dpid=
}
run_case share
