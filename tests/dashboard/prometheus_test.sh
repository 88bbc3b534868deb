#!/usr/bin/env bash
# A real Prometheus scrapes the dashboard example's /metrics over loopback and answers queries
# with lumen's values: the runtime's (lumen_workers) and the program's own (demo_tasks_total).
#   prometheus_test.sh DEMO_BINARY
set -euo pipefail
demo=$1
if ! command -v prometheus >/dev/null; then
  echo "SKIP: prometheus is not installed (apt-get install prometheus)"
  exit 77
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
tasks=2000

"$demo" --tasks "$tasks" --seconds 60 >"$work/demo.log" 2>&1 &
for _ in $(seq 200); do
  grep -q "^ran $tasks tasks" "$work/demo.log" && break
  sleep 0.1
done
port=$(sed -n 's|^dashboard on http://127.0.0.1:\([0-9]*\)/$|\1|p' "$work/demo.log")
[ -n "$port" ] || { echo "the example did not start:"; cat "$work/demo.log"; exit 1; }
grep -q "^ran $tasks tasks" "$work/demo.log" || { echo "the example did not finish its tasks:"; cat "$work/demo.log"; exit 1; }

prom_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: lumen
    static_configs:
      - targets: ['127.0.0.1:$port']
YML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &

# The value of an instant query, once Prometheus has one (empty until then).
query() {
  curl -s --max-time 2 "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json,sys
try:
    r = json.load(sys.stdin)["data"]["result"]
    print(r[0]["value"][1] if r else "")
except Exception:
    print("")' || true
}
workers=$(nproc)
ok=0
for _ in $(seq 60); do
  done_tasks=$(query demo_tasks_total)
  seen_workers=$(query lumen_workers)
  up=$(query 'up{job="lumen"}')
  if [ "$up" = "1" ] && [ "$done_tasks" = "$tasks" ] && [ "$seen_workers" = "$workers" ]; then ok=1; break; fi
  sleep 0.5
done
if [ $ok -ne 1 ]; then
  echo "Prometheus did not answer with lumen's values: up=$up demo_tasks_total=$done_tasks (want $tasks)" \
       "lumen_workers=$seen_workers (want $workers)"
  echo "--- prometheus log"; tail -20 "$work/prometheus.log"
  echo "--- targets"; curl -s "http://127.0.0.1:$prom_port/api/v1/targets" | head -c 2000; echo
  exit 1
fi
echo "Prometheus scraped 127.0.0.1:$port/metrics: up=1, demo_tasks_total=$done_tasks, lumen_workers=$seen_workers"
tasks_run=$(query lumen_tasks_run_total)
echo "lumen_tasks_run_total=$tasks_run"
python3 -c "import sys; sys.exit(0 if float('$tasks_run') >= $tasks else 1)" || { echo "lumen_tasks_run_total below $tasks"; exit 1; }
