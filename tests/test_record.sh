#!/usr/bin/env bash
# test_record.sh - `memgrp run --record`: the CSV of real runs (evictions, an OOM kill, a cooperator, memgrpd) against their --stats-json, a killed run, plot-timeline.py.
# Usage: test_record.sh MEMGRP MEMGRPD PROGS_DIR SOURCE_DIR EXAMPLES_BUILD_DIR
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
memgrpd=$(realpath "$2")
progs=$(realpath "$3")
plot=$(realpath "$4")/scripts/plot-timeline.py
examples=$(realpath "$5")
dsock=$tmp/memgrpd.sock
dpid=
kcg_track "$dsock"
cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null
	[ -n "$dpid" ] && wait "$dpid" 2>/dev/null
}

if [ ! -e /dev/userfaultfd ] && [ "$(id -u)" != 0 ]; then
	skip_all "userfaultfd is not available to this user"
fi

# check CSV JSON [want_event]: the CSV against the run's own --stats-json.
# Prints "ok SUMMARY" or "bad WHY".
check() { python3 - "$@" <<'PY'
import csv, json, sys
path, stats = sys.argv[1], json.load(open(sys.argv[2]))
want = sys.argv[3] if len(sys.argv) > 3 else None
header = open(path).readline().strip().split(",")
expect = ("time_s,unix_time,usage,limit,max_usage,swap_usage,compressed_bytes,nr_processes,"
          "pgfault,evicted_pages,restored_pages,coop_requests,coop_freed,oom_kills,events").split(",")
why = []
if header != expect:
    why.append("header %s" % header)
rows = list(csv.DictReader(open(path)))
if len(rows) < 3:
    print("bad only %d rows" % len(rows)); sys.exit()
n = lambda r, k: int(r[k]) if r[k] else None
events = [e.split("*")[0] for r in rows for e in r["events"].split(";") if e]
if rows[0]["events"] != "start" or rows[-1]["events"].split(";")[-1] != "end":
    why.append("first/last events %r %r" % (rows[0]["events"], rows[-1]["events"]))
times = [float(r["time_s"]) for r in rows]
if times != sorted(times):
    why.append("time goes back")
last = rows[-1]
# the last row is taken once the command has gone: the figures the run ends with
for key in ("max_usage", "pgfault", "swap_usage"):
    if n(last, key) != stats[key]:
        why.append("last row %s %s, --stats-json %s" % (key, last[key], stats[key]))
# the steps add up to the counters' totals (a new group starts at 0)
for col, key in (("evicted_pages", "pswpout"), ("restored_pages", "pswpin"),
                 ("coop_requests", "coop_requests"), ("coop_freed", "coop_freed"),
                 ("oom_kills", "oom_kill")):
    total = sum(n(r, col) for r in rows)
    if total != stats[key]:
        why.append("sum of %s %d, --stats-json %s %d" % (col, total, key, stats[key]))
peak = max(n(r, "usage") for r in rows)
if peak > stats["max_usage"] or any(n(r, "usage") > n(r, "max_usage") for r in rows):
    why.append("a usage %d above max_usage %d" % (peak, stats["max_usage"]))
if n(last, "limit") != (stats["limit"] if stats["limit"] < 1 << 60 else None):
    why.append("limit %s, --stats-json %s" % (last["limit"], stats["limit"]))
if want and want not in events:
    why.append("no %s event in %s" % (want, sorted(set(events))))
if why:
    print("bad " + "; ".join(why))
else:
    print("ok %d rows over %.2f s, peak usage %.1f MiB (max_usage %.1f MiB), events %s" % (
        len(rows), times[-1], peak / 2**20, stats["max_usage"] / 2**20,
        ",".join(sorted(set(events)))))
PY
}

