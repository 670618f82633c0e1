#!/usr/bin/env bash
# test_reclaim.sh - eviction into compressed swap: integrity under stress, limits, policies.
# Usage: test_reclaim.sh MEMGRP MEMGRPD PROGS_DIR
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
memgrpd=$(realpath "$2")
progs=$(realpath "$3")
dpid=
# The kernel cgroups of the runs whose background children outlived
# them (the 'cold' holder): nobody else would remove them.
kcg_track "$tmp/memgrpd.sock" /run/memgrp/memgrp-tr-{high,highx,cold}-$sfx.sock
cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null
	env -u LD_PRELOAD pkill -f "memgrp-tr-[a-z]*-$sfx" 2>/dev/null
}

# In a sanitizer build (accounting=0) the ASan allocator's heap is a
# reservation memgrp does not manage (docs/design.md): malloc'd memory is
# not evicted there. The data checks still run; those that need malloc'd
# memory counted are skipped.

if [ "$(id -u)" != 0 ]; then
	skip_all "needs root (userfaultfd with UFFD_EVENT_FORK needs CAP_SYS_PTRACE)"
fi

# usage_of GROUP: its usage while a process lives in it (after, usage is 0
# anyway, which would pass any "under the limit" check): empty otherwise
usage_of() { "$memgrp" stat --json "$1" 2>&1 | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['usage'] if d['nr_processes'] else '')" 2>&1; }
MB=$((1 << 20))

# run NAME TIMEOUT -- memgrp-run-args...: exit code in $rc, output in $tmp/NAME.out
run() {
	local name=$1 secs=$2; shift 3
	timeout -k 5 "$secs" "$memgrp" run --stats-json "$tmp/$name.json" "$@" >"$tmp/$name.out" 2>&1
	rc=$?
}
show() { sed 's/^/    /' "$tmp/$1.out" | tail -${2:-8}; }
figures() { # NAME: the reclaim figures of a run, for the log
	python3 - "$tmp/$1.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("    max_usage %d MiB, pswpout %d, pswpin %d, swap_max_usage %d MiB, stalls %d (p50 %d us, p99 %d us)" % (
    d["max_usage"] >> 20, d["pswpout"], d["pswpin"], d["swap_max_usage"] >> 20,
    d["reclaim_stalls"], d["reclaim_stall_p50_us"], d["reclaim_stall_p99_us"]))
PY
}

