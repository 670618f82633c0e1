#!/usr/bin/env bash
# bench/oomhandler.sh - what a user-space OOM handler adds to an OOM: the
# refused fault's wait (refused charge -> fault resumed) with the group's
# policy deciding, and with a handler (examples/oom_handler --pick largest,
# outside the group: the same victim) deciding, under memgrpd, on
# bench/oom.sh's workload: a victim holds VICTIM MB in a group limited to
# LIMIT; a grower touches GROW MB page by page and prints its longest
# single-page write. Prints p50/p99/max over ROUNDS rounds for each and
# checks that the victim died and the grower lived every time.
# Usage: bench/oomhandler.sh [BUILD_DIR]   (as root)
# Environment: ROUNDS (40), LIMIT_MB (64), VICTIM (40), GROW (40).
set -euo pipefail
build=$(realpath "${1:-build}")
memgrp=$build/src/cli/memgrp
memgrpd=$build/src/daemon/memgrpd
prog=$build/bench/bench_oom
handler=$build/examples/oom_handler
rounds=${ROUNDS:-40}
limit=${LIMIT_MB:-64}
victim=${VICTIM:-40}
grow=${GROW:-40}
tmp=$(mktemp -d)
dpid= hpid=
cleanup() {
	# (|| true: a killed process's wait fails, and set -e would end the
	# cleanup there, leaving memgrpd running)
	[ -n "$hpid" ] && { kill "$hpid" 2>/dev/null; wait "$hpid" 2>/dev/null || true; }
	[ -n "$dpid" ] && { kill "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null || true; }
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "oomhandler.sh: run as root" >&2; exit 1; }
for f in "$memgrp" "$memgrpd" "$prog" "$handler"; do
	[ -x "$f" ] || { echo "oomhandler.sh: $f is missing: meson compile -C ${1:-build}" >&2; exit 1; }
done

quantiles() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1]
		printf "%d %d %d\n", p50, p99, v[NR] }'
}

sock=$tmp/memgrpd.sock
"$memgrpd" --socket "$sock" --state-dir none --kernel-backstop off 2>"$tmp/memgrpd.log" &
dpid=$!
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
mg() { "$memgrp" --socket "$sock" "$@"; }
field() { mg stat --json "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }

# rounds NAME: ROUNDS OOMs in group NAME; stalls (us) to $tmp/NAME.us,
# failures counted in bad_NAME
rounds() {
	local g=$1 bad=0 out vst
	for i in $(seq "$rounds"); do
		rm -f "$tmp/v.out"
		mg run -g "$g" -- "$prog" hold "$victim" >"$tmp/v.out" 2>&1 &
		local vpid=$!
		for _ in $(seq 100); do grep -qs holding "$tmp/v.out" && break; sleep 0.05; done
		out=$(mg run -g "$g" -- "$prog" grow "$grow" 2>"$tmp/g.err") || { bad=$((bad + 1)); echo "$g round $i: the grower failed: $(cat "$tmp/g.err")" >&2; }
		wait "$vpid" && vst=0 || vst=$?
		[ "$vst" = 137 ] || { bad=$((bad + 1)); echo "$g round $i: the victim ended with $vst" >&2; }
		[ -n "$out" ] && echo "${out#stall_us }" >>"$tmp/$g.us"
		for _ in $(seq 50); do [ "$(field "$g" nr_processes)" = 0 ] && break; sleep 0.05; done
	done
	eval "bad_${g//-/_}=$bad"
}

mg create bench-policy -m "${limit}M"
rounds bench-policy
mg create bench-handler -m "${limit}M"
"$handler" --socket "$sock" --pick largest bench-handler >"$tmp/h.out" 2>&1 &
hpid=$!
for _ in $(seq 50); do grep -qs '^handling' "$tmp/h.out" && break; sleep 0.1; done
rounds bench-handler
hkill=$(field bench-handler oom_handler_kill) hfb=$(field bench-handler oom_handler_fallback)

echo "OOM stall with a user-space handler: refused charge -> fault resumed (victim ${victim}M killed, grower ${grow}M, limit ${limit}M), $rounds rounds"
printf '%-22s %10s %10s %10s %8s %s\n' "" p50_us p99_us max_us kills "wrong victim or failed"
read -r a b c < <(quantiles "$tmp/bench-policy.us")
printf '%-22s %10s %10s %10s %8s %s\n' "memgrp, policy" "$a" "$b" "$c" "$(field bench-policy oom_kill)" "$bad_bench_policy"
read -r a b c < <(quantiles "$tmp/bench-handler.us")
printf '%-22s %10s %10s %10s %8s %s\n' "memgrp, handler" "$a" "$b" "$c" "$hkill" "$bad_bench_handler (fallbacks $hfb)"
