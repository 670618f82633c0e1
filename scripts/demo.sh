#!/usr/bin/env bash
# demo.sh - memgrp's main job on a fresh machine: real processes held to a limit.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh" || exit 1
[ -f "$root/build/build.ninja" ] || meson setup "$root/build" "$root" >/dev/null || exit 1
meson compile -C "$root/build" >/dev/null || exit 1
memgrp=$root/build/src/cli/memgrp
stats=$(mktemp)
trap 'rm -f "$stats"' EXIT
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$stats" "$1"; }
mib() { echo "$(( $1 / 1048576 )) MiB"; }

echo "1. python3 grows to 48 MB in a group limited to 64M"
"$memgrp" run -m 64M --stats-json "$stats" -- python3 "$root/examples/grow.py" 48
rc1=$?
echo "   exit $rc1; group peak usage $(mib "$(field max_usage)"), page faults resolved $(field pgfault)"
echo
echo "2. python3 tries to grow to 128 MB in the same limit"
"$memgrp" run -m 64M --stats-json "$stats" -- python3 "$root/examples/grow.py" 128
rc2=$?
echo "   exit $rc2; group peak usage $(mib "$(field max_usage)") (limit 64 MiB), OOM kills $(field oom_kill)"
echo
if [ $rc1 -eq 0 ] && [ $rc2 -eq 137 ] && [ "$(field max_usage)" -le $((64 << 20)) ]; then
	echo "As expected: the first run fit, the second was stopped at the limit."
else
	echo "Unexpected outcome (exit codes $rc1 and $rc2)."
	exit 1
fi
