// A work-stealing deque after Chase and Lev, in the C11 formulation of Lê, Pop, Cohen and
// Zappa Nardelli ("Correct and Efficient Work-Stealing for Weak Memory Models", PPoPP 2013).
//
// One owner thread pushes and pops at the bottom (LIFO); any thread may steal from the top
// (FIFO). The paper's stand-alone fences are expressed as sequentially consistent operations
// on `top_` and `bottom_`: the same ordering on x86 and ARM, and a form ThreadSanitizer can
// check (it does not model stand-alone fences).
//
// Invariants (see docs/internals.md):
//  - only the owner writes bottom_ and the ring's slots; thieves write only top_ (by CAS);
//  - top_ never decreases, so a CAS on top_ hands each element to exactly one taker;
//  - the elements in [top_, bottom_) are the queue; a ring that was replaced stays alive
//    until the deque is destroyed (RingHistory).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lumen/detail/ring_buffer.h"

namespace lumen::detail {

template <class T>
class ChaseLevDeque {
  static_assert(std::is_pointer_v<T>, "the deque holds pointers");

 public:
  explicit ChaseLevDeque(std::size_t capacity = 256) : ring_(capacity) {}
  ChaseLevDeque(const ChaseLevDeque&) = delete;
  ChaseLevDeque& operator=(const ChaseLevDeque&) = delete;

  // Owner only. Never fails: the ring doubles when full.
  void push(T item) {
    std::int64_t b = bottom_.load(std::memory_order_relaxed);
    std::int64_t t = top_.load(std::memory_order_acquire);
    Ring<T>* buf = ring_.load(std::memory_order_relaxed);
    if (buf->full(t, b)) buf = ring_.grow(buf, t, b);
    buf->at(b).store(item, std::memory_order_relaxed);
    // Release publishes the element (and everything the owner wrote into it) to thieves
    // that read bottom_ with acquire.
    bottom_.store(b + 1, std::memory_order_release);
  }

  // Owner only. Returns nullptr when empty.
  T pop() {
    std::int64_t b = bottom_.load(std::memory_order_relaxed) - 1;
    Ring<T>* buf = ring_.load(std::memory_order_relaxed);
    // Reserve the bottom element before looking at top_: the store-load order here is
    // what keeps a thief and the owner from both taking the last element.
    bottom_.store(b, std::memory_order_seq_cst);
    std::int64_t t = top_.load(std::memory_order_seq_cst);
    if (t > b) {  // empty
      bottom_.store(b + 1, std::memory_order_relaxed);
      return nullptr;
    }
    T item = buf->at(b).load(std::memory_order_relaxed);
    if (t == b) {  // the last element: race the thieves for it
      if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst, std::memory_order_relaxed))
        item = nullptr;
      bottom_.store(b + 1, std::memory_order_relaxed);
    }
    return item;
  }

  // Any thread. Returns nullptr when empty or when it lost a race (the caller moves on).
  T steal() {
    std::int64_t t = top_.load(std::memory_order_seq_cst);
    std::int64_t b = bottom_.load(std::memory_order_seq_cst);
    if (t >= b) return nullptr;
    Ring<T>* buf = ring_.load(std::memory_order_acquire);
    T item = buf->at(t).load(std::memory_order_relaxed);
    if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst, std::memory_order_relaxed))
      return nullptr;
    return item;
  }

  // Any thread; a snapshot that may be stale by the time it returns.
  std::size_t size_hint() const {
    std::int64_t b = bottom_.load(std::memory_order_relaxed);
    std::int64_t t = top_.load(std::memory_order_relaxed);
    return b > t ? static_cast<std::size_t>(b - t) : 0;
  }
  bool empty_hint() const { return size_hint() == 0; }

 private:
  alignas(64) std::atomic<std::int64_t> top_{0};
  alignas(64) std::atomic<std::int64_t> bottom_{0};
  RingHistory<T> ring_;
};

}  // namespace lumen::detail
