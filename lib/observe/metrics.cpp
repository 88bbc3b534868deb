// The registry of the program's metrics, and the text exposition of those and the runtime's.
#include "lumen/metrics.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>

#include "lumen/error.h"
#include "lumen/runtime.h"
#include "lumen/state.h"
#include "observe/task_registry.h"
#include "sched/scheduler.h"

namespace lumen::detail {

enum class MetricKind { counter, gauge, histogram };

struct MetricSeries {
  MetricKind kind;
  std::string labels;  // rendered: {a="x",b="y"}, or empty
  std::atomic<double> value{0.0};
  // Histograms: one count per bucket (not cumulative), the last for +Inf.
  std::vector<double> bounds;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets;
  std::atomic<double> sum{0.0};
};

namespace {

const char* kind_name(MetricKind k) {
  switch (k) {
    case MetricKind::counter: return "counter";
    case MetricKind::gauge: return "gauge";
    case MetricKind::histogram: return "histogram";
  }
  return "untyped";
}

bool valid_name(const std::string& n, bool label) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!label && c == ':');
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return !(label && n.rfind("__", 0) == 0);
}

std::string escaped(const std::string& s, bool quotes) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

struct Family {
  MetricKind kind;
  std::string help;
  std::map<std::string, std::shared_ptr<MetricSeries>> series;  // by rendered labels
};

struct Registry {
  std::mutex mutex;
  std::map<std::string, Family> families;
  static Registry& instance() {
    static Registry* r = new Registry;  // never destroyed: handles may outlive static destruction
    return *r;
  }
};

std::string render_labels(const std::string& metric, const MetricLabels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!valid_name(k, true) || k == "le")
      throw usage_error("lumen: metric " + metric + ": '" + k + "' is not a valid label name");
    out += out.empty() ? "{" : ",";
    out += k + "=\"" + escaped(v, true) + "\"";
  }
  if (!out.empty()) out += "}";
  return out;
}

std::shared_ptr<MetricSeries> series_for(const std::string& name, const std::string& help, const MetricLabels& labels,
                                         MetricKind kind, const std::vector<double>* bounds = nullptr) {
  if (!valid_name(name, false)) throw usage_error("lumen: '" + name + "' is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)");
  if (name.rfind("lumen_", 0) == 0) throw usage_error("lumen: metric names starting with lumen_ are the runtime's: " + name);
  std::string rendered = render_labels(name, labels);
  Registry& r = Registry::instance();
  std::lock_guard lock(r.mutex);
  auto [it, added] = r.families.try_emplace(name, Family{kind, help, {}});
  Family& f = it->second;
  if (f.kind != kind)
    throw usage_error("lumen: metric " + name + " is registered as a " + kind_name(f.kind) + ", not a " + kind_name(kind));
  if (f.help != help) throw usage_error("lumen: metric " + name + " is registered with another help text");
  auto& slot = f.series[rendered];
  if (slot == nullptr) {
    auto s = std::make_shared<MetricSeries>();
    s->kind = kind;
    s->labels = std::move(rendered);
    if (bounds != nullptr) {
      s->bounds = *bounds;
      s->buckets = std::make_unique<std::atomic<std::uint64_t>[]>(bounds->size() + 1);
    }
    slot = std::move(s);
  } else if (bounds != nullptr && slot->bounds != *bounds) {
    throw usage_error("lumen: histogram " + name + " is registered with other bucket bounds");
  }
  return slot;
}

void write_family(std::string& out, const std::string& name, const char* type, const std::string& help) {
  out += "# HELP " + name + " " + escaped(help, false) + "\n# TYPE " + name + " " + type + "\n";
}

void write_histogram(std::string& out, const std::string& name, const MetricSeries& s) {
  // Cumulative counts from one read of each bucket, so that +Inf equals _count in this text.
  std::uint64_t cumulative = 0;
  const std::string inner = s.labels.empty() ? "" : s.labels.substr(1, s.labels.size() - 2) + ",";
  for (std::size_t i = 0; i <= s.bounds.size(); ++i) {
    cumulative += s.buckets[i].load(std::memory_order_relaxed);
    const std::string le = i < s.bounds.size() ? number(s.bounds[i]) : "+Inf";
    out += name + "_bucket{" + inner + "le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_sum" + s.labels + " " + number(s.sum.load(std::memory_order_relaxed)) + "\n";
  out += name + "_count" + s.labels + " " + std::to_string(cumulative) + "\n";
}

}  // namespace
}  // namespace lumen::detail

