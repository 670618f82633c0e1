#!/usr/bin/env bash
# test_cli.sh - the memgrp binary: exit codes, messages, and the demo's story.
# One case alone: TEST_ONLY=NAME (an expect's first argument).
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$1

expect() { # expect NAME WANT_RC GREP_PATTERN -- ARGS...
	local name=$1 want=$2 pattern=$3; shift 4
	local out rc
	selected "$name" || return 0
	out=$("$memgrp" "$@" 2>&1); rc=$?
	if [ "$rc" -ne "$want" ]; then
		bad "$name" "exit $rc, want $want"; echo "$out" | sed 's/^/    /' | head -20
		return
	fi
	if ! grep -qE -- "$pattern" <<<"$out"; then
		bad "$name" "output lacks /$pattern/"; echo "$out" | sed 's/^/    /' | head -40
		return
	fi
	ok "$name"
}

expect help          0 "Exit codes:"                         -- --help
expect version       0 "^memgrp [0-9]+\.[0-9]+\.[0-9]+$"     -- --version
expect no_command    2 "Usage: memgrp"                       --
expect unknown       2 "unknown command 'frobnicate'"        -- frobnicate
expect top_help      0 "Usage: memgrp top"                   -- top --help
expect top_bad_sort  2 "--sort: usage, name"                 -- top --sort size
expect top_bad_int   2 "--interval: seconds"                 -- top --interval 0
expect top_no_mgr    1 "no manager answers at /nonexistent"  -- --socket /nonexistent/x.sock top --once
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

# memgrp run and stat: bad input is refused before anything starts.
expect run_help      0 "Usage: memgrp run"                   -- run --help
expect run_nocmd     2 "no command given"                    -- run
expect run_badsize   2 "--memory-max: 'sixty': a size"       -- run -m sixty -- true
expect run_tiny      2 "at least one page"                   -- run -m 100 -- true
expect run_fa        2 "--fault-around: a number of pages"   -- run --fault-around 0 -- true
expect run_fa_big    2 "--fault-around: a number of pages"   -- run --fault-around 65 -- true
expect run_high      2 "--memory-high: 'lots'"               -- run --memory-high lots -- true
expect run_swappiness 2 "--swappiness: a number from 0 to 100" -- run --swappiness 101 -- true
expect run_codec     2 "--codec: lz4 or zstd, not 'gzip'"    -- run --codec gzip -- true
expect run_swap      2 "--swap-max: 'lots'"                  -- run --swap-max lots -- true
expect run_mode      2 "--mode: exact or estimate, not .fast."  -- run --mode fast -- true
expect run_nested    1 "no manager serves 'memgrp-none-[0-9]+/api'" -- run -g "memgrp-none-$$/api" -- true
expect run_badgroup  2 "may not start with '.'"              -- run -g .hidden -- true
expect run_badgroup2 2 "empty component"                     -- run -g web//api -- true
expect stat_help     0 "Usage: memgrp stat"                  -- stat --help
expect stat_nogroup  2 "which group"                         -- stat
expect stat_absent   1 "no manager answers"                  -- stat memgrp-no-such-group
expect stat_badname  2 "is not a group name"                 -- stat a//b
expect stat_deep     2 "at most 8 deep"                      -- stat a/b/c/d/e/f/g/h/i

expect set_help      0 "Usage: memgrp set"                   -- set --help
expect set_nogroup   2 "name one group"                      -- set -m 1G
expect set_nothing   2 "nothing to set"                      -- set g
expect set_badsize   2 "--memory-max: 'lots'"                -- set g -m lots
expect set_low       2 "--memory-low: 'x'"                   -- set g --memory-low x
expect set_absent    1 "no manager answers"                  -- set memgrp-no-such-group -m 1G
expect create_help   0 "Usage: memgrp create"                -- create --help
expect create_none   2 "name one group"                      -- create
expect create_bad    2 "group names use letters"             -- create 'a b'
expect create_absent 1 "no manager answers"                  -- create memgrp-no-such-group/x
expect rm_help       0 "Usage: memgrp rm"                    -- rm --help
expect rm_none       2 "wrong arguments \(memgrp rm \[--socket PATH\] GROUP\)" -- rm
expect attach_none   2 "wrong arguments \(memgrp attach"       -- attach web
expect attach_badpid 2 "'x1' is not a pid"                   -- attach web x1
expect rm_absent     1 "no manager answers"                  -- rm memgrp-no-such-group
expect socket_noarg  2 "--socket needs a path"               -- --socket
expect socket_global 1 "no manager answers at /nonexistent.sock" -- --socket /nonexistent.sock stat g
expect ls_help       0 "Usage: memgrp ls"                    -- ls --help
expect ls_bad        2 "unexpected argument"                 -- ls extra
