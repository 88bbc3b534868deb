#!/bin/sh
# Builds examples/ray_quickstart.cpp, a program written against Ray's C++ API, with nothing but
# `pkg-config --cflags --libs lumen-ray` against the build tree (meson's uninstalled .pc
# files), runs it, and checks what it printed.
set -eu
build_root=$1
source_root=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export PKG_CONFIG_PATH="$build_root/meson-uninstalled"
pkg-config --exists lumen-ray
# shellcheck disable=SC2046
c++ "$source_root/examples/ray_quickstart.cpp" -o "$out/ray_quickstart" $(pkg-config --cflags --libs lumen-ray)
LD_LIBRARY_PATH="$build_root" "$out/ray_quickstart" > "$out/printed"
grep -q "Task(Plus).Remote(1, 2): 3" "$out/printed"
grep -q "Counter(1), Add(3), Add(3): 7" "$out/printed"