case_evict() {
echo "--- evictions: 48M held under -m 32M with swap, sampled every 50 ms"
g=t-rec-ev-$sfx
timeout -k 5 60 "$memgrp" run -g "$g" -m 32M --swap-max 256M --record "$tmp/ev.csv" --record-period 50 \
	--stats-json "$tmp/ev.json" -- "$progs/prog_hold" 48 1 >"$tmp/ev.out" 2>&1; rc=$?
res=$(check "$tmp/ev.csv" "$tmp/ev.json" evict 2>&1)
[ $rc -eq 0 ] && [ "${res%% *}" = ok ] && ok "evict: ${res#ok }" ||
	{ bad evict "rc $rc: $res"; cat "$tmp/ev.out"; head -5 "$tmp/ev.csv"; }
# usage held in the middle of the run is what the group really had
peak=$(python3 -c 'import csv,sys; print(max(int(r["usage"]) for r in csv.DictReader(open(sys.argv[1]))))' "$tmp/ev.csv")
mx=$(jget "$tmp/ev.json" max_usage)
[ "$peak" -ge $((mx * 9 / 10)) ] && ok "evict: a sampled usage reaches 90% of the run's max_usage ($peak of $mx)" ||
	bad evict_peak "peak sampled usage $peak, max_usage $mx"
}
run_case evict

case_oom() {
echo "--- an OOM kill: 48M under -m 32M without swap"
g=t-rec-oom-$sfx
timeout -k 5 60 "$memgrp" run -g "$g" -m 32M --record "$tmp/oom.csv" --stats-json "$tmp/oom.json" \
	-- "$progs/prog_hold" 48 1 >"$tmp/oom.out" 2>&1; rc=$?
res=$(check "$tmp/oom.csv" "$tmp/oom.json" oom_kill 2>&1)
crit=$(grep -c pressure_critical "$tmp/oom.csv")
[ $rc -eq 137 ] && [ "${res%% *}" = ok ] && [ "$crit" -ge 1 ] &&
	ok "oom: exit 137, ${res#ok }" ||
	{ bad oom "rc $rc, pressure_critical rows $crit: $res"; cat "$tmp/oom.out" "$tmp/oom.csv"; }
}
run_case oom

case_threshold() {
echo "--- --record-threshold: each crossing of a usage threshold, up and down"
g=t-rec-thr-$sfx
# 32M held for 1 s, then given back as it exits (the shell stays 1 s
# more): 16M is crossed up, then down.
timeout -k 5 60 "$memgrp" run -g "$g" -m 64M --record "$tmp/thr.csv" --record-period 1000 \
	--record-threshold 16M --record-threshold 48M --stats-json "$tmp/thr.json" \
	-- bash -c '"$1" 32 1 && sleep 1' sh "$progs/prog_hold" >"$tmp/thr.out" 2>&1; rc=$?
res=$(check "$tmp/thr.csv" "$tmp/thr.json" threshold_16777216 2>&1)
# The crossing rows: one at or above 16M (up), one after it below (down);
# 48M is never reached, so never named.
dirs=$(python3 - "$tmp/thr.csv" <<'PY'
import csv, sys
out = []
for r in csv.DictReader(open(sys.argv[1])):
    for e in r["events"].split(";"):
        name, _, n = e.partition("*")
        if name.startswith("threshold_"):
            out.append("%s:%s" % (name, "up" if int(r["usage"]) >= int(name[10:]) else "down"))
print(" ".join(out))
PY
)
[ $rc -eq 0 ] && [ "${res%% *}" = ok ] && [[ " $dirs " == *" threshold_16777216:up "*"threshold_16777216:down "* ]] &&
	[[ $dirs != *threshold_50331648* ]] &&
	ok "threshold: crossed up then down at 16M, 48M never ($dirs); ${res#ok }" ||
	{ bad threshold "rc $rc, crossings '$dirs': $res"; cat "$tmp/thr.out" "$tmp/thr.csv"; }
for t in 0 abc; do
	"$memgrp" run --record "$tmp/x.csv" --record-threshold "$t" -- touch "$tmp/ran" >"$tmp/opt.out" 2>&1; rc=$?
	[ $rc -eq 2 ] && grep -q -- '--record-threshold' "$tmp/opt.out" && [ ! -e "$tmp/ran" ] ||
		{ bad "threshold_$t" "rc $rc: $(cat "$tmp/opt.out")"; return; }
done
"$memgrp" run --record-threshold 1M -- touch "$tmp/ran" >"$tmp/opt.out" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q 'needs --record' "$tmp/opt.out" && [ ! -e "$tmp/ran" ] &&
	ok "--record-threshold 0, abc, or without --record: status 2, nothing run" ||
	bad threshold_alone "rc $rc: $(cat "$tmp/opt.out")"
}
run_case threshold

