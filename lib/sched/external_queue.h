// The queue of a thread that is not a worker but submits tasks (TBB gives such threads a
// slot in the arena for the same reason).
//
// One producer (that thread), many consumers (workers). The producer only pushes: it never
// runs tasks, so consumers may take several tasks with one CAS on top_ without racing it,
// unlike a Chase–Lev steal. Pushes touch only the producer's own cache lines until a worker
// takes a batch, so a thread that submits a million tasks does not bounce a line per task.
//
// Invariants: only the producer writes bottom_ and the ring; consumers only CAS top_;
// [top_, bottom_) are the queued tasks; replaced rings live until the queue is destroyed.
//
// Ownership: the scheduler's slot and the producing thread's binding each hold a reference, so
// neither side's end frees what the other still uses. A thread that exits (or drops the
// binding) gives up the producer's role; the scheduler hands the queue to the next thread
// that needs one, tasks still queued in it included.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "lumen/detail/ring_buffer.h"
#include "lumen/detail/scheduler_api.h"

namespace lumen::detail {

class ExternalQueue {
 public:
  ExternalQueue() : ring_(1024) {}
  ExternalQueue(const ExternalQueue&) = delete;
  ExternalQueue& operator=(const ExternalQueue&) = delete;

  // Producer only. The caller then looks for sleeping workers (Scheduler::submit_external):
  // the sequentially consistent store of bottom_ orders this push before that look, and a
  // worker going to sleep registers before its last look at bottom_, so one sees the other.
  void push(Task* t) {
    std::int64_t b = bottom_.load(std::memory_order_relaxed);
    Ring<Task*>* buf = ring_.load(std::memory_order_relaxed);
    // top_ is re-read only when the ring looks full: reading it on every push would pull the
    // consumers' cache line over once per task.
    if (buf->full(cached_top_, b)) {
      cached_top_ = top_.load(std::memory_order_acquire);
      if (buf->full(cached_top_, b)) buf = ring_.grow(buf, cached_top_, b);
    }
    buf->at(b).store(t, std::memory_order_relaxed);
    bottom_.store(b + 1, std::memory_order_seq_cst);
  }

  // Any thread. Takes up to `max` tasks, about half of those queued; returns how many.
  // With `last_seen` (a worker's memory of bottom_ for this queue), it leaves a short queue
  // alone while the producer is still adding to it: a worker that took each task as soon as
  // it appeared would pull the producer's cache lines over once per task.
  std::size_t take(Task** out, std::size_t max, std::int64_t* last_seen = nullptr) noexcept {
    std::int64_t t = top_.load(std::memory_order_seq_cst);
    std::int64_t b = bottom_.load(std::memory_order_seq_cst);
    std::int64_t n = b - t;
    if (n <= 0) return 0;
    if (last_seen != nullptr && n < static_cast<std::int64_t>(max) && b != *last_seen) {
      *last_seen = b;
      return 0;
    }
    std::int64_t k = (n + 1) / 2;
    if (k > static_cast<std::int64_t>(max)) k = static_cast<std::int64_t>(max);
    Ring<Task*>* buf = ring_.load(std::memory_order_acquire);
    for (std::int64_t i = 0; i < k; ++i) out[i] = buf->at(t + i).load(std::memory_order_relaxed);
    if (!top_.compare_exchange_strong(t, t + k, std::memory_order_seq_cst, std::memory_order_relaxed)) return 0;
    return static_cast<std::size_t>(k);
  }

  // Producer only: how many tasks are queued, as of the last take this thread can see.
  std::int64_t size_hint() const noexcept {
    return bottom_.load(std::memory_order_relaxed) - top_.load(std::memory_order_acquire);
  }

  // Producer only: brackets a push and the wake-up that follows it. Once pushed, the task may
  // run and finish and the runtime begin to end while the producer still reads the
  // scheduler's idle state; the runtime's end waits until no queue is in a push. Plain
  // stores on the producer's own line, where a shared counter would cost two locked
  // instructions per task. The flag's set is sequenced before the push's release of bottom_,
  // which a worker must read to take the task, so an end that saw the task finish sees the
  // flag set, or cleared by a release that follows every access of the push.
  void begin_push() noexcept { pushing_.store(true, std::memory_order_relaxed); }
  void end_push() noexcept { pushing_.store(false, std::memory_order_release); }
  bool push_in_progress() const noexcept { return pushing_.load(std::memory_order_acquire); }

  bool nonempty_hint() const noexcept {
    return bottom_.load(std::memory_order_seq_cst) > top_.load(std::memory_order_seq_cst);
  }

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  // True when no reference but the caller's is left (the other side has let go).
  bool sole_owner() const noexcept { return refs_.load(std::memory_order_acquire) == 1; }

  // The producer's role: released by the thread that had it (release), claimed by the next
  // (acquire), so the new producer sees bottom_, the ring and cached_top_ as the old one left them.
  void give_up_producer() noexcept { has_producer_.store(false, std::memory_order_release); }
  bool claim_producer() noexcept {
    bool had = false;
    return !has_producer_.load(std::memory_order_relaxed) &&
           has_producer_.compare_exchange_strong(had, true, std::memory_order_acquire);
  }

 private:
  alignas(64) std::atomic<std::int64_t> top_{0};
  alignas(64) std::atomic<std::int64_t> bottom_{0};
  std::atomic<bool> pushing_{false};  // beside bottom_: the producer writes both
  RingHistory<Task*> ring_;
  std::int64_t cached_top_ = 0;  // producer only: a lower bound of top_
  std::atomic<int> refs_{1};
  std::atomic<bool> has_producer_{true};
};

}  // namespace lumen::detail
