// put() of a copy of a large std::vector of plain values.
//
// The copy's buffer is fresh memory from the system allocator, which the kernel faults in
// 4 KiB at a time, each page zeroed, as memcpy first writes it. Advising huge pages on the
// buffer before the copy cuts the faults 512-fold: on the virtual machine lumen is measured on,
// an 800 MB copy went from 0.3 GB/s to over 7. (Warm memory does better still: large_buffer.h.)
#pragma once

#include <cstddef>
#include <memory>
#include <type_traits>
#include <vector>

#include "lumen/large_buffer.h"

namespace lumen::detail {

void advise_huge_pages(void* p, std::size_t bytes) noexcept;

template <class T>
inline constexpr bool kCopiedInHugePages = false;
template <class U>
inline constexpr bool kCopiedInHugePages<std::vector<U, std::allocator<U>>> = std::is_trivially_copyable_v<U>;

template <class T>
  requires kCopiedInHugePages<T>
T copy_in_huge_pages(const T& v) {
  const std::size_t bytes = v.size() * sizeof(typename T::value_type);
  if (bytes < kLargeBufferMin) return v;
  T out;
  out.reserve(v.size());
  advise_huge_pages(out.data(), bytes);
  out.assign(v.begin(), v.end());
  return out;
}

}  // namespace lumen::detail
