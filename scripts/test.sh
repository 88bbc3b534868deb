#!/usr/bin/env bash
# Builds lumen and runs its test suite; the last line is "N passed, N failed".
#   scripts/test.sh                    release build in build-test/
#   scripts/test.sh --sanitize thread  the suite under ThreadSanitizer, in build-thread/
#   scripts/test.sh --sanitize address,undefined
set -euo pipefail
cd "$(dirname "$0")/.."
sanitize=none
if [ "${1:-}" = "--sanitize" ]; then sanitize="$2"; fi
scripts/install-deps.sh
if [ "$sanitize" = none ]; then
  dir=build-test
  opts=(--buildtype=release)  # builds lumen-bench too, so a change that breaks it fails here
else
  dir="build-${sanitize//,/-}"
  # -g1 (line tables, no types or locals) is all a sanitizer's report needs, and builds the
  # Beast-heavy front door a quarter faster than full -g.
  opts=(--buildtype=debugoptimized -Dcpp_args=-g1 "-Db_sanitize=$sanitize" -Db_lundef=false -Dbench=false)
fi
[ -d "$dir" ] || meson setup "$dir" "${opts[@]}" >/dev/null
# Quiet while it builds; the compiler's words when it fails.
if ! ninja -C "$dir" >"$dir/build-output.txt" 2>&1; then
  grep -E -B2 -A12 "error|FAILED" "$dir/build-output.txt" | head -200
  echo "0 passed, 1 failed"
  exit 1
fi
# allocator_may_return_null: an allocation too large to serve fails as it would without the
# sanitizer (std::bad_alloc), which tests of huge requests rely on.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 allocator_may_return_null=1 suppressions=$PWD/tests/tsan.supp ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="detect_leaks=1 allocator_may_return_null=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1 ${UBSAN_OPTIONS:-}"
set +e
meson test -C "$dir" --print-errorlogs --num-processes 2 | tee "$dir/test-output.txt"
status=${PIPESTATUS[0]}
set -e
count() { sed -n "s/^$1: *\([0-9][0-9]*\).*/\1/p" "$dir/test-output.txt" | tail -1; }
ok=$(count "Ok"); fail=$(count "Fail"); timeout=$(count "Timeout"); unexpected=$(count "Unexpected Pass")
failed=$(( ${fail:-0} + ${timeout:-0} + ${unexpected:-0} ))
echo "${ok:-0} passed, ${failed} failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ] && [ "${ok:-0}" -gt 0 ]
