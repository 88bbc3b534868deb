/// @file
/// task_group: structured fork/join without a future per child.
///
/// @code
///   lumen::task_group g;
///   g.run([&] { left = sum(lo, mid); });
///   right = sum(mid, hi);
///   g.wait();
/// @endcode
///
/// wait() returns once every child has finished and rethrows the first exception a child
/// threw (a child that throws also cancels the children that have not started). While it
/// waits it runs its own children still queued on its worker, inline; for children other
/// workers took, it parks its fiber rather than run unrelated work on its stack.
///
/// Thread safety: run() may be called from the group's owner (the task or thread that created
/// it) and from inside its children. wait() belongs to the owner. The destructor waits for
/// children that are still running and drops their exceptions.
/// Shutdown: a group owned by a thread that is not a worker counts as work of its runtime from
/// its first run() until wait() returns, so the Runtime's destructor waits for its children.
/// run() throws shutdown_error when that runtime is shutting down or gone.
/// Stack: a child runs inline only while the waiting stack is less than half used; deeper, it
/// is left for another fiber. If no fiber is left to park on (Config::max_fibers), wait() runs
/// other work on its stack until its children are done instead of failing.
/// Cost: a child is one small allocation and a push on the worker's deque; a child the owner
/// runs itself costs no atomic operation on the group.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <type_traits>
#include <utility>

#include "lumen/detail/alloc.h"
#include "lumen/detail/scheduler_api.h"

namespace lumen {

/// Fork/join of child tasks that return nothing: run() them, then wait(). See the top of this file.
class task_group {
 public:
  task_group()
      : owner_(&detail::task_context()),
        owner_depth_(owner_->helped_depth),
        room_to_run_inline_(detail::room_to_run_inline(*owner_)) {
    sched_ = detail::worker_scheduler();
    if (sched_ != nullptr) {
      worker_ = detail::worker_of(*sched_);
    } else {
      detail::RuntimeEntry entry;
      sched_ = &entry.scheduler();
      runtime_id_ = detail::scheduler_id(*sched_);
    }
  }
  ~task_group() {
    if (spawned_ == inline_done_ && remote_.load(std::memory_order_acquire) == 0 && !holds_runtime_) return;
    try {
      wait();
    } catch (...) {  // the destructor cannot throw; call wait() to see children's errors
    }
  }
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  /// Starts f() as a child of the group; called by the owner or from inside a child. Throws
  /// shutdown_error as the top of this file says.
  template <class F>
  void run(F&& f) {
    const bool by_owner = detail::current_context() == owner_ && owner_->helped_depth == owner_depth_;
    if (by_owner && worker_ == nullptr && !holds_runtime_) {
      detail::begin_outside_work(sched_, runtime_id_);
      holds_runtime_ = true;
    }
    auto* t = detail::create<Child<std::decay_t<F>>>(this, std::forward<F>(f));
    if (by_owner) {
      ++spawned_;
      // The owner's fiber never leaves its worker: push there without looking it up.
      if (worker_ != nullptr) return detail::spawn_on(*worker_, t);
    } else {
      remote_.fetch_sub(1, std::memory_order_relaxed);
    }
    detail::spawn(*sched_, t);
  }

  /// Returns once every child has finished; rethrows the first exception a child threw. The group
  /// may be used again afterwards.
  void wait() {
    if (spawned_ != inline_done_) {
      if (room_to_run_inline_) {
        detail::run_without_actor(*owner_, [this] {
          // Each pop costs a fence; stop once every child the owner spawned has run here.
          while (spawned_ != inline_done_) {
            detail::Task* t =
                worker_ != nullptr ? detail::pop_own_if(*worker_, this) : detail::pop_group_child(*sched_, this);
            if (t == nullptr) break;
            auto* c = static_cast<ChildBase*>(t);
            c->execute(c);
            ++inline_done_;
          }
        });
      }
    }
    std::int64_t need = static_cast<std::int64_t>(spawned_ - inline_done_);
    if (need != 0 || remote_.load(std::memory_order_acquire) != 0) {
      struct Park {
        task_group* g;
        std::int64_t need;
      } p{this, need};
      try {
        detail::park(
            [](void* arg, detail::Wakeup w) {
              auto* p = static_cast<Park*>(arg);
              p->g->waiter_ = w;
              std::int64_t left =
                  p->g->remote_.fetch_sub(p->need + kParked, std::memory_order_acq_rel) - p->need - kParked;
              if (left == -kParked) detail::unpark(w);  // everything finished already
            },
            &p);
      } catch (...) {
        // No fiber to park on; the children point into this stack, so wait here.
        detail::help_until(
            [](const void* arg) noexcept {
              auto* p = static_cast<const Park*>(arg);
              return p->g->remote_.load(std::memory_order_acquire) == p->need;
            },
            &p);
      }
      remote_.store(0, std::memory_order_relaxed);
    }
    if (holds_runtime_) {
      holds_runtime_ = false;
      detail::end_task(*sched_);
    }
    spawned_ = 0;
    inline_done_ = 0;
    cancelled_.store(false, std::memory_order_relaxed);
    if (failed_.load(std::memory_order_acquire)) {
      std::exception_ptr e = std::exchange(error_, nullptr);
      failed_.store(false, std::memory_order_relaxed);
      std::rethrow_exception(e);
    }
  }

