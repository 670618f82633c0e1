#!/usr/bin/env bash
# bench/estimate.sh - seed 001's experiments on this machine: a unixbench-like
# suite (bench/estimate.c: process creation, pipe, file copy, memory
# allocation) in a group whose limit rises in 8 MiB steps over 15 runs,
# unmanaged, under memgrp in exact and in estimate mode, and under the
# kernel's memcg (v1) with the same limit. Writes bench/results/estimate.csv
# and three plots beside it (gnuplot): M, R and E against the limit; slow
# and fast regions against the limit; throughput of each workload against
# the limit. Prints the table.
# Usage: bench/estimate.sh [BUILD_DIR]   (as root)
# Environment: SECS (2 per workload), BLOCKS (64: MiB the memory workload
#        maps, a quarter touched), BASE (32: the first limit, MiB), STEP (8),
#        RUNS (15), OUT (bench/results).
set -euo pipefail
build=$(realpath "${1:-build}")
memgrp=$build/src/cli/memgrp
prog=$build/bench/bench_estimate
secs=${SECS:-2}
blocks=${BLOCKS:-64}
base=${BASE:-32}
step=${STEP:-8}
runs=${RUNS:-15}
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/results}
memcg=/sys/fs/cgroup/memory/bench-estimate-$$
tmp=$(mktemp -d)
cleanup() {
	[ -d "$memcg" ] && rmdir "$memcg" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "estimate.sh: run as root" >&2; exit 1; }
for f in "$memgrp" "$prog"; do
	[ -x "$f" ] || { echo "estimate.sh: $f is missing: meson compile -C ${1:-build}" >&2; exit 1; }
done
if ! command -v gnuplot >/dev/null; then
	echo "estimate.sh: installing gnuplot-nox for the plots" >&2
	{ apt-get install -y gnuplot-nox || { apt-get update && apt-get install -y gnuplot-nox; }; } >/dev/null 2>&1 ||
		echo "estimate.sh: no gnuplot: the CSV only" >&2
fi
mkdir -p "$out"
csv=$out/estimate.csv
echo "limit_mib,mode,spawn_per_s,pipe_per_s,copy_kib_per_s,mem_allocs_per_s,mapped_mib,resident_mib,estimate_mib,slow_regions,fast_regions,mode_switches,status" >"$csv"

# sample GROUP FILE: memgrp's figures of GROUP every 200 ms into FILE
# until the group's run ends (the caller kills it).
sample() {
	while :; do
		"$memgrp" stat --json "$1" 2>/dev/null >>"$2" && echo >>"$2"
		sleep 0.2
	done
}

# averages of the samples taken while processes ran: M R E slow fast (MiB, MiB, MiB, n, n)
averages() {
	python3 - "$1" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if d.get("nr_processes", 0) >= 2:  # the suite and its memory holder
        rows.append(d)
if not rows:
    print("0 0 0 0 0")
else:
    n = len(rows)
    avg = lambda k: sum(r[k] for r in rows) / n
    print("%.1f %.1f %.1f %.1f %.1f" % (avg("mapped") / 2**20, avg("resident") / 2**20,
                                      avg("estimate") / 2**20, avg("slow_regions"), avg("fast_regions")))
PY
}

# one MODE LIMIT_MIB: a run of the suite; appends its CSV row.
one() {
	local mode=$1 limit=$2 line rc=0 g=memgrp-bench-est-$$ figs="" sw="" status=ok
	local samples=$tmp/samples
	case $mode in
	unmanaged)
		line=$("$prog" "$secs" "$blocks" "$tmp" 2>"$tmp/err") || rc=$?
		figs="" ;;
	memcg)
		mkdir -p "$memcg"
		echo 0 >"$memcg/memory.force_empty" 2>/dev/null || true
		echo $((limit << 20)) >"$memcg/memory.limit_in_bytes"
		line=$(sh -c 'echo $$ > "$1/tasks" && shift && exec "$@"' sh "$memcg" \
			"$prog" "$secs" "$blocks" "$tmp" 2>"$tmp/err") || rc=$?
		rmdir "$memcg" 2>/dev/null || true ;;
	exact|estimate)
		: >"$samples"
		sample "$g" "$samples" &
		local sp=$!
		line=$(timeout -k 5 300 "$memgrp" run -g "$g" -m "${limit}M" --mode "$mode" \
			--stats-json "$tmp/stats.json" -- "$prog" "$secs" "$blocks" "$tmp" 2>"$tmp/err") || rc=$?
		kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null || true
		figs=$(averages "$samples")
		sw=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['mode_switches'])" "$tmp/stats.json" 2>/dev/null || echo "") ;;
	esac
	if [ $rc != 0 ] || [ -z "$line" ]; then
		status="failed(rc=$rc)"
		[ $rc = 137 ] && status=killed
		line="spawn 0 pipe 0 copy 0 mem 0"
		sed 's/^/    /' "$tmp/err" | tail -3 >&2
	fi
	set -- $line
	local m="" r="" e="" slow="" fast=""
	[ -n "$figs" ] && read -r m r e slow fast <<<"$figs"
	echo "$limit,$mode,$2,$4,$6,$8,$m,$r,$e,$slow,$fast,$sw,$status" >>"$csv"
	printf '%6s MiB  %-9s  spawn %7s/s  pipe %8s/s  copy %7s KiB/s  mem %6s/s  M %6s R %6s E %6s MiB  slow %5s fast %5s  %s\n' \
		"$limit" "$mode" "$2" "$4" "$6" "$8" "${m:--}" "${r:--}" "${e:--}" "${slow:--}" "${fast:--}" "$status"
}

