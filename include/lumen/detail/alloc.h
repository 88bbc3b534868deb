// Memory for task frames and object values.
//
// The library allocates them from mimalloc's per-thread heaps (a frame allocated on one
// worker and freed on another takes no lock); sanitizer builds use the system allocator so
// that AddressSanitizer and LeakSanitizer see every allocation. The choice is made when the
// library is built, so programs using lumen never link mimalloc themselves.
#pragma once

#include <cstddef>
#include <new>

namespace lumen::detail {

void* allocate(std::size_t bytes, std::size_t align);  // throws std::bad_alloc
void deallocate(void* p) noexcept;

// Constructs a T in memory from allocate(); pairs with destroy().
template <class T, class... Args>
T* create(Args&&... args) {
  void* p = allocate(sizeof(T), alignof(T));
  try {
    return ::new (p) T(static_cast<Args&&>(args)...);
  } catch (...) {
    deallocate(p);
    throw;
  }
}

template <class T>
void destroy(T* p) noexcept {
  if (p == nullptr) return;
  p->~T();
  deallocate(p);
}

}  // namespace lumen::detail
