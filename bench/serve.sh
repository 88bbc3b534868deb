#!/usr/bin/env bash
# lumen::serve against the bare server of the same HTTP library, side by side in one run,
# over loopback: throughput (wrk -t2 -c100), p99 at half the saturation rate (hey at a fixed
# rate: half of hey's own unthrottled rate), batching's gain on a model costing 1 ms + 0.02 ms
# per item, and overload far past saturation. Prints medians of --runs runs (default 3) and ratios.
#   bench/serve.sh [--build DIR] [--runs N] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-test runs=3 seconds=10
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in wrk hey; do
  command -v "$tool" >/dev/null || { echo "bench/serve.sh needs $tool (apt-get install $tool)" >&2; exit 1; }
done
ninja -C "$build" bench/lumen-serve-bench >/dev/null
bin="$build/bench/lumen-serve-bench"
out=$(mktemp -d)
trap 'rm -rf "$out"; kill $(jobs -p) 2>/dev/null || true' EXIT

# Starts a server kind for the given seconds; sets $port and $pid.
start() {
  "$bin" --server "$1" --seconds "$2" >"$out/$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    port=$(sed -n 's/^listening on //p' "$out/$1.log")
    [ -n "$port" ] && return 0
    sleep 0.05
  done
  echo "server $1 did not start" >&2; cat "$out/$1.log" >&2; exit 1
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}'; }
# wrk against $port: prints "req/s p50_ms p99_ms non2xx"
load() {
  wrk -t2 -c"$1" -d"${seconds}s" --latency "http://127.0.0.1:$port/" >"$out/wrk.txt" 2>&1
  local rps p50 p99 non
  rps=$(awk '/Requests\/sec/ {print $2}' "$out/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$out/wrk.txt" | to_ms)
  p99=$(awk '$1=="99%" {print $2}' "$out/wrk.txt" | to_ms)
  non=$(awk '/Non-2xx/ {print $5}' "$out/wrk.txt")
  echo "$rps $p50 $p99 ${non:-0}"
}

echo "== throughput: wrk -t2 -c100 -d${seconds}s, $runs runs each, alternating =="
: >"$out/bare" ; : >"$out/noop"
for r in $(seq "$runs"); do
  for kind in bare noop; do
    start "$kind" $((seconds + 3)); sleep 0.3
    load 100 >>"$out/$kind"
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  done
done
printf "%-34s %12s %9s %9s\n" "server" "req/s" "p50 ms" "p99 ms"
for kind in bare noop; do
  printf "%-34s %12.0f %9.2f %9.2f\n" "$([ $kind = bare ] && echo 'bare Boost.Beast (2 threads)' || echo 'lumen::serve no-op, 2 replicas')" \
    "$(cut -d' ' -f1 "$out/$kind" | median)" "$(cut -d' ' -f2 "$out/$kind" | median)" "$(cut -d' ' -f3 "$out/$kind" | median)"
done
bare_rps=$(cut -d' ' -f1 "$out/bare" | median)
noop_rps=$(cut -d' ' -f1 "$out/noop" | median)
awk -v a="$noop_rps" -v b="$bare_rps" 'BEGIN {printf "lumen::serve / bare: %.2fx\n", a/b}'

echo
# The rate is half of what hey itself reaches against lumen: on a machine this small the client
# shares the cores with the server, and hey (Go) costs several times wrk's CPU per request, so
# at half of wrk's rate hey would be measuring its own queue, not the server's.
echo "== latency at half the saturation rate (hey -c50: unthrottled, then at half that rate, ${seconds}s, $runs runs each, alternating) =="
: >"$out/sat"
for r in $(seq "$runs"); do
  start noop $((seconds + 3)); sleep 0.3
  hey -z "${seconds}s" -c 50 "http://127.0.0.1:$port/" >"$out/hey.txt" 2>&1 || true
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  awk '/Requests\/sec/ {print $2}' "$out/hey.txt" >>"$out/sat"
done
saturation=$(median <"$out/sat")
half=$(awk -v r="$saturation" 'BEGIN {printf "%d", r/2}')
echo "lumen::serve no-op saturated by hey -c50: $(printf '%.0f' "$saturation") req/s (median); offering $half req/s"
: >"$out/bare.lat" ; : >"$out/noop.lat"
for r in $(seq "$runs"); do
  for kind in bare noop; do
    start "$kind" $((seconds + 3)); sleep 0.3
    hey -z "${seconds}s" -c 50 -q $((half / 50)) "http://127.0.0.1:$port/" >"$out/hey.txt" 2>&1 || true
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
    awk '/Requests\/sec/ {r=$2} /50% in/ {p50=$3*1000} /99% in/ {p99=$3*1000} END {print r, p50, p99}' "$out/hey.txt" >>"$out/$kind.lat"
  done
done
for kind in bare noop; do
  printf "%-6s at %6d req/s offered: %8.0f req/s done, median p50 %.2f ms, median p99 %.2f ms (p99 of each run: %s)\n" "$kind" "$half" \
    "$(cut -d' ' -f1 "$out/$kind.lat" | median)" "$(cut -d' ' -f2 "$out/$kind.lat" | median)" "$(cut -d' ' -f3 "$out/$kind.lat" | median)" \
    "$(cut -d' ' -f3 "$out/$kind.lat" | tr '\n' ' ' | sed 's/ $//')"
done

echo
echo "== batching: a model costing 1 ms + 0.02 ms per item, 2 replicas, wrk -c100 =="
for kind in model batched; do
  start "$kind" $((seconds + 3)); sleep 0.3
  load 100 >"$out/$kind"
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  printf "%-10s %10.0f req/s  p50 %.2f ms  p99 %.2f ms\n" "$kind" $(cut -d' ' -f1-3 "$out/$kind")
done
awk -v a="$(cut -d' ' -f1 "$out/batched")" -v b="$(cut -d' ' -f1 "$out/model")" 'BEGIN {printf "batched / unbatched: %.1fx\n", a/b}'

echo
echo "== overload: the unbatched model (2 replicas x 2 ongoing, 16 queued), wrk -c500 =="
start overload $((seconds + 3)); sleep 0.3
read -r rps p50 p99 non <<<"$(load 500)"
kill -INT "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
model_rps=$(cut -d' ' -f1 "$out/model")
awk -v r="$rps" -v m="$model_rps" -v n="$non" -v s="$seconds" \
  'BEGIN {printf "offered and answered %.0f req/s (%.0fx the model'"'"'s saturation), %.0f of them refused (non-2xx)\n", r, r/m, n/s}'
sed -n 's/^/  server: /p' "$out/overload.log" | grep -v listening
