#!/usr/bin/env bash
# bench/realmem.sh - the host memory a group takes under a limit with swap:
# a workload of 4x the limit in data that compresses about 2.5:1 (the
# pattern of bench_reclaim), held untouched, under memgrp (its usage plus
# its processes' compressed stores, all in their RSS) beside the kernel's
# memcg v1 with zram (its usage plus zram's pool). memgrp's bound: the
# limit, plus what its stores hold compressed, plus a slack for the agent's
# own memory: what it reports untracked (the libraries' and its own
# memory outside the group's ranges), what it holds staged (moved out, not
# compressed yet), 8 MiB (its arena: registry, staging slots, restore
# buffers), and 1/16 of the compressed bytes (the store's slab rounding
# and hash table).
# Usage: bench/realmem.sh [BUILD_DIR]   (as root; sets up and removes its own
#        zram swap device and memcg group)
# Environment: LIMIT (default 64M), HOLD (seconds held, 3), LOAD (N
#        CPU-bound processes beside every column, default 0).
set -euo pipefail
build=$(realpath "${1:-build}")
memgrp=$build/src/cli/memgrp
prog=$build/bench/bench_reclaim
limit=${LIMIT:-64M}
hold=${HOLD:-3}
limit_bytes=$(numfmt --from=iec "$limit")
ws_mib=$((4 * limit_bytes >> 20))
tmp=$(mktemp -d)
cg=/sys/fs/cgroup/memory/bench-realmem-$$
loadpids=()

. "$(dirname "$0")/kswap.sh"
stop_load() { [ ${#loadpids[@]} -eq 0 ] || kill "${loadpids[@]}" 2>/dev/null || true; }
trap 'stop_load; teardown' EXIT
trap 'exit 130' INT TERM

if ! setup_kernel; then
	echo "realmem.sh: no kernel column: $why" >&2
	exit 1
fi
for _ in $(seq "${LOAD:-0}"); do
	sh -c 'while :; do :; done' &
	loadpids+=($!)
done

# anon_kb PID...: their RssAnon + RssShmem, in KiB
anon_kb() {
	local kb=0 p v
	for p in "$@"; do
		v=$(awk '/^(RssAnon|RssShmem):/ {s += $2} END {print s + 0}' "/proc/$p/status" 2>/dev/null || echo 0)
		kb=$((kb + v))
	done
	echo $kb
}

# wait_filled FILE PID: until the workload says it filled its memory
wait_filled() {
	for _ in $(seq 600); do
		grep -q filled "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# memgrp: sampled one second after the fill (the stores settled)
grp=memgrp-realmem-$$
"$memgrp" run -g "$grp" -m "$limit" --swap-max 4G --codec lz4 --stats-json "$tmp/m.json" -- \
	"$prog" hold "$ws_mib" "$hold" >"$tmp/m.out" 2>"$tmp/m.err" &
mpid=$!
wait_filled "$tmp/m.out" $mpid || { echo "realmem.sh: memgrp run failed: $(tail -3 "$tmp/m.err")" >&2; exit 1; }
sleep 1
"$memgrp" stat --json "$grp" >"$tmp/m.stat"
pids=$(python3 -c 'import json,sys; print(" ".join(str(p["pid"]) for p in json.load(open(sys.argv[1]))["processes"]))' "$tmp/m.stat")
m_host=$(( $(anon_kb $pids) * 1024 ))
wait $mpid || { echo "realmem.sh: memgrp's workload failed: $(tail -3 "$tmp/m.err")" >&2; exit 1; }
grep -q "held=" "$tmp/m.out" || { echo "realmem.sh: memgrp's workload did not check its data" >&2; exit 1; }

# the kernel: memcg v1 + zram, sampled the same way
sh -c 'echo $$ > "$1/tasks" && shift && exec "$@"' sh "$cg" "$prog" hold "$ws_mib" "$hold" \
	>"$tmp/k.out" 2>"$tmp/k.err" &
kpid=$!
wait_filled "$tmp/k.out" $kpid || { echo "realmem.sh: the memcg run failed: $(tail -3 "$tmp/k.err")" >&2; exit 1; }
sleep 1
k_anon=$(( $(anon_kb $kpid) * 1024 ))
k_usage=$(cat "$cg/memory.usage_in_bytes")
read -r z_orig z_compr z_used _ < "/sys/block/$zdev/mm_stat"
wait $kpid || { echo "realmem.sh: the memcg workload failed (OOM?): $(tail -3 "$tmp/k.err")" >&2; exit 1; }

python3 - "$tmp/m.stat" "$m_host" "$limit_bytes" "$k_anon" "$k_usage" "$z_orig" "$z_compr" "$z_used" "$ws_mib" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
m_host, limit, k_anon, k_usage, z_orig, z_compr, z_used, ws = map(int, sys.argv[2:])
M = 1 << 20
stored = st["swap_usage"]
comp = st["compressed_bytes"]
staged = st["staged_bytes"]
untracked = st["untracked_bytes"]
slack = untracked + staged + 8 * M + comp // 16
bound = limit + comp + slack
print(f"realmem: {ws} MiB written (about 2.5:1 with lz4), limit {limit // M} MiB, held untouched")
print(f"{'':34} {'memgrp lz4':>14} {'memcg+zram':>14}")
print(f"{'in memory (the limit counts it)':34} {st['usage'] / M:11.1f} MiB {k_usage / M:11.1f} MiB")
print(f"{'swapped out, uncompressed':34} {stored / M:11.1f} MiB {z_orig / M:11.1f} MiB")
print(f"{'swapped out, compressed':34} {comp / M:11.1f} MiB {z_compr / M:11.1f} MiB")
r1 = f"{stored / comp:.2f}:1" if comp else "-"
r2 = f"{z_orig / z_compr:.2f}:1" if z_compr else "-"
print(f"{'ratio':34} {r1:>14} {r2:>14}")
print(f"{'staged (moved out, not compressed)':34} {staged / M:11.1f} MiB {'-':>14}")
print(f"{'host memory it takes':34} {m_host / M:11.1f} MiB {(k_anon + z_used) / M:11.1f} MiB")
print(f"{'  of which':34} {'RSS of the group':>14} {'RSS + zram pool':>14}")
print(f"{'untracked (agent, libraries)':34} {untracked / M:11.1f} MiB {'-':>14}")
print(f"bound for memgrp: limit + compressed + slack (untracked + staged + 8 MiB + compressed/16 = "
      f"{slack / M:.1f} MiB) = {bound / M:.1f} MiB: {'holds' if m_host <= bound else 'EXCEEDED'} "
      f"({m_host / M:.1f} MiB, {(m_host - limit - comp) / M:.1f} MiB over limit + compressed)")
print(f"the kernel's total: usage + zram mem_used_total = {(k_usage + z_used) / M:.1f} MiB")
sys.exit(0 if m_host <= bound else 1)
PY
