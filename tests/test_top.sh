#!/usr/bin/env bash
# test_top.sh - `memgrp top`: --once/--json against memgrp stat, rates, the live view under tmux (keys, quit); every command's --json against its text.
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
	env -u LD_PRELOAD tmux -L "$tm-80" kill-server 2>/dev/null
	# memgrp run passes TERM on to the hold and ends with it
	[ -n "${hpid:-}" ] && kill "$hpid" 2>/dev/null && wait_for 10 bash -c "! kill -0 $hpid 2>/dev/null"
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
# held until the end (killed at exit): the cases take minutes under ASan
"$memgrp" --socket "$sock" run -g web/api -- "$progs/prog_hold" 20 1200 >"$tmp/hold.out" 2>&1 &
hpid=$!
track $hpid
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

case_narrow() {
echo "--- 80 columns: the narrow layout, plain (--width) and live under tmux"
mg top --once --interval 0.2 --width 80 >"$tmp/w80.txt"; rc=$?
long=$(awk 'length($0) > 80' "$tmp/w80.txt" | wc -l)
read -r nu nl <<<"$(awk '$1 == "api" { print $2, $3 }' "$tmp/w80.txt")"
np=$(awk '$1 == "api" { print $NF }' "$tmp/w80.txt")
[ $rc -eq 0 ] && [ "$long" = 0 ] && [ "$nl" = 32M ] && [ "$np" = "$(stat_field web/api nr_processes)" ] &&
	grep -qE '^  api +[0-9.]+M +32M \[#+\.+\] ' "$tmp/w80.txt" && grep -q 'PRES OOM PROCS$' "$tmp/w80.txt" &&
	ok "--width 80: every line within 80 columns ($(awk '{ print length($0) }' "$tmp/w80.txt" | sort -n | tail -1) at most), api's usage $nu, limit, bar and processes kept" ||
	{ bad width80 "rc $rc, $long lines over 80"; cat "$tmp/w80.txt"; }
# wide enough: the full layout, as before
mg top --once --interval 0.2 --width 200 >"$tmp/w200.txt"
grep -q 'COMPR  RATIO  FAULT/s  EVICT/s PRESSURE COOP' "$tmp/w200.txt" && ok "--width 200: every column" ||
	{ bad width200 "header"; cat "$tmp/w200.txt"; }
mg top --once --width 29 >/dev/null 2>"$tmp/w29.err"; rc=$?
[ $rc -eq 2 ] && grep -q 'columns, 30 to 10000' "$tmp/w29.err" && ok "--width 29: status 2 ($(cat "$tmp/w29.err"))" ||
	bad width29 "rc $rc"
if ! command -v tmux >/dev/null; then
	skip tmux80 "tmux is not installed (scripts/setup.sh installs it)"
	return
fi
pre=
[ -n "${MEMGRP_TEST_PRELOAD:-}" ] && pre="env LD_PRELOAD=$MEMGRP_TEST_PRELOAD ASAN_OPTIONS=$ASAN_OPTIONS"
env -u LD_PRELOAD tmux -L "$tm-80" -f /dev/null new-session -d -s top -x 80 -y 30 \
	"$pre $memgrp --socket $sock top; sleep 30"
# -J: a line the terminal wrapped comes back whole (and too long)
cap80() { env -u LD_PRELOAD tmux -L "$tm-80" capture-pane -p -J -t top; }
wait_for 10 bash -c "$(declare -f cap80); tm=$tm; cap80 | grep -q '^  api '"
cap80 >"$tmp/pane80"
env -u LD_PRELOAD tmux -L "$tm-80" kill-server 2>/dev/null
long=$(awk 'length($0) > 80' "$tmp/pane80" | wc -l)
rows=$(grep -cE '^(web|  api|  db|batch) ' "$tmp/pane80")
[ "$long" = 0 ] && [ "$rows" = 4 ] && grep -qE '^  api +[0-9.]+M +32M \[#+\.+\] ' "$tmp/pane80" &&
	grep -q '^memgrp top - .* sort: usage' "$tmp/pane80" &&
	ok "top in an 80-column tmux pane: 4 group rows, none wrapped (widest $(awk '{ print length($0) }' "$tmp/pane80" | sort -n | tail -1))" ||
	{ bad tmux80 "$long lines over 80, $rows group rows"; cat "$tmp/pane80"; }
}
run_case narrow once

