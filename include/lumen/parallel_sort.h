/// @file
/// parallel_sort: sort a random-access range in parallel.
///
/// @code
///   lumen::parallel_sort(v.begin(), v.end());
///   lumen::parallel_sort(people.begin(), people.end(), [](auto& a, auto& b) { return a.age < b.age; });
/// @endcode
///
/// Sorts [first, last) into ascending order by comp (std::less<> by default), which must be a
/// strict weak ordering and callable from several threads at once. Not stable: equal elements
/// may end up in any order (use std::stable_sort when their order matters). In place: no
/// memory beyond O(log n) stack per worker.
///
/// Algorithm: quicksort with branch-free block partitioning (BlockQuicksort), whose
/// partitions split off a task only when the worker's deque is empty (see partition.h), so
/// with no idle worker it is a plain sequential quicksort. Pieces of a few thousand elements,
/// and pieces that went too deep (a pathological pivot sequence), are left to std::sort, so
/// the worst case stays O(n log n); runs of keys equal to a pivot are set aside in one pass.
///
/// Scheduling, nesting and exceptions as parallel_for; after an exception from comp the range
/// is valid but its contents are unspecified (as after std::sort).
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

// Partitions [first, last) around the median of three, branch-free in blocks of 64 after
// Edelkamp and Weiss (BlockQuicksort, 2016): one pass records, without branching, which
// elements of a left block and of a right block sit on the wrong side; a second swaps them
// in pairs. Random keys defeat the branch predictor of a plain partition; this one has no
// data-dependent branch per element. Returns pos with [first, pos) < *pos <= [pos + 1, last).
template <class It, class Comp>
It partition_blocks(It first, It last, Comp& comp) {
  constexpr std::ptrdiff_t kBlock = 64;
  move_median_to(first, first + 1, first + (last - first) / 2, last - 1, comp);
  auto pivot = std::move(*first);
  It l = first + 1;  // [first + 1, l) < pivot
  It r = last;       // [r, last) >= pivot; [l, r) not looked at, or pending below
  unsigned char off_l[kBlock], off_r[kBlock];
  std::ptrdiff_t num_l = 0, num_r = 0, start_l = 0, start_r = 0;
  while (r - l > 2 * kBlock) {
    if (num_l == 0) {
      start_l = 0;
      for (std::ptrdiff_t i = 0; i < kBlock; ++i) {
        off_l[num_l] = static_cast<unsigned char>(i);
        num_l += !comp(l[i], pivot);
      }
    }
    if (num_r == 0) {
      start_r = 0;
      for (std::ptrdiff_t i = 0; i < kBlock; ++i) {
        off_r[num_r] = static_cast<unsigned char>(i);
        num_r += comp(*(r - 1 - i), pivot);
      }
    }
    std::ptrdiff_t n = std::min(num_l, num_r);
    for (std::ptrdiff_t k = 0; k < n; ++k) std::iter_swap(l + off_l[start_l + k], r - 1 - off_r[start_r + k]);
    num_l -= n;
    num_r -= n;
    start_l += n;
    start_r += n;
    if (num_l == 0) l += kBlock;
    if (num_r == 0) r -= kBlock;
  }
  // What is left (a block with pending elements, and fewer than 2 blocks more) is small.
  It cut = std::partition(l, r, [&](const auto& x) { return comp(x, pivot); });
  It pos = cut - 1;
  if (pos != first) *first = std::move(*pos);
  *pos = std::move(pivot);
  return pos;
}

template <class It, class Comp>
void sort_range(task_group& g, Scheduler& s, It first, It last, Comp& comp, int depth) {
  Worker& w = *worker_of(s);
  while (last - first > kSortLeaf && depth > 0) {
    if (g.is_canceling()) return;
    It pos = partition_blocks(first, last, comp);
    --depth;
    if (pos == first) {
      // Nothing is below the pivot: many keys equal it. Those are in place; skip them all.
      first = std::partition(first + 1, last, [&](const auto& x) { return !comp(*first, x); });
      continue;
    }
    It small_first = first, small_last = pos, big_first = pos + 1, big_last = last;
    if (pos - first > last - pos) {
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

/// Sorts [first, last) by comp, in parallel where workers are idle; see the top of this file.
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
      detail::sort_range(g, *detail::worker_scheduler(), first, last, comp, depth);
    } catch (...) {
      g.cancel();
      throw;  // g's destructor waits for the children still running
    }
    g.wait();
  });
}

}  // namespace lumen
