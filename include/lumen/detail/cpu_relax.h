// One pause in a spin loop: it lets the core's other hyper-thread run and tells the core the
// loop waits on memory, so leaving the loop does not flush the pipeline.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace lumen::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

}  // namespace lumen::detail
