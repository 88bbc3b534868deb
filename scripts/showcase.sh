#!/usr/bin/env bash
# Builds lumen (release) and runs the showcase example.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -d build ] || meson setup build --buildtype=release -Dtests=false >/dev/null
ninja -C build examples/showcase >/dev/null
exec ./build/examples/showcase
