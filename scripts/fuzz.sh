#!/usr/bin/env bash
# Builds the libFuzzer targets tests/fuzz/fuzz_api and tests/fuzz/fuzz_serve with clang under
# AddressSanitizer and UBSan, in build-fuzz/, and fuzzes lumen's public API (for SECONDS) and
# lumen-serve's HTTP front door (for half as long, at least 10 s) with them; the last line is
# "N passed, N failed".
#   scripts/fuzz.sh                 60 seconds
#   scripts/fuzz.sh --seconds 600
# Findings (crashes, hangs, model mismatches) land in build-fuzz/tests/fuzz/artifacts/
# (fuzz_api) and build-fuzz/tests/fuzz/serve/artifacts/ (fuzz_serve); replay one with
# build-fuzz/tests/fuzz/fuzz_api FILE, or fuzz_serve.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    *) echo "usage: scripts/fuzz.sh [--seconds N]" >&2; exit 2 ;;
  esac
done
scripts/install-deps.sh
missing=()
for p in clang-15 libfuzzer-15-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
dir=build-fuzz
if [ ! -d "$dir" ]; then
  # fuzzer-no-link instruments the library too, so that coverage inside lib/ guides the fuzzer.
  CXX=clang++-15 meson setup "$dir" --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbench=false -Dexamples=false -Dfuzz=true -Dcpp_args=-fsanitize=fuzzer-no-link >/dev/null
fi
meson configure "$dir" -Dfuzz_seconds="$seconds" >/dev/null
if ! ninja -C "$dir" tests/fuzz/fuzz_api tests/fuzz/fuzz_serve >"$dir/build-output.txt" 2>&1; then
  grep -E "error|FAILED" "$dir/build-output.txt" | head -20
  echo "0 passed, 1 failed"  # a target did not build: its tests cannot pass
  exit 1
fi
set +e
meson test -C "$dir" --print-errorlogs --no-rebuild --suite fuzz | tee "$dir/fuzz-output.txt"
status=${PIPESTATUS[0]}
set -e
count() { sed -n "s/^$1: *\([0-9][0-9]*\).*/\1/p" "$dir/fuzz-output.txt" | tail -1; }
ok=$(count "Ok"); fail=$(count "Fail"); timeout=$(count "Timeout"); unexpected=$(count "Unexpected Pass")
failed=$(( ${fail:-0} + ${timeout:-0} + ${unexpected:-0} ))
echo "${ok:-0} passed, ${failed} failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ] && [ "${ok:-0}" -gt 0 ]
