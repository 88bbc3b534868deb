#!/bin/sh
# The Ray program corpus: builds every examples/ray/*.cpp, a program written against Ray's C++
# API, with nothing but `c++ -std=c++20 FILE $(pkg-config --cflags --libs lumen-ray)` against
# the build tree (meson's uninstalled .pc files), runs it, and checks that it exits 0 and that
# its output has the lines the table below names. Two files build and run at a time.
#
# It also keeps the corpus what it claims to be: every file has a row in the table and a
# target in examples/ray/meson.build, and includes nothing but <ray/api.h> and standard
# headers, so that the same source builds against Ray (scripts/check-against-ray.sh).
#
#   tests/ray_corpus_build.sh BUILD_ROOT SOURCE_ROOT
set -eu
build_root=$(cd "$1" && pwd)
source_root=$(cd "$2" && pwd)
corpus="$source_root/examples/ray"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# FILE|a line (or part of one) that FILE prints; a file may have several rows.
cat >"$out/expected" <<'EOF'
quickstart.cpp|Task(Plus).Remote(1, 2): 3
quickstart.cpp|Task(Plus).Remote(sum, object): 103
quickstart.cpp|Counter(1), Add(3), Add(3): 7
tasks.cpp|Square(Square(2)) = 16
tasks.cpp|SumAll([4, 16, 1]) = 21
tasks.cpp|Get(ref, 1 ms) of a 300 ms task: RayTimeoutException
tasks.cpp|Square(5) in bundle 0 = 25
tasks.cpp|Divide(1, 0): An exception was thrown while executing function(Divide): std::domain_error: division by zero
actors.cpp|GetActor("global_counter") sees 5
actors.cpp|after Kill(false): count 10, restarted true
actors.cpp|ExitActor(): The actor
objects.cpp|the object still has 4 elements
objects.cpp|Task(Sum).Remote(ref to [1, 2, 3, 4]) = 10
objects.cpp|Get([Put(1), Put(4), Put(9), Put(16)]) = 1 4 9 16
objects.cpp|Task(SumOfRefs).Remote(vector of 4 refs) = 30
objects.cpp|Wait(3 refs, num_objects 2, 1000 ms): 2 ready, 1 unready
objects.cpp|Get(ref, 10 ms) of a task that sleeps 1500 ms: RayTimeoutException
objects.cpp|ObjectRef<int>(id of Put(9)).Get() = 9, same ref: true
objects.cpp|Get<int>(4 ids) sums to 30
placement_groups.cpp|placement group 'two_cpus' with 2 bundles ready: true
placement_groups.cpp|Multiply(i, 10) for i < 4 in bundles 0 and 1: 0 10 20 30
placement_groups.cpp|Accumulator in bundle 0: Add(5), Add(6) = 11
placement_groups.cpp|task in the group found by name 'two_cpus': Multiply(6, 7) = 42
placement_groups.cpp|a group of 100000 CPUs ready after Wait(1): false, state PENDING
placement_groups.cpp|after RemovePlacementGroup: state REMOVED
named_actors.cpp|job namespace: shop
named_actors.cpp|'inventory' in 'shop' after RestockShop(5): 15
named_actors.cpp|GetActor("inventory", "warehouse") stock: 1000
named_actors.cpp|Task(TakeFromShop).Remote("inventory", 3) took 3; Task(StockOf).Remote(handle) = 12
named_actors.cpp|GetActor("nobody") found: false
named_actors.cpp|a second 'inventory' in 'shop': RayException
named_actors.cpp|after Kill(), GetActor("inventory", "warehouse") found: false
fault_tolerance.cpp|ParsePositive("abc") threw RayTaskException: An exception was thrown while executing
fault_tolerance.cpp|Double(ParsePositive("-5")): RayTaskException from the failed argument
fault_tolerance.cpp|Get(20 ms) of a 300 ms task: RayTimeoutException; Get() later: 300
fault_tolerance.cpp|Worker.Fail(): RayTaskException; the actor still counts 2
fault_tolerance.cpp|after Kill(false): count 100, restarted true
fault_tolerance.cpp|after a second Kill(false) with no restarts left: RayActorException
fault_tolerance.cpp|after Kill(): RayActorException
fault_tolerance.cpp|Quit() called ExitActor(): RayActorException
fault_tolerance.cpp|a call after ExitActor(): RayActorException
user_types.cpp|Centroid(square) = (1, 1)
user_types.cpp|ToFeet: 'square (ft)', feet: true, centroid (3.28084, 3.28084)
user_types.cpp|Total(Batch{sensor-a}) = 7
user_types.cpp|Registry snapshot: centroid=(1, 1) origin=(0, 0)
runtime_env.cpp|a task reads GREETING: hello from the job
runtime_env.cpp|a task reads MODE: batch
runtime_env.cpp|Deserialize(Serialize()) has 2 env_vars; MODE=batch
runtime_env.cpp|IsInitialized() after Shutdown: false
EOF

