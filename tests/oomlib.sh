# oomlib.sh - what the OOM tests (test_oom, test_oomhandler, test_hostoom) share: memgrpd, held processes, waits on their end.
# Sourced after lib.sh, once memgrp, memgrpd and progs are set; sock and log
# name the manager's socket and log.

if [ ! -e /dev/userfaultfd ] && [ "$(id -u)" != 0 ]; then
	skip_all "userfaultfd is not available to this user"
fi

mg() { "$memgrp" --socket "$sock" "$@"; }
alive() { kill -0 "$1" 2>/dev/null; }

# status NAME: the exit status of process NAME (pid in pid_NAME), once it
# has gone (memgrp run passes its command's: 137 = SIGKILL)
status() { eval "wait \$pid_$1"; echo $?; }

# start_memgrpd ARGS...: memgrpd on $sock (log $log), pid in dpid; 1 if it
# does not listen (said)
start_memgrpd() {
	kcg_track "$sock"
	"$memgrpd" --socket "$sock" "$@" 2>"$log" &
	dpid=$!
	wait_socket "$sock" || { bad start "memgrpd did not listen: $(tail -3 "$log")"; return 1; }
}

# hold_in GROUP NAME MB SECS [MORE [RUN-OPTIONS...]]: prog_hold of MB in
# GROUP as process NAME (its memgrp run's pid in pid_NAME), holding SECS;
# with MORE > 0 it touches MORE MB more once $tmp/go-NAME exists. Returns
# once it holds its MB (1 if it did not in 20 s), so that the processes'
# ages follow the order they were started in.
hold_in() {
	local grp=$1 name=$2 mb=$3 secs=$4 more=${5:-0} rc
	shift 5 2>/dev/null || shift $#
	rm -f "$tmp/$name.out" # (an earlier NAME's "holding" would end the wait at once)
	if [ "$more" -gt 0 ]; then
		mg run -g "$grp" "$@" -- "$progs/prog_hold" "$mb" "$secs" "$more" "$tmp/go-$name" \
			>"$tmp/$name.out" 2>&1 &
	else
		mg run -g "$grp" "$@" -- "$progs/prog_hold" "$mb" "$secs" >"$tmp/$name.out" 2>&1 &
	fi
	eval "pid_$name=$!"
	track $!
	wait_for 20 grep -qs "^holding $mb MB" "$tmp/$name.out"
	rc=$?
	sleep 0.3
	return $rc
}

# gone_within SECS NAME...: waits until one of the processes NAME is gone
# and says which, or "none".
gone_within() {
	local secs=$1 n
	shift
	for _ in $(seq $((secs * 10))); do
		for n in "$@"; do
			eval "alive \$pid_$n" || { echo "$n"; return 0; }
		done
		sleep 0.1
	done
	echo none
}
