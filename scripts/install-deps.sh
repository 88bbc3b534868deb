#!/usr/bin/env bash
# Installs the Debian packages lumen builds and tests with, when any is missing.
set -euo pipefail
packages=(g++ meson ninja-build pkg-config libboost-dev libboost-context-dev libmimalloc-dev libtbb-dev doctest-dev
          libcxxopts-dev nlohmann-json3-dev libmsgpack-cxx-dev
          libssl-dev openssl curl wrk hey zlib1g-dev dataset-fashion-mnist prometheus chromium python3
          cmake make doxygen)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
