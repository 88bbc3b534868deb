// The state API (lumen/state.h): task records kept by the hooks of task_state_hooks.h, and the
// snapshots of tasks, actors and objects.
#include "lumen/state.h"

#include <algorithm>
#include <unordered_map>

#include "actors/actor_directory.h"
#include "lumen/detail/alloc.h"
#include "lumen/detail/object_table.h"
#include "lumen/detail/submit_task.h"
#include "lumen/error.h"
#include "observe/task_registry.h"
#include "observe/timeline_data.h"
#include "sched/scheduler.h"

namespace lumen {
namespace detail {

std::atomic<int> state_trackers{0};

namespace {

// The rate of the time-stamp counter, measured once per process over a millisecond.
double ticks_per_ns() noexcept {
  static const double rate = [] {
    const std::int64_t t0 = timeline_now(), n0 = steady_ns();
    while (steady_ns() - n0 < 1'000'000) {
    }
    return std::max(1e-3, static_cast<double>(timeline_now() - t0) / static_cast<double>(steady_ns() - n0));
  }();
  return rate;
}

}  // namespace

TaskRegistry::TaskRegistry(unsigned shards, std::size_t history)
    : shards_(std::make_unique<Shard[]>(shards)),
      shard_count_(shards),
      history_(history),
      ticks0_(timeline_now()),
      ns0_(steady_ns()) {
  const double rate = ticks_per_ns();
  for (std::size_t i = 0; i + 1 < kBuckets; ++i) bucket_ticks_[i] = static_cast<std::int64_t>(kTimeBounds[i] * 1e9 * rate);
  state_trackers.fetch_add(1, std::memory_order_relaxed);
  ObjectTable::birth_recorders.fetch_add(1, std::memory_order_relaxed);
}

TaskRegistry::~TaskRegistry() {
  // Every task has ended by now (the runtime drained); records of tasks that never ended (a
  // frame destroyed without finishing) are freed with the registry.
  for (unsigned i = 0; i < shard_count_; ++i) {
    for (TaskRecord* r = shards_[i].head; r != nullptr;) destroy(std::exchange(r, r->next));
  }
  ObjectTable::birth_recorders.fetch_sub(1, std::memory_order_relaxed);
  state_trackers.fetch_sub(1, std::memory_order_relaxed);
}

void TaskRegistry::add(TaskRecord* r, unsigned shard) noexcept {
  r->shard = shard % shard_count_;
  Shard& s = shards_[r->shard];
  std::lock_guard lock(s.guard);
  r->next = s.head;
  if (s.head != nullptr) s.head->prev = r;
  s.head = r;
}

namespace {

EndedTask copy_of(const TaskRecord& r) {
  return EndedTask{r.object_id,
                   r.type_label,
                   r.name,
                   r.file,
                   r.function,
                   r.line,
                   r.phase.load(std::memory_order_relaxed),
                   r.worker.load(std::memory_order_relaxed),
                   r.attempts.load(std::memory_order_relaxed),
                   r.submitted,
                   r.started.load(std::memory_order_relaxed),
                   r.ended};
}

}  // namespace

void TaskRegistry::remove(TaskRecord* r) noexcept {
  Shard& s = shards_[r->shard];
  const RecordPhase phase = r->phase.load(std::memory_order_relaxed);
  const std::int64_t ended = timeline_now();
  const std::int64_t started = r->started.load(std::memory_order_relaxed);
  const std::int64_t took = started != 0 ? std::max<std::int64_t>(0, ended - started) : 0;
  {
    std::lock_guard lock(s.guard);
    r->ended = ended;  // snapshots read it under the lock
    if (r->prev != nullptr) r->prev->next = r->next;
    else s.head = r->next;
    if (r->next != nullptr) r->next->prev = r->prev;
    try {
      if (history_ > 0) {
        // A ring: the oldest entry is overwritten in place, reusing its name's storage.
        if (s.ended.size() < history_) {
          s.ended.push_back(copy_of(*r));
        } else {
          s.ended[s.next_ended] = copy_of(*r);
        }
        s.next_ended = (s.next_ended + 1) % history_;
      }
      std::size_t b = 0;
      while (b + 1 < kBuckets && took > bucket_ticks_[b]) ++b;
      ++s.buckets[b];
      s.total_ticks += took;
      // Tasks of one kind tend to end together: the last name's totals are kept at hand.
      if (s.last_totals == nullptr || s.last_label != r->type_label || s.last_name != r->name) {
        s.last_totals = &s.totals[NameKey{r->type_label, r->name}];
        s.last_label = r->type_label;
        s.last_name = r->name;
      }
      NameTotals& t = *s.last_totals;
      (phase == RecordPhase::finished ? t.finished : t.failed) += 1;
      t.total_ticks += took;
      t.max_ticks = std::max(t.max_ticks, took);
    } catch (...) {
      // No memory for the history or the totals: the task ends all the same, uncounted.
    }
  }
  destroy(r);
}

TaskRegistry::Snapshot TaskRegistry::snapshot(bool live, bool ended, bool totals) const {
  Snapshot out;
  for (unsigned i = 0; i < shard_count_; ++i) {
    const Shard& s = shards_[i];
    std::lock_guard lock(s.guard);
    if (live)
      for (const TaskRecord* r = s.head; r != nullptr; r = r->next) out.live.push_back(copy_of(*r));
    if (ended) out.ended.insert(out.ended.end(), s.ended.begin(), s.ended.end());
    if (totals)
      for (const auto& [key, t] : s.totals) {
        NameTotals& sum = out.totals[key];
        sum.finished += t.finished;
        sum.failed += t.failed;
        sum.total_ticks += t.total_ticks;
        sum.max_ticks = std::max(sum.max_ticks, t.max_ticks);
      }
  }
  // Each shard keeps the last `history` of its own; together, the last `history`.
  if (out.ended.size() > history_) {
    std::nth_element(out.ended.begin(), out.ended.begin() + static_cast<std::ptrdiff_t>(history_), out.ended.end(),
                     [](const EndedTask& a, const EndedTask& b) { return a.ended > b.ended; });
    out.ended.resize(history_);
  }
  return out;
}

TaskRegistry::Counts TaskRegistry::counts() const {
  Counts c;
  for (unsigned i = 0; i < shard_count_; ++i) {
    const Shard& s = shards_[i];
    std::lock_guard lock(s.guard);
    for (const TaskRecord* r = s.head; r != nullptr; r = r->next) {
      // A task that is about to leave the list counts as running.
      const auto p = static_cast<std::size_t>(r->phase.load(std::memory_order_relaxed));
      ++c.live[p <= 3 ? p : 2];
    }
    for (const auto& [key, t] : s.totals) {
      c.finished += t.finished;
      c.failed += t.failed;
    }
    for (std::size_t b = 0; b < kBuckets; ++b) c.buckets[b] += s.buckets[b];
    c.total_ticks += s.total_ticks;
  }
  return c;
}

double TaskRegistry::ns_per_tick() const noexcept {
  const std::int64_t now_ticks = timeline_now(), now_ns = steady_ns();
  return now_ticks > ticks0_ && now_ns > ns0_ ? static_cast<double>(now_ns - ns0_) / static_cast<double>(now_ticks - ticks0_) : 1.0;
}

std::int64_t TaskRegistry::to_steady_ns(std::int64_t ticks) const noexcept {
  return ns0_ + static_cast<std::int64_t>(static_cast<double>(ticks - ticks0_) * ns_per_tick());
}

TaskRecord* track_task(Scheduler& s, std::uint64_t object_id, std::string_view name, std::uint32_t type_label,
                       const std::source_location* where) noexcept {
  TaskRegistry* registry = s.task_registry.get();
  if (registry == nullptr) return nullptr;
  TaskRecord* r;
  try {
    r = create<TaskRecord>();
    r->name = name;
  } catch (...) {
    return nullptr;  // untracked rather than failed: the state API is an observer
  }
  r->registry = registry;
  r->object_id = object_id;
  r->type_label = type_label;
  if (where != nullptr) {
    r->file = where->file_name();
    r->function = where->function_name();
    r->line = where->line();
  }
  r->submitted = timeline_now();
  Worker* w = this_worker();
  registry->add(r, w != nullptr && &w->scheduler() == &s ? w->index() : s.worker_count());
  return r;
}

void task_pending(TaskRecord* r) noexcept { r->phase.store(RecordPhase::pending, std::memory_order_relaxed); }

void task_queued(TaskRecord* r) noexcept { r->phase.store(RecordPhase::queued, std::memory_order_relaxed); }

void task_running(TaskRecord* r) noexcept {
  if (r->started.load(std::memory_order_relaxed) == 0) r->started.store(timeline_now(), std::memory_order_relaxed);
  Worker* w = this_worker();
  r->worker.store(w != nullptr ? static_cast<int>(w->index()) : -1, std::memory_order_relaxed);
  r->attempts.store(r->attempts.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // one writer
  r->phase.store(RecordPhase::running, std::memory_order_relaxed);
}

void task_succeeded(TaskRecord* r) noexcept { r->phase.store(RecordPhase::finished, std::memory_order_relaxed); }

void task_parked(const void* running_task, bool parked) noexcept {
  TaskRecord* r = static_cast<const SubmitTaskBase*>(running_task)->record;
  if (r != nullptr) r->phase.store(parked ? RecordPhase::parked : RecordPhase::running, std::memory_order_relaxed);
}

void untrack_task(TaskRecord* r) noexcept {
  if (r->phase.load(std::memory_order_relaxed) != RecordPhase::finished) r->phase.store(RecordPhase::failed, std::memory_order_relaxed);
  r->registry->remove(r);
}

}  // namespace detail

namespace {

TaskPhase public_phase(detail::RecordPhase p) noexcept { return static_cast<TaskPhase>(p); }

const detail::TaskRegistry& registry_of(const Runtime& rt) {
  const detail::TaskRegistry* r = rt.scheduler().task_registry.get();
  if (r == nullptr)
    throw usage_error("lumen: the runtime does not track tasks; set Config::track_state (or LUMEN_TRACK_STATE=1)");
  return *r;
}

// Names of unnamed tasks: their callable's type, interned as a timeline label.
class LabelNames {
 public:
  const std::string& operator()(std::uint32_t label, const std::string& name) {
    if (label == 0) return name;
    if (names_.empty()) names_ = detail::timeline_label_names();
    return label < names_.size() ? names_[label] : name;
  }

