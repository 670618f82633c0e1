#!/usr/bin/env bash
# bench/fault.sh - first-touch cost under memgrp beside the native path and the
# kernel's memcg, and the manager's idle cost.
# Usage: bench/fault.sh [BUILD_DIR]   (as root, for memgrp and the memcg column)
# Environment: RUNS (5), BACKSTOP (on: the default; off: memgrp run
#        --kernel-backstop off; both: the default fault-around row with each)
set -euo pipefail
build=$(realpath "${1:-build}")
memgrp=$build/src/cli/memgrp
touch=$build/bench/bench_firsttouch
pages=262144          # 1 GiB
runs=${RUNS:-5}

# best CMD...: the best (lowest) total ms of $runs runs; prints "ms ns/page rss_kib".
best() {
	for _ in $(seq "$runs"); do "$@"; done | sort -n | head -1
}

memcg_run() { # memcg_run ARGS...: in a fresh kernel memcg v1 group, 2G limit
	local cg=/sys/fs/cgroup/memory/bench-fault-$$
	mkdir -p "$cg"
	echo 2G > "$cg/memory.limit_in_bytes"
	sh -c "echo \$\$ > $cg/tasks && exec $*"
	rmdir "$cg" 2>/dev/null || true
}

printf 'first touch of %d pages (1 GiB), best of %d runs\n' "$pages" "$runs"
printf '%-40s %12s %12s %10s\n' "" "total ms" "ns/page" "vs native"
for threads in 1 2; do
	native=$(best "$touch" $pages $threads)
	nat_ms=${native%% *}
	row() {
		local ms ns rss
		read -r ms ns rss <<<"$2"
		printf '%-40s %12s %12s %9.2fx\n' "$1" "$ms" "$ns" "$(echo "$ms / $nat_ms" | bc -l)"
	}
	row "native, $threads thread(s)" "$native"
	if [ -w /sys/fs/cgroup/memory ]; then
		row "kernel memcg v1, $threads thread(s)" "$(best memcg_run "$touch" $pages $threads)"
		# the same memcg, made and watched by memgrp: no agent
		row "memgrp --backend kernel, $threads thr" \
			"$(best "$memgrp" run --backend kernel -m 2G -- "$touch" $pages $threads)"
	fi
	bs=${BACKSTOP:-on}
	for fa in 1 16 64; do
		label="memgrp, fault-around $fa, $threads thread(s)"
		[ "$fa" = 64 ] && label="memgrp, fault-around 64 (default), $threads thr"
		[ "$bs" = both ] && [ "$fa" = 64 ] && label="memgrp, fa 64, backstop on, $threads thr"
		row "$label" "$(best "$memgrp" run --fault-around $fa --kernel-backstop "${bs/both/on}" -- "$touch" $pages $threads)"
	done
	[ "$bs" = both ] && row "memgrp, fa 64, backstop off, $threads thr" \
		"$(best "$memgrp" run --kernel-backstop off -- "$touch" $pages $threads)"
done

# A nested group's processes charge their own counter within a grant the
# manager gives in batches (docs/design.md, Trust and permissions): the
# round trip per batch is the cost, against a top-level group of the same
# memgrpd. NESTED=0 skips it.
if [ "${NESTED:-1}" = 1 ] && [ -x "$build/src/daemon/memgrpd" ]; then
	nsock=/tmp/memgrp-bench-nested-$$.sock
	"$build/src/daemon/memgrpd" --socket "$nsock" --state-dir none 2>/dev/null &
	npid=$!
	for _ in $(seq 50); do [ -S "$nsock" ] && break; sleep 0.1; done
	"$memgrp" --socket "$nsock" create bench-top -m 4G
	"$memgrp" --socket "$nsock" create bench-top/sub
	native=$(best "$touch" $pages 1)
	nat_ms=${native%% *}
	for g in bench-top bench-top/sub; do
		read -r ms ns rss <<<"$(best "$memgrp" --socket "$nsock" run -g $g -- "$touch" $pages 1)"
		printf '%-40s %12s %12s %9.2fx\n' "memgrpd, group $g, 1 thread" "$ms" "$ns" \
			"$(echo "$ms / $nat_ms" | bc -l)"
	done
	kill "$npid"; wait "$npid" 2>/dev/null || true
fi

echo
echo "sparse access: one byte in every 16th page of 1 GiB (16384 pages touched)"
read -r ms ns rss < <("$touch" $pages 1 16)
printf '  %-38s %8s ms  peak RSS %7d KiB\n' "native" "$ms" "$rss"
for fa in 16 64; do
	"$memgrp" run --fault-around $fa --stats-json /tmp/memgrp-bench-$$.json -- "$touch" $pages 1 16 >/tmp/memgrp-bench-$$.out
	read -r ms ns rss </tmp/memgrp-bench-$$.out
	charged=$(python3 -c "import json; print(json.load(open('/tmp/memgrp-bench-$$.json'))['max_usage'] // 1024)")
	printf '  %-38s %8s ms  peak RSS %7d KiB, max_usage %7d KiB\n' "memgrp, fault-around $fa" "$ms" "$rss" "$charged"
done
rm -f /tmp/memgrp-bench-$$.json /tmp/memgrp-bench-$$.out

echo
echo "manager (memgrp run's embedded memgrpd) while its group sleeps 10 s"
"$memgrp" run -g memgrp-idle-bench -- sleep 11 &
mpid=$!
sleep 0.5
read -r u0 s0 < <(awk '{print $14, $15}' /proc/$mpid/stat)
sleep 10
read -r u1 s1 < <(awk '{print $14, $15}' /proc/$mpid/stat)
rss=$(awk '/VmRSS/ {print $2, $3}' /proc/$mpid/status)
wait $mpid
printf '  CPU over 10 s idle: %d ticks (user+system, %s ticks/s)   RSS: %s\n' \
	$(( (u1 - u0) + (s1 - s0) )) "$(getconf CLK_TCK)" "$rss"
