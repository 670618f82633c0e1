# lib.sh - the integration scripts' shared harness: TAP results, temp dir, cleanup, sanitizer preload, waiting helpers.
#
# A script starts with
#     set -u
#     . "$(dirname "$0")/lib.sh"
# and gets:
#   $tmp, $sfx, $here     its own temp dir (removed at exit), $$ (for names
#                         no concurrent run shares), the tests directory
#   ok DESC               one passed check; bad NAME WHY: one failed check;
#   skip NAME WHY         one skipped check; skip_all WHY: the whole script
#   run_case NAME [NEED...]
#                         runs the function case_NAME (one section of the
#                         script); under TEST_ONLY, only the named cases and
#                         the earlier cases they NEED (their state: groups,
#                         files) run
#   selected NAME         whether TEST_ONLY lets case NAME run (for scripts
#                         whose cases are single calls, test_cli.sh's expect)
#   track PID...          processes killed at exit if still there
#   kcg_track SOCK...     managers whose kernel cgroups kcg_clean.py removes
#                         at exit (their processes killed first)
#   dump_stuck PID        every thread of PID and its descendants: state,
#                         wchan, kernel stack (for a case about to time out)
#   wait_for SECS CMD...  polls CMD every 0.1 s until it succeeds (status 1
#                         after SECS); wait_socket PATH [SECS]
#   jget FILE KEY         a key of a JSON file; stat_field GROUP KEY (needs
#                         the script's mg)
#   $accounting           0 in a sanitizer build (MEMGRP_TEST_PRELOAD set:
#                         its runtime is preloaded into everything started
#                         from here), else 1
# A function named `cleanup`, if the script defines one, runs first at exit
# (a daemon stopped gracefully removes its own cgroups); then what is
# tracked is killed, every process the script started and left behind is
# killed, kernel cgroups are removed, $tmp goes.
#
# Output is TAP, so that meson (protocol: 'tap') lists each check as its
# own result: "ok N - DESC", "not ok N - NAME: WHY", "ok N - NAME # SKIP
# WHY", and the plan "1..N" at the end. Everything else the script prints
# goes to stderr, and a last line "P passed, F failed, S skipped" there.
# Exit status: 0 when nothing failed.
#
# One case alone:  TEST_ONLY=NAME[,NAME...] tests/test_x.sh ARGS...
# or through meson: TEST_ONLY=hierarchy meson test -C build memgrpd -v

here=$(cd "$(dirname "$0")" && pwd)
sfx=$$
tmp=$(mktemp -d)
passed=0 failed=0 skipped=0
mgt_n=0
mgt_tracked=()
mgt_kcg=()

