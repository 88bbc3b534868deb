/// @file
/// parallel_reduce: combine f(i) over an index range, in parallel.
///
/// @code
///   double dot = lumen::parallel_reduce(0, n, 0.0, [&](std::size_t i) { return x[i] * y[i]; },
///                                       std::plus<>{});
/// @endcode
///
/// Returns identity combined with f(i) for every i in [first, last), in index order:
/// combine must be associative and identity its identity element (combine(identity, x) == x);
/// commutativity is not needed (string concatenation works). An empty range gives identity.
/// f and combine run concurrently on different pieces; pieces are combined left to right.
///
/// Determinism: by default the pieces follow the work (see partition.h), so for floating point
/// the rounding, and the last bits of the result, may differ from run to run. Pass
/// lumen::deterministic{} for a result that depends only on the input (and the grain).
///
/// Scheduling, nesting and exceptions as parallel_for (parallel_for.h): the first exception
/// reaches the caller with its type and the pieces that had not started are skipped.
/// Cost: one small allocation per piece a thief took, beside parallel_for's.
#pragma once

#include <atomic>
#include <concepts>
#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>

#include "lumen/detail/alloc.h"
#include "lumen/detail/index_range.h"
#include "lumen/detail/lazy_split.h"
#include "lumen/detail/on_worker.h"
#include "lumen/partition.h"
#include "lumen/task_group.h"

namespace lumen {

namespace detail {

// The result of one piece of a reduction. Pieces form a list in index order: a range that
// splits links its upper half's piece right after its own, and only the owner of a piece
// writes its link, so the list needs no synchronization beyond the task_group's.
template <class T>
struct Piece {
  T value;
  Piece* next = nullptr;
};

template <class I, class T, class Map, class Combine>
struct ReduceJob {
  IndexRange<I> range;
  Piece<T>* piece;
  const T* identity;
  Map* map;
  Combine* combine;

  void operator()(std::size_t lo, std::size_t hi) const {
    T acc = std::move(piece->value);  // a local: no aliasing with what map reads
    for (I i = range.at(lo), end = range.at(hi); i != end; ++i) acc = (*combine)(std::move(acc), (*map)(i));
    piece->value = std::move(acc);
  }
  ReduceJob split_off() {
    auto* p = create<Piece<T>>(Piece<T>{*identity, piece->next});
    piece->next = p;
    ReduceJob upper = *this;
    upper.piece = p;
    return upper;
  }
};

// Folds the pieces after the first in list order and frees them, also on the way out of an
// exception (after the task_group declared later has waited for every child).
template <class T>
struct PieceList {
  Piece<T> head;
  ~PieceList() {
    for (Piece<T>* p = head.next; p != nullptr;) destroy(std::exchange(p, p->next));
  }
  template <class Combine>
  T fold(Combine& combine) {
    T acc = std::move(head.value);
    for (Piece<T>* p = head.next; p != nullptr; p = p->next) acc = combine(std::move(acc), std::move(p->value));
    return acc;
  }
};

template <class I, class T, class Map, class Combine, class Pace>
T reduce_split(I first, I last, const T& identity, Map& map, Combine& combine, Pace pace) {
  IndexRange<I> range(first, last);
  if (range.size == 0) return identity;
  return on_worker([&]() -> T {
    PieceList<T> pieces{Piece<T>{identity}};
    run_split_loop(ReduceJob<I, T, Map, Combine>{range, &pieces.head, &identity, &map, &combine}, range.size, pace);
    return pieces.fold(combine);
  });
}

// The deterministic reduction: a fixed tree of halves. A node runs its halves in parallel
// when its worker's deque is empty and one after the other otherwise; either way the same
// halves are combined in the same order.
template <class I, class T, class Map, class Combine>
struct ReduceTree {
  IndexRange<I> range;
  const T& identity;
  Map& map;
  Combine& combine;
  std::size_t grain;
  Scheduler& sched;
  std::atomic<bool> stop{false};  // set by the first exception: leaves that start later skip

