/// @file
/// parallel_for and parallel_for_each: run a body for every index or element, in parallel.
///
/// @code
///   lumen::parallel_for(0, v.size(), [&](std::size_t i) { v[i] = f(i); });
///   lumen::parallel_for(0, n, lumen::grain(1024), [&](std::size_t lo, std::size_t hi) { ... });
///   lumen::parallel_for_each(items.begin(), items.end(), [&](Item& x) { ... });
/// @endcode
///
/// The bounds may have any integral types but bool, and different ones; the body receives their
/// common type (int and std::size_t give std::size_t). A range with last <= first (as numbers)
/// runs nothing; a bound the common type cannot hold (a negative first with std::size_t)
/// throws usage_error. Ranges may reach the limits of their type. A body
/// that takes two indices receives chunks [lo, hi) that together cover the range once.
///
/// Scheduling: the loop runs on the runtime in scope, on the calling worker and on workers
/// that are idle (see partition.h); no other threads. It nests freely: inside tasks, inside
/// other loops (an inner loop whose workers are all busy runs as a plain loop), inside
/// task_group children. Called from a thread that is not a worker, it runs on the workers
/// while the caller waits. Iterations run in no particular order, concurrently.
///
/// Exceptions: the first exception a body throws reaches the caller, with its type, once
/// every chunk that had started has finished; chunks that had not started are skipped.
///
/// Cost: a plain loop plus, per chunk of about ten microseconds, a look at the worker's deque and
/// the cycle counter; a task only when a worker is idle to take it.
#pragma once

#include <concepts>
#include <cstddef>
#include <iterator>
#include <type_traits>

#include "lumen/detail/index_range.h"
#include "lumen/detail/lazy_split.h"
#include "lumen/detail/on_worker.h"
#include "lumen/partition.h"

namespace lumen {

namespace detail {

template <class I, class F>
struct ForJob {
  IndexRange<I> range;
  F* body;
  void operator()(std::size_t lo, std::size_t hi) const {
    if constexpr (std::invocable<F&, I, I>) {
      (*body)(range.at(lo), range.at(hi));
    } else {
      for (I i = range.at(lo), end = range.at(hi); i != end; ++i) (*body)(i);
    }
  }
  ForJob split_off() const noexcept { return *this; }
};

template <class I, class F, class Pace>
void parallel_for_impl(I first, I last, F& body, Pace pace) {
  IndexRange<I> range(first, last);
  if (range.size == 0) return;
  on_worker([&] { run_split_loop(ForJob<I, F>{range, &body}, range.size, pace); });
}

template <class F, class I>
concept loop_body = std::invocable<F&, I> || std::invocable<F&, I, I>;

}  // namespace detail

/// Calls body(i) for every i in [first, last), or body(lo, hi) for chunks covering it.
template <loop_integer A, loop_integer B, class F>
  requires detail::loop_body<F, detail::loop_index_t<A, B>>
void parallel_for(A first, B last, F&& body) {
  using I = detail::loop_index_t<A, B>;
  auto [lo, hi] = detail::loop_bounds<I>(first, last);
  detail::parallel_for_impl<I>(lo, hi, body, detail::AdaptivePace{});
}

/// As above, in chunks of at most g.size iterations (see lumen::grain).
template <loop_integer A, loop_integer B, class F>
  requires detail::loop_body<F, detail::loop_index_t<A, B>>
void parallel_for(A first, B last, grain g, F&& body) {
  using I = detail::loop_index_t<A, B>;
  auto [lo, hi] = detail::loop_bounds<I>(first, last);
  detail::parallel_for_impl<I>(lo, hi, body, detail::FixedPace{g.size});
}

/// Calls body(*it) for every it in [first, last).
template <std::random_access_iterator It, class F>
  requires std::invocable<F&, std::iter_reference_t<It>>
void parallel_for_each(It first, It last, F&& body) {
  auto n = last - first;
  if (n <= 0) return;
  auto chunk = [&](std::size_t lo, std::size_t hi) {
    for (It it = first + static_cast<std::iter_difference_t<It>>(lo), end = first + static_cast<std::iter_difference_t<It>>(hi);
         it != end; ++it)
      body(*it);
  };
  detail::parallel_for_impl<std::size_t>(0, static_cast<std::size_t>(n), chunk, detail::AdaptivePace{});
}

}  // namespace lumen
