#include "sched/fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string>

#include "lumen/error.h"

#if defined(LUMEN_DETAIL_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(LUMEN_DETAIL_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace lumen::detail {

StackPool::StackPool(std::size_t stack_size, std::size_t max_stacks, std::size_t keep_free)
    : max_(max_stacks), keep_free_(keep_free) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  size_ = (stack_size + page - 1) / page * page;
  guard_ = (kGuardBytes + page - 1) / page * page;
}

StackPool::~StackPool() {
  for (auto& s : free_) unmap(s);
}

namespace {
// AddressSanitizer keeps what it marked on a stack (frames that ended while their fiber was
// switched away, say) across unmapping and mapping at the same address: a stack starts clean.
void clean_for_asan([[maybe_unused]] const boost::context::stack_context& s) noexcept {
#if defined(LUMEN_DETAIL_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(static_cast<char*>(s.sp) - s.size, s.size);
#endif
}
}  // namespace

void StackPool::unmap(const boost::context::stack_context& s) const noexcept {
  clean_for_asan(s);
  ::munmap(static_cast<char*>(s.sp) - s.size - guard_, s.size + guard_);
}

boost::context::stack_context StackPool::take(bool reserved) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (reserved) ++reserved_;
    if (!free_.empty()) {
      boost::context::stack_context s = free_.back();
      free_.pop_back();
      clean_for_asan(s);
      return s;
    }
    if (!reserved && max_ != 0 && live_ >= max_ + reserved_)
      throw resource_error("lumen: no fiber left for a task that blocks: " + std::to_string(live_ - reserved_) +
                           " fibers exist beyond the workers' own and Config::max_fibers is " + std::to_string(max_));
    ++live_;
  }
  auto undo = [&] {
    std::lock_guard<std::mutex> lock(mutex_);
    --live_;
  };
  // The guard is a mapping of its own (PROT_NONE): every stack costs two of the process's
  // vm.max_map_count mappings, which is what usually runs out first.
  void* base = ::mmap(nullptr, size_ + guard_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {
    int err = errno;
    undo();
    throw resource_error("lumen: cannot map a fiber stack of " + std::to_string(size_) + " bytes (" +
                         std::strerror(err) + "; the process may have reached vm.max_map_count)");
  }
  if (::mprotect(base, guard_, PROT_NONE) != 0) {
    int err = errno;
    ::munmap(base, size_ + guard_);
    undo();
    throw resource_error(std::string("lumen: cannot protect the guard below a fiber stack (") + std::strerror(err) +
                         "; the process may have reached vm.max_map_count): a stack without a guard is refused");
  }
  boost::context::stack_context s;
  s.size = size_;
  s.sp = static_cast<char*>(base) + guard_ + size_;
  clean_for_asan(s);
  return s;
}

void StackPool::give_back(boost::context::stack_context s) noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_.size() < keep_free_) {
      try {
        free_.push_back(s);
        return;
      } catch (...) {
      }
    }
    --live_;
  }
  unmap(s);  // beyond what the workers keep idle: its touched pages go back to the system
}

void before_switch([[maybe_unused]] Fiber* from, [[maybe_unused]] Fiber* to,
                   [[maybe_unused]] bool from_is_exiting) noexcept {
#if defined(LUMEN_DETAIL_ASAN)
  __sanitizer_start_switch_fiber(from_is_exiting ? nullptr : &from->asan_fake_stack, to->stack_bottom, to->stack_size);
#endif
#if defined(LUMEN_DETAIL_TSAN)
  __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
}

void after_switch([[maybe_unused]] Fiber* arrived, [[maybe_unused]] Fiber* from) noexcept {
#if defined(LUMEN_DETAIL_ASAN)
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
#if defined(LUMEN_DETAIL_TSAN)
  return __tsan_get_current_fiber();
#else
  return nullptr;
#endif
}

void* create_tsan_fiber() noexcept {
#if defined(LUMEN_DETAIL_TSAN)
  return __tsan_create_fiber(0);
#else
  return nullptr;
#endif
}

void destroy_tsan_fiber([[maybe_unused]] void* f) noexcept {
#if defined(LUMEN_DETAIL_TSAN)
  if (f != nullptr) __tsan_destroy_fiber(f);
#endif
}

}  // namespace lumen::detail
