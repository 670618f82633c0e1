#!/usr/bin/env bash
# bench/oom_host.sh - the host path (issue 18 item 11, host part): memgrpd's --min-available beside earlyoom with the same threshold, on the same workload: which process each killed, how long after MemAvailable went under the floor, and how long memory stayed short.
#
# The shortage is simulated, not made: the floor is set from this host's
# MemAvailable (minus the workload and the hog, plus 768 MB), and a
# process outside the workload (the hog, HOG_MB) takes MemAvailable under
# it by 768 MB; killing the largest of the workload (A) brings it back
# over by 256 MB. The host itself never runs short (under 5 GB taken, the
# floor stays above 12 GB here). The host's other load moves MemAvailable
# by gigabytes on a shared machine: the margins are that wide for it.
# Workload: A 1024 MB, B 512 MB, C 256 MB (prog_hold), started in that
# order. memgrpd: each in a group of its own (bench-hA/B/C), the hog in
# none (so not a candidate), --oom-policy largest (default), --host-sustain
# SUSTAIN. earlyoom: -M FLOOR,FLOOR (SIGKILL at the floor) --avoid the hog,
# run with the workload in a PID namespace of their own (unshare
# --mount-proc), so that it can kill nothing else on this host.
# Usage: bench/oom_host.sh [BUILD_DIR]   (as root; earlyoom installed)
# Environment: ROUNDS (5), HOG_MB (3072), SUSTAIN (2s, memgrpd's default),
#        TOOLS ("memgrpd earlyoom").
set -euo pipefail
build=$(realpath "${1:-build}")
here=$(cd "$(dirname "$0")" && pwd)
memgrp=$build/src/cli/memgrp
memgrpd=$build/src/daemon/memgrpd
hold=$build/tests/progs/prog_hold
rounds=${ROUNDS:-5}
hog=${HOG_MB:-3072}
sustain=${SUSTAIN:-2s}
work=$((1024 + 512 + 256))
tmp=$(mktemp -d)
dpid=
cleanup() {
	[ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "oom_host.sh: run as root" >&2; exit 1; }
command -v earlyoom >/dev/null || { echo "oom_host.sh: apt-get install earlyoom" >&2; exit 1; }
for f in "$memgrp" "$memgrpd" "$hold"; do
	[ -x "$f" ] || { echo "oom_host.sh: $f is missing: meson compile -C ${1:-build}" >&2; exit 1; }
done

avail_mb() { awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo; }
if [ "$(avail_mb)" -lt $((4 * (work + hog))) ]; then
	echo "oom_host.sh: MemAvailable $(avail_mb) MB: too little to simulate safely" >&2
	exit 1
fi

# round_memgrpd: one round; prints the watch's line
round_memgrpd() {
	local sock=$tmp/d.sock floor=$(($(avail_mb) - work - hog + 768)) pids=() name mb
	"$memgrpd" --socket "$sock" --state-dir none --kernel-backstop off --min-available "${floor}M" \
		--host-sustain "$sustain" 2>"$tmp/memgrpd.log" &
	dpid=$!
	for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
	for name_mb in A:1024 B:512 C:256; do
		name=${name_mb%:*} mb=${name_mb#*:}
		"$memgrp" --socket "$sock" create "bench-h$name"
		"$memgrp" --socket "$sock" run -g "bench-h$name" -- "$hold" "$mb" 120 >"$tmp/$name.out" 2>&1 &
		pids+=("$name=$!")
		for _ in $(seq 300); do grep -q holding "$tmp/$name.out" && break; sleep 0.1; done
	done
	python3 -c "import time; b = b'x' * ($hog << 20); time.sleep(60)" &
	local hpid=$!
	python3 "$here/oom_host.py" $((floor * 1024)) 30 "${pids[@]}"
	kill "$hpid" 2>/dev/null; wait "$hpid" 2>/dev/null || true
	kill "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null || true
	dpid=
	for p in "${pids[@]}"; do kill "${p#*=}" 2>/dev/null || true; wait "${p#*=}" 2>/dev/null || true; done
	grep -E "host:|is out of memory \(the host" "$tmp/memgrpd.log" >>"$tmp/memgrpd.all" || true
}

# round_earlyoom: the same inside a PID namespace with earlyoom
round_earlyoom() {
	unshare --pid --fork --mount-proc bash -c '
		set -u
		hold=$1 hog=$2 work=$3 here=$4 tmp=$5
		avail_mb() { awk "/^MemAvailable:/ { print int(\$2 / 1024) }" /proc/meminfo; }
		floor=$(($(avail_mb) - work - hog + 768))
		pids=()
		for name_mb in A:1024 B:512 C:256; do
			name=${name_mb%:*} mb=${name_mb#*:}
			"$hold" "$mb" 120 >"$tmp/$name.out" 2>&1 &
			pids+=("$name=$!")
			for _ in $(seq 300); do grep -q holding "$tmp/$name.out" && break; sleep 0.1; done
		done
		earlyoom -M $((floor * 1024)),$((floor * 1024)) -s 100,100 -r 0 --avoid "^(python3|bash|oom_host\.py)$" \
			>"$tmp/earlyoom.log" 2>&1 &
		epid=$!
		sleep 0.5
		python3 -c "import time; b = b\"x\" * ($hog << 20); time.sleep(60)" &
		hpid=$!
		python3 "$here/oom_host.py" $((floor * 1024)) 30 "${pids[@]}"
		kill $hpid $epid 2>/dev/null
		for p in "${pids[@]}"; do kill "${p#*=}" 2>/dev/null; done
		wait 2>/dev/null
		grep -iE "sending|low memory" "$tmp/earlyoom.log" >>"$tmp/earlyoom.all"
	' bash "$hold" "$hog" "$work" "$here" "$tmp"
}

echo "host OOM: workload A 1024M, B 512M, C 256M; hog ${hog}M; floor: MemAvailable - workload - hog + 768M; sustain $sustain; $rounds rounds each"
for tool in ${TOOLS:-memgrpd earlyoom}; do
	: >"$tmp/$tool.res"
	for i in $(seq "$rounds"); do
		"round_$tool" | tee -a "$tmp/$tool.res" | sed "s/^/$tool round $i: /"
		sleep 1
	done
	python3 - "$tool" "$tmp/$tool.res" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[2]) if l.startswith("short_ms")]
def q(v):
    v = sorted(v)
    return f"p50 {v[(len(v) - 1) // 2]} ms, max {v[-1]} ms" if v else "none"
ok = [r for r in rows if int(r[5]) >= 0 and int(r[1]) >= 0]
print(f"{sys.argv[1]}: killed A {sum(r[3] == 'A' for r in rows)}/{len(rows)} "
      f"(others: {[r[3] for r in rows if r[3] != 'A']}); kill after the first short sample "
      f"{q([int(r[5]) - int(r[1]) for r in ok])}; short until room "
      f"{q([int(r[7]) - int(r[1]) for r in ok if int(r[7]) >= 0])}; under the floor in all "
      f"{q([int(r[9]) for r in rows])}")
PY
done
for tool in ${TOOLS:-memgrpd earlyoom}; do
	echo "$tool's log (the last lines of the host's steps and kills):"
	sed 's/^/  /' "$tmp/$tool.all" 2>/dev/null | grep -v "Will avoid\|when mem <=" | tail -8
done
