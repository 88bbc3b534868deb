#!/usr/bin/env bash
# Runs examples/tune_fashion in its quick form and checks what it says it did: both searches
# ran their trials, ASHA used less compute than FIFO, and the learning curves were written.
#   example_tune.sh BUILD_DIR
set -euo pipefail
build="$1"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$build/examples/tune_fashion" --quick --out "$out" >"$out/log" 2>&1 || { cat "$out/log"; exit 1; }
cat "$out/log"
grep -q "random search, every trial trained to the end (FIFO):" "$out/log"
grep -q "random search, weak trials stopped by ASHA:" "$out/log"
ratio=$(sed -n 's/.*epochs to FIFO.s [0-9]* (\([0-9.]*\)x less compute).*/\1/p' "$out/log")
[ -n "$ratio" ] || { echo "no compute ratio printed"; exit 1; }
awk -v r="$ratio" 'BEGIN { exit !(r > 1) }' || { echo "ASHA used no less compute than FIFO ($ratio)"; exit 1; }
grep -q "<svg" "$out/asha/curves.svg"
test -s "$out/asha/results.csv"
