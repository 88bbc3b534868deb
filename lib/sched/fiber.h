// Fibers: the stacks a worker switches between when a task blocks.
//
// A Fiber wraps a suspended boost::context::fiber plus what the sanitizers need to follow a
// stack switch. Stacks are mmap'd with a 64 KiB guard below them and recycled through a
// StackPool. With lumen's code built with -fstack-clash-protection (its compile flags carry
// it), a frame larger than the guard probes its pages in order, so any overflow faults in the
// guard instead of writing into a neighbouring stack; the fault is reported (stack_overflow.cpp).
#pragma once

#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>

#include <cstddef>
#include <mutex>
#include <vector>

#include "lumen/detail/mpsc_queue.h"
#include "lumen/detail/scheduler_api.h"

namespace lumen::detail {

struct Fiber : MpscNode {  // MpscNode: a parked fiber made runnable waits in its worker's resume queue
  boost::context::fiber context_switch;  // the suspended continuation; empty while the fiber runs
  bool native = false;            // the worker thread's own stack
  bool quit = false;              // set when the pool trims this fiber
  Fiber* idle_next = nullptr;     // in its worker's pool of idle fibers
  TaskContext context;            // follows the task across parks (task_context())
  // The guard below the stack, [guard_low, stack_bottom): a fault there is an overflow.
  const char* guard_low = nullptr;

  // For AddressSanitizer: the stack's bounds, and the fake stack saved while suspended.
  const void* stack_bottom = nullptr;
  std::size_t stack_size = 0;
  void* asan_fake_stack = nullptr;
  // For ThreadSanitizer: its fiber handle.
  void* tsan_fiber = nullptr;
};

// mmap'd stacks with a guard below each, reused across fibers. Thread-safe.
class StackPool {
 public:
  static constexpr std::size_t kGuardBytes = 64 * 1024;

  // max_stacks: stacks that may exist at once beyond the reserved ones (0: no limit);
  // keep_free: stacks given back that are kept mapped for reuse (the rest are unmapped).
  StackPool(std::size_t stack_size, std::size_t max_stacks, std::size_t keep_free);
  ~StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  // A stack with its guard in place. Each `reserved` take (a worker's first fiber) raises the
  // limit by one, so max_stacks bounds the stacks of tasks that block. Throws resource_error when the limit is reached or the system refuses
  // the memory or the guard; nothing is left mapped then.
  boost::context::stack_context take(bool reserved);
  void give_back(boost::context::stack_context s) noexcept;
  std::size_t stack_size() const noexcept { return size_; }

 private:
  void unmap(const boost::context::stack_context& s) const noexcept;

  std::size_t size_;  // usable bytes, a multiple of the page size
  std::size_t guard_;
  std::size_t max_;
  std::size_t keep_free_;
  std::mutex mutex_;
  std::size_t live_ = 0;      // stacks mapped
  std::size_t reserved_ = 0;  // reserved takes so far
  std::vector<boost::context::stack_context> free_;
};

// The StackAllocator boost::context::fiber wants, drawing from a StackPool.
struct PooledStack {
  StackPool* pool;
  Fiber* fiber;  // told its stack's bounds (sanitizers, the overflow report, inline runs)
  bool reserved;
  boost::context::stack_context allocate() {
    boost::context::stack_context s = pool->take(reserved);
    fiber->stack_size = s.size;
    const char* bottom = static_cast<char*>(s.sp) - s.size;
    fiber->stack_bottom = bottom;
    fiber->guard_low = bottom - StackPool::kGuardBytes;
    // A child runs inline only while half the stack is still free, so it has at least that.
    fiber->context.inline_floor = bottom + s.size / 2;
    return s;
  }
  void deallocate(boost::context::stack_context& s) noexcept { pool->give_back(s); }
};

// The fiber running on this thread (a worker), for the overflow report; null elsewhere.
extern __attribute__((tls_model("initial-exec"))) constinit thread_local const Fiber* tls_running_fiber;

// Sanitizer hooks around one switch. before_switch() runs on the fiber being left, just before
// the jump; after_switch() runs first thing on the fiber arrived at.
void before_switch(Fiber* from, Fiber* to, bool from_is_exiting) noexcept;
void after_switch(Fiber* arrived, Fiber* from) noexcept;
void* current_tsan_fiber() noexcept;
// Reports a stack overflow in a fiber by name instead of a bare SIGSEGV: installs (once per
// process) a SIGSEGV handler that recognises a fault in the running fiber's guard, and gives
// the calling thread an alternate signal stack to run it on (the faulting stack is full).
void install_overflow_report();
void* make_signal_stack();          // per worker thread; null if none could be had
void free_signal_stack(void* stack) noexcept;
void* create_tsan_fiber() noexcept;
void destroy_tsan_fiber(void* f) noexcept;

}  // namespace lumen::detail
