#!/usr/bin/env bash
# bench/core.sh - the core's charge and threshold costs, beside the kernel's fault path.
# Usage: bench/core.sh [BUILD_DIR]   (root needed for the kernel memcg column)
set -euo pipefail
build=${1:-build}
pages=65536   # 256 MiB of first touches per run

"$build/bench/bench_core"

best() { # best of 5 runs of a command printing one number
	for _ in 1 2 3 4 5; do "$@"; done | sort -n | head -1
}

echo
echo "context: the kernel path each charge rides on (ns per 4K first touch, best of 5)"
native=$(best "$build/bench/bench_touch" $pages)
printf '  %-34s %8s\n' "native, root cgroup" "$native"
cg=/sys/fs/cgroup/memory/bench-core-$$
if [ -w /sys/fs/cgroup/memory ] && mkdir "$cg" 2>/dev/null; then
	trap 'rmdir "$cg" 2>/dev/null || true' EXIT
	echo 1G > "$cg/memory.limit_in_bytes"
	memcg=$(best sh -c "echo \$\$ > $cg/tasks && exec $build/bench/bench_touch $pages")
	printf '  %-34s %8s\n' "kernel memcg v1 group (1G limit)" "$memcg"
else
	echo "  kernel memcg v1: skipped (needs root and /sys/fs/cgroup/memory)"
fi
