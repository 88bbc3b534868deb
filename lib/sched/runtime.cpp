// Runtime, the runtime in scope, and the entry points header code calls (scheduler_api.h).
//
// The runtime in scope. Live runtimes are listed in the order they were constructed; the
// newest one that has not finished draining is in scope. A runtime stays listed (and in scope)
// while its destructor waits for its tasks, so that a thread submitting meanwhile gets
// shutdown_error instead of silently starting the default runtime. Any destruction order is
// safe: a runtime only ever removes itself from the list.
//
// Threads that are not workers hold the runtime they use for the length of one call
// (RuntimeEntry). The hold is a hazard pointer: the thread publishes the scheduler in a slot of
// its own, then checks that it is still in scope; a runtime that leaves the scope waits until
// no slot holds it before it frees anything. One of the two always sees the other (both sides
// are sequentially consistent), so a call never uses a scheduler that is being freed.
#include "lumen/runtime.h"

#include "lumen/detail/object_memory.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "lumen/error.h"
#include "sched/scheduler.h"

namespace lumen::detail {

namespace {

// Calls into lumen from inside an argument's copy constructor nest their holds.
constexpr unsigned kMaxHolds = 8;

struct HoldSlot {
  std::atomic<Scheduler*> held[kMaxHolds] = {};
  std::atomic<bool> taken{true};
  HoldSlot* next = nullptr;  // set before the slot is published, never changed
  unsigned depth = 0;        // the owning thread only
};

// Every slot ever made. Never shrinks: a runtime leaving the scope scans it without a lock;
// a thread that exits hands its slot on to the next thread that needs one.
std::atomic<HoldSlot*> g_hold_slots{nullptr};

__attribute__((tls_model("initial-exec"))) thread_local HoldSlot* tls_hold_slot = nullptr;

struct HoldSlotRelease {
  bool armed = false;
  ~HoldSlotRelease() {
    if (tls_hold_slot != nullptr) tls_hold_slot->taken.store(false, std::memory_order_release);
    tls_hold_slot = nullptr;
  }
};
thread_local HoldSlotRelease hold_slot_release;

HoldSlot& own_hold_slot() {
  if (HoldSlot* s = tls_hold_slot) return *s;
  HoldSlot* slot = nullptr;
  for (HoldSlot* s = g_hold_slots.load(std::memory_order_acquire); s != nullptr && slot == nullptr; s = s->next) {
    bool taken = false;
    if (!s->taken.load(std::memory_order_relaxed) &&
        s->taken.compare_exchange_strong(taken, true, std::memory_order_acquire))
      slot = s;
  }
  if (slot == nullptr) {
    slot = new HoldSlot;
    HoldSlot* head = g_hold_slots.load(std::memory_order_relaxed);
    do {
      slot->next = head;
    } while (!g_hold_slots.compare_exchange_weak(head, slot, std::memory_order_acq_rel, std::memory_order_relaxed));
  }
  tls_hold_slot = slot;
  hold_slot_release.armed = true;  // its destructor gives the slot back when the thread exits
  return *slot;
}

struct ScopeList {
  std::mutex mutex;
  std::vector<Scheduler*> live;  // in construction order; the last one is in scope
};
ScopeList& scope_list() {
  static auto* list = new ScopeList;  // never destroyed: runtimes may outlive static destructors
  return *list;
}
std::atomic<Scheduler*> g_in_scope{nullptr};

// The default runtime: started by the first call that finds no runtime in scope, ended at exit.
std::atomic<bool> g_default_ended{false};
struct DefaultRuntime {
  Runtime rt;
  ~DefaultRuntime() { g_default_ended.store(true, std::memory_order_release); }
};
void start_default_runtime() {
  if (g_default_ended.load(std::memory_order_acquire))
    throw shutdown_error("lumen: no runtime is in scope and the default runtime has ended (the process is exiting)");
  static DefaultRuntime rt;
}

}  // namespace

void enter_scope(Scheduler* s) {
  ScopeList& list = scope_list();
  std::lock_guard<std::mutex> lock(list.mutex);
  list.live.push_back(s);
  g_in_scope.store(s, std::memory_order_seq_cst);
}

void leave_scope(Scheduler* s) noexcept {
  {
    ScopeList& list = scope_list();
    std::lock_guard<std::mutex> lock(list.mutex);
    std::erase(list.live, s);
    g_in_scope.store(list.live.empty() ? nullptr : list.live.back(), std::memory_order_seq_cst);
  }
  // Calls that took hold of s before it left the scope finish first.
  for (HoldSlot* slot = g_hold_slots.load(std::memory_order_acquire); slot != nullptr; slot = slot->next) {
    for (auto& held : slot->held) {
      while (held.load(std::memory_order_seq_cst) == s) std::this_thread::yield();
    }
  }
}

RuntimeEntry::RuntimeEntry() {
  if (Worker* w = this_worker()) {
    sched_ = &w->scheduler();
    return;
  }
  if (tls_blocking_scheduler != nullptr) {  // acts for a task, which keeps its runtime alive
    sched_ = tls_blocking_scheduler;
    return;
  }
  HoldSlot& slot = own_hold_slot();
  if (slot.depth == kMaxHolds) throw usage_error("lumen: calls into lumen nested too deeply (from argument constructors)");
  std::atomic<Scheduler*>& held = slot.held[slot.depth];
  for (;;) {
    Scheduler* s = g_in_scope.load(std::memory_order_seq_cst);
    if (s == nullptr) {
      start_default_runtime();
      continue;
    }
    held.store(s, std::memory_order_seq_cst);
    if (g_in_scope.load(std::memory_order_seq_cst) == s) {
      ++slot.depth;
      sched_ = s;
      pinned_ = true;
      return;
    }
    held.store(nullptr, std::memory_order_relaxed);
  }
}

RuntimeEntry::~RuntimeEntry() {
  if (!pinned_) return;
  HoldSlot& slot = *tls_hold_slot;
  --slot.depth;
  slot.held[slot.depth].store(nullptr, std::memory_order_release);
}

Scheduler* worker_scheduler() noexcept {
  Worker* w = this_worker();
  return w != nullptr ? &w->scheduler() : nullptr;
}

std::uint64_t scheduler_id(const Scheduler& s) noexcept { return s.id(); }

std::uint64_t worker_scheduler_id() noexcept {
  Worker* w = this_worker();
  return w != nullptr ? w->scheduler().id() : 0;
}

Scheduler& begin_outside_work(Scheduler* s, std::uint64_t id) {
  ScopeList& list = scope_list();
  // Under the list's lock a listed runtime cannot finish draining: it is either still taking
  // work (the count below holds it) or stopping (begin refuses).
  std::lock_guard<std::mutex> lock(list.mutex);
  for (Scheduler* live : list.live) {
    if (live == s && live->id() == id) {
      live->begin_external_task();
      return *live;
    }
  }
  throw shutdown_error("lumen: the runtime this work belongs to has shut down");
}

}  // namespace lumen::detail

