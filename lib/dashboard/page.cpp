// The dashboard page. It stays ASCII so that it reads the same whatever charset it is served
// with; the few symbols it shows come from HTML entities and JavaScript escapes.
#include "dashboard/page.h"

namespace lumen::dashboard_detail {

namespace {

constexpr std::string_view kPage = R"lumenpage(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lumen dashboard</title>
<style>
:root { --fg: #1f2933; --muted: #687585; --line: #e3e7ec; --bg: #f5f6f8; --card: #fff; --down: #c0392b; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { background: var(--card); border-bottom: 1px solid var(--line); padding: 10px 20px 12px; }
h1 { font-size: 18px; margin: 0 0 8px; display: flex; align-items: baseline; gap: 14px; }
#status { font-size: 12px; font-weight: normal; color: var(--muted); }
#status.down { color: var(--down); font-weight: 600; }
.nums { display: grid; grid-template-columns: repeat(10, minmax(0, 1fr)); gap: 8px; }
.num b { display: block; font-size: 19px; font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
.num span, .kv dt { font-size: 11px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
main { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 12px; padding: 12px 20px; align-items: start; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px 10px; min-width: 0; }
.wide { grid-column: span 2; } .full { grid-column: 1 / -1; }
h2 { font-size: 13px; margin: 0 0 6px; font-weight: 600; }
h2 small { font-weight: normal; color: var(--muted); font-size: 12px; }
h3 { font-size: 11px; margin: 4px 0 0; font-weight: normal; color: var(--muted); }
svg { display: block; width: 100%; }
svg text { font-size: 10px; fill: var(--muted); }
svg .grid { stroke: var(--line); }
svg .series { fill: none; stroke-width: 1.5; }
svg .lane { fill: #fafbfc; }
svg .empty { font-size: 13px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 11px; color: var(--muted); }
.sw { display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin-right: 5px; vertical-align: baseline; }
.kv { display: grid; grid-template-columns: auto auto; gap: 2px 12px; margin: 8px 0 0; }
.kv dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
table { width: 100%; border-collapse: collapse; font-size: 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 2px 6px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { font-weight: 600; color: var(--muted); }
th:first-child, td:first-child { text-align: left; overflow: hidden; text-overflow: ellipsis; max-width: 180px; }
footer { padding: 0 20px 16px; color: var(--muted); font-size: 12px; }
a { color: #2f6fde; }
</style>
</head>
<body>
<header>
  <h1>lumen dashboard <span id="status">connecting&hellip;</span></h1>
  <div class="nums">
    <div class="num"><b id="tasks-run">&ndash;</b><span>tasks run</span></div>
    <div class="num"><b id="tasks-pending">&ndash;</b><span>pending</span></div>
    <div class="num"><b id="workers">&ndash;</b><span>workers</span></div>
    <div class="num"><b id="steals">&ndash;</b><span>steals</span></div>
    <div class="num"><b id="parks">&ndash;</b><span>parks</span></div>
    <div class="num"><b id="actors-alive">&ndash;</b><span>actors</span></div>
    <div class="num"><b id="actor-calls-queued">&ndash;</b><span>calls queued</span></div>
    <div class="num"><b id="objects-live">&ndash;</b><span>objects</span></div>
    <div class="num"><b id="object-bytes">&ndash;</b><span>object bytes</span></div>
    <div class="num"><b id="fibers">&ndash;</b><span>fibers</span></div>
  </div>
</header>
<main>
  <section class="wide">
    <h2>Worker utilization <small>busy %, last 60 s</small></h2>
    <svg id="util-chart" height="170"></svg>
    <div class="legend" id="util-legend"></div>
  </section>
  <section>
    <h2>Tasks <small>last 60 s</small></h2>
    <h3>run per second</h3><svg id="rate-chart" height="78"></svg>
    <h3>pending</h3><svg id="pending-chart" height="78"></svg>
  </section>
  <section>
    <h2>Queues <small>tasks queued per worker</small></h2>
    <svg id="queue-chart" height="110"></svg>
    <dl class="kv">
      <dt>actors alive</dt><dd id="q-actors-alive"></dd>
      <dt>actor calls queued</dt><dd id="q-actor-calls-queued"></dd>
      <dt>actor calls executed</dt><dd id="q-actor-calls-executed"></dd>
      <dt>blocking threads</dt><dd id="q-blocking-threads"></dd>
      <dt>task retries</dt><dd id="q-task-retries"></dd>
    </dl>
  </section>
  <section>
    <h2>Objects and memory</h2>
    <h3>object bytes, last 60 s</h3><svg id="bytes-chart" height="110"></svg>
    <dl class="kv">
      <dt>objects live</dt><dd id="m-objects-live"></dd>
      <dt>object bytes</dt><dd id="m-object-bytes"></dd>
      <dt>object table bytes</dt><dd id="m-object-table-bytes"></dd>
      <dt>fibers created / pooled</dt><dd id="m-fibers"></dd>
    </dl>
  </section>
  <section>
    <h2>Tasks by name <small>in the timeline window</small></h2>
    <table>
      <thead><tr><th>name</th><th>count</th><th>total ms</th><th>mean &micro;s</th></tr></thead>
      <tbody id="tasks-by-name"></tbody>
    </table>
  </section>
  <section class="wide">
    <h2>Tasks by state <small id="state-info"></small></h2>
    <table>
      <thead><tr><th>name</th><th>pending</th><th>queued</th><th>running</th><th>parked</th><th>finished</th><th>failed</th><th>mean ms</th></tr></thead>
      <tbody id="tasks-by-state"></tbody>
    </table>
  </section>
  <section>
    <h2>Actors <small id="actor-info"></small></h2>
    <table>
      <thead><tr><th>actor</th><th>state</th><th>queued</th><th>executed</th></tr></thead>
      <tbody id="actor-table"></tbody>
    </table>
    <h3>largest objects</h3>
    <table>
      <thead><tr><th>id</th><th>status</th><th>bytes</th><th>refs</th></tr></thead>
      <tbody id="object-table"></tbody>
    </table>
  </section>
  <section class="full">
    <h2>Timeline <small id="timeline-info"></small></h2>
    <svg id="timeline" height="60"></svg>
  </section>
</main>
<footer>Prometheus metrics: <a href="metrics">/metrics</a> &middot; JSON: <a href="api/stats">/api/stats</a>,
  <a href="api/timeline">/api/timeline</a>, <a href="api/state">/api/state</a></footer>
<script>
'use strict';
const $ = (id) => document.getElementById(id);
const SVGNS = 'http://www.w3.org/2000/svg';
const nf = new Intl.NumberFormat('en-US');
const HISTORY_S = 60;

function svgEl(parent, tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}
function htmlEl(parent, tag, text) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
// Charts are drawn in CSS pixels so text keeps its size whatever the panel's width.
function frame(svg) {
  clear(svg);
  const w = svg.clientWidth || 600, h = Number(svg.getAttribute('height'));
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  return [w, h];
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 100 ? 1 : 0)} ${units[i]}`;
}
// The same in binary units, so byte axes read 4 MiB rather than 4.8 MiB.
function niceBytes(v) {
  let unit = 1;
  while (v >= 1024 * unit) unit *= 1024;
  return niceMax(v / unit) * unit;
}
function compact(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (v >= 1e4) return (v / 1e3).toFixed(0) + 'k';
  if (v >= 1e3) return (v / 1e3).toFixed(1) + 'k';
  return String(Math.round(v));
}
function duration(us) {
  if (us < 1000) return us.toFixed(1) + ' \u00b5s';
  if (us < 1e6) return (us / 1000).toFixed(2) + ' ms';
  return (us / 1e6).toFixed(2) + ' s';
}
// The smallest 1, 2 or 5 times a power of ten at or above v, so axes get round labels.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
// FNV-1a: the same name gets the same colour on every poll and in every panel.
function hue(name) {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) { h ^= name.charCodeAt(i); h = Math.imul(h, 16777619); }
  return (h >>> 0) % 360;
}
const taskColor = (name) => `hsl(${hue(name)},60%,58%)`;
// Golden-angle steps keep neighbouring workers' colours far apart.
const workerColor = (w) => `hsl(${(w * 137.5 + 210) % 360},65%,45%)`;

function setNum(id, value, text) {
  const e = $(id);
  e.dataset.value = String(value);
  e.textContent = text === undefined ? nf.format(value) : text;
}

// Lines over the last `span` seconds ending at x1, each series an array parallel to xs.
function lineChart(svg, xs, series, o) {
  const [W, H] = frame(svg);
  const L = o.left || 38, R = 8, T = 6, B = 14, x0 = o.x1 - o.span;
  const sx = (x) => L + (x - x0) / o.span * (W - L - R);
  const sy = (y) => T + (1 - Math.min(y, o.ymax) / o.ymax) * (H - T - B);
  for (const f of [0, 0.5, 1]) {
    const y = sy(f * o.ymax);
    svgEl(svg, 'line', {x1: L, x2: W - R, y1: y, y2: y, class: 'grid'});
    svgEl(svg, 'text', {x: L - 4, y: y + 3, 'text-anchor': 'end'}, o.label(f * o.ymax));
  }
  for (const [ago, anchor] of [[o.span, 'start'], [o.span / 2, 'middle'], [0, 'end']])
    svgEl(svg, 'text', {x: sx(o.x1 - ago), y: H - 2, 'text-anchor': anchor}, ago ? `-${ago} s` : 'now');
  series.forEach((ys, i) => {
    let d = '';
    ys.forEach((y, j) => {
      if (xs[j] < x0 || !isFinite(y)) return;
      d += (d ? 'L' : 'M') + sx(xs[j]).toFixed(1) + ',' + sy(y).toFixed(1);
    });
    if (d) svgEl(svg, 'path', {d: d, class: 'series', stroke: o.color(i)});
  });
}

function queueChart(svg, values) {
  const [W, H] = frame(svg);
  const L = 30, R = 4, T = 6, B = 14, n = Math.max(values.length, 1);
  const max = niceMax(Math.max(1, ...values)), bw = (W - L - R) / n;
  for (const f of [0, 1]) {
    const y = T + (1 - f) * (H - T - B);
    svgEl(svg, 'line', {x1: L, x2: W - R, y1: y, y2: y, class: 'grid'});
    svgEl(svg, 'text', {x: L - 4, y: y + 3, 'text-anchor': 'end'}, compact(f * max));
  }
  values.forEach((v, i) => {
    const h = v / max * (H - T - B), x = L + i * bw;
    const r = svgEl(svg, 'rect', {x: x + bw * 0.15, y: H - B - h, width: Math.max(1, bw * 0.7), height: h, fill: workerColor(i)});
    svgEl(r, 'title', {}, `worker ${i}: ${nf.format(v)} queued`);
    if (n <= 32) svgEl(svg, 'text', {x: x + bw / 2, y: H - 2, 'text-anchor': 'middle'}, `w${i}`);
  });
}

function renderStats(s) {
  const h = s.history || {}, t = h.time_s || [], x1 = t.length ? t[t.length - 1] : s.time_s;
  for (const [id, v] of [['tasks-run', s.tasks_run], ['tasks-pending', s.tasks_pending], ['workers', s.workers],
                         ['steals', s.steals], ['parks', s.parks], ['actors-alive', s.actors_alive],
                         ['actor-calls-queued', s.actor_calls_queued], ['objects-live', s.objects_live],
                         ['q-actors-alive', s.actors_alive], ['q-actor-calls-queued', s.actor_calls_queued],
                         ['q-actor-calls-executed', s.actor_calls_executed], ['q-blocking-threads', s.blocking_threads],
                         ['q-task-retries', s.task_retries], ['m-objects-live', s.objects_live]])
    setNum(id, v);
  setNum('object-bytes', s.object_bytes, bytes(s.object_bytes));
  setNum('m-object-bytes', s.object_bytes, bytes(s.object_bytes));
  setNum('m-object-table-bytes', s.object_table_bytes, bytes(s.object_table_bytes));
  setNum('fibers', s.fibers_created);
  $('fibers').title = `${nf.format(s.fibers_pooled)} pooled`;
  $('m-fibers').textContent = `${nf.format(s.fibers_created)} / ${nf.format(s.fibers_pooled)}`;

  const busy = h.worker_busy || [], per = [];
  for (let w = 0; w < s.workers; w++) per.push(busy.map((row) => 100 * row[w]));
  lineChart($('util-chart'), t, per, {x1: x1, span: HISTORY_S, ymax: 100, label: (v) => `${v}%`, color: workerColor});
  const legend = $('util-legend');
  clear(legend);
  (s.worker_busy || []).slice(0, 16).forEach((b, w) => {
    const item = htmlEl(legend, 'span');
    htmlEl(item, 'span').className = 'sw';
    item.firstChild.style.background = workerColor(w);
    item.appendChild(document.createTextNode(`worker ${w} ${Math.round(100 * b)}%`));
  });
  if (s.workers > 16) htmlEl(legend, 'span', `and ${s.workers - 16} more`);

  // Rates come from successive samples; the first sample has no predecessor.
  const run = h.tasks_run || [], rate = run.map((v, i) => i && t[i] > t[i - 1] ? (v - run[i - 1]) / (t[i] - t[i - 1]) : NaN);
  const visible = (ys) => ys.filter((y, i) => t[i] >= x1 - HISTORY_S && isFinite(y));
  const one = () => '#2f6fde';
  lineChart($('rate-chart'), t, [rate], {x1: x1, span: HISTORY_S, ymax: niceMax(Math.max(0, ...visible(rate))), label: compact, color: one});
  const pend = h.tasks_pending || [];
  lineChart($('pending-chart'), t, [pend], {x1: x1, span: HISTORY_S, ymax: niceMax(Math.max(0, ...visible(pend))), label: compact, color: () => '#d9822b'});
  const ob = h.object_bytes || [];
  lineChart($('bytes-chart'), t, [ob], {x1: x1, span: HISTORY_S, ymax: niceBytes(Math.max(0, ...visible(ob))), left: 50, label: (v) => bytes(v).replace('.0 ', ' '), color: () => '#3e9e6b'});
  queueChart($('queue-chart'), s.queue_lengths || []);
}

function renderTable(rows) {
  const tb = $('tasks-by-name');
  clear(tb);
  const top = rows.slice().sort((a, b) => b.total_ms - a.total_ms).slice(0, 15);
  if (!top.length) htmlEl(htmlEl(tb, 'tr'), 'td', 'no tasks recorded').colSpan = 4;
  for (const r of top) {
    const tr = htmlEl(tb, 'tr'), name = htmlEl(tr, 'td');
    htmlEl(name, 'span').className = 'sw';
    name.firstChild.style.background = taskColor(r.name);
    name.appendChild(document.createTextNode(r.name));
    name.title = r.name;
    htmlEl(tr, 'td', nf.format(r.count));
    htmlEl(tr, 'td', r.total_ms.toFixed(2));
    htmlEl(tr, 'td', r.count ? (r.total_ms * 1000 / r.count).toFixed(1) : '');
  }
}

function renderTimeline(tl, workers) {
  const svg = $('timeline'), events = tl.events || [];
  const ids = new Set();
  for (let w = 0; w < workers; w++) ids.add(w);
  for (const e of events) ids.add(e.worker);
  const lanes = Array.from(ids).sort((a, b) => a - b), laneOf = new Map(lanes.map((w, i) => [w, i]));
  const LH = 20, L = 64, R = 8, T = 2, B = 14;
  svg.setAttribute('height', T + Math.max(1, lanes.length) * LH + B);
  const [W, H] = frame(svg);
  const span = tl.window_ms * 1000, t0 = tl.now_us - span, sx = (t) => L + (t - t0) / span * (W - L - R);
  lanes.forEach((w, i) => {
    svgEl(svg, 'rect', {x: L, y: T + i * LH + 1, width: W - L - R, height: LH - 2, class: 'lane'});
    svgEl(svg, 'text', {x: L - 6, y: T + i * LH + LH / 2 + 3, 'text-anchor': 'end'}, `worker ${w}`);
  });
  for (let k = 0; k <= 4; k++) {
    const ago = tl.window_ms * (1 - k / 4);
    svgEl(svg, 'text', {x: sx(tl.now_us - ago * 1000), y: H - 2, 'text-anchor': k === 0 ? 'start' : k === 4 ? 'end' : 'middle'},
          ago ? `-${nf.format(Math.round(ago))} ms` : 'now');
  }
  if (!events.length) {
    svgEl(svg, 'text', {x: (L + W) / 2, y: T + lanes.length * LH / 2 + 4, 'text-anchor': 'middle', class: 'empty'}, 'no timeline recorded');
  }
  for (const e of events) {
    const xa = Math.max(L, sx(e.ts_us)), xb = Math.min(W - R, sx(e.ts_us + e.dur_us));
    if (xb < L || xa > W - R) continue;
    const idle = e.cat === 'idle' || e.cat === 'park', y = T + laneOf.get(e.worker) * LH;
    const r = svgEl(svg, 'rect', {class: 'ev', x: xa.toFixed(2), y: y + (idle ? 6 : 2), width: Math.max(0.5, xb - xa).toFixed(2),
                                  height: idle ? LH - 12 : LH - 4, fill: idle ? '#d5dae0' : taskColor(e.name)});
    svgEl(r, 'title', {}, `${e.name} (${e.cat}) ${duration(e.dur_us)}`);
  }
  const total = tl.events_total ?? events.length;
  let info = `last ${nf.format(tl.window_ms)} ms, ${nf.format(total)} events`;
  if (events.length < total) info += `, the ${nf.format(events.length)} longest drawn`;
  if (tl.dropped) info += `, ${nf.format(tl.dropped)} dropped`;
  $('timeline-info').textContent = info;
  renderTable(tl.tasks_by_name || []);
}

function row(tb, cells) {
  const tr = htmlEl(tb, 'tr');
  for (const c of cells) htmlEl(tr, 'td', c);
  return tr;
}

function emptyRow(tb, text, span) {
  htmlEl(htmlEl(tb, 'tr'), 'td', text).colSpan = span;
}

function renderState(st) {
  const tb = $('tasks-by-state');
  clear(tb);
  if (!st.tracked) {
    emptyRow(tb, 'the runtime does not track tasks (Config::track_state or LUMEN_TRACK_STATE=1)', 8);
  } else if (!st.tasks.length) {
    emptyRow(tb, 'no tasks yet', 8);
  }
  for (const t of st.tasks) {
    const ended = t.finished + t.failed;
    const tr = row(tb, [t.name, nf.format(t.pending), nf.format(t.queued), nf.format(t.running), nf.format(t.parked),
                        nf.format(t.finished), nf.format(t.failed), ended ? (t.total_ms / ended).toFixed(3) : '']);
    tr.dataset.task = t.name;
    tr.firstChild.title = t.name;
  }
  $('state-info').textContent = st.tracked ? `${nf.format(st.task_names)} ${st.task_names === 1 ? 'name' : 'names'}, most tasks first` : '';
  const ab = $('actor-table');
  clear(ab);
  if (!st.actors.length) emptyRow(ab, 'no actors', 4);
  for (const a of st.actors) {
    const tr = row(ab, [a.name || `${a.type} #${a.id}`, a.alive ? 'alive' : 'dead', nf.format(a.calls_queued), nf.format(a.calls_executed)]);
    tr.dataset.actor = a.name || String(a.id);
    tr.firstChild.title = a.type;
  }
  $('actor-info').textContent = `${nf.format(st.actor_count)}, busiest mailboxes first`;
  const ob = $('object-table');
  clear(ob);
  if (!st.largest_objects.length) emptyRow(ob, 'no objects', 4);
  for (const o of st.largest_objects.slice(0, 5)) row(ob, [String(o.id), o.status, bytes(o.bytes), nf.format(o.refs)]);
}

async function getJSON(path) {
  const r = await fetch(path, {cache: 'no-store'});
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function setStatus(text, down) {
  const e = $('status');
  e.textContent = text;
  e.className = down ? 'down' : '';
}

let lastOk = null;
// Each poll starts after the last one ends, so a slow server never has requests pile up.
async function poll() {
  let stats = null, tl = null, st = null;
  try {
    stats = await getJSON('api/stats');
    tl = await getJSON('api/timeline').catch((e) => ({error: e.message}));
    st = await getJSON('api/state').catch((e) => ({error: e.message}));
  } catch (e) {
    const since = lastOk ? `, last update ${lastOk.toLocaleTimeString()}` : '';
    setStatus(`disconnected (${e.message}${since}); retrying`, true);
  }
  if (stats) {
    try {
      renderStats(stats);
      document.body.dataset.tasksRun = String(stats.tasks_run);
      document.body.dataset.ready = '1';
      lastOk = new Date();
      setStatus(`updated ${lastOk.toLocaleTimeString()}, up ${Number(stats.time_s).toFixed(1)} s`, false);
      if (tl.error) $('timeline-info').textContent = `unavailable: ${tl.error}`;
      else renderTimeline(tl, stats.workers);
      if (!st.error) renderState(st);
    } catch (e) {
      // A page bug must not read as a lost connection.
      console.error(e);
      setStatus(`render error: ${e.message}`, true);
    }
  }
  setTimeout(poll, 500);
}
poll();
</script>
</body>
</html>
)lumenpage";

}  // namespace

std::string_view dashboard_page() noexcept { return kPage; }

}  // namespace lumen::dashboard_detail
