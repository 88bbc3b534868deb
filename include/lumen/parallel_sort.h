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
/// Algorithm: quicksort with branch-free block partitioning (BlockQuicksort) and a median of
/// medians pivot on large pieces, whose partitions split off a task only when the worker's
/// deque is empty (see partition.h), so with no idle worker it is a plain sequential
/// quicksort. Pieces of a few dozen elements are sorted by insertion; pieces that went too deep
/// (a pathological pivot sequence) are left to std::sort, so the worst case stays O(n log n);
/// runs of keys equal to a pivot are set aside in one pass.
///
/// Scheduling, nesting and exceptions as parallel_for; after an exception from comp the range
/// is valid but its contents are unspecified (as after std::sort).
#pragma once

#include <algorithm>
#include <array>
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

// Pieces up to this many elements are sorted by insertion.
inline constexpr std::ptrdiff_t kSortInsertion = 24;
// Pieces above this many elements may become a task of their own; below, a task costs more
// than it saves.
inline constexpr std::ptrdiff_t kSortLeaf = 2048;
// From this size on the pivot is the median of three medians of three (Tukey's ninther),
// which keeps partitions balanced on inputs that defeat a plain median of three.
inline constexpr std::ptrdiff_t kSortNinther = 128;

// Orders *a <= *b <= *c.
template <class It, class Comp>
void sort3(It a, It b, It c, Comp& comp) {
  if (comp(*b, *a)) std::iter_swap(a, b);
  if (comp(*c, *b)) {
    std::iter_swap(b, c);
    if (comp(*b, *a)) std::iter_swap(a, b);
  }
}

// Moves the pivot of [first, last) (more than kSortInsertion elements) to *first.
template <class It, class Comp>
void choose_pivot(It first, It last, Comp& comp) {
  const auto n = last - first;
  It mid = first + n / 2;
  if (n > kSortNinther) {
    sort3(first, mid, last - 1, comp);
    sort3(first + 1, mid - 1, last - 2, comp);
    sort3(first + 2, mid + 1, last - 3, comp);
    sort3(mid - 1, mid, mid + 1, comp);
    std::iter_swap(first, mid);
  } else {
    sort3(mid, first, last - 1, comp);
  }
}

template <class It, class Comp>
void insertion_sort(It first, It last, Comp& comp) {
  if (first == last) return;
  for (It i = first + 1; i != last; ++i) {
    if (!comp(*i, *(i - 1))) continue;
    auto x = std::move(*i);
    It j = i;
    do {
      *j = std::move(*(j - 1));
      --j;
    } while (j != first && comp(x, *(j - 1)));
    *j = std::move(x);
  }
}

// Partitions [first, last) around the pivot choose_pivot picks, branch-free in blocks of 64
// after Edelkamp and Weiss (BlockQuicksort, 2016): one pass records, without branching, which
// elements of a left block and of a right block sit on the wrong side; a second swaps them in
// pairs. Random keys defeat the branch predictor of a plain partition; this one has no
// data-dependent branch per element. Returns pos with [first, pos) < *pos <= [pos + 1, last).
template <class It, class Comp>
It partition_blocks(It first, It last, Comp& comp) {
  constexpr std::ptrdiff_t kBlock = 64;
  choose_pivot(first, last, comp);
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
  // What is left (a block with pending elements, and fewer than 2 blocks more) is small; a
  // branch-free Lomuto pass takes it: [l, cut) < pivot <= [cut, i).
  It cut = l;
  for (It i = l; i != r; ++i) {
    const bool below = comp(*i, pivot);
    std::iter_swap(i, cut);
    cut += below;
  }
  It pos = cut - 1;
  if (pos != first) *first = std::move(*pos);
  *pos = std::move(pivot);
  return pos;
}

// One partition step of [first, last): returns the pieces still to sort, the smaller first.
// When nothing is below the pivot (many keys equal it), the keys equal to it are in place and
// the step leaves an empty smaller piece.
template <class It, class Comp>
std::array<It, 4> partition_step(It first, It last, Comp& comp) {
  It pos = partition_blocks(first, last, comp);
  if (pos == first) {
    It equal_end = std::partition(first + 1, last, [&](const auto& x) { return !comp(*first, x); });
    return {equal_end, equal_end, equal_end, last};
  }
  if (pos - first <= last - pos) return {first, pos, pos + 1, last};
  return {pos + 1, last, first, pos};
}

// Sequential quicksort of [first, last): recursion into the smaller piece keeps the stack
// O(log n) deep; past `depth` partitions (a pathological pivot sequence) std::sort's
// introsort, whose worst case is O(n log n), takes the piece.
template <class It, class Comp>
void sort_serial(It first, It last, Comp& comp, int depth) {
  while (last - first > kSortInsertion) {
    if (depth-- == 0) return std::sort(first, last, comp);
    auto [small_first, small_last, big_first, big_last] = partition_step(first, last, comp);
    sort_serial(small_first, small_last, comp, depth);
    first = big_first;
    last = big_last;
  }
  insertion_sort(first, last, comp);
}

// As sort_serial, but a piece larger than kSortLeaf becomes a task while the worker's deque is
// empty, so that an idle worker may take it.
template <class It, class Comp>
void sort_range(task_group& g, Scheduler& s, It first, It last, Comp& comp, int depth) {
  Worker& w = *worker_of(s);
  while (last - first > kSortLeaf) {
    if (g.is_canceling()) return;
    if (depth-- == 0) return std::sort(first, last, comp);
    // Named copies, not structured bindings: clang before 16 does not let a lambda capture a
    // structured binding.
    const std::array<It, 4> pieces = partition_step(first, last, comp);
    const It small_first = pieces[0], small_last = pieces[1], big_first = pieces[2], big_last = pieces[3];
    if (own_queue_empty(w)) {
      // An idle worker may take the larger piece; this one goes on with the smaller.
      g.run([&g, &s, big_first, big_last, &comp, depth] { sort_range(g, s, big_first, big_last, comp, depth); });
      first = small_first;
      last = small_last;
    } else {
      sort_range(g, s, small_first, small_last, comp, depth);
      first = big_first;
      last = big_last;
    }
  }
  sort_serial(first, last, comp, depth);
}

}  // namespace detail

/// Sorts [first, last) by comp, in parallel where workers are idle; see the top of this file.
template <std::random_access_iterator It, class Comp = std::less<>>
  requires std::sortable<It, Comp>
void parallel_sort(It first, It last, Comp comp = {}) {
  auto n = last - first;
  if (n < 2) return;
  // Twice the depth of balanced halves; deeper than that, std::sort's introsort takes over.
  const int depth = 2 * std::bit_width(static_cast<std::size_t>(n));
  if (n <= detail::kSortLeaf) return detail::sort_serial(first, last, comp, depth);
  detail::on_worker([&] {
    task_group g;
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
