// Blocking: parking a fiber or a thread until an object resolves, a set of objects does, or a
// deadline passes.
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "lumen/detail/submit_task.h"
#include "lumen/error.h"
#include "sched/scheduler.h"

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

// A thread that runs lumen::blocking calls does not count against Config::max_blocking_threads
// while it waits on an object: the calls it waits for may need a thread of their own.
class BlockingCallWait {
 public:
  BlockingCallWait() : s_(tls_blocking_scheduler) {
    if (s_ != nullptr) s_->blocking_call_waits();
  }
  ~BlockingCallWait() {
    if (s_ != nullptr) s_->blocking_call_resumes();
  }
  BlockingCallWait(const BlockingCallWait&) = delete;
  BlockingCallWait& operator=(const BlockingCallWait&) = delete;

 private:
  Scheduler* s_;
};

// One wait on several objects, possibly with a deadline. Heap-allocated and counted: the
// waiting context, each object it is registered with, and the timer each hold a reference.
// When the wait ends it takes its links back out of the objects that are still pending and
// cancels its timer, so a loop of waits that time out leaves nothing behind.
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
  bool timer_set = false;
  Scheduler::TimerId timer{};

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

  // After the wait: links still registered with pending objects come out (each held a
  // reference), and a timer that has not fired is cancelled (it held one too).
  void unregister(ObjectSlot* const* slots, std::size_t n, Scheduler* timers) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
      if (!slots[i]->resolved() && ObjectTable::remove_waiter(slots[i], &links[i])) release();
    }
    if (timer_set && timers->cancel_timer(timer)) release();
  }
};

struct FiberWaiter : Waiter {
  Wakeup wake;
  ObjectSlot* slot;
};

const SubmitTaskBase* running_task() noexcept { return static_cast<const SubmitTaskBase*>(task_context().task); }

std::string task_label(const SubmitTaskBase* t) {
  if (t->settings != nullptr && !t->settings->name.empty()) return "task '" + t->settings->name + "'";
  return "an unnamed task";
}

// True when the task producing `start` waits (directly or through other tasks) for `mine`.
bool leads_to(const ObjectSlot* start, const ObjectSlot* mine) noexcept {
  const ObjectSlot* at = start;
  for (int hops = 0; hops < 256 && at != nullptr; ++hops) {
    const ObjectSlot* next = at->producer_waits_on.load(std::memory_order_seq_cst);
    if (next == nullptr || next->resolved()) return false;
    if (next == mine) return true;
    at = next;
  }
  return false;
}

// A task about to wait for `s`: refuses a wait on its own result, and a wait that closes a
// cycle of tasks each waiting for the next one's result. Records the edge otherwise; the
// caller clears it (WaitEdge) once the wait is over.
class WaitEdge {
 public:
  explicit WaitEdge(ObjectSlot* s) {
    const SubmitTaskBase* me = running_task();
    if (me == nullptr) return;
    mine_ = me->result;
    if (s == mine_)
      throw usage_error("lumen: " + task_label(me) + " waits for its own result, which it can never produce");
    // The edge first, then the look along the chain: of two tasks closing a cycle at the same
    // time, at least one sees the other's edge (both sides are sequentially consistent).
    mine_->producer_waits_on.store(s, std::memory_order_seq_cst);
    if (leads_to(s, mine_)) {
      // Every task on a real cycle is parked, so its edges hold still: a second look rules
      // out edges that were changing under the first.
      cpu_relax();
      if (leads_to(s, mine_)) {
        mine_->producer_waits_on.store(nullptr, std::memory_order_relaxed);
        throw usage_error("lumen: " + task_label(me) +
                          " waits for a result that can only come after its own: the tasks involved wait for "
                          "each other's results in a cycle");
      }
    }
  }
  ~WaitEdge() {
    if (mine_ != nullptr) mine_->producer_waits_on.store(nullptr, std::memory_order_relaxed);
  }
  WaitEdge(const WaitEdge&) = delete;
  WaitEdge& operator=(const WaitEdge&) = delete;

