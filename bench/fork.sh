#!/usr/bin/env bash
# bench/fork.sh - the cost of a fork of a process with most of its memory evicted,
# under memgrp beside the same fork unmanaged.
# Usage: bench/fork.sh [BUILD_DIR]   (as root: memgrp evicts only with UFFD_EVENT_FORK)
# Environment: MB (512: the process's memory), LIMIT (64M: the group's limit,
#        so that MB - LIMIT is evicted), FORKS (20 per run), RUNS (3)
set -euo pipefail
build=$(realpath "${1:-build}")
memgrp=$build/src/cli/memgrp
prog=$build/tests/progs/prog_forkchain
mb=${MB:-512}
limit=${LIMIT:-64M}
forks=${FORKS:-20}
runs=${RUNS:-3}

# Each run prints "fork_us p50 A max B; fork_to_reap_us p50 C max D": the
# parent's fork() alone, and fork() to the reaped exit of a child that
# exits at once (its agent's start included). The best run's p50s count.
best() { # best CMD...: "fork_p50 reap_p50" of the run with the lowest reap p50
	for _ in $(seq "$runs"); do
		"$@" 2>/dev/null | sed -n 's/^fork_us p50 \([0-9]*\) max [0-9]*; fork_to_reap_us p50 \([0-9]*\) .*/\1 \2/p'
	done | sort -k2 -n | head -1
}

printf 'fork of a process holding %d MiB (%s limit under memgrp: the rest evicted), %d forks a run, best of %d runs\n' \
	"$mb" "$limit" "$forks" "$runs"
printf '%-44s %14s %18s\n' "" "fork() us p50" "fork..reap us p50"
read -r nf nr < <(best "$prog" "$mb" time "$forks")
printf '%-44s %14s %18s\n' "unmanaged" "$nf" "$nr"
read -r mf mr < <(best "$memgrp" run -m "$limit" --swap-max 4G -- "$prog" "$mb" time "$forks")
printf '%-44s %14s %18s\n' "memgrp run -m $limit --swap-max 4G" "$mf" "$mr"
printf '%-44s %14s %18s\n' "memgrp minus unmanaged" "$((mf - nf))" "$((mr - nr))"
