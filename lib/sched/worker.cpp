// A worker: one thread, its deque, and the fibers it switches between.
//
// The loop always runs on a fiber of Config::fiber_stack_size, never on the thread's own stack,
// so every task starts with the same stack whatever ran before it. A task runs on the loop's
// fiber; only when it blocks does the worker park that fiber and continue the loop on another
// one (an idle fiber from its pool, or a new one). Fibers are pinned: a parked fiber is resumed
// by the worker that parked it, so thread_local variables stay valid across a blocking call.
// The thread's own stack only starts the first fiber and, at the end, trims the pool.
#include <algorithm>
#include <thread>

#include "lumen/detail/task_state_hooks.h"
#include "sched/scheduler.h"

namespace lumen::detail {

__attribute__((tls_model("initial-exec"))) constinit thread_local Worker* tls_worker = nullptr;
__attribute__((tls_model("initial-exec"))) constinit thread_local TaskContext* tls_context = nullptr;
__attribute__((tls_model("initial-exec"))) constinit thread_local TaskContext tls_thread_context;
__attribute__((tls_model("initial-exec"))) constinit thread_local const Fiber* tls_running_fiber = nullptr;

Worker::Worker(Scheduler& s, unsigned index)
    : sched_(s), index_(index), rng_(0x9E3779B97F4A7C15ull * (index + 1)) {
  native_.native = true;
}

Worker::~Worker() {
  // A worker that never started still owns the fiber made for it.
  if (first_ != nullptr) {
    destroy_tsan_fiber(first_->tsan_fiber);
    delete first_;
  }
}

void Worker::start() {
  first_ = new_fiber(true);  // on the caller's thread, so a failure reaches the constructor
  thread_ = std::thread([this] { thread_main(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::thread_main() {
  tls_worker = this;
  native_.tsan_fiber = current_tsan_fiber();
  current_ = &native_;
  tls_context = &native_.context;
  tls_running_fiber = &native_;
  void* signal_stack = make_signal_stack();
  // Runs the loop until the worker ends, which switches back here.
  switch_to(std::exchange(first_, nullptr), nullptr, nullptr);
  trim_idle_fibers(0);
  free_signal_stack(signal_stack);
  tls_worker = nullptr;
  tls_context = nullptr;
  tls_running_fiber = nullptr;
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
      // Only the thread's own stack may end the worker: go back to it.
      switch_to(&native_, [](Worker* w, Fiber* from, void*) { w->add_idle_fiber(from); }, nullptr);
      continue;
    }
    idle();
  }
}

Task* Worker::find_task(bool eager) noexcept {
  if (sched_.priority_nonempty()) {
    if (Task* t = sched_.take_priority()) return t;
  }
  // Tasks from other threads get a turn even while the local deque keeps refilling.
  if (++local_streak_ >= 61) {
    local_streak_ = 0;
    if (Task* t = sched_.take_injected(*this)) return t;
    if (Task* t = sched_.take_external(*this, static_cast<unsigned>(rng_), eager)) return t;
  }
  if (Task* t = deque_.pop()) return t;
  if (Task* t = sched_.take_injected(*this)) return t;
  if (Task* t = sched_.take_external(*this, static_cast<unsigned>(rng_), eager)) return t;
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
      if (timeline_active()) timeline_record(TimelineKind::steal, 0, timeline_now(), v);
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
  TaskContext& c = current_->context;  // the fiber's: t may park, but resumes on this fiber
  if (timeline_active()) {
    c.slice_state = TaskContext::kSliceFresh;
    c.slice_label = 0;
    c.slice_begin = timeline_now();
  }
  t->run(t);
  if (c.slice_state != TaskContext::kSliceNone) {
    timeline_record(TimelineKind::slice, c.slice_label, c.slice_begin, timeline_now());
    c.slice_state = TaskContext::kSliceNone;
  }
  depth_ = 0;
  tasks_run.add();
}

void Worker::run_nested(Task* t) noexcept {
  TaskContext& c = current_->context;
  if (!timeline_active() || c.slice_state == TaskContext::kSliceNone) {
    t->run(t);
    return;
  }
  const std::uint32_t outer = c.slice_label;
  std::int64_t now = timeline_now();
  timeline_record(TimelineKind::slice, outer, c.slice_begin, now);
  c.slice_state = TaskContext::kSliceFresh;
  c.slice_label = 0;
  c.slice_begin = now;
  t->run(t);
  now = timeline_now();
  if (c.slice_state != TaskContext::kSliceNone) timeline_record(TimelineKind::slice, c.slice_label, c.slice_begin, now);
  c.slice_state = TaskContext::kSliceOpen;
  c.slice_label = outer;
  c.slice_begin = now;
}

void Worker::timeline_park() noexcept {
  TaskContext& c = current_->context;
  const std::int64_t now = timeline_now();
  const bool in_slice = c.slice_state != TaskContext::kSliceNone;
  if (in_slice) timeline_record(TimelineKind::slice, c.slice_label, c.slice_begin, now);
  timeline_record(TimelineKind::park, in_slice ? c.slice_label : 0, now, 0);
}

void Worker::timeline_resume() noexcept {
  TaskContext& c = current_->context;
  const std::int64_t now = timeline_now();
  c.slice_begin = now;
  timeline_record(TimelineKind::resume, c.slice_state != TaskContext::kSliceNone ? c.slice_label : 0, now, 0);
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

// An idle span: from the worker's first look for work to the moment it has some (or ends).
// Counted in Stats::idle_ns, and put on the timeline while one records.
class IdleSpan {
 public:
  explicit IdleSpan(Worker& w) noexcept
      : worker_(w), begin_ns_(steady_ns()), begin_tick_(timeline_active() ? timeline_now() : -1) {
    worker_.idle_since_ns.store(begin_ns_, std::memory_order_relaxed);
    if (begin_tick_ >= 0) worker_.idle_since_tick.store(begin_tick_, std::memory_order_relaxed);
  }
  ~IdleSpan() { end(); }
  IdleSpan(const IdleSpan&) = delete;
  IdleSpan& operator=(const IdleSpan&) = delete;
  void end() noexcept {
    if (ended_) return;
    ended_ = true;
    // Cleared before the total grows: a Stats read in between misses the span for a moment
    // rather than counting it twice.
    worker_.idle_since_ns.store(-1, std::memory_order_relaxed);
    worker_.idle_ns.add(static_cast<std::uint64_t>(steady_ns() - begin_ns_));
    if (begin_tick_ >= 0) {
      worker_.idle_since_tick.store(-1, std::memory_order_relaxed);
      timeline_record(TimelineKind::idle, 0, begin_tick_, timeline_now());
    }
  }

 private:
  Worker& worker_;
  const std::int64_t begin_ns_;
  const std::int64_t begin_tick_;
  bool ended_ = false;
};

void Worker::idle() {
  flush_deferred();
  IdleSpan span(*this);
  for (unsigned refused = 0;;) {
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
          span.end();
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
    if (idle_count_ > sched_.config().max_idle_fibers) trim_idle_fibers(sched_.config().max_idle_fibers);
    give_back_table_memory_now_and_then();
    if (sched_.sleep(*this) == Scheduler::SleepEnd::woken) {
      if (!woken_spinning) return;
      continue;
    }
    // Work was visible at the last look. Take it without the courtesies a busy worker shows
    // producers (a short queue that is still growing), since this one would sleep otherwise.
    if (resumed_.nonempty_hint() || sched_.exiting()) return;
    if (Task* t = find_task(true)) {
      span.end();
      run_task(t);
      return;
    }
    // Visible but not to be had (another worker is taking it, a push is half done): back off
    // rather than loop through the idle list at full speed.
    ++refused;
    if (refused < 8) {
      for (unsigned i = 0; i < (64u << refused); ++i) cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

// A worker about to sleep gives the object table's free memory back, at most once a second
// across the process: objects dropped after a burst should not keep their memory for good.
void Worker::give_back_table_memory_now_and_then() noexcept {
  static std::atomic<std::int64_t> last{0};
  const std::int64_t now = Clock::now().time_since_epoch().count();
  std::int64_t seen = last.load(std::memory_order_relaxed);
  if (now - seen < std::chrono::nanoseconds(std::chrono::seconds(1)).count()) return;
  if (!last.compare_exchange_strong(seen, now, std::memory_order_relaxed)) return;
  ObjectTable::instance().trim();
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
  tls_context = &to->context;
  tls_running_fiber = to;
  std::move(to->context_switch).resume_with([&a](boost::context::fiber&& from) -> boost::context::fiber {
    after_switch(a.to, a.from);
    a.from->context_switch = std::move(from);
    if (a.fn != nullptr) a.fn(a.worker, a.from, a.arg);
    return {};
  });
}

void Worker::resume_parked(Fiber* f) {
  flush_deferred();
  switch_to(f, [](Worker* w, Fiber* from, void*) { w->add_idle_fiber(from); }, nullptr);
}

void Worker::add_idle_fiber(Fiber* f) noexcept {
  f->idle_next = idle_head_;
  idle_head_ = f;
  ++idle_count_;
  pooled_fibers.store(idle_count_, std::memory_order_relaxed);
}

Fiber* Worker::take_idle_fiber() {
  if (idle_head_ == nullptr) return new_fiber(false);
  Fiber* f = idle_head_;
  idle_head_ = f->idle_next;
  --idle_count_;
  pooled_fibers.store(idle_count_, std::memory_order_relaxed);
  return f;
}

Fiber* Worker::new_fiber(bool reserved) {
  auto* f = new Fiber;
  f->tsan_fiber = create_tsan_fiber();
  try {
    f->context_switch = boost::context::fiber(std::allocator_arg, PooledStack{&sched_.stacks(), f, reserved},
                                              [this, f](boost::context::fiber&&) -> boost::context::fiber {
                                                loop();
                                                // Trimmed: return to the fiber that asked.
                                                Fiber* back = quit_requester_;
                                                before_switch(f, back, true);
                                                return std::move(back->context_switch);
                                              });
  } catch (...) {
    destroy_tsan_fiber(f->tsan_fiber);
    delete f;
    throw;
  }
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
  tls_context = &self->context;
  tls_running_fiber = self;
  after_switch(self, nullptr);
  destroy_tsan_fiber(f->tsan_fiber);
  delete f;
}

void Worker::trim_idle_fibers(std::size_t keep) {
  while (idle_count_ > keep) {
    Fiber* f = idle_head_;
    idle_head_ = f->idle_next;
    --idle_count_;
    quit_fiber(f);
  }
  pooled_fibers.store(idle_count_, std::memory_order_relaxed);
}

void Worker::park(void (*commit)(void*, Wakeup), void* arg) {
  struct Pending {
    void (*commit)(void*, Wakeup);
    void* arg;
  } p{commit, arg};
  flush_deferred();
  Fiber* next = take_idle_fiber();  // throws resource_error before anything is committed
  ++parked_;
  parks.add();
  const bool on_timeline = timeline_active();
  if (on_timeline) timeline_park();
  const void* task = state_tracking() ? current_->context.task : nullptr;
  if (task != nullptr) task_parked(task, true);
  switch_to(
      next,
      [](Worker* w, Fiber* from, void* pp) {
        auto* pending = static_cast<Pending*>(pp);
        pending->commit(pending->arg, Wakeup{w, from, nullptr});
      },
      &p);
  --parked_;
  if (task != nullptr) task_parked(task, false);
  if (on_timeline || current_->context.slice_state != TaskContext::kSliceNone) timeline_resume();
}

void Worker::help_until(bool (*done)(const void*) noexcept, const void* arg) {
  flush_deferred();
  for (unsigned idle_rounds = 0; !done(arg);) {
    if (resumed_.nonempty_hint()) {
      if (MpscNode* n = resumed_.pop()) {
        // Lets the resumed fiber run and queues this one behind it, runnable.
        switch_to(
            static_cast<Fiber*>(n), [](Worker* w, Fiber* from, void*) { w->resumed_.push(from); }, nullptr);
        idle_rounds = 0;
        continue;
      }
    }
    // Past half the stack, other workers get a while to take the work first; then this one
    // runs it anyway (the rest of the stack beats waiting on work nobody else will take).
    if (room_to_run_inline() || idle_rounds >= 1024) {
      if (Task* t = find_task()) {
        // Not the loop's own run, so completions must not be deferred: the one waited for
        // would sit in the batch while this loop looks for it. depth_ is 0 here when the
        // waiting task parked earlier and resumed (see run_task), so lift it past 1.
        depth_ += 2;
        TaskContext& context = task_context();
        ++context.helped_depth;
        run_without_actor(context, [this, t] { run_nested(t); });
        --context.helped_depth;
        depth_ -= 2;
        tasks_run.add();
        idle_rounds = 0;
        continue;
      }
    }
    if (++idle_rounds < 64) {
      for (int i = 0; i < 64; ++i) cpu_relax();
    } else {
      std::this_thread::yield();
    }
    idle_rounds = std::min(idle_rounds, 1u << 20);
  }
}

void Worker::resume(Fiber* f) noexcept {
  if (worker_of(sched_) != nullptr) {
    resumed_.push(f);
    sched_.wake_worker(*this);
    return;
  }
  Scheduler::ForeignWake foreign(sched_);
  resumed_.push(f);
  sched_.wake_worker(*this);
}

Task* Worker::pop_own_if(const void* group) noexcept {
  Task* t = deque_.pop();
  if (t == nullptr || t->group == group) return t;
  push(t);
  return nullptr;
}

}  // namespace lumen::detail
