#!/usr/bin/env bash
# test_top.sh - `memgrp top`: --once/--json against memgrp stat, rates, the live view under tmux (keys, quit).
# Usage: test_top.sh MEMGRP MEMGRPD PROGS_DIR
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
memgrpd=$(realpath "$2")
progs=$(realpath "$3")
sock=$tmp/memgrpd.sock
dpid=
tm=t-top-$sfx
kcg_track "$sock"
cleanup() {
	env -u LD_PRELOAD tmux -L "$tm" kill-server 2>/dev/null
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null
	[ -n "$dpid" ] && wait "$dpid" 2>/dev/null
}

if [ ! -e /dev/userfaultfd ] && [ "$(id -u)" != 0 ]; then
	skip_all "userfaultfd is not available to this user"
fi

mg() { "$memgrp" --socket "$sock" "$@"; }
# key $2 of group $1 in top's JSON file $3
tget() { python3 -c 'import json,sys; print(next(g for g in json.load(open(sys.argv[3])) if g["group"] == sys.argv[1])[sys.argv[2]])' "$1" "$2" "$3"; }

"$memgrpd" --socket "$sock" --state-dir none 2>"$tmp/memgrpd.log" &
dpid=$!
wait_socket "$sock"
[ -S "$sock" ] && ok "memgrpd listens" || { bad start "no socket"; cat "$tmp/memgrpd.log"; exit 1; }
mg create web -m 64M && mg create web/api -m 32M && mg create web/db && mg create batch -m 1G
"$memgrp" --socket "$sock" run -g web/api -- "$progs/prog_hold" 20 120 >"$tmp/hold.out" 2>&1 &
track $!
wait_for 20 bash -c "[ \"\$('$memgrp' --socket '$sock' stat --json web/api | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"nr_processes\"])')\" = 1 ]"
sleep 0.3

case_once() {
echo "--- --once and --json against memgrp stat"
mg top --once --json --interval 0.2 >"$tmp/top.json"; rc=$?
fails=
for g in web web/api web/db batch; do
	for k in usage limit swap_usage compressed_bytes oom_kill nr_processes cooperators; do
		want=$(stat_field "$g" "$k")
		got=$(tget "$g" "$k" "$tmp/top.json" 2>/dev/null)
		[ "$got" = "$want" ] || fails+=" $g.$k=$got(stat $want)"
	done
done
usage=$(tget web/api usage "$tmp/top.json")
[ $rc -eq 0 ] && [ -z "$fails" ] && { [ "$accounting" = 0 ] || [ "$usage" -ge $((20 << 20)) ]; } &&
	[ "$(tget web/api depth "$tmp/top.json")" = 1 ] && [ "$(tget web/api pressure "$tmp/top.json")" = none ] &&
	ok "top --once --json matches memgrp stat for 4 groups x 7 figures (web/api usage $usage)" ||
	bad json "rc $rc;$fails"
mg top --once --interval 0.2 >"$tmp/top.txt"; rc=$?
# the tree, siblings by usage: web (holding) before batch, api under web
order=$(awk 'NR > 1 { print $1 }' "$tmp/top.txt" | tr '\n' ' ')
[ $rc -eq 0 ] && [ "$order" = "web api db batch " ] && grep -qE '^  api +[0-9.]+M +32M \[#+\.+\]' "$tmp/top.txt" &&
	! grep -q $'\033' "$tmp/top.txt" &&
	ok "plain output off a terminal: the tree by usage (${order% }), api's bar against its limit, no escapes" ||
	{ bad plain "rc $rc, order '$order'"; cat "$tmp/top.txt"; }
order=$(mg top --once --interval 0.2 --sort name | awk 'NR > 1 { print $1 }' | tr '\n' ' ')
[ "$order" = "batch web api db " ] && ok "--sort name: ${order% }" || bad sort "order '$order'"
}
run_case once