case_coop() {
echo "--- a cooperating cache server asked at the limit"
g=t-rec-co-$sfx
if [ "$accounting" = 0 ]; then
	skip coop "sanitizer build: the cache server's malloc'd cache is ASan's, not counted"
	return
fi
# examples/cache_server --when-asked frees only when the manager asks
timeout -k 5 120 "$memgrp" run -g "$g" -m 64M --record "$tmp/co.csv" --record-period 50 \
	--stats-json "$tmp/co.json" -- "$examples/cache_server" --when-asked 400 >"$tmp/co.out" 2>&1; rc=$?
res=$(check "$tmp/co.csv" "$tmp/co.json" coop_request 2>&1)
[ $rc -eq 0 ] && [ "${res%% *}" = ok ] && [ "$(jget "$tmp/co.json" coop_requests)" -ge 1 ] &&
	ok "coop: $(jget "$tmp/co.json" coop_requests) requests, $(( $(jget "$tmp/co.json" coop_freed) >> 20 )) MiB freed, summed by the rows; ${res#ok }" ||
	{ bad coop "rc $rc: $res"; tail -5 "$tmp/co.out"; }
}
run_case coop

case_memgrpd() {
echo "--- a group served by memgrpd (the recorder as its client)"
"$memgrpd" --socket "$dsock" --state-dir none 2>"$tmp/memgrpd.log" &
dpid=$!
wait_socket "$dsock"
g=t-rec-d-$sfx
timeout -k 5 60 "$memgrp" --socket "$dsock" run -g "$g" -m 32M --swap-max 256M --record "$tmp/d.csv" \
	--stats-json "$tmp/d.json" -- "$progs/prog_hold" 48 0.5 >"$tmp/d.out" 2>&1; rc=$?
res=$(check "$tmp/d.csv" "$tmp/d.json" evict 2>&1)
[ $rc -eq 0 ] && [ "${res%% *}" = ok ] && ok "memgrpd: ${res#ok }" ||
	{ bad memgrpd "rc $rc: $res"; cat "$tmp/d.out" "$tmp/memgrpd.log"; }
kill "$dpid"; wait "$dpid" 2>/dev/null; dpid=
}
run_case memgrpd

case_killed() {
echo "--- a run killed outright leaves whole rows"
g=t-rec-k-$sfx
# without the kernel backstop: a killed run leaves no kernel cgroup
"$memgrp" run -g "$g" -m 64M --kernel-backstop off --record "$tmp/k.csv" --record-period 20 -- \
	sh -c "echo \$\$ >'$tmp/k.pid'; exec '$progs/prog_hold' 16 30" >"$tmp/k.out" 2>&1 &
rpid=$!
track $rpid
# rows until the 16M are held (the agent's start is slower under ASan), then more
wait_for 30 awk -F, 'NR > 1 && $3 >= 16777216 { f = 1 } END { exit !f }' "$tmp/k.csv"
n=$(wc -l <"$tmp/k.csv")
wait_for 10 bash -c "[ \$(wc -l <'$tmp/k.csv') -ge $((n + 5)) ]"
kill -KILL $rpid; wait $rpid 2>/dev/null
hp=$(cat "$tmp/k.pid" 2>/dev/null)
[ -n "$hp" ] && kill -KILL "$hp" 2>/dev/null
rm -f "/run/memgrp/$g.sock" # a manager killed outright cannot remove its socket
# the recorder stops by itself (its parent gone, or the manager)
wait_for 5 bash -c "! fuser -s '$tmp/k.csv' 2>/dev/null"
res=$(python3 - "$tmp/k.csv" <<'PY'
import csv, sys
text = open(sys.argv[1]).read()
rows = list(csv.reader(text.splitlines()))
bad = [i for i, r in enumerate(rows) if len(r) != len(rows[0])]
print("%d %s %s" % (len(rows) - 1, "whole" if text.endswith("\n") and not bad else "cut:%s" % bad,
                    max(int(r[2]) for r in rows[1:])))
PY
)
read -r nrows whole peak <<<"$res"
[ "${nrows:-0}" -ge 9 ] && [ "$whole" = whole ] && [ "${peak:-0}" -ge $((16 << 20)) ] &&
	ok "killed: $nrows whole rows, usage up to $((peak >> 20)) MiB" ||
	bad killed "$res"
if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
	"$plot" "$tmp/k.csv" -o "$tmp/k.png" >"$tmp/kplot.out" 2>&1 && [ -s "$tmp/k.png" ] &&
		ok "killed: plot-timeline.py draws it" || { bad killed_plot "$(cat "$tmp/kplot.out")"; }
fi
}
run_case killed