namespace lumen {

using detail::MetricKind;

Counter::Counter(const std::string& name, const std::string& help, const MetricLabels& labels)
    : series_(detail::series_for(name, help, labels, MetricKind::counter)) {}
void Counter::inc(double v) {
  if (!(v >= 0)) throw usage_error("lumen: a counter only goes up; inc(" + detail::number(v) + ")");
  series_->value.fetch_add(v, std::memory_order_relaxed);
}
double Counter::value() const noexcept { return series_->value.load(std::memory_order_relaxed); }

Gauge::Gauge(const std::string& name, const std::string& help, const MetricLabels& labels)
    : series_(detail::series_for(name, help, labels, MetricKind::gauge)) {}
void Gauge::set(double v) noexcept { series_->value.store(v, std::memory_order_relaxed); }
void Gauge::inc(double v) noexcept { series_->value.fetch_add(v, std::memory_order_relaxed); }
void Gauge::dec(double v) noexcept { series_->value.fetch_sub(v, std::memory_order_relaxed); }
double Gauge::value() const noexcept { return series_->value.load(std::memory_order_relaxed); }

namespace {
std::vector<double> checked_bounds(const std::string& name, std::vector<double> b) {
  if (b.empty()) throw usage_error("lumen: histogram " + name + " needs at least one bucket bound");
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (!std::isfinite(b[i]) || (i > 0 && !(b[i] > b[i - 1])))
      throw usage_error("lumen: histogram " + name + ": bucket bounds must be finite and strictly increasing");
  }
  return b;
}
}  // namespace

Histogram::Histogram(const std::string& name, const std::string& help, std::vector<double> upper_bounds,
                     const MetricLabels& labels) {
  const std::vector<double> bounds = checked_bounds(name, std::move(upper_bounds));
  series_ = detail::series_for(name, help, labels, MetricKind::histogram, &bounds);
}
void Histogram::observe(double v) {
  if (std::isnan(v)) throw usage_error("lumen: a histogram cannot observe NaN");
  const auto& b = series_->bounds;
  const std::size_t i = static_cast<std::size_t>(std::lower_bound(b.begin(), b.end(), v) - b.begin());
  series_->buckets[i].fetch_add(1, std::memory_order_relaxed);
  series_->sum.fetch_add(v, std::memory_order_relaxed);
}
std::uint64_t Histogram::count() const noexcept {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i <= series_->bounds.size(); ++i) n += series_->buckets[i].load(std::memory_order_relaxed);
  return n;
}
double Histogram::sum() const noexcept { return series_->sum.load(std::memory_order_relaxed); }

