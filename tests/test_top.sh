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
mg run -g web/api -- "$progs/prog_hold" 20 120 >"$tmp/hold.out" 2>&1 &
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
echo "--- faults/s and evictions/s from two samples"
mg create t-rate-$sfx -m 16M --swap-max 256M
# 48M touched under a 16M limit: faults, and evictions into the store
( sleep 0.5; mg run -g "t-rate-$sfx" -- "$progs/prog_hold" 48 3 >"$tmp/rate.out" 2>&1 ) &
rpid=$!
track $rpid
mg top --once --json --interval 3 >"$tmp/rate.json"; rc=$?
wait $rpid
f=$(tget "t-rate-$sfx" faults_per_s "$tmp/rate.json")
e=$(tget "t-rate-$sfx" evictions_per_s "$tmp/rate.json")
pf=$(tget "t-rate-$sfx" pgfault "$tmp/rate.json")
po=$(tget "t-rate-$sfx" pswpout "$tmp/rate.json")
# the group was made before the first sample: all its faults and
# evictions happened between the two, 3 s apart (give or take the time
# the requests took)
python3 -c "import sys; f,e,pf,po=map(float,sys.argv[1:]); sys.exit(not (pf > 0 and po > 0 and abs(f*3 - pf) <= pf*0.1 and abs(e*3 - po) <= po*0.1))" "$f" "$e" "$pf" "$po" &&
	[ $rc -eq 0 ] && ok "rates: $f faults/s ($pf faults), $e evictions/s ($po pages) over the 3 s interval" ||
	bad rates "rc $rc: faults/s $f of $pf, evictions/s $e of $po; $(cat "$tmp/rate.out")"
ratio=$(tget "t-rate-$sfx" compression_ratio "$tmp/rate.json")
mg rm "t-rate-$sfx"
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