case_integrity() {
echo "--- integrity: every page back byte-identical"
# The issue's workload: stress-ng verifies what it wrote, under a limit a
# quarter of its memory. Slack: pages that appear before the agent sees
# them (a forked worker's inherited pages) are charged unrefused.
run stressng 240 -- -m 64M --swap-max 1G -- stress-ng --vm 2 --vm-bytes 256M --verify --timeout 15s
max=$(jget "$tmp/stressng.json" max_usage 2>/dev/null || echo 0)
out=$(jget "$tmp/stressng.json" pswpout 2>/dev/null || echo 0)
if [ "$rc" = 0 ] && ! grep -qi "fail" "$tmp/stressng.out" && [ "$out" -gt 10000 ] &&
   { [ "$accounting" = 0 ] || [ "$max" -le $((68 * MB)) ]; }; then
	ok "stress-ng --vm 2 --vm-bytes 256M --verify under 64M: no verify failure, max_usage $((max / 1024)) KiB"
	figures stressng
else
	bad stressng "rc $rc, max_usage $max, pswpout $out"; show stressng
fi

# A pattern over 512 MB under 64M; the process forks; parent and child
# each check every byte, the child writes its own and checks again.
run fork512 300 -- -m 64M --swap-max 4G -- "$progs/prog_evict" 512 fork
[ "$rc" = 0 ] && grep -q "every page read back right" "$tmp/fork512.out" &&
	ok "512 MiB under 64M, then fork: parent and child read every byte back" && figures fork512 ||
	{ bad fork512 "rc $rc"; show fork512; }

# A fork that catches the handler inside an eviction: the child's agent
# must not take the copied "evicting" flag for its own (it never evicted
# again, and its first charge over the limit ended in the OOM kill). Each
# child writes 48 MiB in a group already at its 32M limit: only its own
# evictions make that room. The window is hit about every other run (only
# a run's first fork was seen to catch it), so five runs.
fb_fail=0
for i in 1 2 3 4 5; do
	run forkbusy 60 -- -m 32M --swap-max 1G -- "$progs/prog_forkbusy" 48 48 4
	[ "$rc" = 0 ] && grep -q "forkbusy ok" "$tmp/forkbusy.out" || { fb_fail=$i; break; }
done
[ "$fb_fail" = 0 ] &&
	ok "fork while evicting, 5 runs: every child evicted for itself and read its 48 MiB back" ||
	{ bad forkbusy "run $fb_fail, rc $rc"; show forkbusy; }

# Threads race each other's faults and the evictions, pages in shuffled order.
run threads 240 -- -m 32M --swap-max 1G -- "$progs/prog_evict" 128 threads 4 rounds 3 random
[ "$rc" = 0 ] && grep -q "every page read back right" "$tmp/threads.out" &&
	ok "4 threads, 128 MiB under 32M, 3 rounds in random order: every byte right" ||
	{ bad threads "rc $rc"; show threads; }

# Linux 6.18 was seen to report a UFFDIO_MOVE of a run as failed (-EEXIST,
# nothing moved) after moving all of it: taken at its word, the agent lost
# those pages (docs/design.md, "Known gaps"). It now looks again after a
# failed move. The injection reports every fourth run moved that way; the
# handler's trace (MEMGRP_TRACE) shows the re-check finding them.
mkdir -p "$tmp/trace"
MEMGRP_TRACE="$tmp/trace" MEMGRP_INJECT=move-misreport run misreport 240 -- -m 32M --swap-max 1G -- \
	"$progs/prog_evict" 96 threads 2 rounds 2
found=$(for f in "$tmp"/trace/memgrp-trace.*; do python3 "$here/../scripts/trace.py" "$f"; done |
	awk '$1 == "UNREPORTED" { n += $2 } END { print n + 0 }')
rm -rf "$tmp/trace"
[ "$rc" = 0 ] && grep -q "every page read back right" "$tmp/misreport.out" && [ "$found" -gt 0 ] &&
	ok "moves reported failed after they moved (injected): 96 MiB under 32M, every byte right; $found runs found moved" ||
	{ bad misreport "rc $rc, runs found moved: $found"; show misreport; }

# madvise, mremap, munmap and fork racing faults, all while evicting.
run stress 240 -- -m 24M --swap-max 1G -- "$progs/prog_stress" 4 5
[ "$rc" = 0 ] && grep -q "stress ok" "$tmp/stress.out" &&
	ok "threads racing madvise/mremap/munmap/fork under 24M with eviction: $(grep -o '[0-9]* rounds, [0-9]* forks' "$tmp/stress.out")" ||
	{ bad stress "rc $rc"; show stress; }

# One thread's mremap moves a mapping with evicted pages into the range
# another's mremap just vacated, whose UNMAP the kernel queues only after
# that: the late UNMAP must not drop the newcomer's pages (before the fix,
# 5 of 5 runs read zeros within 4 rounds).
run remaprace 120 -- -m 16M --swap-max 1G -- "$progs/prog_remaprace" 100 24
[ "$rc" = 0 ] && grep -q "remaprace ok" "$tmp/remaprace.out" &&
	ok "mremap into a range another mremap just vacated, evicted pages: 100 rounds, every byte right" ||
	{ bad remaprace "rc $rc"; show remaprace; }

# The other order: A's mremap onto a mapped range (MREMAP_FIXED) waits
# for its first event's read before it queues its REMAP, and B's REMAP
# into the range A vacated comes first (before the agent's move lock, 3
# runs of 3 read zeros, in A's range or B's, by round 1).
run remapreverse 120 -- -m 16M --swap-max 1G -- "$progs/prog_remaprace" 30 24 reverse
[ "$rc" = 0 ] && grep -q "remaprace ok" "$tmp/remapreverse.out" &&
	ok "mremap into a range whose mover's REMAP is still to come, evicted pages: 30 rounds, every byte right" ||
	{ bad remapreverse "rc $rc"; show remapreverse; }

run mremap 240 -- -m 64M --swap-max 1G -- "$progs/prog_mremap" 256
[ "$rc" = 0 ] && grep -q "mremap ok" "$tmp/mremap.out" &&
	ok "mremap growth to 256 MB under 64M keeps the contents" || { bad mremap "rc $rc"; show mremap; }

run zstd 240 -- -m 32M --swap-max 1G --codec zstd -- "$progs/prog_evict" 128 threads 2 fork
[ "$rc" = 0 ] && grep -q "every page read back right" "$tmp/zstd.out" &&
	ok "zstd store: 128 MiB under 32M with threads and fork" || { bad zstd "rc $rc"; show zstd; }

# Write-back: past 8M of compressed pages in memory, the coldest go to an
# unnamed file per process in the directory (gone with the process).
mkdir -p "$tmp/swap"
run swapfile 300 -- -m 32M --swap-max 1G --swap-file "$tmp/swap" --swap-file-after 8M -- \
	"$progs/prog_evict" 160 threads 2 rounds 2 fork
wb=$(jget "$tmp/swapfile.json" written_back_pages 2>/dev/null || echo 0)
left=$(find "$tmp/swap" -mindepth 1 | wc -l)
[ "$rc" = 0 ] && grep -q "every page read back right" "$tmp/swapfile.out" && [ "$wb" -gt 1000 ] &&
	[ "$left" = 0 ] &&
	ok "--swap-file: 160 MiB under 32M, threads and fork, $wb pages written back to the file and read back right; nothing left in the directory" ||
	{ bad swapfile "rc $rc, written back $wb, files left $left"; show swapfile; }
out=$("$memgrp" run --swap-file "$tmp/no-such-dir" -- true 2>&1); src=$?
[ "$src" = 2 ] && grep -q "swap-file $tmp/no-such-dir: No such file" <<<"$out" &&
	ok "--swap-file of a missing directory is refused: '$out'" || bad swapfile_bad "rc $src: $out"

if [ "$accounting" = 1 ]; then
	cat >"$tmp/big.py" <<'PY'
a = bytearray(160 << 20)
for i in range(0, len(a), 4096):
    a[i] = i // 4096 % 251
s = sum(a[i] for i in range(0, len(a), 4096))
print("sum", s, "want", sum(i % 251 for i in range(len(a) // 4096)))
PY
	run python 240 -- -m 48M --swap-max 1G -- python3 "$tmp/big.py"
	if [ "$rc" = 0 ] && python3 - "$tmp/python.out" <<'PY'
import sys
words = open(sys.argv[1]).read().split()
i = words.index("sum")
sys.exit(0 if words[i + 1] == words[i + 3] else 1)
PY
	then ok "python3 with 160 MB under 48M: the sum comes out right"
	else bad python "rc $rc"; show python; fi
else
	skip python "sanitizer build: python3's heap is malloc'd"
fi
}
run_case integrity

case_fork() {
echo "--- fork: evicted pages stay evicted in the child, restored lazily"
# forks_kept DIR: how many forks let their child keep the store (the
# handlers' MEMGRP_TRACE records), then DIR goes
forks_kept() {
	python3 - "$1"/memgrp-trace.* <<'PY'
import struct, sys
REC = struct.Struct("<QHHiQQ")  # mgi_trace_rec_t; record 0's a: the next index
FORK_KEPT, FORK_COPIED = 19, 20 # enum mgi_trace_op
n, why = 0, []
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        nxt = REC.unpack(f.read(REC.size))[4]
        data = f.read((nxt - 1) * REC.size)  # records 1..nxt-1 (no wrap in these runs)
    for r in REC.iter_unpack(data):
        n += r[1] == FORK_KEPT
        if r[1] == FORK_COPIED:
            why.append(r[3])
print(n, "(copied: why %s)" % ",".join(map(str, why)) if why else "")
PY
	rm -rf "$1"
}
batch=$((64 * 4096)) # one fault-around batch
# In a sanitizer build libasan's own calls into libc are bound lazily: a
# forked child's handler, on its first such call, ran the dynamic linker's
# resolver on link maps still out in the child and waited on itself (the
# agent is linked -z now; production builds have no such resolver run on
# the handler's paths). Bound at start here.
bindnow=
[ "$accounting" = 0 ] && bindnow=1
# The issue's experiment: 256 MiB written under 64M (most of it evicted),
# then a fork; parent and child check every byte, the child writes its
# own and checks again. The child keeps its copy of the store: what was
# evicted is not charged to memory again (before: the parent copied it all
# into the child first, max_usage 320 MiB). Frames shared copy-on-write are
# charged once (src/agent/cow.c; before, the child's scan charged them
# again: max_usage 120 MiB). The bound that holds: the limit, plus the
# frames the parent unshares to evict them before the child's next check
# of its owed pages charges them (docs/design.md, fork): asserted as half
# the limit, under the double charge of before.
# A fork whose child cannot keep the store (the parent's handler changed
# it meanwhile, or the fork's stack was evicted for another's need on a
# loaded host: the trace says why) is copied into, as before, and the
# bound does not hold for it: up to 3 runs for one where every fork kept;
# every run's bytes must be right.
for attempt in 1 2 3; do
	mkdir -p "$tmp/ftrace"
	LD_BIND_NOW=$bindnow MEMGRP_TRACE="$tmp/ftrace" run forkevict 240 -- -m 64M --swap-max 1G -- "$progs/prog_evict" 256 fork
	kept=$(forks_kept "$tmp/ftrace")
	{ [ "$rc" != 0 ] || [ "${kept%% *}" -ge 1 ]; } && break
done
max=$(jget "$tmp/forkevict.json" max_usage 2>/dev/null || echo 0)
[ "$rc" = 0 ] && grep -q "every page read back right" "$tmp/forkevict.out" && [ "${kept%% *}" -ge 1 ] &&
	{ [ "$accounting" = 0 ] || [ "$max" -le $((64 * MB + 32 * MB + batch)) ]; } &&
	ok "256 MiB under 64M, fork: the child kept the store (run $attempt, $kept fork), both read every byte, max_usage $((max >> 20)) MiB" &&
	figures forkevict || { bad forkevict "run $attempt, rc $rc, forks kept $kept, max_usage $max"; show forkevict; }

# A chain of forks three deep, each level evicting: every level writes all
# of it, forks, its child checks what it inherited, writes its own (evicting
# in turn) and forks the next; each level checks its own again after.
# (The sanitizer build hung here 3 runs of 3 until the agent's raw
# mappings got their shadow cleared: src/agent/os.c, mgi_raw_mmap.)
# Bound: twice the limit plus a batch. Each level's parent unshares what it
# evicts of the pages its child shares, charged to the child only at its
# next pagemap check (cow.c): measured 35-42 MiB, and 49.6 MiB once at load
# ~25, over the limit plus half of it.
for attempt in 1 2 3; do
	mkdir -p "$tmp/ftrace"
	LD_BIND_NOW=$bindnow MEMGRP_TRACE="$tmp/ftrace" run forkchain 300 -- -m 32M --swap-max 1G -- "$progs/prog_forkchain" 96 chain 3
	kept=$(forks_kept "$tmp/ftrace")
	{ [ "$rc" != 0 ] || ! grep -q "chain ok" "$tmp/forkchain.out" || [ "${kept%% *}" -ge 3 ]; } && break
done
max=$(jget "$tmp/forkchain.json" max_usage 2>/dev/null || echo 0)
[ "$rc" = 0 ] && grep -q "chain ok" "$tmp/forkchain.out" && [ "${kept%% *}" -ge 3 ] &&
	{ [ "$accounting" = 0 ] || [ "$max" -le $((2 * 32 * MB + batch)) ]; } &&
	ok "a fork chain three deep, 96 MiB under 32M, each level evicting: every byte of every level right, run $attempt: $kept forks kept the store, max_usage $((max >> 20)) MiB" &&
	figures forkchain || { bad forkchain "run $attempt, rc $rc, forks kept $kept, max_usage $max"; show forkchain; }
}
run_case fork

case_cow() {
echo "--- fork: a frame shared copy-on-write is charged once, until one side writes it"
batch=$((64 * 4096)) # one fault-around batch
# Without swap, a process holding 60 % of its limit forks; both sides
# check every byte and wait. Charged twice (before cow.c) the group was at
# 120 % of its limit: the child was OOM-killed. The group's usage while
# both wait is the parent's alone.
mb=$((64 * 6 / 10))
g=t-cow-$sfx
"$memgrp" run -g "$g" -m 64M --stats-json "$tmp/cownone.json" -- "$progs/prog_cowfork" "$mb" none 1500 \
	>"$tmp/cownone.out" 2>&1 &
cpid=$!
usage=
for _ in $(seq 50); do
	sleep 0.1
	grep -q paused "$tmp/cownone.out" && { usage=$(usage_of "$g"); break; }
done
wait $cpid; rc=$?
max=$(jget "$tmp/cownone.json" max_usage 2>/dev/null || echo 0)
[ "$rc" = 0 ] && grep -q "cowfork ok" "$tmp/cownone.out" && [ -n "$usage" ] &&
	{ [ "$accounting" = 0 ] || { [ "$max" -le $((64 * MB + batch)) ] && [ "$usage" -lt $((2 * mb * MB)) ]; }; } &&
	ok "no swap, $mb MiB under 64M, fork: not killed, both read every byte, usage while both live $((usage >> 20)) MiB, max_usage $((max >> 20)) MiB" ||
	{ bad cownone "rc $rc, usage '$usage', max_usage $max"; show cownone; }
# With swap: 48 MiB under 64M, then the child, the parent, or both write
# every page after the fork. The child's first write to a shared page is a
# write-protect fault charged before the copy (a refused charge makes room
# first): the limit plus one batch holds. A page the parent writes first
# becomes the child's alone with no event in the child: charged at the
# child's next check of its owed pages (every 2 to 100 ms), so the bound
# there is the limit plus what the parent wrote meanwhile, at most all it
# shares with the child: those frames exist (the parent's copies and the
# child's originals) until the child evicts its own. Measured 66-96 MiB on
# a loaded host (before cow.c: 96.1 MiB, the child's scan charging them
# again), so this bound does not tell the two apart: the none and child
# cases do.
for w in child parent both; do
	run "cow$w" 120 -- -m 64M --swap-max 1G -- "$progs/prog_cowfork" 48 "$w" 300
	max=$(jget "$tmp/cow$w.json" max_usage 2>/dev/null || echo 0)
	bound=$((64 * MB + batch))
	[ "$w" = child ] || bound=$((64 * MB + 48 * MB + batch))
	[ "$rc" = 0 ] && grep -q "cowfork ok" "$tmp/cow$w.out" &&
		{ [ "$accounting" = 0 ] || [ "$max" -le "$bound" ]; } &&
		ok "48 MiB under 64M with swap, fork, the $w writes every page: both read every byte, max_usage $((max >> 10)) KiB (bound $((bound >> 10)))" ||
		{ bad "cow$w" "rc $rc, max_usage $max, bound $bound"; show "cow$w"; }
done
}
run_case cow

case_limits() {
echo "--- limits and policies"
# No swap allowed: the limit ends on the OOM path, as without reclaim.
run noswap 60 -- -m 32M -- "$progs/prog_hold" 48 1
[ "$rc" = 137 ] && ok "without --swap-max nothing is evicted: over the limit, the OOM kill" ||
	{ bad noswap "rc $rc"; show noswap; }
run swappiness0 60 -- -m 32M --swap-max 1G --swappiness 0 -- "$progs/prog_hold" 48 1
[ "$rc" = 137 ] && ok "--swappiness 0: no eviction, the OOM kill" || { bad swappiness0 "rc $rc"; show swappiness0; }
# The swap limit bounds the store: 8M of swap cannot make room for 32M more.
run swapmax 60 -- -m 32M --swap-max 8M -- "$progs/prog_hold" 64 1
smax=$(jget "$tmp/swapmax.json" swap_max_usage 2>/dev/null || echo 0)
[ "$rc" = 137 ] && [ "$smax" -le $((8 * MB)) ] && [ "$smax" -gt 0 ] &&
	ok "--swap-max 8M: the swap stops at $((smax / 1024)) KiB, then the OOM kill" ||
	{ bad swapmax "rc $rc, swap_max_usage $smax"; show swapmax; }

# memory.high: above it pages are evicted in the background, down to it.
g=memgrp-tr-high-$sfx
"$memgrp" run -g "$g" -m 128M --memory-high 32M --swap-max 1G -- "$progs/prog_hold" 64 8 >"$tmp/high.out" 2>&1 &
hpid=$!
usage= seen=
for _ in $(seq 50); do
	sleep 0.2
	grep -q holding "$tmp/high.out" || continue
	usage=$(usage_of "$g")
	seen="$seen $usage"
	[ -n "$usage" ] && [ "$usage" -le $((33 * MB)) ] && break
done
wait $hpid; hrc=$?
[ "$hrc" = 0 ] && [ -n "$usage" ] && [ "$usage" -le $((33 * MB)) ] &&
	ok "--memory-high 32M: a 64 MiB holder is evicted down to $((usage / 1024)) KiB in the background" ||
	{ bad high "rc $hrc, usage seen while holding:$seen"; show high; }

# memory.high set to exactly the group's usage: background reclaim must
# still start when usage then rises past it. (A threshold placed at the
# high limit itself counted "usage == high" as the crossing, for which
# there was nothing to evict; the rise after it then crossed nothing, and
# usage stayed above high for good. Seen as the "high" case above stopping
# at 45-51 MiB in about 1 run of 6 under CPU load.)
g=memgrp-tr-highx-$sfx
"$memgrp" run -g "$g" -m 128M --swap-max 1G -- "$progs/prog_hold" 16 5 24 "$tmp/highx.go" \
	>"$tmp/highx.out" 2>&1 &
xpid=$!
set_at= usage= seen=
for _ in $(seq 50); do
	sleep 0.2
	grep -q holding "$tmp/highx.out" || continue
	# The holder waits without touching memory: usage stands still. Set
	# high to it, and make sure it still stood there after the set (else
	# try again).
	u1=$(usage_of "$g")
	[ -n "$u1" ] && "$memgrp" set "$g" --memory-high "$u1" >/dev/null 2>&1 || continue
	u2=$(usage_of "$g")
	[ "$u1" = "$u2" ] && { set_at=$u1; break; }
done
touch "$tmp/highx.go" # (also when the set failed: the holder must end)
for _ in $(seq 50); do
	[ -n "$set_at" ] || break
	sleep 0.2
	grep -q "MB more" "$tmp/highx.out" || continue
	usage=$(usage_of "$g")
	seen="$seen $usage"
	[ -n "$usage" ] && [ "$usage" -le "$set_at" ] && break
done
wait $xpid; xrc=$?
[ "$xrc" = 0 ] && [ -n "$set_at" ] && [ -n "$usage" ] && [ "$usage" -le "$set_at" ] &&
	ok "--memory-high set to the usage ($((set_at / 1024)) KiB): 24 MiB touched after it are evicted down to $((usage / 1024)) KiB" ||
	{ bad high-exact "rc $xrc, high set at '${set_at}', usage seen after 24 MiB more:$seen"; show highx; }

# Coldest first across processes: an idle 48 MiB holder and a busy process
# share a 64M group; the busy one's working set (24 MiB) stays, the idle
# one's pages go.
g=memgrp-tr-cold-$sfx
"$memgrp" run -g "$g" -m 64M --swap-max 1G -- sh -c \
	"'$progs/prog_hold' 48 12 & sleep 1.5; exec '$progs/prog_evict' 24 rounds 150" >"$tmp/cold.out" 2>&1 &
cpid=$!
sleep 6
"$memgrp" stat --json "$g" >"$tmp/cold.json" 2>/dev/null
wait $cpid; crc=$?
read -r hold busy < <(python3 - "$tmp/cold.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
by = {p["comm"]: p["charged"] for p in d["processes"]}
print(by.get("prog_hold", -1) >> 20, by.get("prog_evict", -1) >> 20)
PY
)
# 72 MiB in a 64M group: at least 8 MiB must go, and they are the idle one's.
[ "$crc" = 0 ] && [ "$hold" -ge 0 ] && [ "$hold" -le 41 ] && [ "$busy" -ge 23 ] &&
	ok "coldest first: the idle holder is down to $hold of 48 MiB, the busy process keeps $busy of 24 MiB; both read their data back" ||
	{ bad coldest "rc $crc, idle holder $hold MiB, busy $busy MiB"; show cold; }
}
run_case limits

case_memgrpd() {
echo "--- memgrpd: low and soft limits"
sock=$tmp/memgrpd.sock
# An unreachable floor: the host always counts as short of memory, so soft
# limits are enforced within seconds.
"$memgrpd" --socket "$sock" --min-available 1P >"$tmp/memgrpd.log" 2>&1 &
dpid=$!
wait_socket "$sock"
mg() { "$memgrp" --socket "$sock" "$@"; }
# Two siblings under a 64M parent: an idle one holding 36 MiB and a busy
# one cycling through 48 MiB. Without protection the idle one is the
# coldest and gives its pages; with --memory-low 40M it keeps them and the
# busy one evicts its own.
siblings() { # PARENT LOW: the idle sibling's usage (MiB) after the busy one's run, in $kept_mib
	local p=$1
	mg create "$p" -m 64M --swap-max 1G
	mg create "$p/keep" --memory-low "$2"
	mg create "$p/grow"
	# The idle one holds until told (it held 12 s: under ASan at load
	# 17-28 the busy one's run outlasted that, and the read found 0).
	rm -f "$tmp/keep.go"
	mg run -g "$p/keep" -- "$progs/prog_hold" 36 0.1 1 "$tmp/keep.go" >"$tmp/keep.out" 2>&1 &
	local kpid=$!
	sleep 2
	mg run -g "$p/grow" -- "$progs/prog_evict" 48 rounds 6 >"$tmp/grow.out" 2>&1; grc=$?
	kept_mib=$(mg stat --json "$p/keep" | python3 -c "import json,sys; print(json.load(sys.stdin)['usage'] >> 20)")
	touch "$tmp/keep.go"
	wait $kpid; krc=$?
}
siblings memgrp-tr-cold-$sfx 0
unprotected=$kept_mib urc="$grc/$krc"
siblings memgrp-tr-low-$sfx 40M
kept=$kept_mib
[ "$urc" = 0/0 ] && [ "$grc" = 0 ] && [ "$krc" = 0 ] && [ "$unprotected" -le 28 ] && [ "$kept" -ge 34 ] &&
	ok "--memory-low 40M: the idle sibling keeps $kept of 36 MiB (unprotected, the coldest, it kept $unprotected)" ||
	{ bad low "rc $urc and $grc/$krc, idle sibling kept $unprotected MiB unprotected, $kept MiB protected"; cat "$tmp/grow.out" "$tmp/keep.out" | tail -5; }

s=memgrp-tr-soft-$sfx
mg create "$s" -m 128M --memory-soft 16M --swap-max 1G
mg run -g "$s" -- "$progs/prog_hold" 48 6 >"$tmp/soft.out" 2>&1 &
spid=$!
susage=
for _ in $(seq 40); do
	sleep 0.25
	susage=$(mg stat --json "$s" 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['usage'] if d['pswpout'] > 0 else '')" 2>/dev/null)
	[ -n "$susage" ] && [ "$susage" -le $((18 * MB)) ] && break
done
wait $spid; src=$?
[ "$src" = 0 ] && [ -n "$susage" ] && [ "$susage" -le $((18 * MB)) ] &&
	grep -q "reclaiming group '$s' toward its soft limit" "$tmp/memgrpd.log" &&
	ok "--memory-soft 16M while the host is short: the group is evicted to $((susage / 1024)) KiB" ||
	{ bad soft "rc $src, usage '$susage'"; tail -5 "$tmp/memgrpd.log"; }
kill "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null; dpid=
}
run_case memgrpd