failed=0
fail() {
  echo "FAIL: $*"
  failed=1
}

# The corpus and the table name the same files; each file has a meson target and includes
# only <ray/api.h> and standard headers (<vector>, <cstdlib>: no folder, no extension).
files=$(cd "$corpus" && ls -- *.cpp)
[ -n "$files" ] || { echo "FAIL: no examples/ray/*.cpp"; exit 1; }
count=$(printf '%s\n' "$files" | wc -l)
for f in $files; do
  grep -q "^$f|" "$out/expected" || fail "$f has no row in the table of expected output"
  grep -q "'${f%.cpp}'" "$corpus/meson.build" || fail "$f has no executable in examples/ray/meson.build"
  bad=$(grep -E '^[[:space:]]*#[[:space:]]*include' "$corpus/$f" |
    grep -Ev '^[[:space:]]*#[[:space:]]*include[[:space:]]*(<ray/api\.h>|<[a-z_0-9]+>)' || true)
  [ -z "$bad" ] || fail "$f includes more than <ray/api.h> and standard headers: $bad"
done
cut -d'|' -f1 "$out/expected" | sort -u >"$out/listed"
while IFS= read -r f; do
  [ -f "$corpus/$f" ] || fail "the table names $f, which is not in examples/ray/"
done <"$out/listed"

export PKG_CONFIG_PATH="$build_root/meson-uninstalled"
pkg-config --exists lumen-ray || { echo "FAIL: pkg-config finds no lumen-ray in $PKG_CONFIG_PATH"; exit 1; }
RAY_CORPUS_FLAGS=$(pkg-config --cflags --libs lumen-ray)
export RAY_CORPUS_FLAGS RAY_CORPUS_OUT="$out" RAY_CORPUS_DIR="$corpus" RAY_CORPUS_LIB="$build_root"

# Build and run one file: NAME.build (the compiler's words), NAME.out, NAME.err, NAME.status.
# shellcheck disable=SC2016
one='
  name=${1%.cpp}
  o=$RAY_CORPUS_OUT/$name
  start=$(date +%s)
  if c++ -std=c++20 "$RAY_CORPUS_DIR/$1" -o "$o" $RAY_CORPUS_FLAGS >"$o.build" 2>&1; then
    built=$(date +%s)
    status=0
    LD_LIBRARY_PATH="$RAY_CORPUS_LIB" timeout 60 "$o" >"$o.out" 2>"$o.err" </dev/null || status=$?
    echo "$status" >"$o.status"
    echo "$1: built in $((built - start)) s, ran in $(($(date +%s) - built)) s, exit status $status"
  else
    echo "build failed" >"$o.status"
    echo "$1: build failed"
  fi
'
start=$(date +%s)
printf '%s\n' "$files" | xargs -P2 -I{} sh -c "$one" sh {}
echo "built and ran $count programs in $(($(date +%s) - start)) s"

for f in $files; do
  name=${f%.cpp}
  status=$(cat "$out/$name.status" 2>/dev/null || echo "not run")
  if [ "$status" = "build failed" ]; then
    fail "$f did not build:"
    head -40 "$out/$name.build"
    continue
  fi
  if [ "$status" != 0 ]; then
    fail "$f exited with status $status (124: it ran past 60 s). It printed:"
    cat "$out/$name.out"
    tail -20 "$out/$name.err"
    continue
  fi
  grep "^$f|" "$out/expected" | cut -d'|' -f2- | while IFS= read -r line; do
    grep -qF -- "$line" "$out/$name.out" || echo "$line"
  done >"$out/$name.missing"
  if [ -s "$out/$name.missing" ]; then
    fail "$f did not print:"
    sed 's/^/    /' "$out/$name.missing"
    echo "  it printed:"
    sed 's/^/    /' "$out/$name.out"
  fi
done
[ "$failed" = 0 ] && echo "all $count programs of examples/ray built, ran and printed what they should"
exit "$failed"
