#!/usr/bin/env bash
# run.sh - installs dependencies, builds memgrp if needed, and runs it: scripts/run.sh ARGS...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
if [ ! -f "$root/build/build.ninja" ]; then
	meson setup "$root/build" "$root" >/dev/null
fi
meson compile -C "$root/build" >/dev/null
exec "$root/build/src/cli/memgrp" "$@"
