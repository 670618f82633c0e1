#!/usr/bin/env bash
# bench/oom.sh - how long a fault waits at an OOM: from the refused charge to
# the fault resuming (victim chosen, killed, its memory freed), memgrp
# beside the kernel's memcg v1 OOM killer on the same workload. Each round:
# a victim holds VICTIM MB in a group (cgroup) limited to LIMIT; a grower
# touches GROW MB page by page, its charge is refused, the victim (the
# largest: the policy's choice and the kernel's) is killed, and the grower
# prints its longest single-page write. Prints p50/p99/max over ROUNDS
# rounds for each, and checks that the victim died and the grower lived
# every time.
# Usage: bench/oom.sh [BUILD_DIR]   (as root)
# Environment: ROUNDS (40), LIMIT_MB (64), VICTIM (40), GROW (40),
#        BACKSTOP (off: memgrpd without kernel cgroups; on: with them).
set -euo pipefail
build=$(realpath "${1:-build}")
memgrp=$build/src/cli/memgrp
memgrpd=$build/src/daemon/memgrpd
prog=$build/bench/bench_oom
rounds=${ROUNDS:-40}
limit=${LIMIT_MB:-64}
victim=${VICTIM:-40}
grow=${GROW:-40}
tmp=$(mktemp -d)
kcg=/sys/fs/cgroup/memory/bench-oom-$$
dpid=
cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
	if [ -d "$kcg" ]; then
		for p in $(cat "$kcg/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		sleep 0.2
		rmdir "$kcg" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "oom.sh: run as root" >&2; exit 1; }
for f in "$memgrp" "$memgrpd" "$prog"; do
	[ -x "$f" ] || { echo "oom.sh: $f is missing: meson compile -C ${1:-build}" >&2; exit 1; }
done
[ -d /sys/fs/cgroup/memory ] || { echo "oom.sh: no memcg v1 at /sys/fs/cgroup/memory" >&2; exit 1; }

# quantiles FILE: p50 p99 max of the numbers in FILE (nearest rank)
quantiles() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1]
		printf "%d %d %d\n", p50, p99, v[NR] }'
}

# round_memgrp I: one OOM under memgrpd; appends the stall (us) to
# $tmp/memgrp.us, or says what went wrong.
sock=$tmp/memgrpd.sock
"$memgrpd" --socket "$sock" --state-dir none --kernel-backstop "${BACKSTOP:-off}" 2>"$tmp/memgrpd.log" &
dpid=$!
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
mg() { "$memgrp" --socket "$sock" "$@"; }
mg create bench-oom -m "${limit}M"
bad=0
for i in $(seq "$rounds"); do
	rm -f "$tmp/v.out" # (not the last round's "holding")
	mg run -g bench-oom -- "$prog" hold "$victim" >"$tmp/v.out" 2>&1 &
	vpid=$!
	for _ in $(seq 100); do grep -qs holding "$tmp/v.out" && break; sleep 0.05; done
	out=$(mg run -g bench-oom -- "$prog" grow "$grow" 2>"$tmp/g.err") || { bad=$((bad + 1)); echo "memgrp round $i: the grower failed: $(cat "$tmp/g.err")" >&2; }
	wait "$vpid" && vst=0 || vst=$?
	[ "$vst" = 137 ] || { bad=$((bad + 1)); echo "memgrp round $i: the victim ended with $vst" >&2; }
	[ -n "$out" ] && echo "${out#stall_us }" >>"$tmp/memgrp.us"
	for _ in $(seq 50); do [ "$(mg stat --json bench-oom | python3 -c 'import json,sys; print(json.load(sys.stdin)["nr_processes"])')" = 0 ] && break; sleep 0.05; done
done
kills=$(mg stat --json bench-oom | python3 -c 'import json,sys; print(json.load(sys.stdin)["oom_kill"])')
mg rm bench-oom
kill "$dpid"; wait "$dpid" 2>/dev/null || true; dpid=

# the kernel: the same processes in a memcg v1 group at the same limit
mkdir "$kcg"
echo $((limit << 20)) >"$kcg/memory.limit_in_bytes"
inkcg() { sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$kcg" "$@"; }
kbad=0
for i in $(seq "$rounds"); do
	rm -f "$tmp/v.out"
	inkcg "$prog" hold "$victim" >"$tmp/v.out" 2>&1 &
	vpid=$!
	for _ in $(seq 100); do grep -qs holding "$tmp/v.out" && break; sleep 0.05; done
	out=$(inkcg "$prog" grow "$grow" 2>"$tmp/g.err") || { kbad=$((kbad + 1)); echo "kernel round $i: the grower failed: $(cat "$tmp/g.err")" >&2; }
	wait "$vpid" && vst=0 || vst=$?
	[ "$vst" = 137 ] || { kbad=$((kbad + 1)); echo "kernel round $i: the victim ended with $vst" >&2; }
	[ -n "$out" ] && echo "${out#stall_us }" >>"$tmp/kernel.us"
done
kkills=$(awk '/^oom_kill /{print $2}' "$kcg/memory.oom_control")

echo "OOM stall: refused charge -> fault resumed (victim ${victim}M killed, grower ${grow}M, limit ${limit}M), $rounds rounds"
printf '%-16s %10s %10s %10s %8s %s\n' "" p50_us p99_us max_us kills "wrong victim or failed"
read -r a b c < <(quantiles "$tmp/memgrp.us")
printf '%-16s %10s %10s %10s %8s %s\n' memgrp "$a" "$b" "$c" "$kills" "$bad"
read -r a b c < <(quantiles "$tmp/kernel.us")
printf '%-16s %10s %10s %10s %8s %s\n' "kernel memcg v1" "$a" "$b" "$c" "$kkills" "$kbad"
