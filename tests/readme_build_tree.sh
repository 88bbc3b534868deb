#!/bin/sh
# Runs the README's build-tree commands exactly as written: the first program saved as
# hello.cpp, the commands of the block after "Against the build tree", in a folder where
# `build` is this build tree. Checks that the program prints 13.
#   readme_build_tree.sh BUILD_ROOT SOURCE_ROOT
set -eu
build_root=$1
source_root=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ln -s "$build_root" "$work/build"
# The first ```cpp block is the first program.
awk '/^```cpp/ { on = 1; next } on && /^```/ { exit } on' "$source_root/README.md" >"$work/hello.cpp"
# The first ```sh block after the line that starts "Against the build tree".
awk '/^Against the build tree/ { seen = 1 } seen && /^```sh/ { on = 1; next } on && /^```/ { exit } on' \
  "$source_root/README.md" >"$work/commands.sh"
test -s "$work/hello.cpp"
test -s "$work/commands.sh"
cd "$work"
printed=$(sh -e ./commands.sh)
echo "$printed"
[ "$printed" = "13" ]
