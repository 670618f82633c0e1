#!/usr/bin/env bash
# bench/start.sh - what a process start costs under memgrp (issue 17, part 2),
# side by side in one run: unmanaged, memgrp exact and estimate (deferred
# start, the default), and memgrp exact with MEMGRP_START_ALLOWANCE=0 (every
# process starts its fault handler at once: the start before the deferred
# one). Workloads: a shell loop of /bin/true; bench/estimate's fork+exit+wait
# and pipe round trips; a parallel `meson compile` of memgrp itself in a
# temp dir. Runs are interleaved (variant by variant within each round) and
# the median of the rounds is printed with its ratio to unmanaged.
# Usage: bench/start.sh [BUILD_DIR]   (as root)
# Environment: ROUNDS (5), TRUES (1000: /bin/true per loop), SECS (2: per
#        spawn/pipe run), BUILD_ROUNDS (1: 0 skips the meson compile), JOBS
#        (2), LIMIT (4G: the managed runs' limit, generous), VARIANTS (the
#        columns, default "unmanaged exact estimate exact-nodefer").
set -euo pipefail
build=$(realpath "${1:-build}")
memgrp=$build/src/cli/memgrp
prog=$build/bench/bench_estimate
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
rounds=${ROUNDS:-5}
trues=${TRUES:-1000}
secs=${SECS:-2}
build_rounds=${BUILD_ROUNDS:-1}
jobs=${JOBS:-2}
limit=${LIMIT:-4G}
variants=${VARIANTS:-unmanaged exact estimate exact-nodefer}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "start.sh: run as root" >&2; exit 1; }
for f in "$memgrp" "$prog"; do
	[ -x "$f" ] || { echo "start.sh: $f is missing: meson compile -C ${1:-build}" >&2; exit 1; }
done

# run VARIANT CMD...: CMD unmanaged, or under memgrp run in that variant.
run() {
	local v=$1
	shift
	case $v in
	unmanaged) "$@" ;;
	exact | estimate) "$memgrp" run -m "$limit" --mode "$v" -- "$@" ;;
	exact-nodefer) MEMGRP_START_ALLOWANCE=0 "$memgrp" run -m "$limit" --mode exact -- "$@" ;;
	*) echo "start.sh: unknown variant $v" >&2; exit 2 ;;
	esac
}

# seconds CMD...: wall time of CMD, in seconds (3 decimals).
seconds() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null
	t1=$(date +%s%N)
	echo "scale=3; ($t1 - $t0) / 1000000000" | bc
}

# record WORKLOAD VARIANT VALUE
record() { echo "$1 $2 $3" >>"$tmp/results"; }

echo "bench/start: $rounds rounds; $trues x /bin/true; spawn/pipe ${secs}s each; meson compile -j$jobs x $build_rounds; limit $limit; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 0; r < rounds; r++)); do
	for v in $variants; do
		record true "$v" "$(seconds run "$v" bash -c "for ((i = 0; i < $trues; i++)); do /bin/true; done")"
		set -- $(BENCH_ONLY=spawn run "$v" "$prog" "$secs" 1 "$tmp")
		record spawn "$v" "$2"
		set -- $(BENCH_ONLY=pipe run "$v" "$prog" "$secs" 1 "$tmp")
		record pipe "$v" "$4"
	done
done

if [ "$build_rounds" -gt 0 ]; then
	# The sources as committed (no build dirs), set up once per run
	# outside the timing; ccache off so that every run compiles.
	git -C "$src" archive --prefix=tree/ HEAD | tar -x -C "$tmp"
	for ((r = 0; r < build_rounds; r++)); do
		for v in $variants; do
			rm -rf "$tmp/b"
			CCACHE_DISABLE=1 meson setup "$tmp/b" "$tmp/tree" >/dev/null
			record build "$v" "$(CCACHE_DISABLE=1 seconds run "$v" meson compile -C "$tmp/b" -j "$jobs")"
		done
	done
fi

python3 - "$tmp/results" "$variants" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
variants = sys.argv[2].split()
units = {"true": "s (lower is better)", "spawn": "forks/s", "pipe": "round trips/s",
         "build": "s (lower is better)"}
print("\n%-7s %-22s" % ("", "unit") + "".join("%20s" % v for v in variants))
for w in ("true", "spawn", "pipe", "build"):
    med = {}
    for v in variants:
        vals = [float(r[2]) for r in rows if r[0] == w and r[1] == v]
        if vals:
            med[v] = statistics.median(vals)
    if not med:
        continue
    base = med.get("unmanaged")
    cells = []
    for v in variants:
        if v not in med:
            cells.append("%20s" % "-")
        elif base and v != "unmanaged":
            # time: managed / unmanaged (x); rate: managed / unmanaged (%)
            if w in ("true", "build"):
                cells.append("%20s" % ("%.2f (%.2fx)" % (med[v], med[v] / base)))
            else:
                cells.append("%20s" % ("%.0f (%.1f%%)" % (med[v], 100 * med[v] / base)))
        else:
            cells.append("%20s" % ("%.2f" % med[v] if w in ("true", "build") else "%.0f" % med[v]))
    print("%-7s %-22s" % (w, units[w]) + "".join(cells))
PY
