#!/usr/bin/env bash
# tests/compat/bench.sh - the compat suite's cases at bench sizes (--big: ~4x the work of the CI suite), with a markdown table.
# Usage: tests/compat/bench.sh [BUILD_DIR] [TABLE_FILE]   (as root; ~25 min on 2 CPUs)
set -u
build=${1:-build}
table=${2:-compat-table.md}
here=$(cd "$(dirname "$0")" && pwd)
python3 "$here/compat.py" "$build/src/cli/memgrp" --big --table "$table"
rc=$?
echo "table: $table"
exit $rc
