// Memory for task frames and object values.
//
// Task frames and values come from mimalloc's per-thread heaps: a frame allocated on one
// worker and freed on another costs no lock. Sanitizer builds use the system allocator
// instead, so that AddressSanitizer and LeakSanitizer see every allocation lumen makes.
#pragma once

#include <cstddef>
#include <new>

#if defined(LUMEN_USE_MIMALLOC)
#include <mimalloc.h>
#else
#include <cstdlib>
#endif

namespace lumen::detail {

inline void* allocate(std::size_t bytes, std::size_t align = alignof(std::max_align_t)) {
#if defined(LUMEN_USE_MIMALLOC)
  void* p = align <= alignof(std::max_align_t) ? mi_malloc(bytes) : mi_malloc_aligned(bytes, align);
#else
  void* p = align <= alignof(std::max_align_t) ? std::malloc(bytes)
                                               : std::aligned_alloc(align, (bytes + align - 1) / align * align);
#endif
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

inline void deallocate(void* p) noexcept {
#if defined(LUMEN_USE_MIMALLOC)
  mi_free(p);
#else
  std::free(p);
#endif
}

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
