// The engine under parallel_for and parallel_reduce: lazy binary splitting on task_group.
//
// A range [lo, hi) runs in chunks. Before each chunk the worker looks at its own deque: when
// it is empty (a thief took what was there, or nothing was ever queued) and the rest of the
// range is worth a task, the upper half becomes a child of the loop's one task_group and the
// worker goes on with the lower half. A child that a thief takes finds the thief's deque
// empty and splits at once, so every busy worker keeps one half queued for the idle ones;
// when nobody is idle the halves stay queued and their owner runs them inline, and a loop
// nested in a busy loop runs as a plain loop. Children that split spawn into the same group,
// so only the loop's caller ever waits.
//
// Adaptive chunks (AdaptivePace) time themselves with the cycle counter: a chunk doubles
// while it takes less than kChunkTicks and halves when it takes more than four times that,
// so the checks cost well under 1% while a thief never waits long for its owner to notice.
// The per-iteration time they measure also keeps a range that would finish in less than a
// steal costs (kMinSplitTicks) from being split.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "lumen/detail/cpu_relax.h"
#include "lumen/detail/scheduler_api.h"
#include "lumen/task_group.h"

namespace lumen::detail {

inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}

class AdaptivePace {
 public:
  static constexpr bool timed = true;
  // About 10 us at 3 GHz: several hundred times the cost of the check between chunks (the
  // cycle counter alone takes ~17 ns in a VM), and still short next to a steal's wait.
  static constexpr std::uint64_t kChunkTicks = 32768;
  // A steal, a wake-up and a park of the waiting owner cost about this much.
  static constexpr std::uint64_t kMinSplitTicks = 4096;

  std::size_t chunk(std::size_t left) const noexcept { return std::min(chunk_, left); }
  void ran(std::size_t n, std::uint64_t took) noexcept {
    ticks_per_item_ = std::max<std::uint64_t>(1, took / n);
    if (took < kChunkTicks) {
      if (n == chunk_) chunk_ *= 2;
    } else if (took > 4 * kChunkTicks && chunk_ > 1) {
      chunk_ /= 2;
    }
  }
  // Unknown cost (nothing ran yet): not before one chunk has been timed.
  bool worth_splitting(std::size_t left) const noexcept {
    return left >= 2 && ticks_per_item_ != 0 && left >= kMinSplitTicks / ticks_per_item_;
  }

 private:
  std::size_t chunk_ = 1;
  std::uint64_t ticks_per_item_ = 0;
};

class FixedPace {
 public:
  static constexpr bool timed = false;
  explicit FixedPace(std::size_t grain) noexcept : grain_(grain) {}
  std::size_t chunk(std::size_t left) const noexcept { return std::min(grain_, left); }
  bool worth_splitting(std::size_t left) const noexcept { return left > grain_; }

 private:
  std::size_t grain_;
};

// Job: a copyable view of the loop; job(lo, hi) runs a chunk, job.split_off() the job for
// an upper half about to become a child.
template <class Job, class Pace>
void run_range(task_group& g, Scheduler& s, Job job, std::size_t lo, std::size_t hi, Pace pace) {
  Worker& w = *worker_of(s);  // the caller and every child run on workers (on_worker)
  while (lo < hi) {
    if (g.is_canceling()) return;
    std::size_t left = hi - lo;
    if (pace.worth_splitting(left) && own_queue_empty(w)) {
      std::size_t mid = lo + left / 2;
      g.run([&g, &s, job = job.split_off(), mid, hi, pace] { run_range(g, s, job, mid, hi, pace); });
      hi = mid;
      continue;
    }
    std::size_t n = pace.chunk(left);
    if constexpr (Pace::timed) {
      std::uint64_t start = ticks();
      job(lo, lo + n);
      pace.ran(n, ticks() - start);
    } else {
      job(lo, lo + n);
    }
    lo += n;
  }
}

// Runs [0, n) on the calling worker and whoever steals, and returns once every chunk ran.
// The first exception cancels the chunks that have not started and reaches the caller.
template <class Job, class Pace>
void run_split_loop(Job job, std::size_t n, Pace pace) {
  task_group g;
  try {
    run_range(g, *worker_scheduler(), job, 0, n, pace);
  } catch (...) {
    g.cancel();
    throw;  // g's destructor waits for the children still running
  }
  g.wait();
}

}  // namespace lumen::detail
