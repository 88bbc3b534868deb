#!/bin/sh
# Builds examples/hello.cpp with nothing but `pkg-config --cflags --libs lumen` against the
# build tree (meson's uninstalled .pc files), runs it, and checks what it printed.
set -eu
build_root=$1
source_root=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
PKG_CONFIG_PATH="$build_root/meson-uninstalled" pkg-config --exists lumen
# shellcheck disable=SC2046
c++ "$source_root/examples/hello.cpp" -o "$out/hello" $(PKG_CONFIG_PATH="$build_root/meson-uninstalled" pkg-config --cflags --libs lumen)
LD_LIBRARY_PATH="$build_root" "$out/hello" | grep -q "add(add(1, 2), 10) = 13"
