// Allocation failures on paths that cannot throw: a worker's deque that cannot grow, a
// thread's queue that cannot grow. This program replaces operator new so that large
// allocations fail while `refuse_large` is set; the task must still run, through the
// runtime's queues that need no memory.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

namespace {
std::atomic<bool> refuse_large{false};
std::atomic<int> refused{0};
constexpr std::size_t kLarge = 16 * 1024;

void* checked_allocation(std::size_t n) {
  if (n >= kLarge && refuse_large.load(std::memory_order_relaxed)) {
    refused.fetch_add(1, std::memory_order_relaxed);
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t n) { return checked_allocation(n); }
void* operator new[](std::size_t n) { return checked_allocation(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

// A task that spawns more children than its deque holds while the deque cannot grow: the
// overflow goes to the shared queue and every child runs.
TEST_CASE("a deque that cannot grow sends its overflow to the shared queue") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};  // nobody steals: the deque must hold them all
  std::atomic<int> ran{0};
  auto r = lumen::submit([&ran] {
    refuse_large.store(true);
    lumen::task_group g;
    for (int i = 0; i < 3'000; ++i) g.run([&ran] { ran.fetch_add(1); });  // the deque stops at 1024
    g.wait();
    refuse_large.store(false);
    return 1;
  });
  CHECK(lumen::get(r) == 1);
  CHECK(ran.load() == 3'000);
  CHECK(refused.load() > 0);
}

// A thread outside the workers submits more than its queue holds (1024) while it cannot grow. The
// only worker spins (without parking, so it runs nothing else) until all are submitted, so
// the thread's queue must fill whatever the timing.
TEST_CASE("a thread's queue that cannot grow sends its overflow to the shared queue") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  refused.store(0);
  std::vector<lumen::ObjectRef<int>> refs;
  refs.reserve(4'001);
  std::atomic<bool> worker_busy{false}, submitted{false};
  refs.push_back(lumen::submit([&] {
    worker_busy.store(true);
    while (!submitted.load()) std::this_thread::yield();
    return 0;
  }));
  while (!worker_busy.load()) std::this_thread::yield();
  refuse_large.store(true);
  for (int i = 1; i <= 4'000; ++i) refs.push_back(lumen::submit([i] { return i; }));
  refuse_large.store(false);
  submitted.store(true);
  long sum = 0;
  for (auto& r : refs) sum += lumen::get(r);
  CHECK(sum == 4'000L * 4'001 / 2);
  CHECK(refused.load() > 0);
}
