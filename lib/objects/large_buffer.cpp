#include "lumen/large_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cstdint>
#include <deque>
#include <limits>
#include <mutex>

#include "lumen/detail/large_copy.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define LUMEN_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define LUMEN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define LUMEN_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define LUMEN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#endif
#endif
#if !defined(LUMEN_POISON)
#define LUMEN_POISON(p, n) ((void)(p), (void)(n))
#define LUMEN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace lumen {
namespace {

constexpr std::size_t kHugePage = std::size_t{2} << 20;

std::size_t round_up(std::size_t x, std::size_t to) { return (x + to - 1) / to * to; }

// The mapping size of an allocation: 2 MiB steps up to 32 MiB, then 16 steps per power of two.
std::size_t size_class(std::size_t bytes) {
  if (bytes <= (std::size_t{32} << 20)) return round_up(bytes, kHugePage);
  const std::size_t step = (std::bit_floor(bytes) / 16 + kHugePage - 1) / kHugePage * kHugePage;
  return round_up(bytes, step);
}

std::size_t default_limit() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return std::size_t{1} << 30;
  return static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) / 8;
}

// A mapping of `bytes` (a multiple of 2 MiB) that starts on a 2 MiB boundary, so that the
// kernel can back all of it with huge pages.
void* map_aligned(std::size_t bytes) {
  const std::size_t span = bytes + kHugePage;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = round_up(start, kHugePage);
  if (aligned > start) munmap(raw, aligned - start);
  const std::uintptr_t end = start + span, used_end = aligned + bytes;
  if (end > used_end) munmap(reinterpret_cast<void*>(used_end), end - used_end);
  void* p = reinterpret_cast<void*>(aligned);
  madvise(p, bytes, MADV_HUGEPAGE);  // where THP is off or unsupported: 4 KiB pages, as before
  return p;
}

struct Mapping {
  void* p;
  std::size_t bytes;
};

// Freed mappings, oldest first. Found by a linear scan: the pool holds at most a few thousand
// (its limit over 2 MiB), and large allocations are rare next to the copies into them.
class BufferPool {
 public:
  static BufferPool& instance() {
    // Never destroyed: a large_vector with static storage may be freed after every static
    // object of this library is gone. The OS takes the cached mappings back at exit.
    static BufferPool* pool = new BufferPool;
    return *pool;
  }

  void* take(std::size_t bytes) {
    {
      std::lock_guard lock(mutex_);
      for (auto it = cached_.rbegin(); it != cached_.rend(); ++it) {  // the warmest first
        if (it->bytes != bytes) continue;
        void* p = it->p;
        cached_.erase(std::next(it).base());
        cached_bytes_ -= bytes;
        LUMEN_UNPOISON(p, bytes);
        return p;
      }
    }
    return map_aligned(bytes);
  }

  void give_back(void* p, std::size_t bytes) noexcept {
    std::deque<Mapping> evicted;
    {
      std::lock_guard lock(mutex_);
      if (bytes <= limit_) {
        LUMEN_POISON(p, bytes);
        cached_.push_back({p, bytes});
        cached_bytes_ += bytes;
        p = nullptr;
      }
      trim_locked(evicted);
    }
    if (p != nullptr) munmap(p, bytes);
    unmap(evicted);
  }

  void set_limit(std::size_t bytes) {
    std::deque<Mapping> evicted;
    {
      std::lock_guard lock(mutex_);
      limit_ = bytes;
      trim_locked(evicted);
    }
    unmap(evicted);
  }

  std::size_t limit() noexcept {
    std::lock_guard lock(mutex_);
    return limit_;
  }
  std::size_t cached_bytes() noexcept {
    std::lock_guard lock(mutex_);
    return cached_bytes_;
  }

 private:
  void trim_locked(std::deque<Mapping>& evicted) {
    while (cached_bytes_ > limit_) {
      evicted.push_back(cached_.front());
      cached_bytes_ -= cached_.front().bytes;
      cached_.pop_front();
    }
  }
  // Outside the lock: munmap of a large mapping takes a while.
  static void unmap(std::deque<Mapping>& ms) noexcept {
    for (const Mapping& m : ms) {
      LUMEN_UNPOISON(m.p, m.bytes);
      munmap(m.p, m.bytes);
    }
  }

  std::mutex mutex_;
  std::deque<Mapping> cached_;
  std::size_t cached_bytes_ = 0;
  std::size_t limit_ = default_limit();
};

}  // namespace

std::size_t large_buffer_cache_limit() noexcept { return BufferPool::instance().limit(); }
void set_large_buffer_cache_limit(std::size_t bytes) { BufferPool::instance().set_limit(bytes); }
std::size_t large_buffer_cached_bytes() noexcept { return BufferPool::instance().cached_bytes(); }

namespace detail {

void* large_buffer_allocate(std::size_t bytes) {
  // No mapping is that large, and rounding it up to its class would wrap around to a small one.
  if (bytes > std::numeric_limits<std::size_t>::max() / 2) throw std::bad_alloc();
  return BufferPool::instance().take(size_class(bytes));
}

void large_buffer_deallocate(void* p, std::size_t bytes) noexcept {
  if (p != nullptr) BufferPool::instance().give_back(p, size_class(bytes));
}

void advise_huge_pages(void* p, std::size_t bytes) noexcept {
  const auto start = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t first = round_up(start, kHugePage);
  const std::uintptr_t last = (start + bytes) / kHugePage * kHugePage;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
}

}  // namespace detail
}  // namespace lumen