echo "bench/estimate: $runs limits from $base MiB in $step MiB steps; $secs s per workload; memory workload $blocks x 1 MiB, a quarter touched"
for ((i = 0; i < runs; i++)); do
	limit=$((base + i * step))
	for mode in unmanaged memcg exact estimate; do
		one "$mode" "$limit"
	done
done

# The seed's claims, from the CSV: estimate against unmanaged at the three
# most generous limits, per workload.
python3 - "$csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
limits = sorted({int(r["limit_mib"]) for r in rows})
top = limits[-3:]
def mean(mode, key):
    v = [float(r[key]) for r in rows if r["mode"] == mode and int(r["limit_mib"]) in top and r["status"] == "ok"]
    return sum(v) / len(v) if v else 0.0
print("\nAt the three most generous limits (%s MiB), against unmanaged:" % ", ".join(map(str, top)))
for key, name in (("spawn_per_s", "spawn"), ("pipe_per_s", "pipe"), ("copy_kib_per_s", "copy"), ("mem_allocs_per_s", "mem")):
    u = mean("unmanaged", key)
    if not u:
        continue
    print("  %-6s unmanaged %10.0f  memcg %6.1f%%  exact %6.1f%%  estimate %6.1f%%" % (
        name, u, 100 * mean("memcg", key) / u, 100 * mean("exact", key) / u, 100 * mean("estimate", key) / u))
PY

if command -v gnuplot >/dev/null; then
	cd "$out"
	for mode in unmanaged memcg exact estimate; do
		awk -F, -v m=$mode 'NR > 1 && $2 == m' estimate.csv >"$tmp/$mode.dat"
	done
	gnuplot <<EOF
set datafile separator ","
set terminal pngcairo size 900,600
set xlabel "group limit (MiB)"
set key top left
set grid
set output "estimate-mre.png"
set title "Estimate mode: mapped M, resident R and estimate E against the limit"
set ylabel "MiB (average over the run)"
plot "$tmp/estimate.dat" using 1:7 with linespoints title "M (mapped)", \
     "$tmp/estimate.dat" using 1:8 with linespoints title "R (resident)", \
     "$tmp/estimate.dat" using 1:9 with linespoints title "E (estimate, charged)", \
     x with lines dashtype 2 title "limit"
set output "estimate-regions.png"
set title "Estimate mode: slow and fast regions against the limit"
set ylabel "regions (average over the run)"
plot "$tmp/estimate.dat" using 1:10 with linespoints title "slow", \
     "$tmp/estimate.dat" using 1:11 with linespoints title "fast"
set terminal pngcairo size 1200,900
set output "estimate-throughput.png"
set multiplot layout 2,2 title "Throughput against the limit: unmanaged, kernel memcg, memgrp exact, memgrp estimate"
set key bottom right
do for [c in "3 4 5 6"] {
  col = c + 0
  set title (col == 3 ? "process creation (forks/s)" : col == 4 ? "pipe (512 B round trips/s)" : col == 5 ? "file copy (KiB/s)" : "memory allocation (1 MiB blocks/s)")
  set ylabel ""
  set yrange [0:*]
  plot "$tmp/unmanaged.dat" using 1:col with linespoints title "unmanaged", \
       "$tmp/memcg.dat" using 1:col with linespoints title "memcg", \
       "$tmp/exact.dat" using 1:col with linespoints title "exact", \
       "$tmp/estimate.dat" using 1:col with linespoints title "estimate"
}
unset multiplot
EOF
	echo "plots: $out/estimate-mre.png $out/estimate-regions.png $out/estimate-throughput.png"
fi
echo "CSV: $csv"
