// The storage of lumen's work queues: a power-of-two ring of atomic slots that its single
// owner grows by doubling.
//
// A ring that was replaced stays alive until its RingHistory is destroyed, so a thief that
// read the old ring pointer still reads valid memory (and its CAS on the queue's top fails
// if the element moved on). The owner writes slots; anyone may read them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lumen::detail {

template <class T>
struct Ring {
  explicit Ring(std::size_t capacity) : mask(capacity - 1), slots(new std::atomic<T>[capacity]) {}
  ~Ring() { delete[] slots; }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  std::atomic<T>& at(std::int64_t i) noexcept { return slots[static_cast<std::size_t>(i) & mask]; }
  // True when [top, bottom) fills the ring.
  bool full(std::int64_t top, std::int64_t bottom) const noexcept {
    return bottom - top > static_cast<std::int64_t>(mask);
  }

  std::size_t mask;
  std::atomic<T>* slots;
};

template <class T>
class RingHistory {
 public:
  explicit RingHistory(std::size_t capacity) {
    std::size_t c = 1;
    while (c < capacity) c <<= 1;
    rings_.push_back(new Ring<T>(c));
    current_.store(rings_.back(), std::memory_order_relaxed);
  }
  ~RingHistory() {
    for (Ring<T>* r : rings_) delete r;
  }
  RingHistory(const RingHistory&) = delete;
  RingHistory& operator=(const RingHistory&) = delete;

  Ring<T>* load(std::memory_order order) const noexcept { return current_.load(order); }

  // Owner only: a ring twice the size holding old's [top, bottom), published with release.
  Ring<T>* grow(Ring<T>* old, std::int64_t top, std::int64_t bottom) {
    auto* bigger = new Ring<T>((old->mask + 1) * 2);
    for (std::int64_t i = top; i < bottom; ++i)
      bigger->at(i).store(old->at(i).load(std::memory_order_relaxed), std::memory_order_relaxed);
    rings_.push_back(bigger);
    current_.store(bigger, std::memory_order_release);
    return bigger;
  }

 private:
  std::atomic<Ring<T>*> current_{nullptr};
  std::vector<Ring<T>*> rings_;  // owner only: every ring used, freed at destruction
};

}  // namespace lumen::detail
