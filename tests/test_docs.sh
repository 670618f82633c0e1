#!/usr/bin/env bash
# test_docs.sh - what an operator installs matches what exists: man pages and bash completion name every option, the systemd unit verifies.
# Usage: test_docs.sh MEMGRP MEMGRPD SOURCE_DIR BUILD_DIR
set -u
. "$(dirname "$0")/lib.sh"
memgrp=$(realpath "$1")
memgrpd=$(realpath "$2")
src=$(realpath "$3")
build=$(realpath "$4")

# The long options a --help text names.
opts() { grep -oE -- '--[a-z][a-z-]+' | sort -u; }
# A man page's text with roff's \- as -.
man_text() { sed 's/\\-/-/g' "$1"; }

case_man() {
missing=
for o in $("$memgrpd" --help | opts); do
	man_text "$src/docs/man/memgrpd.8" | grep -q -- "$o" || missing+=" memgrpd.8:$o"
done
for cmd in run top stat ls create set; do
	for o in $("$memgrp" "$cmd" --help | opts); do
		case $o in --help | --socket) continue ;; esac
		man_text "$src/docs/man/memgrp.1" | grep -q -- "$o" || missing+=" memgrp.1($cmd):$o"
	done
done
for cmd in $("$memgrp" --help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } /^$/ { on = 0 }'); do
	man_text "$src/docs/man/memgrp.1" | grep -q "^\.B $cmd" || missing+=" memgrp.1:command-$cmd"
done
[ -z "$missing" ] && ok "memgrp(1) and memgrpd(8) name every command and option the --help texts do" ||
	bad man "missing:$missing"
if command -v man >/dev/null; then
	w=$(env -u LD_PRELOAD man --warnings -l "$src/docs/man/memgrp.1" "$src/docs/man/memgrpd.8" 2>&1 >/dev/null)
	[ -z "$w" ] && ok "man renders both pages without warnings" || bad man_warnings "$w"
else
	skip man_warnings "man is not installed"
fi
! "$memgrp" run --help | grep -qi "not implemented" && ok "memgrp run --help claims nothing unimplemented" ||
	bad run_help "$("$memgrp" run --help | grep -i 'not implemented')"
}
run_case man

case_completion() {
missing=
for cmd in run top; do
	for o in $("$memgrp" "$cmd" --help | opts); do
		grep -q -- "$o" "$src/dist/memgrp.bash" || missing+=" $cmd:$o"
	done
done
for o in $("$memgrpd" --help | opts); do
	grep -q -- "$o" "$src/dist/memgrp.bash" || missing+=" memgrpd:$o"
done
# Completing "memgrp t" and "memgrp top --s" in a real bash.
got=$(env -u LD_PRELOAD bash -c ". '$src/dist/memgrp.bash'; COMP_WORDS=(memgrp t); COMP_CWORD=1; _memgrp; echo \"\${COMPREPLY[*]}\";
	COMP_WORDS=(memgrp top --s); COMP_CWORD=2; _memgrp; echo \"\${COMPREPLY[*]}\";
	COMP_WORDS=(memgrp top --sort p); COMP_CWORD=3; _memgrp; echo \"\${COMPREPLY[*]}\"" 2>&1 | tr '\n' '|')
[ -z "$missing" ] && [ "$got" = "top|--sort --socket|pressure|" ] &&
	ok "bash completion: every option of run, top and memgrpd; completes commands, options, sort keys" ||
	bad completion "missing:$missing; got '$got'"
}
run_case completion

case_unit() {
if ! command -v systemd-analyze >/dev/null; then
	skip unit "systemd-analyze is not installed"
	return
fi
# the installed unit, its ExecStart pointed at the built memgrpd
sed "s|^ExecStart=[^ ]*/memgrpd|ExecStart=$memgrpd|" "$build/dist/memgrpd.service" >"$tmp/memgrpd.service"
out=$(env -u LD_PRELOAD systemd-analyze verify --man=no "$tmp/memgrpd.service" 2>&1); rc=$?
[ $rc -eq 0 ] && [ -z "$out" ] && grep -q -- "--state-dir /run/memgrp/groups" "$tmp/memgrpd.service" &&
	grep -q '^RuntimeDirectoryPreserve=yes' "$tmp/memgrpd.service" &&
	ok "systemd-analyze verify accepts memgrpd.service (state directory kept across restarts)" ||
	bad unit "rc $rc: $out"
}
run_case unit
