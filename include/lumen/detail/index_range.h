// Integer ranges for the parallel loops: [first, last) of mixed integral types, as offsets.
#pragma once

#include <concepts>
#include <cstddef>
#include <type_traits>

namespace lumen::detail {

// The loop index type for bounds of types A and B (int and std::size_t give std::size_t).
template <std::integral A, std::integral B>
using loop_index_t = std::common_type_t<A, B>;

template <std::integral I>
struct IndexRange {
  using U = std::make_unsigned_t<I>;
  I first;
  std::size_t size;  // 0 when last <= first

  IndexRange(I f, I l) noexcept : first(f), size(l > f ? static_cast<std::size_t>(static_cast<U>(l) - static_cast<U>(f)) : 0) {}
  // Unsigned arithmetic, then back: no signed overflow for ranges that span zero.
  I at(std::size_t offset) const noexcept { return static_cast<I>(static_cast<U>(first) + static_cast<U>(offset)); }
};

}  // namespace lumen::detail