# Everything the script prints goes through one filter, in order: lines
# marked by the functions here go to stdout as TAP (so no program's output
# can be mistaken for a result), the rest to stderr, which meson shows with
# a failed test (--print-errorlogs) and keeps in its log.
mgt_mark=$'\001TAP '
exec 3>&1 4>&2
exec > >(awk -v m="$mgt_mark" 'index($0, m) == 1 { print substr($0, length(m) + 1); fflush(); next }
	{ print > "/dev/stderr"; fflush("/dev/stderr") }' >&3 2>&4)
mgt_filter=$!

# A result goes out twice: as TAP, and on stderr among the diagnostics it
# belongs with (what meson shows of a failed script).
mgt_tap() { printf '%s%s\n%s\n' "$mgt_mark" "$*" "$*"; }
# '#' would start a TAP directive in the middle of a description.
mgt_clean() { local s=${1//#/No.}; printf '%s' "${s//$'\n'/ }"; }

ok()   { mgt_n=$((mgt_n + 1)); passed=$((passed + 1)); mgt_tap "ok $mgt_n - $(mgt_clean "$1")"; }
bad()  { mgt_n=$((mgt_n + 1)); failed=$((failed + 1)); mgt_tap "not ok $mgt_n - $(mgt_clean "$1: $2")"; }
skip() { mgt_n=$((mgt_n + 1)); skipped=$((skipped + 1)); mgt_tap "ok $mgt_n - $(mgt_clean "$1") # SKIP $(mgt_clean "$2")"; }
skip_all() {
	mgt_tap "1..0 # SKIP $(mgt_clean "$1")"
	mgt_planned=1
	exit 0
}

track() { mgt_tracked+=("$@"); }
kcg_track() { mgt_kcg+=("$@"); }

wait_for() {
	local secs=$1 i; shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}
wait_socket() { wait_for "${2:-5}" test -S "$1"; }

jget() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
stat_field() { mg stat --json "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }

# Every descendant of pid $1 but the output filter and the subshell
# asking, deepest first.
mgt_descendants() {
	local c
	for c in $(env -u LD_PRELOAD pgrep -P "$1" 2>/dev/null); do
		[ "$c" = "$mgt_filter" ] || [ "$c" = "$BASHPID" ] && continue
		mgt_descendants "$c"
		echo "$c"
	done
}

# dump_stuck PID: what every thread of PID and its descendants waits in
# (state, wchan, the kernel stack as root may read it), for a case about
# to time out: a hang in CI is then diagnosed from the log alone.
dump_stuck() {
	local p t
	for p in "$1" $(mgt_descendants "$1"); do
		[ -d "/proc/$p" ] || continue
		echo "== pid $p ($(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | head -c 120))"
		for t in /proc/"$p"/task/*; do
			echo "  tid ${t##*/} $(cat "$t/comm" 2>/dev/null) state $(awk '/^State/ {print $2}' "$t/status" 2>/dev/null) wchan $(cat "$t/wchan" 2>/dev/null)"
			sed 's/^/      /' "$t/stack" 2>/dev/null | head -12
		done
	done
}

mgt_exit() {
	local rc=$? p left
	trap - EXIT
	if declare -F cleanup >/dev/null; then
		cleanup
	fi
	disown -a # (no "Killed" notices for the script's own jobs)
	for p in "${mgt_tracked[@]}"; do kill -KILL "$p" 2>/dev/null; done
	left=$(mgt_descendants $$)
	[ -n "$left" ] && kill -KILL $left 2>/dev/null
	if [ ${#mgt_kcg[@]} -gt 0 ]; then
		env -u LD_PRELOAD python3 "$here/kcg_clean.py" --kill "${mgt_kcg[@]}"
	fi
	rm -rf "$tmp"
	if [ -z "${mgt_planned:-}" ]; then
		# A script that stopped early (a failed setup) still says so.
		[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && bad "${0##*/}" "stopped with status $rc"
		mgt_tap "1..$mgt_n"
		echo "$passed passed, $failed failed, $skipped skipped"
	fi
	exec >&- 2>&-
	for ((p = 0; p < 50; p++)); do kill -0 "$mgt_filter" 2>/dev/null || break; sleep 0.1; done
	[ "$failed" -eq 0 ] && [ "$rc" -eq 0 ] && exit 0
	exit 1
}
trap mgt_exit EXIT
trap 'exit 1' INT TERM # (meson's timeout: the EXIT trap cleans up all the same)

accounting=1
if [ -n "${MEMGRP_TEST_PRELOAD:-}" ]; then
	# Sanitizer build: its runtime first, and no leak reports from the
	# third-party programs the tests run (python3, redis, gcc...).
	export LD_PRELOAD=$MEMGRP_TEST_PRELOAD
	export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
	# prog_stress without its forker: libasan's allocator is not fork-safe
	# with threads (tests/progs/stress.c); the plain build runs it whole.
	export STRESS_NO_FORK=1
	echo "(sanitizer build: LD_PRELOAD=$LD_PRELOAD)"
	accounting=0
fi

# The cases TEST_ONLY lets run: those named, and what they need, as the
# script's own run_case lines say.
mgt_only=
if [ -n "${TEST_ONLY:-}" ]; then
	declare -A mgt_needs=()
	while read -r _ name needs; do
		mgt_needs[$name]=$needs
	done < <(grep -E '^run_case [A-Za-z0-9_]+' "$0")
	mgt_want=() mgt_seen=" "
	IFS=, read -ra mgt_want <<<"$TEST_ONLY"
	while [ ${#mgt_want[@]} -gt 0 ]; do
		name=${mgt_want[0]}; mgt_want=("${mgt_want[@]:1}")
		case "$mgt_seen" in *" $name "*) continue ;; esac
		if [ -z "${mgt_needs[$name]+set}" ]; then
			if ! grep -qE "^expect +$name " "$0"; then
				mgt_tap "Bail out! no case '$name' in ${0##*/}; its cases: ${!mgt_needs[*]}"
				mgt_planned=1
				exit 1
			fi
		else
			read -ra more <<<"${mgt_needs[$name]}"
			mgt_want+=("${more[@]}")
		fi
		mgt_seen+="$name "
	done
	mgt_only=$mgt_seen
	echo "TEST_ONLY=$TEST_ONLY: running${mgt_only% }"
fi

selected() {
	[ -z "$mgt_only" ] && return 0
	case "$mgt_only" in *" $1 "*) return 0 ;; esac
	return 1
}

# A case's own status is not the script's: a case that ends on a command
# that failed (a `wait` for a killed process) does not fail the script;
# its checks do, and an `exit` in it does.
run_case() {
	selected "$1" || return 0
	"case_$1"
	return 0
}