 private:
  ObjectSlot* mine_ = nullptr;
};

}  // namespace

void park(void (*commit)(void*, Wakeup), void* arg) {
  if (Worker* w = this_worker()) return w->park(commit, arg);
  auto* sig = new ThreadSignal;
  commit(arg, Wakeup{nullptr, nullptr, sig});
  BlockingCallWait counted;
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

void help_until(bool (*done)(const void*) noexcept, const void* arg) {
  if (Worker* w = this_worker()) return w->help_until(done, arg);
  while (!done(arg)) std::this_thread::yield();
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
  WaitEdge edge(s);
  // The task that produces s is often the newest on this worker's deque (submit, then get):
  // run it here instead of parking, while the stack has room for it.
  if (room_to_run_inline()) {
    if (Task* t = w->pop_own_if(s)) {
      // A submitted task: it sets its own context, and its own timeline slice inside the
      // waiting task's (which is not the loop's fresh slice for it).
      if (timeline_active()) {
        TaskContext& c = task_context();
        if (c.slice_state == TaskContext::kSliceFresh) c.slice_state = TaskContext::kSliceOpen;
      }
      t->run(t);
      w->tasks_run.add();
      if (s->resolved()) return;
    }
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
  if (deadline != nullptr && *deadline == Clock::time_point::max()) deadline = nullptr;  // never
  if (deadline != nullptr && Clock::now() >= *deadline) return;
  if (deadline == nullptr) {
    if (const SubmitTaskBase* me = running_task()) {
      std::size_t others = 0;
      for (std::size_t i = 0; i < n; ++i) others += slots[i] != me->result ? 1 : 0;
      if (others < need)
        throw usage_error("lumen: " + task_label(me) + " waits for its own result, which it can never produce");
    }
  }
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

  // A thread that blocks shows on the timeline as a get (one object) or a wait.
  struct BlockedSpan {
    std::int64_t begin;
    TimelineKind kind;
    ~BlockedSpan() {
      if (begin >= 0) timeline_record(kind, 0, begin, timeline_now());
    }
  } blocked{w == nullptr && timeline_active() ? timeline_now() : -1, n == 1 ? TimelineKind::get : TimelineKind::wait};
  auto* node = new WaitNode(n);
  node->remaining.store(static_cast<std::int64_t>(need), std::memory_order_relaxed);
  Scheduler* timers = nullptr;
  if (w != nullptr) {
    timers = &w->scheduler();
    struct Args {
      WaitNode* node;
      ObjectSlot* const* slots;
      std::size_t n;
      const Clock::time_point* deadline;
      Scheduler* sched;
    } args{node, slots, n, deadline, timers};
    try {
      w->park(
          [](void* p, Wakeup wake) {
            auto* a = static_cast<Args*>(p);
            WaitNode* node = a->node;
            node->wake = wake;
            if (a->deadline != nullptr) {
              node->refs.fetch_add(1, std::memory_order_relaxed);
              try {
                node->timer = a->sched->add_timer(*a->deadline, [](void* x) noexcept {
                  auto* nd = static_cast<WaitNode*>(x);
                  nd->fire();
                  nd->release();
                }, node);
                node->timer_set = true;
              } catch (...) {
                node->release();
                node->fire();  // cannot time the wait: give up on it at once
              }
            }
            node->register_with(a->slots, a->n);
          },
          &args);
    } catch (...) {
      node->release();  // nothing was registered: park refused before committing
      throw;
    }
  } else {
    node->register_with(slots, n);
    BlockingCallWait counted;
    std::unique_lock<std::mutex> lock(node->mutex);
    if (deadline == nullptr) {
      node->cv.wait(lock, [&] { return node->woken; });
    } else if (!node->cv.wait_until(lock, *deadline, [&] { return node->woken; })) {
      lock.unlock();
      // Claim the wake-up so no one signals this thread after it has gone.
      node->fired.exchange(true, std::memory_order_acq_rel);
    }
  }
  node->unregister(slots, n, timers);
  node->release();
}

}  // namespace lumen::detail