namespace lumen {

namespace detail {
// What RuntimeObserver holds: the runtime, until its destructor begins.
struct RuntimeLife {
  std::mutex mutex;
  Runtime* runtime = nullptr;
};
}  // namespace detail

bool RuntimeObserver::use(const std::function<void(Runtime&)>& f) const {
  std::lock_guard<std::mutex> lock(life_->mutex);
  if (life_->runtime == nullptr) return false;
  f(*life_->runtime);
  return true;
}

Runtime::Runtime(Config config)
    : sched_(std::make_unique<detail::Scheduler>(config)), life_(std::make_shared<detail::RuntimeLife>()) {
  life_->runtime = this;
  if (config.object_memory_limit != 0) {
    if (config.put_at_limit != PutAtLimit::wait && config.put_at_limit != PutAtLimit::fail)
      throw usage_error("lumen: Config::put_at_limit is neither wait nor fail");
    detail::ObjectMemory::instance().configure(
        config.object_memory_limit, config.spill_directory,
        config.put_at_limit == PutAtLimit::fail ? detail::ObjectMemory::AtLimit::fail : detail::ObjectMemory::AtLimit::wait);
    sets_memory_limit_ = true;
  } else if (!config.spill_directory.empty()) {
    throw usage_error("lumen: Config::spill_directory needs Config::object_memory_limit");
  }
  detail::enter_scope(sched_.get());
}

Runtime::~Runtime() {
  {
    std::lock_guard<std::mutex> lock(life_->mutex);  // waits for an observer's call in progress
    life_->runtime = nullptr;
  }
  detail::Scheduler* s = sched_.get();
  if (detail::worker_of(*s) != nullptr || detail::tls_blocking_scheduler == s) {
    // Destroyed by one of its own tasks, which the shutdown would wait for: stop taking work
    // from outside now and finish the shutdown on a thread of its own once that task is done.
    s->stop_taking_outside_work();
    try {
      std::thread([s = std::move(sched_), limited = sets_memory_limit_]() mutable {
        s->drain();
        detail::leave_scope(s.get());
        s.reset();
        if (limited) detail::ObjectMemory::instance().unconfigure();
      }).detach();
      return;
    } catch (...) {
      std::fputs("lumen: a Runtime destroyed by one of its own tasks could not start the thread that ends it\n",
                 stderr);
      std::abort();
    }
  }
  s->drain();
  detail::leave_scope(s);
  sched_.reset();
  if (sets_memory_limit_) detail::ObjectMemory::instance().unconfigure();
}

unsigned Runtime::workers() const noexcept { return sched_->worker_count(); }

Stats Runtime::stats() const { return sched_->stats(); }

}  // namespace lumen

namespace lumen::detail {

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
