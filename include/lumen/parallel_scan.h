/// @file
/// parallel_scan and parallel_exclusive_scan: prefix sums (or any associative operation).
///
/// @code
///   lumen::parallel_scan(in.begin(), in.end(), out.begin(), 0L, std::plus<>{});
///       // out[i] = 0 + in[0] + ... + in[i]
///   lumen::parallel_exclusive_scan(in.begin(), in.end(), out.begin(), 0L, std::plus<>{});
///       // out[0] = 0, out[i] = 0 + in[0] + ... + in[i - 1]
/// @endcode
///
/// op(T, T) must be associative (not necessarily commutative) and the elements must convert
/// to T. init is combined once, at the front. out may equal first (in place); otherwise the
/// ranges must not overlap. For integers the result is exact; for floating point the rounding
/// may differ from run to run, as for any parallel scan.
///
/// Algorithm: a single pass over memory in blocks of a few hundred KiB, taken in order by
/// the workers. A worker that takes a block whose predecessor's prefix is already known scans
/// it directly; otherwise it reduces the block (bringing it into its cache), publishes the
/// total, combines the totals of the blocks before it back to a known prefix (decoupled
/// look-back), and scans the block from cache. Each element is read from memory once and
/// written once, on one worker or many. No worker waits for another: a neighbour that is
/// slow to publish (its thread lost its core) has its block reduced by the one that needs it;
/// only a scan in place, where that input may be gone, waits for the neighbour.
///
/// Scheduling, nesting and exceptions as parallel_for: the first exception from op reaches
/// the caller; blocks not started are skipped and out is left partly written.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "lumen/detail/lazy_split.h"
#include "lumen/detail/on_worker.h"
#include "lumen/detail/scheduler_api.h"
#include "lumen/task_group.h"

namespace lumen {

namespace detail {

template <class InIt, class OutIt, class T, class Op, bool Inclusive>
class ChainedScan {
 public:
  ChainedScan(InIt first, OutIt out, std::size_t n, const T& init, Op& op)
      : first_(first), out_(out), n_(n), blocks_((n + kBlock - 1) / kBlock), init_(init), op_(op),
        in_place_(same_place(first, out)), state_(std::make_unique<BlockState[]>(blocks_)) {}

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
        failed_.store(true, std::memory_order_relaxed);
        throw;
      }
    }
  }

 private:
  // 16 Ki elements: a block of 8-byte values in and out is 256 KiB, which stays in cache
  // between the reduction and the scan, and an atomic claim per block costs nothing.
  static constexpr std::size_t kBlock = std::size_t{1} << 14;
  // How long a look-back waits for a neighbour's total before reading that block itself:
  // several times what reducing a block takes, so only a neighbour whose thread lost its
  // core (or a slow op) is helped this way.
  static constexpr std::uint64_t kPatienceTicks = 1 << 18;

  enum : std::uint8_t { kNothing, kTotal, kPrefix };
  struct alignas(64) BlockState {
    std::atomic<std::uint8_t> known{kNothing};
    std::optional<T> total;   // the block's elements combined (kTotal)
    std::optional<T> prefix;  // init combined with every element up to the block's end (kPrefix)
  };

  void run_block(std::size_t b) {
    std::size_t lo = b * kBlock;
    std::size_t hi = std::min(n_, lo + kBlock);
    if (b == 0) return publish_prefix(b, scan(lo, hi, init_));
    if (state_[b - 1].known.load(std::memory_order_acquire) == kPrefix)
      return publish_prefix(b, scan(lo, hi, *state_[b - 1].prefix));
    T total = reduce(lo, hi);
    state_[b].total.emplace(total);
    state_[b].known.store(kTotal, std::memory_order_release);
    std::optional<T> before = look_back(b);
    if (!before) return;  // another block failed
    publish_prefix(b, op_(*before, std::move(total)));
    scan(lo, hi, std::move(*before));
  }

  static bool same_place(InIt first, OutIt out) {
    if constexpr (std::contiguous_iterator<InIt> && std::contiguous_iterator<OutIt>) {
      return static_cast<const void*>(std::to_address(first)) == static_cast<const void*>(std::to_address(out));
    } else if constexpr (std::equality_comparable_with<InIt, OutIt>) {
      return first == out;
    } else {
      return false;
    }
  }

  void publish_prefix(std::size_t b, T value) {
    state_[b].prefix.emplace(std::move(value));
    state_[b].known.store(kPrefix, std::memory_order_release);
  }

  // The prefix before block b: the totals of the blocks before it, back to one whose prefix
  // is known (decoupled look-back, after Merrill and Garland). A block that shows nothing
  // after kPatienceTicks is reduced here, unless the scan is in place: then its input may
  // already be overwritten, and only its owner can tell its total. Empty when a block failed.
  std::optional<T> look_back(std::size_t b) {
    std::optional<T> after;  // blocks j + 1 .. b - 1 combined
    const std::uint64_t give_up = ticks() + kPatienceTicks;
    for (std::size_t j = b; j-- > 0;) {
      const BlockState& s = state_[j];
      std::uint8_t known = s.known.load(std::memory_order_acquire);
      while (known == kNothing) {
        if (failed_.load(std::memory_order_relaxed)) return std::nullopt;
        if (ticks() < give_up) {
          cpu_relax();
        } else if (in_place_) {
          std::this_thread::yield();
        } else {
          break;
        }
        known = s.known.load(std::memory_order_acquire);
      }
      if (known == kPrefix) return after ? op_(*s.prefix, std::move(*after)) : *s.prefix;
      T t = known == kTotal ? *s.total : reduce(j * kBlock, std::min(n_, (j + 1) * kBlock));
      after = after ? op_(std::move(t), std::move(*after)) : std::move(t);
    }
    return op_(init_, std::move(*after));
  }

  T reduce(std::size_t lo, std::size_t hi) {
    InIt in = first_ + static_cast<std::iter_difference_t<InIt>>(lo);
    T total = *in;
    for (std::size_t j = lo + 1; j < hi; ++j) total = op_(std::move(total), *++in);
    return total;
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
  const bool in_place_;
  std::unique_ptr<BlockState[]> state_;
  alignas(64) std::atomic<std::size_t> next_{0};
  std::atomic<bool> failed_{false};
};

template <bool Inclusive, class InIt, class OutIt, class T, class Op>
void scan(InIt first, InIt last, OutIt out, const T& init, Op& op) {
  auto n = last - first;
  if (n <= 0) return;
  on_worker([&] {
    ChainedScan<InIt, OutIt, T, Op, Inclusive> chain(first, out, static_cast<std::size_t>(n), init, op);
    std::size_t helpers = std::min<std::size_t>(worker_count(*worker_scheduler()), chain.blocks()) - 1;
    task_group g;
    for (std::size_t i = 0; i < helpers; ++i) g.run([&chain] { chain.work(); });
    chain.work();  // on an exception, g's destructor waits for the helpers, which stop
    g.wait();
  });
}

}  // namespace detail

/// Inclusive scan: out[i] = init op in[0] op ... op in[i].
template <std::random_access_iterator InIt, std::random_access_iterator OutIt, class T, class Op>
void parallel_scan(InIt first, InIt last, OutIt out, T init, Op op) {
  detail::scan<true>(first, last, out, init, op);
}

/// Exclusive scan: out[0] = init, out[i] = init op in[0] op ... op in[i - 1].
template <std::random_access_iterator InIt, std::random_access_iterator OutIt, class T, class Op>
void parallel_exclusive_scan(InIt first, InIt last, OutIt out, T init, Op op) {
  detail::scan<false>(first, last, out, init, op);
}

}  // namespace lumen
