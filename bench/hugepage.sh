#!/usr/bin/env bash
# bench/hugepage.sh - issue 20 item 7 (a) and (b), side by side in one run: (a) bloat of a
# sparse touch (r % of N MiB at random, r from 10 to 100) under Linux THP (MADV_HUGEPAGE),
# Linux 4 KiB (MADV_NOHUGEPAGE) and memgrp --thp ingens: Rss over touched bytes; (b) speed of
# dependent random loads over a dense region: Linux 4 KiB, Linux THP, memgrp with huge pages
# off, memgrp ingens (waiting for its promotions first); (e) first-touch latency p50/p99 while
# memgrp promotes, beside Linux THP (with the host's defrag setting). Writes
# bench/results/hugepage-bloat.csv, hugepage-speed.csv, hugepage-latency.csv and prints them.
# Usage: bench/hugepage.sh [BUILD_DIR]   (as root)
# Environment: BLOAT_MIB (1024), SPEED_MIB (1024), LOADS (20000000), REPS (3: speed runs per
#        configuration, the median kept), WAIT (60: seconds to wait for promotions), OUT,
#        PARTS ("a b e": which of the three to run).
set -euo pipefail
build=$(realpath "${1:-build}")
memgrp=$build/src/cli/memgrp
prog=$build/bench/bench_hugepage
bloat_mib=${BLOAT_MIB:-1024}
speed_mib=${SPEED_MIB:-1024}
loads=${LOADS:-20000000}
reps=${REPS:-3}
wait_s=${WAIT:-60}
parts=" ${PARTS:-a b e} "
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/results}

[ "$(id -u)" = 0 ] || { echo "hugepage.sh: run as root" >&2; exit 1; }
for f in "$memgrp" "$prog"; do
	[ -x "$f" ] || { echo "hugepage.sh: $f is missing: meson compile -C ${1:-build}" >&2; exit 1; }
done
mkdir -p "$out"
field() { grep -o "\b$1=[0-9.]*" | cut -d= -f2; }
# memgrp with a group of its own per run (bench-*: not the tests' names);
# --thp-rate 0: promotions as fast as the collapse goes.
mg() { "$memgrp" run -g "bench-thp-$$-$RANDOM" --thp "$1" --thp-rate 0 -- "${@:2}"; }

echo "# load at start: $(cut -d' ' -f1-3 /proc/loadavg); THP enabled: $(cat /sys/kernel/mm/transparent_hugepage/enabled)"
if [[ $parts == *" a "* ]]; then
echo "pct,linux_thp_bloat,linux_4k_bloat,memgrp_4k_bloat,memgrp_ingens_bloat,linux_thp_huge_kb,memgrp_ingens_huge_kb,touched_kb" \
	>"$out/hugepage-bloat.csv"
printf '%-5s %14s %14s %14s %14s   (bloat: (Rss - touched) / touched, %s MiB region)\n' "r %" "Linux THP" \
	"Linux 4 KiB" "memgrp 4 KiB" "memgrp ingens" "$bloat_mib"
for pct in 10 20 30 40 50 60 70 80 90 95 100; do
	thp=$("$prog" bloat "$bloat_mib" "$pct" huge wait 2)
	base=$("$prog" bloat "$bloat_mib" "$pct" base)
	mg4=$(mg never "$prog" bloat "$bloat_mib" "$pct" none)
	ing=$(mg ingens "$prog" bloat "$bloat_mib" "$pct" none wait "$wait_s")
	printf '%-5s %13s%% %13s%% %13s%% %13s%%\n' "$pct" "$(field bloat_pct <<<"$thp")" \
		"$(field bloat_pct <<<"$base")" "$(field bloat_pct <<<"$mg4")" "$(field bloat_pct <<<"$ing")"
	echo "$pct,$(field bloat_pct <<<"$thp"),$(field bloat_pct <<<"$base"),$(field bloat_pct <<<"$mg4"),$(field bloat_pct <<<"$ing"),$(field huge_kb <<<"$thp"),$(field huge_kb <<<"$ing"),$(field touched_kb <<<"$thp")" \
		>>"$out/hugepage-bloat.csv"
done
fi

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
speed() { # NAME CMD...: median ns per load of $reps runs, and the last run's huge kB
	local i r ns=() huge
	for i in $(seq "$reps"); do
		r=$("$@")
		ns+=("$(field ns_per_load <<<"$r")")
		huge=$(field huge_kb <<<"$r")
	done
	printf '%s %s\n' "$(printf '%s\n' "${ns[@]}" | median)" "$huge"
}
if [[ $parts == *" b "* ]]; then
echo
echo "# speed: $loads dependent loads over $speed_mib MiB, median of $reps"
read -r base_ns base_h < <(speed "$prog" speed "$speed_mib" base loads "$loads")
read -r thp_ns thp_h < <(speed "$prog" speed "$speed_mib" huge wait 2 loads "$loads")
read -r mg4_ns mg4_h < <(speed mg never "$prog" speed "$speed_mib" none loads "$loads")
read -r ing_ns ing_h < <(speed mg ingens "$prog" speed "$speed_mib" none wait "$wait_s" loads "$loads")
kept=$(awk -v b="$base_ns" -v t="$thp_ns" -v g="$ing_ns" 'BEGIN {
	if (b - t <= 0) print "n/a"; else printf "%.0f", 100 * (b - g) / (b - t) }')
{
	echo "config,ns_per_load,huge_kb"
	echo "linux_4k,$base_ns,$base_h"
	echo "linux_thp,$thp_ns,$thp_h"
	echo "memgrp_4k,$mg4_ns,$mg4_h"
	echo "memgrp_ingens,$ing_ns,$ing_h"
} >"$out/hugepage-speed.csv"
printf '%-15s %8s ns/load  %8s kB huge\n' "Linux 4 KiB" "$base_ns" "$base_h" "Linux THP" "$thp_ns" "$thp_h" \
	"memgrp 4 KiB" "$mg4_ns" "$mg4_h" "memgrp ingens" "$ing_ns" "$ing_h"
echo "memgrp ingens keeps $kept % of Linux THP's speedup over 4 KiB (target: at least 90 %)"
fi

if [[ $parts == *" e "* ]]; then
echo
echo "# (e) first-touch latency of every page of $speed_mib MiB, in order (defrag: $(cat /sys/kernel/mm/transparent_hugepage/defrag))"
echo "config,p50_us,p99_us,p999_us,max_us,huge_kb" >"$out/hugepage-latency.csv"
for c in "linux_4k:$prog latency $speed_mib base" "linux_thp:$prog latency $speed_mib huge" \
	 "memgrp_4k:mg never $prog latency $speed_mib none" "memgrp_ingens:mg ingens $prog latency $speed_mib none"; do
	name=${c%%:*}
	# shellcheck disable=SC2086
	r=$(${c#*:})
	printf '%-15s %s\n' "$name" "$r"
	echo "$name,$(field p50_us <<<"$r"),$(field p99_us <<<"$r"),$(field p999_us <<<"$r"),$(field max_us <<<"$r"),$(field huge_kb <<<"$r")" \
		>>"$out/hugepage-latency.csv"
done
fi
