#include "lumen/detail/alloc.h"

#include <cstdlib>

#if defined(LUMEN_USE_MIMALLOC)
#include <mimalloc.h>
#endif

namespace lumen::detail {

void* allocate(std::size_t bytes, std::size_t align) {
#if defined(LUMEN_USE_MIMALLOC)
  void* p = align <= alignof(std::max_align_t) ? mi_malloc(bytes) : mi_malloc_aligned(bytes, align);
#else
  void* p = align <= alignof(std::max_align_t) ? std::malloc(bytes)
                                               : std::aligned_alloc(align, (bytes + align - 1) / align * align);
#endif
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void deallocate(void* p) noexcept {
#if defined(LUMEN_USE_MIMALLOC)
  mi_free(p);
#else
  std::free(p);
#endif
}

}  // namespace lumen::detail
