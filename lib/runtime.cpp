// Runtime, the runtime in scope, and the entry points header code calls (scheduler_api.h).
#include "lumen/runtime.h"

#include <atomic>

#include "lumen/error.h"
#include "scheduler.h"

namespace lumen {

namespace {
std::atomic<Runtime*> g_current{nullptr};

Runtime& default_runtime() {
  static Runtime rt;
  return rt;
}
}  // namespace

Runtime::Runtime(Config config) : sched_(std::make_unique<detail::Scheduler>(config)) {
  previous_ = g_current.exchange(this, std::memory_order_acq_rel);
}

Runtime::~Runtime() {
  Runtime* self = this;
  g_current.compare_exchange_strong(self, previous_, std::memory_order_acq_rel);
  sched_.reset();
}

unsigned Runtime::workers() const noexcept { return sched_->worker_count(); }

Stats Runtime::stats() const { return sched_->stats(); }

}  // namespace lumen

namespace lumen::detail {

Scheduler& current_scheduler() {
  if (Worker* w = this_worker()) return w->scheduler();
  if (tls_blocking_scheduler != nullptr) return *tls_blocking_scheduler;
  if (Runtime* r = g_current.load(std::memory_order_acquire)) return r->scheduler();
  return default_runtime().scheduler();
}

Scheduler* worker_scheduler() noexcept {
  Worker* w = this_worker();
  return w != nullptr ? &w->scheduler() : nullptr;
}

void spawn(Scheduler& s, Task* t) noexcept {
  if (Worker* w = worker_of(s)) {
    spawn_on(*w, t);
  } else {
    s.submit_external(t);
  }
}

Worker* worker_of(Scheduler& s) noexcept {
  Worker* w = this_worker();
  return w != nullptr && &w->scheduler() == &s ? w : nullptr;
}

void spawn_on(Worker& w, Task* t) noexcept {
  w.push(t);
  if (w.scheduler().idle_count() != 0) w.scheduler().wake_for_work();
}

Task* pop_own_if(Worker& w, const void* group) noexcept { return w.pop_own_if(group); }

bool own_queue_empty(Worker& w) noexcept { return w.queued() == 0; }

unsigned worker_count(Scheduler& s) noexcept { return s.worker_count(); }

void spawn_with_priority(Scheduler& s, Task* t, int priority) {
  if (priority == 0) return spawn(s, t);
  s.push_priority(t, priority);
}

void spawn_blocking(Scheduler& s, Task* t) { s.run_blocking(t); }

void begin_task(Scheduler& s) {
  if (Worker* w = worker_of(s)) {
    w->created.add();
  } else {
    s.begin_external_task();
  }
}

void end_task(Scheduler& s) noexcept {
  if (Worker* w = worker_of(s)) {
    w->finished.add();
  } else {
    s.end_external_task();
  }
}

void begin_nested_task(Scheduler& s) noexcept {
  if (Worker* w = worker_of(s)) {
    w->created.add();
  } else {
    s.begin_nested_external_task();
  }
}

void spawn_yield(Scheduler& s, Task* t) noexcept { s.inject(t); }

bool work_waiting(Scheduler& s) noexcept {
  Worker* w = worker_of(s);
  return w != nullptr && (w->has_visible_work() || s.work_queued_outside_workers());
}

ResourceDemand resource_demand(Scheduler& s, std::string_view name, double count) { return s.demand(name, count); }

bool acquire_resources(Scheduler& s, Task* t, const ResourceDemand* d, std::size_t n) { return s.acquire(t, d, n); }

void add_resource(Scheduler& s, std::string_view name, std::uint64_t capacity) { s.add_resource(name, capacity); }

void release_resources(Scheduler& s, const ResourceDemand* d, std::size_t n) noexcept { s.release(d, n); }

bool defer_completion(void* group, void (*flush)(void*, std::int64_t) noexcept) noexcept {
  Worker* w = this_worker();
  return w != nullptr && w->defer_completion(group, flush);
}

Task* pop_group_child(Scheduler& s, const void* group) noexcept {
  Worker* w = this_worker();
  if (w != nullptr) return &w->scheduler() == &s ? w->pop_own_if(group) : nullptr;
  return s.take_own_external_if(group);
}

}  // namespace lumen::detail
