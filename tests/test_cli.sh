#!/usr/bin/env bash
# test_cli.sh - the memgrp binary: exit codes, messages, and the demo's story.
set -u
memgrp=$1
failed=0 passed=0

expect() { # expect NAME WANT_RC GREP_PATTERN -- ARGS...
	local name=$1 want=$2 pattern=$3; shift 4
	local out rc
	out=$("$memgrp" "$@" 2>&1); rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "FAIL $name: exit $rc, want $want"; echo "$out" | sed 's/^/    /' | head -20
		failed=$((failed + 1)); return
	fi
	if ! grep -qE -- "$pattern" <<<"$out"; then
		echo "FAIL $name: output lacks /$pattern/"; echo "$out" | sed 's/^/    /' | head -40
		failed=$((failed + 1)); return
	fi
	echo "ok   $name"; passed=$((passed + 1))
}

expect help          0 "Exit codes:"                         -- --help
expect version       0 "^memgrp [0-9]+\.[0-9]+\.[0-9]+$"     -- --version
expect no_command    2 "Usage: memgrp"                       --
expect unknown       2 "unknown command 'frobnicate'"        -- frobnicate
expect planned       3 "'events' is not implemented yet"     -- events g
expect demo_help     0 "Usage: memgrp demo"                  -- demo --help
expect bad_size      2 "--limit: 'lots': a size starts"      -- demo --limit lots
expect bad_suffix    2 "unknown suffix 'X'"                  -- demo --step 4X
expect tiny_size     2 "must be between 4K and 4P"           -- demo --step 100
expect inverted      2 "need step <= child-limit <= limit"   -- demo --limit 16M --child-limit 32M
expect stray_arg     2 "unexpected argument 'extra'"         -- demo extra
# The story the demo tells, checked line by line against the core's decisions.
expect child_refuses 0 "web/api +\+4M +REFUSED by web/api \(usage 48M, max 48M, failcnt 1\)" -- demo
expect parent_refuses 0 "web/worker +\+4M +REFUSED by web \(usage 64M, max 64M" -- demo
expect crossing_up   0 "threshold 16M crossed upward"        -- demo
expect crossing_down 0 "threshold 32M crossed downward"      -- demo
expect slow_region   0 "map 48M +-> slow"                    -- demo
expect denial        0 "denied \(Cannot allocate memory\)"   -- demo
expect custom        0 "REFUSED by web/api \(usage 96M, max 96M" -- demo --limit 128M --child-limit 96M --step 8M

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
