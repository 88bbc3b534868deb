// Integer ranges for the parallel loops: [first, last) of mixed integral types, as offsets.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include "lumen/error.h"

namespace lumen {

// Any integral type but bool: what parallel_for and parallel_reduce take as bounds.
template <class T>
concept loop_integer = std::integral<T> && !std::same_as<std::remove_cv_t<T>, bool>;

}  // namespace lumen

namespace lumen::detail {

// The loop index type for bounds of types A and B (int and std::size_t give std::size_t).
template <loop_integer A, loop_integer B>
using loop_index_t = std::common_type_t<A, B>;

// a < b as numbers, whatever the two types (std::cmp_less, for every integral type).
template <class X, class Y>
constexpr bool less_as_numbers(X a, Y b) noexcept {
  const bool a_negative = std::is_signed_v<X> && a < X{0};
  const bool b_negative = std::is_signed_v<Y> && b < Y{0};
  if (a_negative != b_negative) return a_negative;
  if (a_negative) return static_cast<std::intmax_t>(a) < static_cast<std::intmax_t>(b);
  return static_cast<std::uintmax_t>(a) < static_cast<std::uintmax_t>(b);
}

// The bounds in the index type I. A range that is empty as numbers (last <= first) is empty
// whatever the types; a non-empty one with a bound that I cannot hold (a negative first with
// an unsigned index type) is refused rather than run over the wrong indices.
template <class I, class A, class B>
std::pair<I, I> loop_bounds(A first, B last) {
  if (!less_as_numbers(first, last)) return {I{}, I{}};
  constexpr I lo = std::numeric_limits<I>::min(), hi = std::numeric_limits<I>::max();
  if (less_as_numbers(first, lo) || less_as_numbers(hi, first) || less_as_numbers(last, lo) || less_as_numbers(hi, last))
    throw usage_error("lumen: a loop bound does not fit the loop's index type (the common type of the two bounds' "
                      "types): use bounds of one type, signed if the range starts below zero");
  return {static_cast<I>(first), static_cast<I>(last)};
}

template <std::integral I>
struct IndexRange {
  using U = std::make_unsigned_t<I>;
  I first;
  std::size_t size;  // 0 when last <= first

  // Unsigned arithmetic, cast back to U at each step: types narrower than int are promoted to
  // int first, where the difference of two U values may be negative.
  IndexRange(I f, I l) noexcept
      : first(f), size(l > f ? static_cast<std::size_t>(static_cast<U>(static_cast<U>(l) - static_cast<U>(f))) : 0) {}
  I at(std::size_t offset) const noexcept {
    return static_cast<I>(static_cast<U>(static_cast<U>(first) + static_cast<U>(offset)));
  }
};

}  // namespace lumen::detail
