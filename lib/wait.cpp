// Blocking: parking a fiber or a thread until an object resolves, a set of objects does, or a
// deadline passes.
#include <condition_variable>
#include <memory>
#include <mutex>

#include "scheduler.h"

namespace lumen::detail {

namespace {

// How long a thread that is not a worker spins on an object before it sleeps.
constexpr std::chrono::microseconds kThreadSpin{20};

// A thread that is not a worker, parked in park(). Shared by the parked thread and the one
// that unparks it, so that neither outlives the other's last touch.
struct ThreadSignal {
  std::atomic<std::uint32_t> set{0};
  std::atomic<int> refs{2};
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

// One wait on several objects, possibly with a deadline. Heap-allocated and counted: the
// waiting context, each object it is registered with, and the timer each hold a reference,
// since an object may resolve long after the wait has timed out.
struct WaitNode {
  struct Link : Waiter {
    WaitNode* node;
  };

  explicit WaitNode(std::size_t n) : links(new Link[n]) {}

  std::atomic<int> refs{1};
  std::atomic<std::int64_t> remaining{0};  // resolutions still needed
  std::atomic<bool> fired{false};          // claimed by whoever wakes the waiter
  Wakeup wake;                              // a parked fiber; or, for a thread, the fields below
  std::mutex mutex;
  std::condition_variable cv;
  bool woken = false;
  std::unique_ptr<Link[]> links;

  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  void fire() noexcept {
    if (fired.exchange(true, std::memory_order_acq_rel)) return;
    if (wake.fiber != nullptr) {
      unpark(wake);
    } else {
      std::lock_guard<std::mutex> lock(mutex);
      woken = true;
      cv.notify_all();
    }
  }

  void signal() noexcept {
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) fire();
  }

  // Registers with every slot; one that is resolved already counts at once.
  void register_with(ObjectSlot* const* slots, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
      Link& l = links[i];
      l.node = this;
      l.notify = [](Waiter* w) noexcept {
        WaitNode* node = static_cast<Link*>(w)->node;
        node->signal();
        node->release();
      };
      refs.fetch_add(1, std::memory_order_relaxed);
      if (!ObjectTable::add_waiter(slots[i], &l)) {
        refs.fetch_sub(1, std::memory_order_relaxed);
        signal();
      }
    }
  }
};

struct FiberWaiter : Waiter {
  Wakeup wake;
  ObjectSlot* slot;
};

}  // namespace

void park(void (*commit)(void*, Wakeup), void* arg) {
  if (Worker* w = this_worker()) return w->park(commit, arg);
  auto* sig = new ThreadSignal;
  commit(arg, Wakeup{nullptr, nullptr, sig});
  while (sig->set.load(std::memory_order_acquire) == 0) sig->set.wait(0, std::memory_order_acquire);
  sig->release();
}

void unpark(Wakeup w) noexcept {
  if (w.fiber != nullptr) {
    static_cast<Worker*>(w.worker)->resume(static_cast<Fiber*>(w.fiber));
    return;
  }
  auto* sig = static_cast<ThreadSignal*>(w.thread);
  sig->set.store(1, std::memory_order_release);
  sig->set.notify_one();
  sig->release();
}

void wait_resolved(ObjectSlot* s) {
  if (s->resolved()) return;
  Worker* w = this_worker();
  if (w == nullptr) {
    // A thread that is not a worker only waits: tasks run on workers, where a task that
    // blocks parks instead of holding up the thread.
    wait_slots(&s, 1, 1, nullptr);
    return;
  }
  // The task that produces s is often the newest on this worker's deque (submit, then get):
  // run it here instead of parking.
  if (Task* t = w->pop_own_if(s)) {
    t->run(t);
    w->tasks_run.add();
    if (s->resolved()) return;
  }
  FiberWaiter fw;
  fw.slot = s;
  fw.notify = [](Waiter* x) noexcept { unpark(static_cast<FiberWaiter*>(x)->wake); };
  w->park(
      [](void* a, Wakeup wake) {
        auto* fw = static_cast<FiberWaiter*>(a);
        fw->wake = wake;
        if (!ObjectTable::add_waiter(fw->slot, fw)) unpark(wake);
      },
      &fw);
}

bool wait_resolved_until(ObjectSlot* s, Clock::time_point deadline) {
  if (s->resolved()) return true;
  wait_slots(&s, 1, 1, &deadline);
  return s->resolved();
}

void wait_slots(ObjectSlot* const* slots, std::size_t n, std::size_t need, const Clock::time_point* deadline) {
  std::size_t ready = 0;
  for (std::size_t i = 0; i < n; ++i) ready += slots[i]->resolved() ? 1 : 0;
  if (ready >= need) return;
  if (deadline != nullptr && Clock::now() >= *deadline) return;
  Worker* w = this_worker();
  // A thread that is not a worker looks again for a few microseconds before it sleeps: a
  // task or actor call that a spinning worker picks up answers well within that, and a
  // futex wake-up costs more than the whole round trip.
  if (w == nullptr && tls_blocking_scheduler == nullptr) {
    auto until = Clock::now() + kThreadSpin;
    for (unsigned k = 1;; ++k) {
      for (int i = 0; i < 16; ++i) cpu_relax();
      ready = 0;
      for (std::size_t i = 0; i < n; ++i) ready += slots[i]->resolved() ? 1 : 0;
      if (ready >= need) return;
      if ((k & 7) == 0 && Clock::now() >= until) break;
    }
  }

  auto* node = new WaitNode(n);
  node->remaining.store(static_cast<std::int64_t>(need), std::memory_order_relaxed);
  if (w != nullptr) {
    struct Args {
      WaitNode* node;
      ObjectSlot* const* slots;
      std::size_t n;
      const Clock::time_point* deadline;
      Scheduler* sched;
    } args{node, slots, n, deadline, &w->scheduler()};
    w->park(
        [](void* p, Wakeup wake) {
          auto* a = static_cast<Args*>(p);
          WaitNode* node = a->node;
          node->wake = wake;
          if (a->deadline != nullptr) {
            node->refs.fetch_add(1, std::memory_order_relaxed);
            try {
              a->sched->add_timer(*a->deadline, [](void* x) noexcept {
                auto* nd = static_cast<WaitNode*>(x);
                nd->fire();
                nd->release();
              }, node);
            } catch (...) {
              node->release();
              node->fire();  // cannot time the wait: give up on it at once
            }
          }
          node->register_with(a->slots, a->n);
        },
        &args);
  } else {
    node->register_with(slots, n);
    std::unique_lock<std::mutex> lock(node->mutex);
    if (deadline == nullptr) {
      node->cv.wait(lock, [&] { return node->woken; });
    } else if (!node->cv.wait_until(lock, *deadline, [&] { return node->woken; })) {
      lock.unlock();
      // Claim the wake-up so no one signals this thread after it has gone.
      node->fired.exchange(true, std::memory_order_acq_rel);
    }
  }
  node->release();
}

}  // namespace lumen::detail

