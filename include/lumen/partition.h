/// @file
/// How a parallel algorithm cuts its range into pieces.
///
/// By default the loops need no tuning: a worker splits its range in half only when its own
/// deque is empty (so an idle worker could take the other half), and runs the rest in chunks
/// whose size it adapts so that each chunk takes about ten microseconds. Expensive bodies are
/// split down to single iterations when workers are idle; tiny bodies run as plain loops when
/// they are not.
///
/// @code
///   lumen::parallel_for(0, n, lumen::grain(1024), [&](std::size_t lo, std::size_t hi) { ... });
///   double s = lumen::parallel_reduce(0, n, 0.0, f, std::plus<>{}, lumen::deterministic{});
/// @endcode
#pragma once

#include <cstddef>

namespace lumen {

/// An explicit chunk size: the body sees chunks of at most `size` iterations, and a range of
/// `size` iterations or fewer is never split. Splitting still happens only when a worker is
/// idle. Use it when a chunk needs a bound (scratch memory per chunk) or a minimum (work per
/// task known to be tiny and uneven timing would mislead the adaptive chunks).
struct grain {
  /// A grain of n iterations (0 counts as 1).
  explicit constexpr grain(std::size_t n) noexcept : size(n == 0 ? 1 : n) {}
  std::size_t size;  ///< iterations per chunk, at least 1
};

/// A reduction whose result depends only on the input and the grain, not on the number of
/// workers or on which worker ran what: the range is cut into the same tree of halves every
/// time, down to pieces of at most `grain` iterations, and the pieces' results are combined
/// in that tree's order. For floating point, the same bits every run. Costs a little more
/// than the default reduction (a fixed tree instead of splitting on demand). grain 0 means
/// ceil(n / 2048) for a range of n iterations.
struct deterministic {
  std::size_t grain = 0;  ///< iterations per leaf of the fixed tree; 0: ceil(n / 2048)
};

}  // namespace lumen