 private:
  std::vector<std::string> names_;
};

TaskInfo::time_point at(const detail::TaskRegistry& r, std::int64_t ticks) {
  if (ticks == 0) return {};
  return TaskInfo::time_point(std::chrono::nanoseconds(r.to_steady_ns(ticks)));
}

}  // namespace

std::string_view to_string(TaskPhase phase) noexcept {
  switch (phase) {
    case TaskPhase::pending: return "pending";
    case TaskPhase::queued: return "queued";
    case TaskPhase::running: return "running";
    case TaskPhase::parked: return "parked";
    case TaskPhase::finished: return "finished";
    case TaskPhase::failed: return "failed";
  }
  return "unknown";
}

bool tracks_tasks(const Runtime& rt) noexcept { return rt.scheduler().task_registry != nullptr; }

std::vector<TaskInfo> list_tasks(const Runtime& rt, const TaskFilter& filter) {
  const detail::TaskRegistry& registry = registry_of(rt);
  detail::TaskRegistry::Snapshot snap = registry.snapshot(filter.live, filter.ended, false);
  std::vector<detail::EndedTask> all = std::move(snap.live);
  all.insert(all.end(), std::make_move_iterator(snap.ended.begin()), std::make_move_iterator(snap.ended.end()));
  LabelNames names;
  std::vector<TaskInfo> out;
  for (detail::EndedTask& t : all) {
    std::string name = names(t.type_label, t.name);
    if (!filter.name.empty() && name != filter.name) continue;
    TaskInfo info;
    info.object_id = ObjectId{t.object_id};
    info.name = std::move(name);
    info.phase = public_phase(t.phase);
    info.worker = t.worker;
    info.attempts = t.attempts;
    info.file = t.file;
    info.function = t.function;
    info.line = t.line;
    info.submitted = at(registry, t.submitted);
    info.started = at(registry, t.started);
    info.ended = at(registry, t.ended);
    out.push_back(std::move(info));
  }
  std::stable_sort(out.begin(), out.end(), [](const TaskInfo& a, const TaskInfo& b) { return a.submitted < b.submitted; });
  if (out.size() > filter.limit) out.resize(filter.limit);
  return out;
}

std::vector<TaskSummary> summarize_tasks(const Runtime& rt) {
  const detail::TaskRegistry& registry = registry_of(rt);
  const detail::TaskRegistry::Snapshot snap = registry.snapshot(true, false, true);
  LabelNames names;
  std::unordered_map<std::string, TaskSummary> by_name;
  auto entry = [&](std::uint32_t label, const std::string& name) -> TaskSummary& {
    const std::string& shown = names(label, name);
    TaskSummary& s = by_name[shown];
    s.name = shown;
    return s;
  };
  for (const detail::EndedTask& t : snap.live) {
    TaskSummary& s = entry(t.type_label, t.name);
    switch (t.phase) {
      case detail::RecordPhase::pending: ++s.pending; break;
      case detail::RecordPhase::queued: ++s.queued; break;
      case detail::RecordPhase::parked: ++s.parked; break;
      default: ++s.running; break;  // running, or about to end
    }
  }
  const double ns_per_tick = registry.ns_per_tick();
  auto ns = [&](std::int64_t ticks) { return std::chrono::nanoseconds(static_cast<std::int64_t>(static_cast<double>(ticks) * ns_per_tick)); };
  for (const auto& [key, t] : snap.totals) {
    TaskSummary& s = entry(key.first, key.second);
    s.finished += t.finished;
    s.failed += t.failed;
    s.total_time += ns(t.total_ticks);
    s.max_time = std::max(s.max_time, ns(t.max_ticks));
  }
  std::vector<TaskSummary> out;
  for (auto& [name, s] : by_name) out.push_back(std::move(s));
  auto count = [](const TaskSummary& s) { return s.pending + s.queued + s.running + s.parked + s.finished + s.failed; };
  std::sort(out.begin(), out.end(), [&](const TaskSummary& a, const TaskSummary& b) {
    return count(a) != count(b) ? count(a) > count(b) : a.name < b.name;
  });
  return out;
}

std::vector<ActorInfo> list_actors(const Runtime& rt) { return detail::ActorDirectory::instance().list(rt.scheduler()); }

std::vector<ObjectInfo> list_objects(const ObjectFilter& filter) {
  struct Scan {
    std::vector<detail::ObjectTable::LiveObject> objects;
    bool failed = false;
  } scan;
  detail::ObjectTable::instance().scan(
      [](void* arg, const detail::ObjectTable::LiveObject& o) {
        auto* s = static_cast<Scan*>(arg);
        if (s->failed) return;
        try {
          s->objects.push_back(o);
        } catch (...) {
          s->failed = true;
        }
      },
      &scan);
  if (scan.failed) throw std::bad_alloc();
  auto& v = scan.objects;
  const std::size_t n = std::min(filter.limit, v.size());
  auto older = [](const auto& a, const auto& b) {
    // Objects with no creation time go last.
    if ((a.born_ticks == 0) != (b.born_ticks == 0)) return b.born_ticks == 0;
    return a.born_ticks < b.born_ticks;
  };
  if (filter.order == ObjectOrder::largest)
    std::partial_sort(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n), v.end(),
                      [](const auto& a, const auto& b) { return a.bytes > b.bytes; });
  else
    std::partial_sort(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n), v.end(), older);
  const std::int64_t now = detail::timeline_now();
  bool any_born = false;
  for (std::size_t i = 0; i < n; ++i) any_born = any_born || v[i].born_ticks != 0;
  const double ns_per_tick = any_born ? 1.0 / detail::ticks_per_ns() : 0.0;
  std::vector<ObjectInfo> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    ObjectInfo o;
    o.id = ObjectId{v[i].id};
    o.status = v[i].state == detail::ObjectState::ready    ? ObjectInfo::Status::ready
               : v[i].state == detail::ObjectState::failed ? ObjectInfo::Status::failed
                                                           : ObjectInfo::Status::pending;
    o.bytes = v[i].bytes;
    o.refs = v[i].refs;
    o.age = std::chrono::nanoseconds(
        v[i].born_ticks != 0 ? static_cast<std::int64_t>(static_cast<double>(std::max<std::int64_t>(0, now - v[i].born_ticks)) * ns_per_tick) : 0);
    out.push_back(o);
  }
  return out;
}

}  // namespace lumen
