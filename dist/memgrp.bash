# memgrp.bash - bash completion for memgrp and memgrpd (installed as share/bash-completion/completions/memgrp).

# The groups the managers know, from `memgrp ls` (first column).
_memgrp_groups() {
	memgrp ${1:+--socket "$1"} ls 2>/dev/null | awk 'NR > 1 && $1 != "" { print $1 }'
}

_memgrp() {
	local cur prev cmd sock="" i
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	local limits="--memory-max --memory-high --memory-low --memory-soft --swap-max --swappiness --mode --backend"
	limits+=" --oom-policy --oom-kill --oom-signal --oom-grace --oom-prefer --oom-avoid --oom-kill-disable --oom-prekill --oom-prekill-timeout --oom-handler-timeout --oom-reserve"
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--socket) sock=${COMP_WORDS[i+1]}; i=$((i + 1)) ;;
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done
	case $prev in
	--socket | --stats-json | --metrics-file | --swap-file | --record)
		COMPREPLY=($(compgen -f -- "$cur")); return ;;
	-g | --group) COMPREPLY=($(compgen -W "$(_memgrp_groups "$sock")" -- "$cur")); return ;;
	--mode) COMPREPLY=($(compgen -W "exact estimate" -- "$cur")); return ;;
	--backend) COMPREPLY=($(compgen -W "agent kernel" -- "$cur")); return ;;
	--codec) COMPREPLY=($(compgen -W "lz4 zstd" -- "$cur")); return ;;
	--thp) COMPREPLY=($(compgen -W "never ingens always" -- "$cur")); return ;;
	--kernel-backstop) COMPREPLY=($(compgen -W "on off" -- "$cur")); return ;;
	--oom-policy) COMPREPLY=($(compgen -W "largest newest oldest priority growth" -- "$cur")); return ;;
	--oom-kill) COMPREPLY=($(compgen -W "process group" -- "$cur")); return ;;
	--oom-signal) COMPREPLY=($(compgen -W "KILL TERM" -- "$cur")); return ;;
	--sort) COMPREPLY=($(compgen -W "usage name faults evictions swap oom pressure" -- "$cur")); return ;;
	--pressure) COMPREPLY=($(compgen -W "low medium critical low,hierarchy medium,hierarchy critical,hierarchy" -- "$cur")); return ;;
	esac
	if [ -z "${cmd:-}" ]; then
		COMPREPLY=($(compgen -W "run stat set create rm attach events ls top oom demo --socket --help --version" -- "$cur"))
		return
	fi
	local opts=""
	case $cmd in
	run) opts="-g --group $limits --oom-priority --thp --thp-threshold --thp-rate --codec --swap-file --swap-file-after --fault-around --coop-wait --min-available --kernel-backstop --stats-json --socket --metrics-listen --metrics-file --record --record-period --record-threshold --help" ;;
	create | set) opts="$limits --thp --thp-threshold --thp-rate --thp-weight --socket --help" ;;
	stat) opts="--json --socket --help" ;;
	ls) opts="--json --socket --help" ;;
	top) opts="--once --json --sort --interval --width --socket --help" ;;
	events) opts="--threshold --memsw --pressure --oom --ladder --count --socket --json --help" ;;
	rm | attach) opts="--socket --help" ;;
	oom) opts="--kill --resume --socket --help" ;;
	demo) opts="--limit --child-limit --step --json --help" ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	elif [ "$cmd" = run ] && [[ " ${COMP_WORDS[*]} " == *" -- "* ]]; then
		COMPREPLY=($(compgen -c -- "$cur"))
	else
		case $cmd in
		stat | set | rm | attach | events | oom) COMPREPLY=($(compgen -W "$(_memgrp_groups "$sock")" -- "$cur")) ;;
		esac
	fi
}
complete -F _memgrp memgrp

_memgrpd() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	case $prev in
	--socket | --metrics-file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--state-dir) COMPREPLY=($(compgen -d -- "$cur") $(compgen -W none -- "$cur")); return ;;
	--kernel-backstop) COMPREPLY=($(compgen -W "on off" -- "$cur")); return ;;
	--host-pressure) COMPREPLY=($(compgen -W "'full 10%' 'some 25%/2s'" -- "$cur")); return ;;
	esac
	COMPREPLY=($(compgen -W "--socket --state-dir --fault-around --coop-wait --min-available --kernel-backstop --metrics-listen --metrics-file --host-pressure --host-sustain --dry-run --thp-compact-rate --help" -- "$cur"))
}
complete -F _memgrpd memgrpd
