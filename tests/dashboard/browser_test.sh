#!/usr/bin/env bash
# Loads the dashboard of a demo that ran 5000 tasks in headless Chromium and checks what the
# page rendered: the live numbers, the timeline, the tasks by name and by state, the actors; then saves a
# screenshot. Exits 77 (skipped) where Chromium is not installed.
#   browser_test.sh DEMO_BINARY SCREENSHOT_PATH
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 DEMO_BINARY SCREENSHOT_PATH" >&2; exit 2; }
demo="$1"
shot="$2"
tasks=5000

chrome=""
for c in chromium chromium-browser; do
  if command -v "$c" >/dev/null 2>&1; then chrome="$c"; break; fi
done
[ -n "$chrome" ] || { echo "SKIP: chromium is not installed (apt-get install chromium)"; exit 77; }

out=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$out"
}
trap cleanup EXIT

"$demo" --tasks "$tasks" --seconds 30 >"$out/demo.log" 2>&1 &
pid=$!

# The port shows before the tasks end; the page is loaded only once they have all run.
port=""
for _ in $(seq 200); do
  port=$(sed -n 's|.*dashboard on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$out/demo.log" | head -n 1)
  [ -n "$port" ] && grep -q "ran $tasks tasks" "$out/demo.log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$out/demo.log"; echo "FAIL: the demo exited early"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$out/demo.log"; echo "FAIL: the demo printed no dashboard address in 20 s"; exit 1; }
grep -q "ran $tasks tasks" "$out/demo.log" || { cat "$out/demo.log"; echo "FAIL: the demo did not run $tasks tasks in 20 s"; exit 1; }
url="http://127.0.0.1:$port/"
echo "demo: dashboard on $url, ran $tasks tasks"

# Root needs --no-sandbox; a fresh profile keeps runs apart. The virtual time budget lets the
# page's 500 ms polls run about ten times before Chromium dumps or shoots the page.
run_chrome() {
  local limit="$1"
  shift
  timeout "$limit" "$chrome" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
    --user-data-dir="$(mktemp -d "$out/profile.XXXXXX")" --virtual-time-budget=5000 "$@"
}

if ! run_chrome 60 --dump-dom "$url" >"$out/dom.html" 2>"$out/chrome.log"; then
  tail -n 20 "$out/chrome.log"
  echo "FAIL: chromium --dump-dom failed"
  exit 1
fi

if ! python3 - "$out/dom.html" "$tasks" <<'EOF'
import sys
from html.parser import HTMLParser

dom_path, tasks = sys.argv[1], int(sys.argv[2])
dom = open(dom_path, encoding="utf-8", errors="replace").read()


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.body = {}
        self.by_id = {}
        self.svg_depth = 0  # > 0 inside svg#timeline
        self.event_rects = 0
        self.in_table = False
        self.table_text = []
        self.state_rows = {}  # #tasks-by-state: data-task -> cell texts
        self.actor_rows = []  # #actor-table: data-actor
        self.row = None
        self.in_td = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if "id" in a:
            self.by_id[a["id"]] = a
        if tag == "svg" and (self.svg_depth or a.get("id") == "timeline"):
            self.svg_depth += 1
        if self.svg_depth and tag == "rect" and "ev" in (a.get("class") or "").split():
            self.event_rects += 1
        if tag == "tbody" and a.get("id") == "tasks-by-name":
            self.in_table = True
        if tag == "tr" and "data-task" in a:
            self.row = self.state_rows.setdefault(a["data-task"], [])
        if tag == "tr" and "data-actor" in a:
            self.actor_rows.append(a["data-actor"])
        if tag == "td" and self.row is not None:
            self.row.append("")
            self.in_td = True

    def handle_endtag(self, tag):
        if tag == "tr":
            self.row = None
        if tag == "td":
            self.in_td = False
        if tag == "svg" and self.svg_depth:
            self.svg_depth -= 1
        if tag == "tbody":
            self.in_table = False

    def handle_data(self, data):
        if self.in_td and self.row is not None:
            self.row[-1] += data
        if self.in_table:
            self.table_text.append(data)


p = Page()
p.feed(dom)
failed = []


def check(ok, what):
    print(("ok:   " if ok else "FAIL: ") + what)
    if not ok:
        failed.append(what)


check(p.body.get("data-ready") == "1", 'body has data-ready="1"')
raw = p.by_id.get("tasks-run", {}).get("data-value", "")
check(raw.isdigit() and int(raw) >= tasks, f"#tasks-run data-value {raw or '(none)'} >= {tasks}")
check(p.body.get("data-tasks-run") == raw, f"body data-tasks-run {p.body.get('data-tasks-run')} matches #tasks-run")
check(p.event_rects > 0, f"#timeline has event rects ({p.event_rects})")
table = " ".join(t.strip() for t in p.table_text if t.strip())
check("demo-task" in table, "#tasks-by-name lists demo-task")
cells = p.state_rows.get("demo-task", [])
finished = cells[5].replace(",", "") if len(cells) == 8 else ""
check(finished.isdigit() and int(finished) >= tasks, f"#tasks-by-state: demo-task finished {finished or '(no row)'} >= {tasks}")
check("accumulator" in p.actor_rows, f"#actor-table lists the actor 'accumulator' ({p.actor_rows})")

if failed:
    print("--- DOM excerpt: the header ---")
    body, end = dom.find("<body"), dom.find("</header>")
    print(dom[body:end + 9] if 0 <= body < end else dom[:2500])
    print("--- #tasks-by-name ---")
    print(table[:1000] or "(empty)")
    tl = dom.find('<h2>Timeline')
    print("--- #timeline ---")
    print(dom[tl:min(dom.find("</section>", tl), tl + 1500)] if tl >= 0 else "(no #timeline)")
    sys.exit(1)
EOF
then
  echo "--- demo log ---"
  tail -n 20 "$out/demo.log"
  echo "--- chromium log ---"
  grep -i "uncaught\|console" "$out/chrome.log" | tail -n 20 || true
  exit 1
fi

mkdir -p "$(dirname "$shot")"
rm -f "$shot"
kill -0 "$pid" 2>/dev/null || { cat "$out/demo.log"; echo "FAIL: the demo stopped serving before the screenshot"; exit 1; }
if ! run_chrome 30 --hide-scrollbars --window-size=1280,900 --screenshot="$shot" "$url" >"$out/shot.log" 2>&1; then
  tail -n 20 "$out/shot.log"
  echo "FAIL: chromium --screenshot failed"
  exit 1
fi
if [ ! -s "$shot" ] || [ "$(head -c 4 "$shot" | tail -c 3)" != "PNG" ]; then
  tail -n 20 "$out/shot.log"
  echo "FAIL: no PNG screenshot at $shot"
  exit 1
fi
echo "ok:   screenshot $shot ($(wc -c <"$shot") bytes)"
echo "dashboard browser test: ok"
