// A work-stealing deque after Chase and Lev, in the C11 formulation of Lê, Pop, Cohen and
// Zappa Nardelli ("Correct and Efficient Work-Stealing for Weak Memory Models", PPoPP 2013).
//
// One owner thread pushes and pops at the bottom (LIFO); any thread may steal from the top
// (FIFO). The paper's stand-alone fences are expressed as sequentially consistent operations
// on `top_` and `bottom_`: the same ordering on x86 and ARM, and a form ThreadSanitizer can
// check (it does not model stand-alone fences).
//
// Invariants (see docs/internals.md):
//  - only the owner writes bottom_ and the buffer's slots; thieves write only top_ (by CAS);
//  - top_ never decreases, so a CAS on top_ hands each element to exactly one taker;
//  - the elements in [top_, bottom_) are the queue; a buffer that was replaced stays alive
//    until the deque is destroyed, so a thief that read the old buffer pointer reads valid
//    memory, and its CAS fails if the element moved on.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lumen::detail {

template <class T>
class ChaseLevDeque {
  static_assert(std::is_pointer_v<T>, "the deque holds pointers");

 public:
  explicit ChaseLevDeque(std::size_t capacity = 256) {
    std::size_t c = 1;
    while (c < capacity) c <<= 1;
    auto* b = new Buffer(c);
    buffers_.push_back(b);
    buffer_.store(b, std::memory_order_relaxed);
  }
  ChaseLevDeque(const ChaseLevDeque&) = delete;
  ChaseLevDeque& operator=(const ChaseLevDeque&) = delete;
  ~ChaseLevDeque() {
    for (Buffer* b : buffers_) delete b;
  }

  // Owner only. Never fails: the buffer doubles when full.
  void push(T item) {
    std::int64_t b = bottom_.load(std::memory_order_relaxed);
    std::int64_t t = top_.load(std::memory_order_acquire);
    Buffer* buf = buffer_.load(std::memory_order_relaxed);
    if (b - t > static_cast<std::int64_t>(buf->mask)) buf = grow(buf, t, b);
    buf->at(b).store(item, std::memory_order_relaxed);
    // Release publishes the element (and everything the owner wrote into it) to thieves
    // that read bottom_ with acquire.
    bottom_.store(b + 1, std::memory_order_release);
  }

  // Owner only. Returns nullptr when empty.
  T pop() {
    std::int64_t b = bottom_.load(std::memory_order_relaxed) - 1;
    Buffer* buf = buffer_.load(std::memory_order_relaxed);
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
    Buffer* buf = buffer_.load(std::memory_order_acquire);
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
  struct Buffer {
    explicit Buffer(std::size_t capacity) : mask(capacity - 1), slots(new std::atomic<T>[capacity]) {}
    ~Buffer() { delete[] slots; }
    std::atomic<T>& at(std::int64_t i) { return slots[static_cast<std::size_t>(i) & mask]; }
    std::size_t mask;
    std::atomic<T>* slots;
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
  std::vector<Buffer*> buffers_;  // owner only; every buffer ever used, freed at destruction
};

}  // namespace lumen::detail
