// Fibers: the stacks a worker switches between when a task blocks.
//
// A Fiber wraps a suspended boost::context::fiber plus what the sanitizers need to follow a
// stack switch. Stacks are mmap'd with a guard page below them (an overflow faults instead
// of corrupting a neighbour) and recycled through a StackPool.
#pragma once

#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>

#include <cstddef>
#include <mutex>
#include <vector>

#include "lumen/detail/mpsc_queue.h"

#if defined(__SANITIZE_ADDRESS__)
#define LUMEN_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define LUMEN_TSAN 1
#endif

namespace lumen::detail {

struct Fiber : MpscNode {  // MpscNode: a parked fiber made runnable waits in its worker's resume queue
  boost::context::fiber context;  // the suspended continuation; empty while the fiber runs
  bool native = false;            // the worker thread's own stack
  bool quit = false;              // set when the pool trims this fiber
  void* local = nullptr;          // fiber_local(): follows the task across parks

  // For AddressSanitizer: the stack's bounds, and the fake stack saved while suspended.
  const void* stack_bottom = nullptr;
  std::size_t stack_size = 0;
  void* asan_fake_stack = nullptr;
  // For ThreadSanitizer: its fiber handle.
  void* tsan_fiber = nullptr;
};

// mmap'd stacks with a guard page, reused across fibers. Thread-safe.
class StackPool {
 public:
  explicit StackPool(std::size_t stack_size);
  ~StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  boost::context::stack_context take();
  void give_back(boost::context::stack_context s) noexcept;

 private:
  std::size_t size_;  // usable bytes, a multiple of the page size
  std::size_t page_;
  std::mutex mutex_;
  std::vector<boost::context::stack_context> free_;
};

// The StackAllocator boost::context::fiber wants, drawing from a StackPool.
struct PooledStack {
  StackPool* pool;
  Fiber* fiber;  // told its stack's bounds, for AddressSanitizer
  boost::context::stack_context allocate() {
    boost::context::stack_context s = pool->take();
    fiber->stack_size = s.size;
    fiber->stack_bottom = static_cast<char*>(s.sp) - s.size;
    return s;
  }
  void deallocate(boost::context::stack_context& s) noexcept { pool->give_back(s); }
};

// Sanitizer hooks around one switch. before_switch() runs on the fiber being left, just before
// the jump; after_switch() runs first thing on the fiber arrived at.
void before_switch(Fiber* from, Fiber* to, bool from_is_exiting) noexcept;
void after_switch(Fiber* arrived, Fiber* from) noexcept;
void* current_tsan_fiber() noexcept;
void* create_tsan_fiber() noexcept;
void destroy_tsan_fiber(void* f) noexcept;

}  // namespace lumen::detail
