#include "fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <new>

#if defined(LUMEN_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(LUMEN_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace lumen::detail {

StackPool::StackPool(std::size_t stack_size) : page_(static_cast<std::size_t>(::sysconf(_SC_PAGESIZE))) {
  if (stack_size < 16 * 1024) stack_size = 16 * 1024;
  size_ = (stack_size + page_ - 1) / page_ * page_;
}

StackPool::~StackPool() {
  for (auto& s : free_) ::munmap(static_cast<char*>(s.sp) - s.size - page_, s.size + page_);
}

boost::context::stack_context StackPool::take() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!free_.empty()) {
      boost::context::stack_context s = free_.back();
      free_.pop_back();
      return s;
    }
  }
  void* base = ::mmap(nullptr, size_ + page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) throw std::bad_alloc();
  ::mprotect(base, page_, PROT_NONE);  // the guard page, below the stack (stacks grow down)
  boost::context::stack_context s;
  s.size = size_;
  s.sp = static_cast<char*>(base) + page_ + size_;
  return s;
}

void StackPool::give_back(boost::context::stack_context s) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    free_.push_back(s);
  } catch (...) {
    ::munmap(static_cast<char*>(s.sp) - s.size - page_, s.size + page_);
  }
}

void before_switch([[maybe_unused]] Fiber* from, [[maybe_unused]] Fiber* to,
                   [[maybe_unused]] bool from_is_exiting) noexcept {
#if defined(LUMEN_ASAN)
  __sanitizer_start_switch_fiber(from_is_exiting ? nullptr : &from->asan_fake_stack, to->stack_bottom, to->stack_size);
#endif
#if defined(LUMEN_TSAN)
  __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
}

void after_switch([[maybe_unused]] Fiber* arrived, [[maybe_unused]] Fiber* from) noexcept {
#if defined(LUMEN_ASAN)
  const void* bottom = nullptr;
  std::size_t size = 0;
  __sanitizer_finish_switch_fiber(arrived->asan_fake_stack, &bottom, &size);
  if (from != nullptr && from->stack_bottom == nullptr) {  // the thread's own stack: learn its bounds
    from->stack_bottom = bottom;
    from->stack_size = size;
  }
#endif
}

void* current_tsan_fiber() noexcept {
#if defined(LUMEN_TSAN)
  return __tsan_get_current_fiber();
#else
  return nullptr;
#endif
}

void* create_tsan_fiber() noexcept {
#if defined(LUMEN_TSAN)
  return __tsan_create_fiber(0);
#else
  return nullptr;
#endif
}

void destroy_tsan_fiber([[maybe_unused]] void* f) noexcept {
#if defined(LUMEN_TSAN)
  if (f != nullptr) __tsan_destroy_fiber(f);
#endif
}

}  // namespace lumen::detail