case_plot() {
echo "--- plot-timeline.py: a PNG from a real run's CSV, and bad input"
if ! /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
	skip plot "no python3-matplotlib (scripts/setup.sh installs it)"
	return
fi
"$plot" "$tmp/oom.csv" -o "$tmp/oom.png" >"$tmp/plot.out" 2>&1; rc=$?
magic=$(head -c 8 "$tmp/oom.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')
size=$(stat -c %s "$tmp/oom.png" 2>/dev/null || echo 0)
[ $rc -eq 0 ] && [ "$magic" = 89504e470d0a1a0a ] && [ "$size" -gt 10000 ] &&
	ok "a PNG of $size bytes from the oom run's CSV" || bad plot "rc $rc, magic $magic, size $size: $(cat "$tmp/plot.out")"
# default name: FILE with .png
cp "$tmp/oom.csv" "$tmp/again.csv"
"$plot" "$tmp/again.csv" >/dev/null 2>&1 && [ -s "$tmp/again.png" ] && ok "OUT defaults to FILE.png" ||
	bad plot_default "no $tmp/again.png"
# bad input: each a clear error naming the problem, status 2, no picture
printf 'a,b,c\n1,2,3\n' >"$tmp/bad1.csv"
: >"$tmp/bad2.csv"
{ head -1 "$tmp/oom.csv"; sed -n 2p "$tmp/oom.csv" | sed 's/^[^,]*,[^,]*,[^,]*/0.1,1,12x/'; } >"$tmp/bad3.csv"
{ head -1 "$tmp/oom.csv"; echo "1,2,3"; sed -n 2p "$tmp/oom.csv"; } >"$tmp/bad4.csv"
head -1 "$tmp/oom.csv" >"$tmp/bad5.csv"
for c in "bad1:not a memgrp run --record header" "bad2:is empty" "bad3:line 2: usage is '12x', not a number" \
	 "bad4:line 2: 3 fields" "bad5:no rows" "missing:cannot read"; do
	f=${c%%:*} want=${c#*:}
	"$plot" "$tmp/$f.csv" -o "$tmp/$f.png" >"$tmp/$f.out" 2>&1; rc=$?
	[ $rc -eq 2 ] && grep -qF "$want" "$tmp/$f.out" && [ ! -e "$tmp/$f.png" ] &&
		ok "bad input $f: status 2, '$(head -1 "$tmp/$f.out")'" ||
		bad "plot_$f" "rc $rc: $(cat "$tmp/$f.out")"
done
}
run_case plot oom

case_options() {
echo "--- bad --record and --record-period: said before anything runs"
for p in 0 5 60001 abc ''; do
	"$memgrp" run --record "$tmp/x.csv" --record-period "$p" -- touch "$tmp/ran" >"$tmp/opt.out" 2>&1; rc=$?
	[ $rc -eq 2 ] && grep -q -- '--record-period: milliseconds' "$tmp/opt.out" && [ ! -e "$tmp/ran" ] ||
		{ bad "period_$p" "rc $rc: $(cat "$tmp/opt.out")"; return; }
done
ok "--record-period 0, 5, 60001, abc, '': status 2, nothing run"
"$memgrp" run --record "$tmp/no/such/dir.csv" -- touch "$tmp/ran" >"$tmp/opt.out" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "record $tmp/no/such/dir.csv: No such file or directory" "$tmp/opt.out" && [ ! -e "$tmp/ran" ] &&
	ok "an unwritable --record file: status 2, '$(cat "$tmp/opt.out")', nothing run" ||
	bad unwritable "rc $rc: $(cat "$tmp/opt.out")"
}
run_case options
