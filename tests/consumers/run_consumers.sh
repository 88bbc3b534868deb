#!/bin/sh
# Installs lumen from BUILD_ROOT into a temporary root (DESTDIR) and builds and runs the three
# consumer projects of tests/consumers/ against it, as their users would: CMake with
# find_package(lumen), a Makefile with pkg-config, and a meson project with lumen as a
# subproject (built from SOURCE_ROOT). A broken install layout fails here.
#   run_consumers.sh BUILD_ROOT SOURCE_ROOT
set -eu
build_root=$1
source_root=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

DESTDIR="$work/root" meson install -C "$build_root" --no-rebuild --quiet >/dev/null
options=$(meson introspect "$build_root" --buildoptions)
option() { printf '%s' "$options" | python3 -c "import json, sys; print({o['name']: o['value'] for o in json.load(sys.stdin)}['$1'])"; }
prefix="$work/root$(option prefix)"
libdir="$prefix/$(option libdir)"
export LD_LIBRARY_PATH="$libdir"

echo "== CMake: find_package(lumen 0.2 REQUIRED COMPONENTS ray serve tune dashboard)"
cmake -S "$source_root/tests/consumers/cmake" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/cmake" >"$work/cmake-build.log" 2>&1 || { cat "$work/cmake-build.log"; exit 1; }
"$work/cmake/consumer"
# A version this release does not satisfy is refused.
sed 's/find_package(lumen 0.2 /find_package(lumen 0.3 /' "$source_root/tests/consumers/cmake/CMakeLists.txt" >"$work/CMakeLists.txt"
mkdir "$work/cmake-0.3" && cp "$work/CMakeLists.txt" "$source_root/tests/consumers/cmake/main.cpp" "$work/cmake-0.3/"
if cmake -S "$work/cmake-0.3" -B "$work/cmake-0.3/build" -DCMAKE_PREFIX_PATH="$prefix" >"$work/cmake-0.3.log" 2>&1; then
  echo "find_package(lumen 0.3) accepted this lumen"; exit 1
fi
echo "   find_package(lumen 0.3) is refused, as it should be"

echo "== Makefile: pkg-config --cflags --libs lumen-tune"
cp -r "$source_root/tests/consumers/make" "$work/make"
PKG_CONFIG_PATH="$libdir/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$work/root" make -s -C "$work/make" >"$work/make.log" 2>&1 ||
  { cat "$work/make.log"; exit 1; }
"$work/make/consumer"

echo "== meson: lumen as a subproject"
cp -r "$source_root/tests/consumers/meson" "$work/meson"
mkdir -p "$work/meson/subprojects"
ln -s "$source_root" "$work/meson/subprojects/lumen"
meson setup "$work/meson-build" "$work/meson" -Dlumen:tests=false -Dlumen:bench=false -Dlumen:examples=false \
  --buildtype=plain >"$work/meson.log" 2>&1 || { cat "$work/meson.log"; exit 1; }
ninja -C "$work/meson-build" consumer >"$work/meson-build.log" 2>&1 || { tail -30 "$work/meson-build.log"; exit 1; }
"$work/meson-build/consumer"
