#!/usr/bin/env bash
# test_notify.sh - notifications: thresholds, pressure and OOM through libmemgrp
# and `memgrp events`, permissions, and the cooperating examples (C, Python).
# Usage: test_notify.sh MEMGRP MEMGRPD PROGS_DIR EXAMPLES_DIR LIBMEMGRP
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
memgrpd=$(realpath "$2")
progs=$(realpath "$3")
examples=$(realpath "$4")
export MEMGRP_LIB=$(realpath "$5")
src=$(cd "$here/.." && pwd)
# A world-reachable socket, so that the permission checks can connect as nobody.
sock=/run/memgrp/memgrp-tn-$sfx-memgrpd.sock
dpid=
cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null
	env -u LD_PRELOAD pkill -f "memgrp-tn-[a-z]*-$sfx" 2>/dev/null
	rm -rf "$tmp" "$sock" "$sock.groups"
}
wait_group() {
	for _ in $(seq 100); do "$memgrp" "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}

# In a sanitizer build (accounting=0) malloc is ASan's, in a reservation
# memgrp does not count (see tests/test_run.sh): the examples' caches would
# never reach a limit.
if [ ! -e /dev/userfaultfd ] && [ "$(id -u)" != 0 ]; then
	skip_all "userfaultfd is not available to this user"
fi

case_thresholds() {
echo "--- thresholds through libmemgrp"
"$memgrp" run -m 64M -- "$progs/prog_notify" >"$tmp/notify.out" 2>&1; rc=$?
sed 's/^/    /' "$tmp/notify.out"
[ $rc -eq 0 ] && grep -q "notify ok" "$tmp/notify.out" &&
	ok "every crossing delivered, up and down, 40 of 40 in quick round trips; pressure; unregister" ||
	bad notify "exit $rc"
}
run_case thresholds

case_events() {
echo "--- memgrp events"
g=memgrp-tn-events-$sfx
"$memgrp" run -g $g -m 64M -- sh -c "sleep 1; $progs/prog_hold 50 0.3; $progs/prog_hold 80 0.3; sleep 0.5" >"$tmp/evgroup.out" 2>&1 &
gpid=$!
wait_group stat $g
timeout 20 "$memgrp" events --threshold 32M --pressure low --oom --count 7 $g >"$tmp/events.out" 2>"$tmp/events.err"; erc=$?
wait $gpid
sed 's/^/    /' "$tmp/events.out"
up=$(grep -c "$g threshold 32M up" "$tmp/events.out"); down=$(grep -c "$g threshold 32M down" "$tmp/events.out")
# The oom line carries the usage the listener reads when the event comes:
# 64M, or already the little that is left if the victim's exit was quicker
# ("oom usage 284K", seen in CI). One oom event is what is checked.
pl=$(grep -c "$g pressure low" "$tmp/events.out"); oom=$(grep -cE "$g oom usage [0-9.]+[KMG]?$" "$tmp/events.out")
[ $erc -eq 0 ] && [ "$up" = 2 ] && [ "$down" = 2 ] && [ "$pl" = 2 ] && [ "$oom" = 1 ] &&
	ok "memgrp events: 2 up, 2 down, 2 pressure low, 1 oom, one line each" ||
	{ bad events "rc $erc: up $up down $down pressure $pl oom $oom"; cat "$tmp/events.err"; }
out=$("$memgrp" events $g 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "nothing to watch" <<<"$out" && ok "memgrp events with nothing to watch: '$out'" || bad events_usage "rc $rc: $out"
out=$("$memgrp" events --pressure severe $g 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "low, medium or critical" <<<"$out" && ok "a bad pressure level is refused" || bad events_level "rc $rc: $out"
}
run_case events

case_examples() {
echo "--- cooperating examples"
if [ $accounting = 0 ]; then
	skip examples "sanitizer build: the examples' malloc'd caches are ASan's, not counted"
else
"$memgrp" run -m 64M --stats-json "$tmp/cs.json" -- "$examples/cache_server" 400 >"$tmp/cs.out" 2>&1; rc=$?
tail -1 "$tmp/cs.out" | sed 's/^/    /'
[ $rc -eq 0 ] && grep -qE "shrank [1-9][0-9]* times" "$tmp/cs.out" && [ "$(jget "$tmp/cs.json" oom_kill)" = 0 ] &&
	[ "$(jget "$tmp/cs.json" max_usage)" -le $((64 << 20)) ] &&
	ok "C cache server shrinks its cache on notification and stays under 64M (max_usage $(jget "$tmp/cs.json" max_usage))" ||
	{ bad cache_server "exit $rc"; cat "$tmp/cs.out"; }
"$memgrp" run -m 64M -- "$examples/cache_server" --no-cooperate 400 >"$tmp/csn.out" 2>&1; rc=$?
[ $rc -eq 137 ] && ok "the same server not cooperating is killed at the limit (exit 137)" || bad cache_server_nocoop "exit $rc"
"$memgrp" run -m 64M --stats-json "$tmp/py.json" -- python3 "$src/examples/python/cache_app.py" 600 >"$tmp/py.out" 2>&1; rc=$?
sed 's/^/    /' "$tmp/py.out" | tail -2
[ $rc -eq 0 ] && grep -qE "dropped [1-9][0-9]* times \(.*\), [1-9][0-9]* MiB freed" "$tmp/py.out" &&
	[ "$(jget "$tmp/py.json" oom_kill)" = 0 ] &&
	ok "Python app (ctypes module): gc.collect and cache drop on notification, freed memory measured" ||
	{ bad python_coop "exit $rc"; cat "$tmp/py.out"; }
"$memgrp" run -m 64M -- python3 "$src/examples/python/cache_app.py" --no-cooperate 600 >"$tmp/pyn.out" 2>&1; rc=$?
[ $rc -eq 137 ] && ok "the same Python app not cooperating is killed at the limit (exit 137)" || bad python_nocoop "exit $rc"

echo "--- cooperative reclaim at the limit"
"$memgrp" run -m 64M --stats-json "$tmp/ask.json" -- "$examples/cache_server" --when-asked 400 >"$tmp/ask.out" 2>&1; rc=$?
grep "cooperating client freed" "$tmp/ask.out" | head -2 | sed 's/^/    /'
ms=$(grep -o "freed [0-9.]*[KMG]* in [0-9]* ms" "$tmp/ask.out" | awk '{print $4}' | sort -n | tail -1)
[ $rc -eq 0 ] && [ "$(jget "$tmp/ask.json" oom_kill)" = 0 ] && [ "$(jget "$tmp/ask.json" coop_requests)" -ge 1 ] &&
	[ "$(jget "$tmp/ask.json" coop_freed)" -gt 0 ] && grep -q "verified" "$tmp/ask.out" &&
	ok "asked at the limit, the server frees what is asked (measured: $(($(jget "$tmp/ask.json" coop_freed) >> 20)) MiB over $(jget "$tmp/ask.json" coop_requests) requests, slowest answer ${ms} ms); nobody killed" ||
	{ bad coop_asked "exit $rc"; tail -5 "$tmp/ask.out"; }
# A cooperator that never answers costs one bounded wait, then the kill.
cat >"$tmp/silent.py" <<PY
import sys, time
sys.path.insert(0, "$src/examples/python")
import memgrp
c = memgrp.Client()
c.cooperate(priority=500)   # registered, never reads, never answers
print("silent cooperator registered", flush=True)
open("$tmp/silent.ready", "w").close()
time.sleep(8)
PY
# The hog starts once the cooperator is registered (python3's start can
# take over a second on a loaded host); the time counts from then.
"$memgrp" run -m 64M --stats-json "$tmp/silent.json" -- sh -c "python3 $tmp/silent.py & p=\$!
	i=0; while [ ! -e $tmp/silent.ready ] && [ \$i -lt 200 ]; do sleep 0.05; i=\$((i+1)); done
	date +%s%N >$tmp/silent.start; $progs/prog_hold 80 1; echo hold=\$?; kill \$p" >"$tmp/silent.out" 2>&1; rc=$?
el=$(( ($(date +%s%N) - $(cat "$tmp/silent.start" 2>/dev/null || echo 0)) / 1000000 ))
[ $rc -eq 0 ] && grep -q "hold=137" "$tmp/silent.out" && grep -q "the cooperating client freed 0 in 2[0-9][0-9] ms" "$tmp/silent.out" &&
	[ "$(jget "$tmp/silent.json" oom_kill)" = 1 ] && [ $el -lt 6000 ] &&
	ok "a cooperator that never answers is passed over after the 200 ms wait; the hog is killed (run took $el ms)" ||
	{ bad coop_silent "rc $rc, $el ms"; cat "$tmp/silent.out"; }

fi
}
run_case examples

case_memgrpd() {
echo "--- memgrpd: pressure modes, permissions, bad requests"
"$memgrpd" --socket "$sock" 2>"$tmp/memgrpd.log" &
dpid=$!
wait_socket "$sock"
mg() { "$memgrp" --socket "$sock" "$@"; }
mg create web && mg create web/api -m 32M
mg events --pressure low,hierarchy web >"$tmp/hier.out" 2>/dev/null &
h=$!
mg events --pressure low web >"$tmp/local.out" 2>/dev/null &
l=$!
sleep 0.5
mg run -g web/api -- "$progs/prog_hold" 26 0.3 >/dev/null 2>&1; rc=$?
sleep 0.5
kill $h $l; wait $h $l 2>/dev/null
[ $rc -eq 0 ] && [ "$(grep -c 'web pressure low' "$tmp/hier.out")" = 1 ] && [ ! -s "$tmp/local.out" ] &&
	ok "pressure low,hierarchy on web hears web/api at 75% of its 32M; local mode on web (no limit) hears nothing" ||
	bad pressure_modes "rc $rc, hierarchy: $(cat "$tmp/hier.out"), local: $(cat "$tmp/local.out")"
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	o1=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$memgrp" --socket "$sock" events --threshold 1M web 2>&1); r1=$?
	o2=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$memgrp" --socket "$sock" create evil 2>&1); r2=$?
	o3=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$memgrp" --socket "$sock" stat web 2>&1); r3=$?
	[ $r1 -eq 1 ] && grep -q "may watch only its own group" <<<"$o1" && [ $r2 -eq 1 ] &&
		grep -q "only root or uid 0 (who runs this manager) may create groups" <<<"$o2" &&
		[ $r3 -eq 1 ] && grep -q "may read only its own group" <<<"$o3" &&
		ok "an unprivileged client may not watch, read or create others' groups: '$o1'" ||
		bad permissions "$r1 ($o1) $r2 ($o2) $r3 ($o3)"
else
	skip permissions "needs root, nobody and setpriv"
fi
reply=$(python3 - "$sock" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
# REGISTER (type 15) for a threshold on "web", but no eventfd attached
msg = struct.pack("<IHHII", 0x4d475250, 3, 15, 168, 0) + b"web".ljust(128, b"\0") + \
      struct.pack("<IIQII", 1, 0, 1 << 20, 0, 0)
s.send(msg)
data = s.recv(4096)
status = struct.unpack_from("<i", data, 16)[0]
print(status, data[24:].split(b"\0")[0].decode())
PY
)
grep -q "^-22 register: no eventfd came with the request" <<<"$reply" && mg stat web >/dev/null &&
	ok "a registration without an eventfd is refused ('$reply'); memgrpd goes on" || bad noefd "'$reply'"
}
run_case memgrpd
