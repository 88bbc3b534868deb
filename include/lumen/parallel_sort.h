// parallel_sort: sort a random-access range in parallel.
//
//   lumen::parallel_sort(v.begin(), v.end());
//   lumen::parallel_sort(people.begin(), people.end(), [](auto& a, auto& b) { return a.age < b.age; });
//
// Sorts [first, last) into ascending order by comp (std::less<> by default), which must be a
// strict weak ordering and callable from several threads at once. Not stable: equal elements
// may end up in any order (use std::stable_sort when their order matters). In place: no
// memory beyond O(log n) stack per worker.
//
// Algorithm: quicksort whose partitions split off a task only when the worker's deque is
// empty (see partition.h), so with no idle worker it is a plain sequential quicksort; pieces
// of a few thousand elements, and pieces that went too deep (a pathological pivot sequence),
// are left to std::sort, so the worst case stays O(n log n).
//
// Scheduling, nesting and exceptions as parallel_for; after an exception from comp the range
// holds its elements in an unspecified order.
#pragma once

#include <algorithm>
#include <bit>
#include <concepts>
#include <cstddef>
#include <functional>
#include <iterator>
#include <utility>

#include "lumen/detail/on_worker.h"
#include "lumen/detail/scheduler_api.h"
#include "lumen/task_group.h"

namespace lumen {

namespace detail {

// Below this many elements a piece is not worth a task: std::sort takes it.
inline constexpr std::ptrdiff_t kSortLeaf = 2048;

// Moves the median of a, b, c to `to`.
template <class It, class Comp>
void move_median_to(It to, It a, It b, It c, Comp& comp) {
  if (comp(*a, *b)) {
    if (comp(*b, *c)) std::iter_swap(to, b);
    else if (comp(*a, *c)) std::iter_swap(to, c);
    else std::iter_swap(to, a);
  } else if (comp(*a, *c)) {
    std::iter_swap(to, a);
  } else if (comp(*b, *c)) {
    std::iter_swap(to, c);
  } else {
    std::iter_swap(to, b);
  }
}

// Hoare partition around the median of three, kept at *first. Returns cut with
// [first, cut) <= pivot <= [cut, last), both non-empty. The median leaves an element no
// smaller than the pivot to its right and the pivot itself bounds the leftward scan, so
// the scans need no bounds checks.
template <class It, class Comp>
It partition_at_median(It first, It last, Comp& comp) {
  It mid = first + (last - first) / 2;
  move_median_to(first, first + 1, mid, last - 1, comp);
  It lo = first + 1;
  It hi = last;
  for (;;) {
    while (comp(*lo, *first)) ++lo;
    --hi;
    while (comp(*first, *hi)) --hi;
    if (!(lo < hi)) return lo;
    std::iter_swap(lo, hi);
    ++lo;
  }
}

template <class It, class Comp>
void sort_range(task_group& g, Scheduler& s, It first, It last, Comp& comp, int depth) {
  Worker& w = *worker_of(s);
  while (last - first > kSortLeaf && depth > 0) {
    if (g.is_canceling()) return;
    It cut = partition_at_median(first, last, comp);
    --depth;
    It small_first = first, small_last = cut, big_first = cut, big_last = last;
    if (cut - first > last - cut) {
      std::swap(small_first, big_first);
      std::swap(small_last, big_last);
    }
    if (own_queue_empty(w)) {
      // An idle worker may take the larger side; this one goes on with the smaller.
      g.run([&g, &s, big_first, big_last, &comp, depth] { sort_range(g, s, big_first, big_last, comp, depth); });
      first = small_first;
      last = small_last;
    } else {
      // Recursing into the smaller side only keeps the stack O(log n) deep.
      sort_range(g, s, small_first, small_last, comp, depth);
      first = big_first;
      last = big_last;
    }
  }
  std::sort(first, last, comp);
}

}  // namespace detail

template <std::random_access_iterator It, class Comp = std::less<>>
  requires std::sortable<It, Comp>
void parallel_sort(It first, It last, Comp comp = {}) {
  auto n = last - first;
  if (n < 2) return;
  if (n <= detail::kSortLeaf) return std::sort(first, last, comp);
  detail::on_worker([&] {
    task_group g;
    // Twice the depth of balanced halves; deeper than that, std::sort's introsort takes over.
    int depth = 2 * std::bit_width(static_cast<std::size_t>(n));
    try {
      detail::sort_range(g, detail::current_scheduler(), first, last, comp, depth);
    } catch (...) {
      g.cancel();
      throw;  // g's destructor waits for the children still running
    }
    g.wait();
  });
}

}  // namespace lumen
