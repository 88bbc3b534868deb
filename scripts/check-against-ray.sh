#!/usr/bin/env bash
# Compiles the programs of examples/ray/ against Ray's own C++ headers instead of lumen's, to
# show that the same source builds on Ray. Needs Ray's C++ package:
#
#   pip install "ray[cpp]"
#   ray cpp --show-library-path        # prints Ray's C++ include and library folders
#
#   scripts/check-against-ray.sh                     every examples/ray/*.cpp, -fsyntax-only
#   scripts/check-against-ray.sh FILE...             only these files
#   scripts/check-against-ray.sh --build [DIR]       compile and link them all against Ray's
#                                                    libray_api.so, into DIR (build-ray-examples/)
#
# --build makes DIR/NAME/NAME, the driver, and DIR/NAME/NAME.so, the same code as a shared
# library: Ray's C++ workers load the program's functions from the libraries in the driver's
# code search path, which is the driver's own folder unless --ray_code_search_path says
# otherwise (each program has a folder of its own, so that no worker loads two programs that
# register the same function names). To run one on a cluster:
#
#   ray start --head
#   RAY_ADDRESS=127.0.0.1:6379 build-ray-examples/objects/objects
#   ray stop
#
# Without RAY_ADDRESS, ray::Init() starts a one-node cluster of its own and stops it at
# ray::Shutdown().
#
# Environment: RAY_CPP_INCLUDE and RAY_CPP_LIB name Ray's folders instead of asking `ray cpp`
# (for a Ray built from source); CXX (default c++); CXXFLAGS, added to the compiler's flags;
# RAY_CXX11_ABI=1 for a Ray built from source with the new libstdc++ ABI (Ray's wheels are built
# with -D_GLIBCXX_USE_CXX11_ABI=0, as Ray's project template says); JOBS (default: the number
# of processors). Exit status: 0 when every file compiled, 1 when some did not, 2 when Ray's
# C++ package was not found or the arguments were wrong.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit "$1"
}

build=0
out="build-ray-examples"
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build)
      build=1
      if [ $# -gt 1 ] && [ "${2#-}" = "$2" ] && [ "${2%.cpp}" = "$2" ]; then
        out=$2
        shift
      fi
      ;;
    -h | --help) usage 0 ;;
    -*)
      echo "unknown option $1" >&2
      usage 2 >&2
      ;;
    *) files+=("$1") ;;
  esac
  shift
done
if [ ${#files[@]} -eq 0 ]; then
  files=(examples/ray/*.cpp)
fi
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "no such file: $f" >&2; exit 2; }
done

not_found() {
  cat >&2 <<EOF
Ray's C++ package was not found: $1.
Install it with
  pip install "ray[cpp]"
so that \`ray cpp --show-library-path\` prints Ray's C++ include and library folders, or set
RAY_CPP_INCLUDE and RAY_CPP_LIB to those folders (for a Ray built from source).
EOF
  exit 2
}

include=${RAY_CPP_INCLUDE:-}
lib=${RAY_CPP_LIB:-}
if [ -z "$include" ] || [ -z "$lib" ]; then
  if command -v ray >/dev/null 2>&1; then
    # "Ray C++ include path DIR" and "Ray C++ library path DIR", possibly in bold.
    shown=$(ray cpp --show-library-path 2>&1 | sed 's/\x1b\[[0-9;]*m//g; s/[[:space:]]*$//' || true)
    shown_path() { printf '%s\n' "$shown" | sed -n "s/.*Ray C++ $1 path[[:space:]]*//p" | head -1; }
    include=${include:-$(shown_path include)}
    lib=${lib:-$(shown_path library)}
  fi
  if [ -z "$include" ] || [ -z "$lib" ]; then
    # `ray cpp` prints the folders cpp/include and cpp/lib of the ray Python package.
    cpp_dir=$("${PYTHON:-python3}" -c 'import os, ray; print(os.path.join(os.path.dirname(ray.__file__), "cpp"))' \
      2>/dev/null || true)
    if [ -n "$cpp_dir" ]; then
      include=${include:-$cpp_dir/include}
      lib=${lib:-$cpp_dir/lib}
    fi
  fi
fi
[ -n "$include" ] || not_found "neither \`ray cpp --show-library-path\` nor Python's ray module names its folders"
[ -f "$include/ray/api.h" ] || not_found "$include/ray/api.h does not exist"
if [ "$build" = 1 ]; then
  [ -f "$lib/libray_api.so" ] || not_found "$lib/libray_api.so does not exist"
fi

cxx=${CXX:-c++}
# Ray's C++ API is built as C++17; its wheels with the old libstdc++ ABI.
flags=(-std=c++17 -I"$include")
[ "${RAY_CXX11_ABI:-0}" = 1 ] || flags+=(-D_GLIBCXX_USE_CXX11_ABI=0)
# shellcheck disable=SC2206
[ -z "${CXXFLAGS:-}" ] || flags+=($CXXFLAGS)
link=(-L"$lib" -lray_api "-Wl,-rpath,$lib" -pthread -ldl)
# Only Ray's headers: no folder from the environment may bring lumen's <ray/api.h> instead.
unset CPATH CPLUS_INCLUDE_PATH

echo "Ray's C++ headers: $include"
[ "$build" = 0 ] || echo "Ray's C++ library: $lib; programs go to $out/NAME/"
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

check_one() {
  local file=$1 name
  name=$(basename "$file" .cpp)
  if [ "$build" = 0 ]; then
    "$cxx" "${flags[@]}" -fsyntax-only "$file" >"$log/$name.txt" 2>&1
  else
    mkdir -p "$out/$name"
    "$cxx" "${flags[@]}" "$file" -o "$out/$name/$name" "${link[@]}" >"$log/$name.txt" 2>&1 &&
      "$cxx" "${flags[@]}" -fPIC -shared "$file" -o "$out/$name/$name.so" "${link[@]}" >>"$log/$name.txt" 2>&1
  fi
}

jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
failed=()
pids=()
names=()
for f in "${files[@]}"; do
  check_one "$f" &
  pids+=($!)
  names+=("$f")
  if [ ${#pids[@]} -ge "$jobs" ]; then
    if ! wait "${pids[0]}"; then failed+=("${names[0]}"); fi
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
  fi
done
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then failed+=("${names[$i]}"); fi
done

for f in "${files[@]}"; do
  name=$(basename "$f" .cpp)
  status=ok
  for bad in "${failed[@]+"${failed[@]}"}"; do
    [ "$bad" = "$f" ] && status=FAILED
  done
  echo "$status  $f"
  if [ "$status" = FAILED ] || [ -s "$log/$name.txt" ]; then sed 's/^/    /' "$log/$name.txt" | head -60; fi
done
total=${#files[@]}
echo "$((total - ${#failed[@]})) of $total compiled against Ray"
if [ "$build" = 1 ] && [ ${#failed[@]} -eq 0 ]; then
  first=$(basename "${files[0]}" .cpp)
  echo "run one on a cluster: ray start --head; RAY_ADDRESS=127.0.0.1:6379 $out/$first/$first"
fi
[ ${#failed[@]} -eq 0 ]
