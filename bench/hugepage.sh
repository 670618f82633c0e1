#!/usr/bin/env bash
# bench/hugepage.sh - issue 20 item 7 (a) and (b), side by side in one run: (a) bloat of a
# sparse touch (r % of N MiB at random, r from 10 to 100) under Linux THP (MADV_HUGEPAGE),
# Linux 4 KiB (MADV_NOHUGEPAGE) and memgrp --thp ingens: Rss over touched bytes; (b) speed of
# dependent random loads over a dense region: Linux 4 KiB, Linux THP, memgrp with huge pages
# off, memgrp ingens (waiting for its promotions first); (e) first-touch latency p50/p99 while
# memgrp promotes, beside Linux THP (with the host's defrag setting); (c) Debian's
# redis-server: values inserted, 80 % deleted, inserted again: Rss, huge kB and ops/s under
# Linux THP (jemalloc thp:always, disable-thp no), Linux 4 KiB (disable-thp yes), memgrp 4 KiB and memgrp
# ingens. Writes bench/results/hugepage-bloat.csv, hugepage-speed.csv, hugepage-latency.csv,
# hugepage-redis.csv and prints them.
# Usage: bench/hugepage.sh [BUILD_DIR]   (as root)
# Environment: BLOAT_MIB (1024), SPEED_MIB (1024), LOADS (20000000), REPS (3: speed runs per
#        configuration, the median kept), WAIT (60: seconds to wait for promotions), OUT,
#        PARTS ("a b e": which to run; c: redis), REDIS_KEYS (200000), REDIS_VALUE (1000 bytes),
#        REDIS_SETTLE (10: seconds after each phase before Rss is read, for every configuration).
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

if [[ $parts == *" c "* ]]; then
keys=${REDIS_KEYS:-200000}
vsize=${REDIS_VALUE:-1000}
settle=${REDIS_SETTLE:-10}
echo
echo "# (c) redis-server: $keys values of $vsize bytes inserted, 80 % deleted, 80 % inserted again (settle ${settle}s)"
echo "config,phase,ops_per_s,rss_kb,huge_kb" >"$out/hugepage-redis.csv"
# EVAL runs of 10000 keys (FROM TO PREFIX OP): deterministic keys, the
# server's own speed per command (no client round trips).
lua='local n = 0 for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  if ARGV[4] == "set" then redis.call("SET", ARGV[3] .. i, string.rep("v", tonumber(ARGV[5])))
  elseif i % 5 ~= 0 then redis.call("DEL", ARGV[3] .. i) end
  n = n + 1 end return n'
phase() { # SOCK NAME PID CONFIG PREFIX OP COUNT: one phase, timed; its row
	local sock=$1 pid=$3 t0 t1 i ops
	t0=$(date +%s%N)
	for ((i = 1; i <= $7; i += 10000)); do
		redis-cli -s "$sock" EVAL "$lua" 0 "$i" "$((i + 9999 < $7 ? i + 9999 : $7))" "$5" "$6" "$vsize" >/dev/null
	done
	t1=$(date +%s%N)
	ops=$(( $7 * 1000000000 / (t1 - t0) ))
	sleep "$settle"
	local rss huge
	rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")
	huge=$(awk '/^AnonHugePages/ { print $2 }' "/proc/$pid/smaps_rollup")
	printf '%-15s %-8s %10s ops/s %10s kB Rss %10s kB huge\n' "$4" "$2" "$ops" "$rss" "$huge"
	echo "$4,$2,$ops,$rss,$huge" >>"$out/hugepage-redis.csv"
}
redis_one() { # CONFIG DISABLE_THP PREFIX...: a server under PREFIX, the three phases
	local cfg=$1 dis=$2 dir sock pid
	shift 2
	dir=$(mktemp -d)
	sock=$dir/redis.sock
	"$@" redis-server --port 0 --unixsocket "$sock" --save "" --appendonly no --dir "$dir" \
		--disable-thp "$dis" >"$dir/log" 2>&1 &
	local wpid=$!
	for _ in $(seq 100); do [ -S "$sock" ] && redis-cli -s "$sock" PING >/dev/null 2>&1 && break; sleep 0.1; done
	pid=$(redis-cli -s "$sock" INFO server | awk -F: '/^process_id/ { print $2 }' | tr -d '\r')
	phase "$sock" insert "$pid" "$cfg" k: set "$keys"
	phase "$sock" delete "$pid" "$cfg" k: del "$keys"
	phase "$sock" again "$pid" "$cfg" j: set "$((keys * 4 / 5))"
	redis-cli -s "$sock" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
	wait "$wpid" 2>/dev/null || true
	rm -rf "$dir"
}
redis_one linux_thp no env MALLOC_CONF=thp:always
redis_one linux_4k yes env
redis_one memgrp_4k no "$memgrp" run -g "bench-thp-$$-redis4k" --thp never --
redis_one memgrp_ingens no "$memgrp" run -g "bench-thp-$$-redis" --thp ingens --thp-rate 0 --
fi
