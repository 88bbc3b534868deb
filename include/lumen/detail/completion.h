// One owner waiting for one piece of structured work (a pipeline run, a graph run) that
// ends with exactly one finish() call, made by whichever task finishes last.
#pragma once

#include <atomic>

#include "lumen/detail/scheduler_api.h"

namespace lumen::detail {

class Completion {
 public:
  // Runs the work's own tasks while they sit at the bottom of the caller's queue (the ones
  // it spawned itself and nobody stole) and the stack has room, then parks until finish().
  // Like task_group::wait, it never runs unrelated work on the waiting stack, unless no fiber
  // is left to park on: then it helps with other work until finish(), since the work's tasks
  // point into the caller's stack. Reusable once it returns.
  void wait(Scheduler& s, const void* group) {
    TaskContext& context = task_context();
    if (room_to_run_inline(context)) {
      run_without_actor(context, [&] {
        while (state_.load(std::memory_order_acquire) != kDone) {
          Task* t = pop_group_child(s, group);
          if (t == nullptr) break;
          t->run(t);
        }
      });
    }
    if (state_.load(std::memory_order_acquire) != kDone) {
      try {
        park(
            [](void* arg, Wakeup w) {
              auto* self = static_cast<Completion*>(arg);
              self->waiter_ = w;
              if (self->state_.exchange(kParked, std::memory_order_acq_rel) == kDone) unpark(w);
            },
            this);
      } catch (...) {
        help_until(
            [](const void* arg) noexcept {
              return static_cast<const Completion*>(arg)->state_.load(std::memory_order_acquire) == kDone;
            },
            this);
      }
    }
    state_.store(kRunning, std::memory_order_relaxed);
  }

  // The owner may return from wait() and destroy *this right after the exchange, unless it
  // was parked: then it waits for exactly this unpark, so waiter_ is still there to read.
  void finish() noexcept {
    if (state_.exchange(kDone, std::memory_order_acq_rel) == kParked) unpark(waiter_);
  }

 private:
  static constexpr int kRunning = 0, kParked = 1, kDone = 2;
  std::atomic<int> state_{kRunning};
  Wakeup waiter_;
};

}  // namespace lumen::detail
