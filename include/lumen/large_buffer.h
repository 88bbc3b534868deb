/// @file
/// LargeBufferAllocator: an allocator for big arrays whose memory stays warm from one value
/// to the next.
///
/// @code
///   lumen::large_vector<double> frame(100 << 20);   // 800 MB, from the pool
///   auto ref = lumen::put(frame);                    // a copy: warm memory, memcpy's speed
/// @endcode
///
/// Memory the kernel hands out fresh costs a page fault and a zeroed page per 4 KiB the first
/// time it is written: on a virtual machine, copying 800 MB into fresh memory runs at a few
/// hundredths of the speed of copying it into memory already written. An allocation of at
/// least kLargeBufferMin bytes through this allocator comes from a process-wide pool of
/// mappings aligned for huge pages (and advised to use them); when it is freed, the mapping
/// stays warm in the pool for the next allocation of its size class, up to
/// large_buffer_cache_limit() bytes kept in all; past that, the oldest cached mappings go back
/// to the kernel. Smaller allocations go to the global `operator new`.
///
/// Size classes: multiples of 2 MiB up to 32 MiB, then sixteen per power of two, so a buffer
/// wastes at most 2 MiB or 1/16 of its size. Thread-safe; an allocation or a free of a large
/// buffer takes one lock (they are rare next to the copies they serve). Buffers cached in the
/// pool are not object memory: Config::object_memory_limit counts the values that use them.
#pragma once

#include <cstddef>
#include <limits>
#include <new>
#include <vector>

namespace lumen {

/// Allocations from this many bytes on come from the pool.
inline constexpr std::size_t kLargeBufferMin = std::size_t{4} << 20;

/// Bytes of freed large buffers the pool keeps for reuse; by default an eighth of the
/// machine's physical memory.
std::size_t large_buffer_cache_limit() noexcept;
/// Sets that bound (0: keep none) and gives back at once what is cached beyond it.
void set_large_buffer_cache_limit(std::size_t bytes);
/// Bytes the pool holds for reuse now.
std::size_t large_buffer_cached_bytes() noexcept;

namespace detail {
void* large_buffer_allocate(std::size_t bytes);                 // throws std::bad_alloc
void large_buffer_deallocate(void* p, std::size_t bytes) noexcept;  // bytes as allocated
}  // namespace detail

/// A stateless standard allocator (every instance equal) that takes large arrays from the
/// pool above; use it where big arrays are made and dropped again and again.
template <class T>
class LargeBufferAllocator {
 public:
  using value_type = T;  ///< the element type
  static_assert(alignof(T) <= 4096, "LargeBufferAllocator: alignment above a page");

  LargeBufferAllocator() noexcept = default;
  /// Every instance is interchangeable with every other.
  template <class U>
  LargeBufferAllocator(const LargeBufferAllocator<U>&) noexcept {}

  /// Room for n elements: from the pool from kLargeBufferMin bytes on. Throws
  /// std::bad_array_new_length when n elements overflow size_t, std::bad_alloc when the
  /// memory cannot be had.
  T* allocate(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kLargeBufferMin) return static_cast<T*>(::operator new(bytes, std::align_val_t{alignof(T)}));
    return static_cast<T*>(detail::large_buffer_allocate(bytes));
  }

  /// Gives back what allocate(n) returned: a large buffer to the pool, warm.
  void deallocate(T* p, std::size_t n) noexcept {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kLargeBufferMin) return ::operator delete(p, bytes, std::align_val_t{alignof(T)});
    detail::large_buffer_deallocate(p, bytes);
  }

  /// Always true: memory from one instance may be freed through any other.
  template <class U>
  friend bool operator==(const LargeBufferAllocator&, const LargeBufferAllocator<U>&) noexcept {
    return true;
  }
};

/// A std::vector whose large buffers come from the pool.
template <class T>
using large_vector = std::vector<T, LargeBufferAllocator<T>>;

}  // namespace lumen
