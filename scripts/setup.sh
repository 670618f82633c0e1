#!/usr/bin/env bash
# Installs memgrp's build and test dependencies from Debian's archive; safe to run again.
set -euo pipefail

packages=(
  gcc clang libclang-rt-14-dev   # compilers; clang's runtime for libFuzzer and sanitizers
  meson ninja-build pkg-config   # the build
  liblz4-dev libzstd-dev         # compressed store (reclaim)
  python3                        # test drivers and examples
  redis-server redis-tools       # integration tests: real programs under memgrp
  stress-ng util-linux
  make nodejs default-jdk-headless strace  # tests/compat: real programs (javac for its JVM case); strace for hang evidence
  golang-go                      # tests/test_kbackend.sh: a static Go program (CGO_ENABLED=0) under --backend kernel
  libmicrohttpd-dev              # the metrics endpoint's HTTP server (src/daemon/metrics.c)
  prometheus curl tmux           # tests/test_metrics.sh (promtool, a real Prometheus), test_top.sh (tmux)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing packages: ${missing[*]}; run this script as root (or with sudo) to install them" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