  T leaf(std::size_t lo, std::size_t hi) {
    T acc = identity;
    if (stop.load(std::memory_order_relaxed)) return acc;
    try {
      for (I i = range.at(lo), end = range.at(hi); i != end; ++i) acc = combine(std::move(acc), map(i));
    } catch (...) {
      stop.store(true, std::memory_order_relaxed);
      throw;
    }
    return acc;
  }

  // After an exception the rest of the tree is abandoned, not walked: with a small grain
  // it can have billions of nodes.
  T node(std::size_t lo, std::size_t hi) {
    if (stop.load(std::memory_order_relaxed)) return identity;
    if (hi - lo <= grain) return leaf(lo, hi);
    try {
      return split(lo, hi);
    } catch (...) {
      stop.store(true, std::memory_order_relaxed);
      throw;
    }
  }

  T split(std::size_t lo, std::size_t hi) {
    std::size_t mid = lo + (hi - lo) / 2;
    if (!own_queue_empty(*worker_of(sched))) {
      T left = node(lo, mid);
      return combine(std::move(left), node(mid, hi));
    }
    std::optional<T> right;
    task_group g;
    g.run([&] { right.emplace(node(mid, hi)); });
    T left = node(lo, mid);  // on an exception, g's destructor waits for the upper half
    g.wait();
    return combine(std::move(left), std::move(*right));
  }
};

// About 2048 leaves, computed without overflow for ranges near 2^64.
inline std::size_t default_tree_grain(std::size_t size) { return size / 2048 + (size % 2048 != 0 ? 1 : 0); }

template <class I, class T, class Map, class Combine>
T reduce_tree(I first, I last, const T& identity, Map& map, Combine& combine, std::size_t grain) {
  IndexRange<I> range(first, last);
  if (range.size == 0) return identity;
  if (grain == 0) grain = default_tree_grain(range.size);
  return on_worker([&]() -> T {
    ReduceTree<I, T, Map, Combine> tree{range, identity, map, combine, grain, *worker_scheduler()};
    return tree.node(0, range.size);
  });
}

template <class Map, class I, class Combine, class T>
concept reduction = std::invocable<Map&, I> && std::copy_constructible<T> &&
                    std::convertible_to<std::invoke_result_t<Combine&, T, std::invoke_result_t<Map&, I>>, T> &&
                    std::convertible_to<std::invoke_result_t<Combine&, T, T>, T>;

}  // namespace detail

/// identity combined with map(i) for every i in [first, last), pieces split on demand.
template <loop_integer A, loop_integer B, class T, class Map, class Combine>
  requires detail::reduction<Map, detail::loop_index_t<A, B>, Combine, T>
T parallel_reduce(A first, B last, T identity, Map&& map, Combine&& combine) {
  using I = detail::loop_index_t<A, B>;
  auto [lo, hi] = detail::loop_bounds<I>(first, last);
  return detail::reduce_split<I>(lo, hi, identity, map, combine, detail::AdaptivePace{});
}

/// As above, with pieces of at most g.size indices (see lumen::grain).
template <loop_integer A, loop_integer B, class T, class Map, class Combine>
  requires detail::reduction<Map, detail::loop_index_t<A, B>, Combine, T>
T parallel_reduce(A first, B last, T identity, Map&& map, Combine&& combine, grain g) {
  using I = detail::loop_index_t<A, B>;
  auto [lo, hi] = detail::loop_bounds<I>(first, last);
  return detail::reduce_split<I>(lo, hi, identity, map, combine, detail::FixedPace{g.size});
}

/// As above, with the same result every run for the same input (see lumen::deterministic).
template <loop_integer A, loop_integer B, class T, class Map, class Combine>
  requires detail::reduction<Map, detail::loop_index_t<A, B>, Combine, T>
T parallel_reduce(A first, B last, T identity, Map&& map, Combine&& combine, deterministic d) {
  using I = detail::loop_index_t<A, B>;
  auto [lo, hi] = detail::loop_bounds<I>(first, last);
  return detail::reduce_tree<I>(lo, hi, identity, map, combine, d.grain);
}

}  // namespace lumen
