// A worker: one thread, its deque, and the fibers it switches between.
//
// The loop runs on whichever fiber is current. A task runs on that same stack; only when a
// task blocks does the worker park the fiber and continue the loop on another one (an idle
// fiber from its pool, or a new one). Fibers are pinned: a parked fiber is resumed by the
// worker that parked it, so thread_local variables stay valid across a blocking call.
#include <algorithm>

#include "scheduler.h"

namespace lumen::detail {

__attribute__((tls_model("initial-exec"))) thread_local Worker* tls_worker = nullptr;
__attribute__((tls_model("initial-exec"))) thread_local const void* tls_fiber = nullptr;

void*& fiber_local() noexcept {
  thread_local void* thread_word = nullptr;
  if (tls_fiber == nullptr) return thread_word;
  return const_cast<Fiber*>(static_cast<const Fiber*>(tls_fiber))->local;
}

Worker::Worker(Scheduler& s, unsigned index)
    : sched_(s), index_(index), rng_(0x9E3779B97F4A7C15ull * (index + 1)) {
  native_.native = true;
  idle_fibers_.reserve(64);
}

Worker::~Worker() = default;

void Worker::start() {
  thread_ = std::thread([this] { thread_main(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::thread_main() {
  tls_worker = this;
  native_.tsan_fiber = current_tsan_fiber();
  current_ = &native_;
  tls_fiber = &native_;
  loop();
  trim_idle_fibers(0);
  tls_worker = nullptr;
  tls_fiber = nullptr;
}

bool Worker::has_visible_work() const noexcept { return resumed_.nonempty_hint() || !deque_.empty_hint(); }

void Worker::loop() {
  Fiber* self = current_;
  for (;;) {
    if (self->quit) return;
    if (resumed_.nonempty_hint()) {
      if (MpscNode* n = resumed_.pop()) {
        resume_parked(static_cast<Fiber*>(n));
        continue;
      }
    }
    if (Task* t = find_task()) {
      run_task(t);
      continue;
    }
    if (sched_.exiting() && parked_ == 0 && !resumed_.nonempty_hint()) {
      if (self->native) return;
      // Only the thread's own stack may end the worker: go back to it.
      auto it = std::find(idle_fibers_.begin(), idle_fibers_.end(), &native_);
      idle_fibers_.erase(it);
      switch_to(
          &native_, [](Worker* w, Fiber* from, void*) { w->idle_fibers_.push_back(from); }, nullptr);
      continue;
    }
    idle();
  }
}

Task* Worker::find_task() noexcept {
  if (sched_.priority_nonempty()) {
    if (Task* t = sched_.take_priority()) return t;
  }
  // Tasks from other threads get a turn even while the local deque keeps refilling.
  if (++local_streak_ >= 61) {
    local_streak_ = 0;
    if (Task* t = sched_.take_injected(*this)) return t;
    if (Task* t = sched_.take_external(*this, static_cast<unsigned>(rng_))) return t;
  }
  if (Task* t = deque_.pop()) return t;
  if (Task* t = sched_.take_injected(*this)) return t;
  if (Task* t = sched_.take_external(*this, static_cast<unsigned>(rng_))) return t;
  return steal_from_others();
}

Task* Worker::steal_from_others() noexcept {
  unsigned n = sched_.worker_count();
  if (n < 2) return nullptr;
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  unsigned start = static_cast<unsigned>(rng_ % n);
  for (unsigned i = 0; i < n; ++i) {
    unsigned v = start + i < n ? start + i : start + i - n;
    if (v == index_) continue;
    if (Task* t = sched_.worker(v).steal()) {
      steals.add();
      return t;
    }
  }
  return nullptr;
}

void Worker::run_task(Task* t) noexcept {
  if (deferred_count_ != 0 && t->group != deferred_group_) flush_deferred();
  // 1 only while the loop itself runs t: a completion deferred then belongs to a task that
  // has finished. (A task that parked and resumes finds 0 here and counts for itself.)
  depth_ = 1;
  t->run(t);
  depth_ = 0;
  tasks_run.add();
}

bool Worker::defer_completion(void* group, void (*flush)(void*, std::int64_t) noexcept) noexcept {
  if (depth_ != 1) return false;
  if (deferred_count_ != 0 && group != deferred_group_) flush_deferred();
  deferred_group_ = group;
  deferred_flush_ = flush;
  ++deferred_count_;
  return true;
}

void Worker::flush_deferred() noexcept {
  if (deferred_count_ == 0) return;
  std::int64_t n = deferred_count_;
  deferred_count_ = 0;
  deferred_flush_(deferred_group_, n);
}

void Worker::idle() {
  flush_deferred();
  for (;;) {
    bool spinning = std::exchange(woken_spinning, false) || sched_.try_begin_spinning();
    if (spinning) {
      const auto until = Clock::now() + sched_.config().idle_spin;
      for (unsigned k = 1;; ++k) {
        if (resumed_.nonempty_hint()) {
          sched_.end_spinning(true);
          return;
        }
        if (Task* t = find_task()) {
          sched_.end_spinning(true);
          run_task(t);
          return;
        }
        if (sched_.exiting()) {
          sched_.end_spinning(false);
          return;
        }
        for (int i = 0; i < 32; ++i) cpu_relax();
        if ((k & 7) == 0 && Clock::now() >= until) break;
      }
      sched_.end_spinning(false);
    }
    if (idle_fibers_.size() > sched_.config().max_idle_fibers) trim_idle_fibers(sched_.config().max_idle_fibers);
    sched_.sleep(*this);
    if (!woken_spinning) return;
  }
}

void Worker::switch_to(Fiber* to, void (*on_arrival)(Worker*, Fiber*, void*), void* arg) {
  struct Arrival {
    Worker* worker;
    Fiber* from;
    Fiber* to;
    void (*fn)(Worker*, Fiber*, void*);
    void* arg;
  } a{this, current_, to, on_arrival, arg};
  before_switch(a.from, to, false);
  current_ = to;
  tls_fiber = to;
  std::move(to->context).resume_with([&a](boost::context::fiber&& from) -> boost::context::fiber {
    after_switch(a.to, a.from);
    a.from->context = std::move(from);
    if (a.fn != nullptr) a.fn(a.worker, a.from, a.arg);
    return {};
  });
}

void Worker::resume_parked(Fiber* f) {
  flush_deferred();
  switch_to(
      f,
      [](Worker* w, Fiber* from, void*) {
        w->idle_fibers_.push_back(from);
        w->pooled_fibers.store(w->idle_fibers_.size(), std::memory_order_relaxed);
      },
      nullptr);
}

Fiber* Worker::take_idle_fiber() {
  if (idle_fibers_.empty()) return new_fiber();
  Fiber* f = idle_fibers_.back();
  idle_fibers_.pop_back();
  pooled_fibers.store(idle_fibers_.size(), std::memory_order_relaxed);
  return f;
}

Fiber* Worker::new_fiber() {
  auto* f = new Fiber;
  f->tsan_fiber = create_tsan_fiber();
  f->context = boost::context::fiber(std::allocator_arg, PooledStack{&sched_.stacks(), f},
                                     [this, f](boost::context::fiber&&) -> boost::context::fiber {
                                       loop();
                                       // Trimmed: return to the fiber that asked.
                                       Fiber* back = quit_requester_;
                                       before_switch(f, back, true);
                                       return std::move(back->context);
                                     });
  fibers_created.add();
  return f;
}

void Worker::quit_fiber(Fiber* f) {
  Fiber* self = current_;
  quit_requester_ = self;
  f->quit = true;
  switch_to(f, nullptr, nullptr);
  // f's loop returned and its entry function jumped back here, with no arrival hook.
  current_ = self;
  tls_fiber = self;
  after_switch(self, nullptr);
  destroy_tsan_fiber(f->tsan_fiber);
  delete f;
}

void Worker::trim_idle_fibers(std::size_t keep) {
  // The thread's own stack is never freed, so it is skipped.
  for (std::size_t i = idle_fibers_.size(); i > 0 && idle_fibers_.size() > keep;) {
    --i;
    Fiber* f = idle_fibers_[i];
    if (f->native) continue;
    idle_fibers_.erase(idle_fibers_.begin() + static_cast<std::ptrdiff_t>(i));
    quit_fiber(f);
  }
  pooled_fibers.store(idle_fibers_.size(), std::memory_order_relaxed);
}

void Worker::park(void (*commit)(void*, Wakeup), void* arg) {
  struct Pending {
    void (*commit)(void*, Wakeup);
    void* arg;
  } p{commit, arg};
  flush_deferred();
  Fiber* next = take_idle_fiber();
  ++parked_;
  parks.add();
  switch_to(
      next,
      [](Worker* w, Fiber* from, void* pp) {
        auto* pending = static_cast<Pending*>(pp);
        pending->commit(pending->arg, Wakeup{w, from, nullptr});
      },
      &p);
  --parked_;
}

void Worker::resume(Fiber* f) noexcept {
  resumed_.push(f);
  sched_.wake_worker(*this);
}

Task* Worker::pop_own_if(const void* group) noexcept {
  Task* t = deque_.pop();
  if (t == nullptr || t->group == group) return t;
  deque_.push(t);
  return nullptr;
}

}  // namespace lumen::detail