  /// Children that have not started are skipped; running ones finish, and lumen::stop_requested()
  /// is true inside them from here on (lumen/cancel.h).
  void cancel() noexcept { cancelled_.store(true, std::memory_order_relaxed); }
  /// True once cancel() was called, until wait() returns.
  bool is_canceling() const noexcept { return cancelled_.load(std::memory_order_relaxed); }

 private:
  // Added to the count while the owner is parked, so that no transient count in between
  // can look like "all done" to a finishing child.
  static constexpr std::int64_t kParked = std::int64_t{1} << 48;

  struct ChildBase : detail::Task {
    task_group* owner;
    void (*execute)(ChildBase*) noexcept;  // runs the body and frees the child
  };

  template <class F>
  struct Child final : ChildBase {
    template <class FF>
    Child(task_group* g, FF&& fn) : f(std::forward<FF>(fn)) {
      owner = g;
      group = g;
      execute = &execute_body;
      run = &run_elsewhere;
    }
    static void execute_body(ChildBase* b) noexcept {
      auto* self = static_cast<Child*>(b);
      task_group* g = self->owner;
      if (!g->cancelled_.load(std::memory_order_relaxed)) {
        detail::GroupStopScope stop(&g->cancelled_);
        try {
          self->f();
        } catch (...) {
          g->record(std::current_exception());
        }
      }
      detail::destroy(self);
    }
    F f;
  };

  // A child that was not run inline by wait(): stolen, or run by the worker loop.
  static void run_elsewhere(detail::Task* t) noexcept {
    auto* c = static_cast<ChildBase*>(t);
    task_group* g = c->owner;
    c->execute(c);
    if (!detail::defer_completion(g, &add_remote)) add_remote(g, 1);
  }

  static void add_remote(void* group, std::int64_t n) noexcept {
    auto* g = static_cast<task_group*>(group);
    // The group may be gone right after this add, unless it made the count reach the
    // parked value: then its owner is parked and waits for exactly this wake-up.
    if (g->remote_.fetch_add(n, std::memory_order_acq_rel) + n == -kParked) detail::unpark(g->waiter_);
  }

  void record(std::exception_ptr e) noexcept {
    if (!failed_.exchange(true, std::memory_order_acq_rel)) error_ = std::move(e);
    cancelled_.store(true, std::memory_order_relaxed);
  }

  detail::TaskContext* const owner_;  // the owning fiber's (or thread's) context; wait() is the owner's
  // The owner's level among tasks that waits run on that context: a task that a parked-less
  // wait of the owner runs there is not the owner, though it shares the context.
  const std::uint32_t owner_depth_;
  // Whether children may run inline in wait(), judged where the group was made (where the
  // owner waits, as a rule): only while less than half of the stack is used.
  const bool room_to_run_inline_;
  detail::Scheduler* sched_ = nullptr;
  detail::Worker* worker_ = nullptr;  // the owner's worker, or null when the owner is another thread
  std::uint64_t runtime_id_ = 0;      // with no worker: identifies sched_ while it may be gone
  bool holds_runtime_ = false;        // with no worker: counted as work of sched_'s runtime
  std::uint64_t spawned_ = 0;      // children the owner spawned (owner only)
  std::uint64_t inline_done_ = 0;  // of those, run inline by wait() (owner only)
  // Children that finished elsewhere, minus children spawned by others; see wait(). On its
  // own cache line: workers update it while the owner keeps spawning.
  alignas(64) std::atomic<std::int64_t> remote_{0};
  detail::Wakeup waiter_;
  alignas(64) std::atomic<bool> cancelled_{false};
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
};

}  // namespace lumen