std::string metrics_text(const Runtime& rt) {
  const Stats s = rt.stats();
  std::string out;
  out.reserve(4096);
  auto one = [&](const char* name, const char* type, const char* help, double v) {
    detail::write_family(out, name, type, help);
    out += std::string(name) + " " + detail::number(v) + "\n";
  };
  one("lumen_workers", "gauge", "Worker threads of the runtime.", s.workers);
  one("lumen_tasks_run_total", "counter", "Tasks workers took from a queue.", static_cast<double>(s.tasks_run));
  one("lumen_tasks_pending", "gauge", "Submitted tasks not finished yet.", static_cast<double>(s.tasks_pending));
  one("lumen_task_retries_total", "counter", "Runs of tasks after an exception.", static_cast<double>(s.task_retries));
  one("lumen_steals_total", "counter", "Tasks taken from another worker's queue.", static_cast<double>(s.steals));
  one("lumen_parks_total", "counter", "Times a task blocked and its fiber was parked.", static_cast<double>(s.parks));
  one("lumen_fibers_created_total", "counter", "Fibers (stacks) created.", static_cast<double>(s.fibers_created));
  one("lumen_fibers_pooled", "gauge", "Idle fibers kept for reuse.", static_cast<double>(s.fibers_pooled));
  detail::write_family(out, "lumen_worker_queue_length", "gauge", "Tasks queued on each worker.");
  for (std::size_t i = 0; i < s.queue_lengths.size(); ++i)
    out += "lumen_worker_queue_length{worker=\"" + std::to_string(i) + "\"} " + std::to_string(s.queue_lengths[i]) + "\n";
  detail::write_family(out, "lumen_worker_idle_seconds_total", "counter", "Time each worker spent looking for work or asleep.");
  for (std::size_t i = 0; i < s.idle_ns.size(); ++i)
    out += "lumen_worker_idle_seconds_total{worker=\"" + std::to_string(i) + "\"} " +
           detail::number(static_cast<double>(s.idle_ns[i]) * 1e-9) + "\n";
  one("lumen_outside_queues", "gauge", "Queues of threads that are not workers.", static_cast<double>(s.outside_queues));
  one("lumen_blocking_threads", "gauge", "Threads started for lumen::blocking.", static_cast<double>(s.blocking_threads));
  one("lumen_objects", "gauge", "Objects in the object table (shared by the process).", static_cast<double>(s.objects_live));
  one("lumen_object_bytes", "gauge", "Bytes of the objects' values.", static_cast<double>(s.object_bytes));
  one("lumen_object_table_bytes", "gauge", "Memory of the object table's entries.", static_cast<double>(s.object_table_bytes));
  one("lumen_object_memory_limit_bytes", "gauge", "Config::object_memory_limit in force (0: none).", static_cast<double>(s.object_memory_limit));
  one("lumen_object_memory_used_bytes", "gauge", "Bytes counted against the object memory limit.", static_cast<double>(s.object_memory_used));
  one("lumen_objects_evicted_total", "counter", "Values of deterministic tasks dropped under the memory limit.", static_cast<double>(s.objects_evicted));
  one("lumen_objects_rebuilt_total", "counter", "Evicted values computed again when read.", static_cast<double>(s.objects_rebuilt));
  one("lumen_objects_spilled_total", "counter", "Values written to spill files.", static_cast<double>(s.objects_spilled));
  one("lumen_objects_restored_total", "counter", "Spilled values read back.", static_cast<double>(s.objects_restored));
  one("lumen_spill_failures_total", "counter", "Spills that could not be written.", static_cast<double>(s.spill_failures));
  one("lumen_puts_waited_total", "counter", "Puts that waited for room under the memory limit.", static_cast<double>(s.puts_waited));
  one("lumen_actors_alive", "gauge", "Actors not ended.", static_cast<double>(s.actors_alive));
  one("lumen_actor_calls_queued", "gauge", "Actor calls queued or running.", static_cast<double>(s.actor_calls_queued));
  one("lumen_actor_calls_executed_total", "counter", "Actor calls whose method ran.", static_cast<double>(s.actor_calls_executed));
  const std::vector<ActorInfo> actors = list_actors(rt);
  if (!actors.empty()) {
    detail::write_family(out, "lumen_actor_mailbox_calls", "gauge", "Calls queued or running, per actor.");
    for (const ActorInfo& a : actors)
      out += "lumen_actor_mailbox_calls{actor=\"" + detail::escaped(a.name.empty() ? a.type : a.name, true) +
             "\",id=\"" + std::to_string(a.id) + "\"} " + std::to_string(a.calls_queued) + "\n";
  }
  if (const detail::TaskRegistry* tasks = rt.scheduler().task_registry.get()) {
    const detail::TaskRegistry::Counts c = tasks->counts();
    detail::write_family(out, "lumen_tasks", "gauge", "Live submitted tasks by state (Config::track_state).");
    const char* states[] = {"pending", "queued", "running", "parked"};
    for (int i = 0; i < 4; ++i) out += std::string("lumen_tasks{state=\"") + states[i] + "\"} " + std::to_string(c.live[i]) + "\n";
    detail::write_family(out, "lumen_tasks_ended_total", "counter", "Submitted tasks that ended, by outcome (Config::track_state).");
    out += "lumen_tasks_ended_total{state=\"finished\"} " + std::to_string(c.finished) + "\n";
    out += "lumen_tasks_ended_total{state=\"failed\"} " + std::to_string(c.failed) + "\n";
    detail::write_family(out, "lumen_task_seconds", "histogram", "Time of ended tasks from first start to end (Config::track_state).");
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < detail::TaskRegistry::kBuckets; ++b) {
      cumulative += c.buckets[b];
      const std::string le = b + 1 < detail::TaskRegistry::kBuckets ? detail::number(detail::TaskRegistry::kTimeBounds[b]) : "+Inf";
      out += "lumen_task_seconds_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
    }
    out += "lumen_task_seconds_sum " + detail::number(static_cast<double>(c.total_ticks) * tasks->ns_per_tick() * 1e-9) + "\n";
    out += "lumen_task_seconds_count " + std::to_string(cumulative) + "\n";
  }

  detail::Registry& r = detail::Registry::instance();
  std::lock_guard lock(r.mutex);
  for (const auto& [name, family] : r.families) {
    detail::write_family(out, name, detail::kind_name(family.kind), family.help);
    for (const auto& [labels, series] : family.series) {
      if (family.kind == MetricKind::histogram) {
        detail::write_histogram(out, name, *series);
      } else {
        out += name + labels + " " + detail::number(series->value.load(std::memory_order_relaxed)) + "\n";
      }
    }
  }
  return out;
}

}  // namespace lumen
