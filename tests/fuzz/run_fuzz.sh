#!/usr/bin/env bash
# Runs a libFuzzer target for a while from a seed corpus, one fuzzing process at a time.
#   run_fuzz.sh FUZZER SEED_CORPUS WORK_DIR SECONDS
# New inputs go to WORK_DIR/corpus (the seed corpus in the source tree stays as it is). Every
# crash, hang, leak or model mismatch is written to WORK_DIR/artifacts/ and fuzzing goes on
# (-fork=1 restarts the process after one), so a run reports all it found; any finding fails
# the run. Replay one with: FUZZER ARTIFACT
set -euo pipefail
fuzzer=$1 seeds=$2 work=$3 seconds=$4
mkdir -p "$work/corpus" "$work/artifacts"
stamp="$work/artifacts/.started"
touch "$stamp"
# Huge allocations (a pipeline with 2^62 tokens) must reach lumen as std::bad_alloc, as they
# would in production, instead of stopping the run.
export ASAN_OPTIONS="allocator_may_return_null=1:detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
set +e
"$fuzzer" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -max_total_time="$seconds" -timeout=30 \
  -rss_limit_mb=4096 -malloc_limit_mb=1048576 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
  "$work/corpus" "$seeds"
status=$?
set -e
# slow-unit-* files are inputs that took long, not findings: a hang shows as timeout-*.
found=$(find "$work/artifacts" -type f -newer "$stamp" \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort)
if [ -n "$found" ]; then
  echo "findings:"
  echo "$found"
  exit 1
fi
exit $status
