// parallel_scan and parallel_exclusive_scan: prefix sums (or any associative operation).
//
//   lumen::parallel_scan(in.begin(), in.end(), out.begin(), 0L, std::plus<>{});
//       // out[i] = 0 + in[0] + ... + in[i]
//   lumen::parallel_exclusive_scan(in.begin(), in.end(), out.begin(), 0L, std::plus<>{});
//       // out[0] = 0, out[i] = 0 + in[0] + ... + in[i - 1]
//
// op(T, T) must be associative (not necessarily commutative), the elements must convert to
// T, and op must not block (no get() of a
// pending object inside it): workers wait on each other for a few microseconds while it
// runs. init is combined once, at the front. out may equal first (in place); otherwise the
// ranges must not overlap. For integers the result is exact; for floating point the rounding
// may differ from run to run, as for any parallel scan.
//
// Algorithm: a single pass over memory in blocks of a few tens of KiB, taken in order by
// the workers (chained scan). A worker that takes a block whose predecessor's prefix is
// already known scans it directly; otherwise it first reduces the block (which brings it into
// its cache), waits for the prefix of the blocks before, publishes its own, and scans the
// block from cache. So each element is read from memory once and written once, on one
// worker or many; a worker waits only for a neighbour that is mid-block.
//
// Scheduling, nesting and exceptions as parallel_for: the first exception from op reaches
// the caller; blocks not started are skipped and out is left partly written.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "lumen/detail/on_worker.h"
#include "lumen/detail/scheduler_api.h"
#include "lumen/task_group.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace lumen {

namespace detail {

inline void spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

template <class InIt, class OutIt, class T, class Op, bool Inclusive>
class ChainedScan {
 public:
  ChainedScan(InIt first, OutIt out, std::size_t n, const T& init, Op& op)
      : first_(first), out_(out), n_(n), blocks_((n + kBlock - 1) / kBlock), init_(init), op_(op),
        prefix_(std::make_unique<Prefix[]>(blocks_)) {}

  std::size_t blocks() const noexcept { return blocks_; }

  // Takes blocks in order until none is left. Any number of workers may call it at once.
  void work() {
    for (;;) {
      if (failed_.load(std::memory_order_relaxed)) return;
      std::size_t b = next_.fetch_add(1, std::memory_order_relaxed);
      if (b >= blocks_) return;
      try {
        run_block(b);
      } catch (...) {
        failed_.store(true, std::memory_order_relaxed);  // releases whoever waits for this block
        throw;
      }
    }
  }

 private:
  // 16 Ki elements: a block of 8-byte values in and out is 256 KiB, which stays in cache
  // between the reduction and the scan, and an atomic claim per block costs nothing.
  static constexpr std::size_t kBlock = std::size_t{1} << 14;

  struct alignas(64) Prefix {
    std::atomic<bool> ready{false};
    std::optional<T> value;  // init combined with every element up to the block's end
  };

  void run_block(std::size_t b) {
    std::size_t lo = b * kBlock;
    std::size_t hi = std::min(n_, lo + kBlock);
    if (b == 0 || prefix_[b - 1].ready.load(std::memory_order_acquire)) {
      publish(b, scan(lo, hi, before(b)));
      return;
    }
    InIt in = first_ + static_cast<std::iter_difference_t<InIt>>(lo);
    T total = *in;
    for (std::size_t j = lo + 1; j < hi; ++j) total = op_(std::move(total), *++in);
    if (!wait_for(b - 1)) return;
    publish(b, op_(before(b), std::move(total)));
    scan(lo, hi, before(b));
  }

  const T& before(std::size_t b) const { return b == 0 ? init_ : *prefix_[b - 1].value; }

  void publish(std::size_t b, T value) {
    prefix_[b].value.emplace(std::move(value));
    prefix_[b].ready.store(true, std::memory_order_release);
  }

  // The block before is being scanned by another worker that is running (blocks are taken
  // in order and never given up), so the wait ends; it is a few microseconds at most.
  bool wait_for(std::size_t b) {
    for (unsigned spins = 0; !prefix_[b].ready.load(std::memory_order_acquire); ++spins) {
      if (failed_.load(std::memory_order_relaxed)) return false;
      if (spins < 4096) {
        spin_pause();
      } else {
        std::this_thread::yield();  // the neighbour's thread lost its core
      }
    }
    return true;
  }

  // Writes out[lo, hi) from acc = the prefix before lo; returns the prefix through hi - 1.
  T scan(std::size_t lo, std::size_t hi, T acc) {
    InIt in = first_ + static_cast<std::iter_difference_t<InIt>>(lo);
    OutIt out = out_ + static_cast<std::iter_difference_t<OutIt>>(lo);
    for (std::size_t j = lo; j < hi; ++j, ++in, ++out) {
      if constexpr (Inclusive) {
        acc = op_(std::move(acc), *in);
        *out = acc;
      } else {
        T x = *in;  // read before the write: in may equal out
        *out = acc;
        acc = op_(std::move(acc), std::move(x));
      }
    }
    return acc;
  }

  InIt first_;
  OutIt out_;
  std::size_t n_;
  std::size_t blocks_;
  const T& init_;
  Op& op_;
  std::unique_ptr<Prefix[]> prefix_;
  alignas(64) std::atomic<std::size_t> next_{0};
  std::atomic<bool> failed_{false};
};

template <bool Inclusive, class InIt, class OutIt, class T, class Op>
void scan(InIt first, InIt last, OutIt out, const T& init, Op& op) {
  auto n = last - first;
  if (n <= 0) return;
  on_worker([&] {
    ChainedScan<InIt, OutIt, T, Op, Inclusive> chain(first, out, static_cast<std::size_t>(n), init, op);
    std::size_t helpers = std::min<std::size_t>(worker_count(current_scheduler()), chain.blocks()) - 1;
    task_group g;
    for (std::size_t i = 0; i < helpers; ++i) g.run([&chain] { chain.work(); });
    chain.work();  // on an exception, g's destructor waits for the helpers, which stop
    g.wait();
  });
}

}  // namespace detail

// Inclusive scan: out[i] = init op in[0] op ... op in[i].
template <std::random_access_iterator InIt, std::random_access_iterator OutIt, class T, class Op>
void parallel_scan(InIt first, InIt last, OutIt out, T init, Op op) {
  detail::scan<true>(first, last, out, init, op);
}

// Exclusive scan: out[0] = init, out[i] = init op in[0] op ... op in[i - 1].
template <std::random_access_iterator InIt, std::random_access_iterator OutIt, class T, class Op>
void parallel_exclusive_scan(InIt first, InIt last, OutIt out, T init, Op op) {
  detail::scan<false>(first, last, out, init, op);
}

}  // namespace lumen
