// The queue of a thread that is not a worker but submits tasks (TBB gives such threads a
// slot in the arena for the same reason).
//
// One producer (that thread), many consumers (workers). The producer only pushes: it never
// runs tasks, so consumers may take several tasks with one CAS on top_ without racing it,
// unlike a Chase–Lev steal. Pushes touch only the producer's own cache lines until a worker
// takes a batch, so a thread that submits a million tasks does not bounce a line per task.
//
// Invariants: only the producer writes bottom_ and the buffer; consumers only CAS top_;
// [top_, bottom_) are the queued tasks; replaced buffers live until the queue is destroyed.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "lumen/detail/scheduler_api.h"

namespace lumen::detail {

class ExternalQueue {
 public:
  ExternalQueue() {
    auto* b = new Buffer(1024);
    buffers_.push_back(b);
    buffer_.store(b, std::memory_order_relaxed);
  }
  ExternalQueue(const ExternalQueue&) = delete;
  ExternalQueue& operator=(const ExternalQueue&) = delete;
  ~ExternalQueue() {
    for (Buffer* b : buffers_) delete b;
  }

  // Producer only. The caller then looks for sleeping workers (Scheduler::submit_external):
  // the sequentially consistent store of bottom_ orders this push before that look, and a
  // worker going to sleep registers before its last look at bottom_, so one sees the other.
  void push(Task* t) {
    std::int64_t b = bottom_.load(std::memory_order_relaxed);
    Buffer* buf = buffer_.load(std::memory_order_relaxed);
    // top_ is re-read only when the buffer looks full: reading it on every push would pull
    // the consumers' cache line over once per task.
    if (b - cached_top_ > static_cast<std::int64_t>(buf->mask)) {
      cached_top_ = top_.load(std::memory_order_acquire);
      if (b - cached_top_ > static_cast<std::int64_t>(buf->mask)) buf = grow(buf, cached_top_, b);
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
    Buffer* buf = buffer_.load(std::memory_order_acquire);
    for (std::int64_t i = 0; i < k; ++i) out[i] = buf->at(t + i).load(std::memory_order_relaxed);
    if (!top_.compare_exchange_strong(t, t + k, std::memory_order_seq_cst, std::memory_order_relaxed)) return 0;
    return static_cast<std::size_t>(k);
  }

  bool nonempty_hint() const noexcept {
    return bottom_.load(std::memory_order_seq_cst) > top_.load(std::memory_order_seq_cst);
  }

 private:
  struct Buffer {
    explicit Buffer(std::size_t capacity) : mask(capacity - 1), slots(new std::atomic<Task*>[capacity]) {}
    ~Buffer() { delete[] slots; }
    std::atomic<Task*>& at(std::int64_t i) { return slots[static_cast<std::size_t>(i) & mask]; }
    std::size_t mask;
    std::atomic<Task*>* slots;
  };

  Buffer* grow(Buffer* old, std::int64_t t, std::int64_t b) {
    auto* bigger = new Buffer((old->mask + 1) * 2);
    for (std::int64_t i = t; i < b; ++i) bigger->at(i).store(old->at(i).load(std::memory_order_relaxed), std::memory_order_relaxed);
    buffers_.push_back(bigger);
    buffer_.store(bigger, std::memory_order_release);
    return bigger;
  }

  alignas(64) std::atomic<std::int64_t> top_{0};
  alignas(64) std::atomic<std::int64_t> bottom_{0};
  std::atomic<Buffer*> buffer_{nullptr};
  std::int64_t cached_top_ = 0;   // producer only: a lower bound of top_
  std::vector<Buffer*> buffers_;  // producer only
};

}  // namespace lumen::detail
