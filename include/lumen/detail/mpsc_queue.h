// An intrusive multi-producer, single-consumer queue after Dmitry Vyukov's design.
//
// push() is wait-free: one atomic exchange and one store. pop() belongs to one consumer at a
// time; callers that share a queue among several consumers serialize them with a try-lock
// (see InjectionQueue). A push that has exchanged the head but not yet linked its node makes
// pop() report empty for an instant; the pusher's wake-up after the push covers that window.
//
// Invariants: head_ is the last node pushed; tail_ is the next node to hand out, or the stub;
// following `next` from tail_ reaches head_ once every started push has linked its node.
#pragma once

#include <atomic>
#include <cstdint>

namespace lumen::detail {

struct MpscNode {
  std::atomic<MpscNode*> next{nullptr};
};

class MpscQueue {
 public:
  MpscQueue() : head_(&stub_), tail_(&stub_) {}
  MpscQueue(const MpscQueue&) = delete;
  MpscQueue& operator=(const MpscQueue&) = delete;

  // Any thread. Returns true when the queue looked empty before this push. The exchange is
  // sequentially consistent, so a pusher that then reads a flag and a consumer that sets the
  // flag and then reads the head (seq_cst) cannot both miss each other.
  bool push(MpscNode* n) noexcept {
    n->next.store(nullptr, std::memory_order_relaxed);
    MpscNode* prev = head_.exchange(n, std::memory_order_seq_cst);
    prev->next.store(n, std::memory_order_release);
    return prev == &stub_;
  }

  // For a queue whose owner wants its length: counts a push about to happen. The count sits on
  // the producers' line, which the push's exchange needs anyway, so counting costs no extra
  // transfer of a contended line. Pushes that were not counted do not show.
  void count_push() noexcept { pushes_.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t pushes_counted() const noexcept { return pushes_.load(std::memory_order_relaxed); }

  // The consumer only. nullptr when empty, or while a push is half done.
  MpscNode* pop() noexcept {
    MpscNode* tail = tail_.load(std::memory_order_relaxed);
    MpscNode* next = tail->next.load(std::memory_order_acquire);
    if (tail == &stub_) {
      if (next == nullptr) return nullptr;
      tail_.store(next, std::memory_order_relaxed);
      tail = next;
      next = next->next.load(std::memory_order_acquire);
    }
    if (next != nullptr) {
      tail_.store(next, std::memory_order_relaxed);
      return tail;
    }
    if (tail != head_.load(std::memory_order_acquire)) return nullptr;
    push(&stub_);
    next = tail->next.load(std::memory_order_acquire);
    if (next != nullptr) {
      tail_.store(next, std::memory_order_relaxed);
      return tail;
    }
    return nullptr;
  }

  // The consumer only: true when pop() has, or is about to have, a node to return. Reads
  // only the consumer's own cache line (and the stub's, which a push writes only into an
  // empty queue), so a consumer may poll it without slowing the producers down.
  bool consumer_sees_items() const noexcept {
    return tail_.load(std::memory_order_relaxed) != &stub_ || stub_.next.load(std::memory_order_acquire) != nullptr;
  }

  // Any thread: true when something was pushed and not yet popped (or a pop is in progress).
  // Both ends count: a push that lands while pop() re-pushes the stub leaves head_ at the stub
  // with that node still queued behind tail_.
  bool nonempty_hint() const noexcept {
    return head_.load(std::memory_order_seq_cst) != &stub_ || tail_.load(std::memory_order_relaxed) != &stub_;
  }

 private:
  alignas(64) std::atomic<MpscNode*> head_;
  std::atomic<std::uint64_t> pushes_{0};
  alignas(64) std::atomic<MpscNode*> tail_;  // written by the consumer only
  MpscNode stub_;
};

}  // namespace lumen::detail