case_json() {
echo "--- --json on every command that prints figures: valid JSON, values as the text says"
# size as text ("20.1M", "32M", "0", "max") in bytes; the text rounds to 3 digits
cat >"$tmp/near.py" <<'PY'
import sys
def size(t):
    if t == "max": return None
    m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return float(t[:-1]) * m[t[-1]] if t[-1] in m else float(t)
text, value = size(sys.argv[1]), sys.argv[2]
value = None if value in ("None", "null") else float(value)
ok = (text is None) == (value is None) and (text is None or abs(text - value) <= 0.01 * max(value, 1))
sys.exit(0 if ok else 1)
PY
near() { python3 "$tmp/near.py" "$1" "$2"; }
fails=
# stat
mg stat --json web/api | python3 -m json.tool >"$tmp/stat.json" || fails+=" stat:invalid"
mg stat web/api >"$tmp/stat.txt"
for k in usage limit nr_processes oom_kill pgfault; do
	t=$(awk -v k=$k '$1 == k { print $2 }' "$tmp/stat.txt")
	near "$t" "$(jget "$tmp/stat.json" $k)" || fails+=" stat.$k=$t/$(jget "$tmp/stat.json" $k)"
done
# ls: GROUP USAGE MAX_USAGE LIMIT PROCS
mg ls --json | python3 -m json.tool >"$tmp/ls.json" || fails+=" ls:invalid"
mg ls >"$tmp/ls.txt"
read -r _ lu lm ll lp <<<"$(awk '$1 == "web/api"' "$tmp/ls.txt")"
lsget() { python3 -c 'import json,sys; print(next(g for g in json.load(open(sys.argv[1])) if g["group"] == "web/api")[sys.argv[2]])' "$tmp/ls.json" "$1"; }
near "$lu" "$(lsget usage)" && near "$lm" "$(lsget max_usage)" && near "$ll" "$(lsget limit)" &&
	[ "$lp" = "$(lsget nr_processes)" ] || fails+=" ls:'$lu $lm $ll $lp'"
# top --once: the api row's usage, limit and processes (the last column)
mg top --once --json --interval 0.2 | python3 -m json.tool >"$tmp/top2.json" || fails+=" top:invalid"
mg top --once --interval 0.2 >"$tmp/top2.txt"
read -r tu tl <<<"$(awk '$1 == "api" { print $2, $3 }' "$tmp/top2.txt")"
tp=$(awk '$1 == "api" { print $NF }' "$tmp/top2.txt")
near "$tu" "$(tget web/api usage "$tmp/top2.json")" && near "$tl" "$(tget web/api limit "$tmp/top2.json")" &&
	[ "$tp" = "$(tget web/api nr_processes "$tmp/top2.json")" ] || fails+=" top:'$tu $tl $tp'"
# events: one threshold crossing seen by a text and a JSON watcher
g=t-json-$sfx
mg create "$g" -m 64M
"$memgrp" --socket "$sock" events --threshold 8M --count 1 "$g" >"$tmp/ev.txt" 2>"$tmp/ev1.err" &
e1=$!
"$memgrp" --socket "$sock" events --json --threshold 8M --count 1 "$g" >"$tmp/ev.json" 2>"$tmp/ev2.err" &
e2=$!
track $e1 $e2
# both registered (each says so once it is) before the crossing
wait_for 10 grep -q watching "$tmp/ev1.err" && wait_for 10 grep -q watching "$tmp/ev2.err"
mg run -g "$g" -- "$progs/prog_hold" 16 0.2 >/dev/null 2>&1
wait_for 10 bash -c "! kill -0 $e1 2>/dev/null && ! kill -0 $e2 2>/dev/null"
python3 -m json.tool "$tmp/ev.json" >/dev/null || fails+=" events:invalid"
read -r _ eg _ et edir _ eu <<<"$(cat "$tmp/ev.txt")"
[ "$eg" = "$g" ] && [ "$(jget "$tmp/ev.json" group)" = "$g" ] && near "$et" "$(jget "$tmp/ev.json" threshold)" &&
	[ "$edir" = "$(jget "$tmp/ev.json" direction)" ] && [ "$(jget "$tmp/ev.json" event)" = threshold ] ||
	fails+=" events:'$(cat "$tmp/ev.txt")' vs '$(cat "$tmp/ev.json")'"
mg rm "$g"
# demo: the story's peak usages and mode switches
mg demo --json | python3 -m json.tool >"$tmp/demo.json" || fails+=" demo:invalid"
mg demo >"$tmp/demo.txt"
read -r _ _ _ pw _ pa _ pk <<<"$(grep 'peak usage:' "$tmp/demo.txt" | tr -d ',')"
dget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$tmp/demo.json" "$1"; }
ms=$(awk '/mode switches:/ { print $3 }' "$tmp/demo.txt")
near "$pw" "$(dget 'd["groups"][0]["max_usage"]')" && near "$pa" "$(dget 'd["groups"][1]["max_usage"]')" &&
	near "$pk" "$(dget 'd["groups"][2]["max_usage"]')" && [ "$ms" = "$(dget 'd["estimate"]["mode_switches"]')" ] &&
	[ "$(grep -c 'crossed upward' "$tmp/demo.txt")" = "$(dget 'sum(t["up"] for t in d["thresholds"])')" ] ||
	fails+=" demo:'$pw $pa $pk $ms'"
[ -z "$fails" ] && ok "stat, ls, top, events and demo --json: valid (python3 -m json.tool), equal to their text (web/api usage $(jget "$tmp/stat.json" usage), event '$(cat "$tmp/ev.txt")')" ||
	bad json_text "$fails"
}
run_case json once

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
