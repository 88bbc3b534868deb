#!/usr/bin/env bash
# Runs examples/serve_fashion (train, then serve with batching) and calls it with curl as the
# README does: a known test image, a batch of concurrent requests, and a bad request.
#   example_fashion.sh BUILD_DIR
set -euo pipefail
build="$1"
out=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$out"' EXIT
"$build/examples/serve_fashion" --port 0 --seconds 120 >"$out/log" 2>&1 &
pid=$!
port=""
for _ in $(seq 600); do
  port=$(sed -n 's|^serving on http://127.0.0.1:\([0-9]*\)/classify.*|\1|p' "$out/log")
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$out/log"; echo "serve_fashion exited early"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$out/log"; echo "serve_fashion did not start serving"; exit 1; }
grep -q "test accuracy" "$out/log"
accuracy=$(sed -n 's/.*test accuracy \([0-9.]*\)%.*/\1/p' "$out/log")
awk -v a="$accuracy" 'BEGIN { exit !(a > 75) }' || { echo "accuracy $accuracy% is too low"; exit 1; }

url="http://127.0.0.1:$port/classify"
body=$(curl -sf "$url" -H 'Content-Type: application/json' -d '{"test_index": 0}')
echo "$body"
echo "$body" | grep -q '"true_class":"Ankle boot"'
echo "$body" | grep -q '"class":'

# 40 requests at once: batched together, each answered on its own.
for i in $(seq 0 39); do
  curl -sf "$url" -H 'Content-Type: application/json' -d "{\"test_index\": $i}" >"$out/r$i" &
done
wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
for i in $(seq 0 39); do grep -q '"label":' "$out/r$i" || { echo "request $i: $(cat "$out/r$i")"; exit 1; }; done

# A bad request in a batch fails alone, with 400.
code=$(curl -s -o "$out/bad" -w '%{http_code}' "$url" -H 'Content-Type: application/json' -d '{"pixels": [1, 2]}')
[ "$code" = 400 ] || { echo "expected 400, got $code: $(cat "$out/bad")"; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "$url" -H 'Content-Type: application/json' -d '{"pixels": ')
[ "$code" = 400 ] || { echo "expected 400 for malformed JSON, got $code"; exit 1; }

# The same model under the Open Inference Protocol: two images of all-zero pixels.
v2="http://127.0.0.1:$port/v2/models/fashion"
curl -sf "$v2/ready" | grep -q '"ready":true'
curl -sf "$v2" | grep -q '"name":"pixels"'
zeros=$(python3 -c 'print(",".join(["0"] * 1568))' 2>/dev/null || awk 'BEGIN { for (i = 0; i < 1568; i++) printf i ? ",0" : "0" }')
body=$(curl -sf "$v2/infer" -d "{\"id\": \"q1\", \"inputs\": [{\"name\": \"pixels\", \"datatype\": \"FP32\", \"shape\": [2, 784], \"data\": [$zeros]}]}")
echo "$body" | head -c 300; echo
echo "$body" | grep -q '"id":"q1"'
echo "$body" | grep -q '"name":"probabilities"'
echo "$body" | grep -q '"shape":\[2,10\]'
code=$(curl -s -o /dev/null -w '%{http_code}' "$v2/infer" -d '{"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 784], "data": [1, 2]}]}')
[ "$code" = 400 ] || { echo "expected 400 for a short tensor, got $code"; exit 1; }

kill -INT "$pid"
wait "$pid"
grep "served" "$out/log"
echo "serve_fashion: ok"
