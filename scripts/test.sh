#!/usr/bin/env bash
# test.sh - builds memgrp and runs every test: plain, ASan+UBSan, TSan, fuzzing.
# Usage: scripts/test.sh [--quick]   (--quick: the plain build only)
# Ends with "N passed, N failed"; exits non-zero if anything failed.
set -u
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
fuzz_seconds=${MEMGRP_FUZZ_SECONDS:-60}
passed=0 failed=0

log() { printf '\n=== %s\n' "$*"; }

# Adds meson's Ok/Fail/Timeout counts from the last test log to the totals.
count_meson() {
	local out=$1 ok fail timeout
	ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$out" | tail -1)
	fail=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$out" | tail -1)
	timeout=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' "$out" | tail -1)
	passed=$((passed + ${ok:-0}))
	failed=$((failed + ${fail:-0} + ${timeout:-0}))
	# No summary at all means meson itself failed.
	[ -n "$ok" ] || failed=$((failed + 1))
}

# run_build NAME DIR [SUITE] -- MESON_SETUP_ARGS...
run_build() {
	local name=$1 dir=$2 suite=$3; shift 4
	local out=$dir.testout
	log "$name"
	if ! { meson setup --wipe "$dir" "$@" >/dev/null 2>&1 || meson setup "$dir" "$@"; } ||
	   ! meson compile -C "$dir" >"$dir.buildlog" 2>&1; then
		echo "$name: build failed"; tail -40 "$dir.buildlog" 2>/dev/null
		failed=$((failed + 1))
		return
	fi
	local args=(--print-errorlogs --num-processes 2)
	[ -n "$suite" ] && args+=(--suite "$suite")
	meson test -C "$dir" "${args[@]}" 2>&1 | tee "$out" | grep -vE '^ *$'
	count_meson "$out"
	audit_lost_faults "$name" "$dir"
}

# The watchdog's "lost fault: please report it" must never appear (issue
# 22); the tests' own dropped fault says so otherwise. meson's test log
# holds every test's output, passed ones included: the lines are listed
# with the test that printed them.
audit_lost_faults() {
	local name=$1 log=$2/meson-logs/testlog.txt n
	[ -f "$log" ] || return 0
	n=$(grep -c "a lost fault: please report it" "$log")
	echo "audit: $n lost-fault report(s) in the $name's test output"
	[ "$n" -gt 0 ] && awk '/^==* [0-9]+\/[0-9]+ =*$/ {getline t; test = t}
		/a lost fault: please report it/ {print "    " test ": " $0}' "$log" | head -20
	return 0
}

if ! scripts/setup.sh; then
	echo "setup failed: the build dependencies are missing"
	echo "0 passed, 1 failed"
	exit 1
fi

run_build "plain build (gcc, -Werror)" build "" --

if [ $quick -eq 0 ]; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	run_build "ASan+UBSan build" build-asan "" -- \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fno-sanitize-recover=all

	CC=clang run_build "TSan build (concurrency suite)" build-tsan concurrency -- \
		-Db_sanitize=thread -Db_lundef=false -Dtsan_only=true

	log "libFuzzer (clang, ASan+UBSan), ${fuzz_seconds}s per target"
	if CC=clang meson setup --wipe build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined \
			-Db_lundef=false >/dev/null 2>&1 ||
	   CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined \
			-Db_lundef=false >/dev/null; then
		if ! meson compile -C build-fuzz >build-fuzz.buildlog 2>&1; then
			echo "fuzz build failed:"; grep -E "error" build-fuzz.buildlog | head -20
			failed=$((failed + 1))
		fi
		for target in $(find build-fuzz/fuzz -maxdepth 1 -type f -executable -name 'fuzz_*' | sort); do
			name=$(basename "$target")
			corpus=fuzz/corpus/${name#fuzz_}
			work=$(mktemp -d)
			mkdir -p fuzz/crashes
			# New inputs go to a scratch directory, never into the tree.
			if "$target" -max_total_time="$fuzz_seconds" -timeout=10 \
				-artifact_prefix=fuzz/crashes/ "$work" "$corpus" >"$work.log" 2>&1; then
				echo "ok   $name ($(grep -o 'Done [0-9]* runs' "$work.log" | tail -1))"
				passed=$((passed + 1))
			else
				echo "FAIL $name: see fuzz/crashes/"; tail -30 "$work.log"
				failed=$((failed + 1))
			fi
			rm -rf "$work" "$work.log"
		done
	else
		echo "fuzz build: setup failed"
		failed=$((failed + 1))
	fi
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