case_rates() {
echo "--- faults/s and evictions/s from consecutive samples"
g=t-rate-$sfx
mg create "$g" -m 16M --swap-max 256M
# memgrp itself in the background (not through the function mg): $! is
# then its pid, and a kill stops it rather than a subshell around it.
"$memgrp" --socket "$sock" top --json --interval 1 >"$tmp/rate.json" 2>"$tmp/rate.err" &
tpid=$!
track $tpid
# arrays written so far (a last one may be half-written)
narrays() { python3 - "$tmp/rate.json" <<'PY'
import json, sys
text, d, n, at = open(sys.argv[1]).read(), json.JSONDecoder(), 0, 0
while True:
    while at < len(text) and text[at].isspace(): at += 1
    try: _, at = d.raw_decode(text, at)
    except ValueError: break
    n += 1
print(n)
PY
}
# The load runs between samples: after top's first array, and top goes on
# for two more after it ended. No figure depends on how long anything took.
wait_for 20 bash -c "[ \$($(declare -f narrays); tmp=$tmp; narrays) -ge 1 ]"
# 48M touched under a 16M limit: faults, and evictions into the store
mg run -g "$g" -- "$progs/prog_hold" 48 0.5 >"$tmp/rate.out" 2>&1; hrc=$?
n0=$(narrays)
wait_for 20 bash -c "[ \$($(declare -f narrays); tmp=$tmp; narrays) -ge $((n0 + 2)) ]"
kill $tpid; wait $tpid 2>/dev/null
res=$(python3 - "$tmp/rate.json" "$g" <<'PY'
import json, sys
text, d, at, rows = open(sys.argv[1]).read(), json.JSONDecoder(), 0, []
while True:
    while at < len(text) and text[at].isspace(): at += 1
    try: arr, at = d.raw_decode(text, at)
    except ValueError: break
    rows += [r for r in arr if r["group"] == sys.argv[2]]
bad, fmax, emax = [], 0, 0
for prev, cur in zip(rows, rows[1:]):
    for rate, key in (("faults_per_s", "pgfault"), ("evictions_per_s", "pswpout")):
        delta = cur[key] - prev[key]
        # the rate is the counter's step over the interval (printed to 3 decimals)
        if abs(cur[rate] * cur["interval_s"] - delta) > 0.001 * cur["interval_s"] + 1e-6 * delta + 0.01:
            bad.append("%s %s*%s != %s" % (rate, cur[rate], cur["interval_s"], delta))
    fmax, emax = max(fmax, cur["faults_per_s"]), max(emax, cur["evictions_per_s"])
print(len(rows), fmax, emax, rows[-1]["pgfault"] if rows else 0, rows[-1]["pswpout"] if rows else 0,
      rows[0]["interval_s"] if rows else -1, "|".join(bad) or "-")
PY
)
read -r nrows fmax emax pf po first why <<<"$res"
[ $hrc -eq 0 ] && [ "${nrows:-0}" -ge 3 ] && [ "$why" = - ] && [ "$first" = 0.0 ] &&
	python3 -c "import sys; sys.exit(not (float(sys.argv[1]) > 0 and float(sys.argv[2]) > 0))" "$fmax" "$emax" &&
	ok "rates over $nrows samples equal the counters' steps ($pf faults, $po evictions in all; peaks $fmax faults/s, $emax evictions/s)" ||
	bad rates "hold rc $hrc; $res; $(cat "$tmp/rate.err" "$tmp/rate.out")"
mg rm "$g"
}
run_case rates once

case_tmux() {
echo "--- the live view under tmux: refresh, keys, quit"
if ! command -v tmux >/dev/null; then
	skip tmux "tmux is not installed (scripts/setup.sh installs it)"
	return
fi
pre=
[ -n "${MEMGRP_TEST_PRELOAD:-}" ] && pre="env LD_PRELOAD=$MEMGRP_TEST_PRELOAD ASAN_OPTIONS=$ASAN_OPTIONS"
env -u LD_PRELOAD tmux -L "$tm" -f /dev/null new-session -d -s top -x 160 -y 40 \
	"$pre $memgrp --socket $sock top; echo TOP-EXITED \$?; sleep 30"
cap() { env -u LD_PRELOAD tmux -L "$tm" capture-pane -p -t top; }
wait_for 10 bash -c "$(declare -f cap); tm=$tm; cap | grep -q 'sort: usage'"
cap >"$tmp/pane1"
t1=$(sed -n 's/^memgrp top - \([0-9:]*\) .*/\1/p' "$tmp/pane1")
grep -qE '^web +[0-9.]+M +64M \[#' "$tmp/pane1" && grep -qE '^  api ' "$tmp/pane1" &&
	grep -q '4 groups - sort: usage' "$tmp/pane1" &&
	ok "top on a terminal: header, the tree with bars ($(grep -c '\[' "$tmp/pane1") rows)" ||
	{ bad screen "pane:"; cat "$tmp/pane1"; }
wait_for 5 bash -c "$(declare -f cap); tm=$tm; ! cap | grep -q '^memgrp top - $t1 '"
t2=$(cap | sed -n 's/^memgrp top - \([0-9:]*\) .*/\1/p')
[ -n "$t1" ] && [ -n "$t2" ] && [ "$t1" != "$t2" ] && ok "it refreshes by itself ($t1 -> $t2)" ||
	bad refresh "header time '$t1' then '$t2'"
env -u LD_PRELOAD tmux -L "$tm" send-keys -t top n
wait_for 5 bash -c "$(declare -f cap); tm=$tm; cap | grep -q 'sort: name'"
cap >"$tmp/pane2"
order=$(awk '/^GROUP/ { on = 1; next } on && NF { print $1 }' "$tmp/pane2" | tr '\n' ' ')
[ "$order" = "batch web api db " ] && ok "key n sorts by name: ${order% }" ||
	{ bad key_n "order '$order'"; cat "$tmp/pane2"; }
env -u LD_PRELOAD tmux -L "$tm" send-keys -t top q
wait_for 5 bash -c "$(declare -f cap); tm=$tm; cap | grep -q 'TOP-EXITED'"
cap >"$tmp/pane3"
grep -q 'TOP-EXITED 0' "$tmp/pane3" && ok "key q quits, status 0" || { bad quit "pane:"; cat "$tmp/pane3"; }
env -u LD_PRELOAD tmux -L "$tm" kill-server 2>/dev/null
}
run_case tmux once
