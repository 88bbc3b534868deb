// Runtime: worker count, shutdown that finishes queued work, stats, idle parking,
// resources, priorities, the runtime in scope.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

std::chrono::nanoseconds process_cpu_time() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// Polls `done` for up to two seconds: counters are updated just after a task's result is
// published, so a reader can be a moment early.
template <class F>
void eventually(F done) {
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
}

void note_max(std::atomic<int>& max, int now) {
  int seen = max.load();
  while (now > seen && !max.compare_exchange_weak(seen, now)) {
  }
}

std::uint64_t busy_work(std::uint64_t seed) {
  std::uint64_t x = seed;
  for (int i = 0; i < 200; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
  return x;
}

}  // namespace

// workers() reports the configured count; 0 means one per hardware thread.
TEST_CASE("workers") {
  for (unsigned n : {1u, 2u, 3u}) {
    lumen::Runtime rt{lumen::Config{.workers = n}};
    CHECK(rt.workers() == n);
    auto s = rt.stats();
    CHECK(s.workers == n);
    CHECK(s.queue_lengths.size() == n);
  }
  lumen::Runtime all{lumen::Config{}};
  CHECK(all.workers() == std::max(1u, std::thread::hardware_concurrency()));
}

// The destructor finishes every queued task, including tasks submitted while it waits;
// refs outlive the runtime and their values stay readable.
TEST_CASE("destructor resolves every queued task; refs outlive the runtime") {
  constexpr int kTasks = 10'000;
  std::vector<lumen::ObjectRef<std::uint64_t>> refs;
  std::vector<lumen::ObjectRef<lumen::ObjectRef<int>>> spawners;
  lumen::ObjectRef<int> blocked;
  {
    lumen::Runtime rt{lumen::Config{.workers = 2}};
    refs.reserve(kTasks);
    for (int i = 0; i < kTasks; ++i)
      refs.push_back(lumen::submit([](std::uint64_t s) { return busy_work(s); }, static_cast<std::uint64_t>(i)));
    // Tasks that submit more tasks while the runtime shuts down.
    for (int i = 0; i < 100; ++i)
      spawners.push_back(lumen::submit([i] { return lumen::submit([i] { return i * 2; }); }));
    // A task parked in a blocking call when shutdown starts.
    blocked = lumen::submit([] {
      return lumen::blocking([] {
        std::this_thread::sleep_for(20ms);
        return 5;
      });
    });
  }
  int unresolved = 0;
  for (const auto& r : refs) unresolved += r.ready() ? 0 : 1;
  CHECK(unresolved == 0);
  for (int i = 0; i < kTasks; ++i) CHECK(lumen::get(refs[static_cast<std::size_t>(i)]) == busy_work(static_cast<std::uint64_t>(i)));
  for (int i = 0; i < 100; ++i) {
    const auto& inner = lumen::get(spawners[static_cast<std::size_t>(i)]);
    REQUIRE(inner.ready());
    CHECK(lumen::get(inner) == i * 2);
  }
  REQUIRE(blocked.ready());
  CHECK(lumen::get(blocked) == 5);

  // The objects of a runtime that is gone are dependencies like any other for a new one.
  lumen::Runtime next{lumen::Config{.workers = 1}};
  auto sum = lumen::submit([](std::uint64_t a, int b) { return a + static_cast<std::uint64_t>(b); }, refs[1],
                           lumen::get(spawners[3]));
  CHECK(lumen::get(sum) == busy_work(1) + 6);
}

// A lumen::blocking call acts for its task: what it submits goes to the task's runtime and
// is accepted while that runtime shuts down (it is the task's own work, which shutdown waits for).
TEST_CASE("submits from a blocking call during shutdown go to the task's runtime") {
  const void* runtime_scheduler = nullptr;
  lumen::ObjectRef<lumen::ObjectRef<const void*>> outer;
  std::atomic<bool> in_blocking{false};
  {
    lumen::Runtime rt{lumen::Config{.workers = 1}};
    runtime_scheduler = &rt.scheduler();
    outer = lumen::submit([&in_blocking] {
      return lumen::blocking([&in_blocking] {
        in_blocking.store(true);
        std::this_thread::sleep_for(50ms);  // the runtime's destructor starts meanwhile
        return lumen::submit([] { return static_cast<const void*>(lumen::detail::worker_scheduler()); });
      });
    });
    while (!in_blocking.load()) std::this_thread::sleep_for(1ms);
  }
  REQUIRE(outer.ready());
  const lumen::ObjectRef<const void*>& inner = lumen::get(outer);
  CHECK(lumen::get(inner) == runtime_scheduler);
}

// stats() counts the tasks run and the live objects, which drop back when refs go.
TEST_CASE("stats") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  const auto base = rt.stats();
  CHECK(base.tasks_run == 0);
  CHECK(base.tasks_pending == 0);

  constexpr int kTasks = 1000;
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < kTasks; ++i) refs.push_back(lumen::submit([i] { return i; }));
  std::vector<lumen::ObjectRef<std::vector<char>>> puts;
  for (int i = 0; i < kTasks; ++i) puts.push_back(lumen::put(std::vector<char>(100)));
  for (auto& r : refs) lumen::get(r);

  eventually([&] { return rt.stats().tasks_run >= kTasks && rt.stats().tasks_pending == 0; });
  auto s = rt.stats();
  CHECK(s.tasks_run == kTasks);
  CHECK(s.tasks_pending == 0);
  CHECK(s.objects_live >= base.objects_live + 2 * kTasks);
  CHECK(s.object_bytes >= base.object_bytes + kTasks * 100);

  refs.clear();
  puts.clear();
  eventually([&] { return rt.stats().objects_live == base.objects_live; });
  s = rt.stats();
  CHECK(s.objects_live == base.objects_live);
  CHECK(s.object_bytes == base.object_bytes);

  // tasks_pending sees a task that has not finished.
  std::atomic<bool> release{false};
  auto held = lumen::submit([&] {
    while (!release.load()) std::this_thread::sleep_for(1ms);
  });
  CHECK(rt.stats().tasks_pending == 1);
  release.store(true);
  lumen::get(held);
  eventually([&] { return rt.stats().tasks_pending == 0; });
  CHECK(rt.stats().tasks_pending == 0);
}

// An idle runtime parks its workers: it burns little CPU while there is nothing to do.
TEST_CASE("idle workers park") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::vector<lumen::ObjectRef<std::uint64_t>> refs;
  for (int i = 0; i < 10'000; ++i) refs.push_back(lumen::submit(busy_work, static_cast<std::uint64_t>(i)));
  for (auto& r : refs) lumen::get(r);
  std::this_thread::sleep_for(100ms);
  const auto cpu0 = process_cpu_time();
  const auto wall0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(200ms);
  const auto cpu = process_cpu_time() - cpu0;
  const auto wall = std::chrono::steady_clock::now() - wall0;
  INFO("CPU " << std::chrono::duration_cast<std::chrono::microseconds>(cpu).count() << " us in "
              << std::chrono::duration_cast<std::chrono::microseconds>(wall).count() << " us of wall time");
  CHECK(cpu < 50ms);
  // And it wakes up again for new work.
  CHECK(lumen::get(lumen::submit([] { return 3; })) == 3);
}

// Runs 8 tasks on a runtime with one "gpu", each claiming it while it runs `hold`; checks
// every result and returns the most tasks seen holding it at once.
template <class Hold>
int max_gpu_holders(unsigned workers, Hold hold) {
  lumen::Runtime rt{lumen::Config{.workers = workers, .resources = {{"gpu", 1}}}};
  std::atomic<int> holders{0};
  std::atomic<int> max_holders{0};
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 8; ++i) {
    refs.push_back(lumen::task([&, i] {
                     note_max(max_holders, holders.fetch_add(1) + 1);
                     hold();
                     holders.fetch_sub(1);
                     return i;
                   })
                       .resources({{"gpu", 1}})
                       .submit());
  }
  for (int i = 0; i < 8; ++i) CHECK(lumen::get(refs[static_cast<std::size_t>(i)]) == i);
  return max_holders.load();
}

// A resource with capacity 1 lets one task hold it at a time, even when holders block.
TEST_CASE("resources limit concurrency") {
  SUBCASE("two workers, tasks that keep their thread") {
    CHECK(max_gpu_holders(2, [] { std::this_thread::sleep_for(2ms); }) == 1);
  }

  SUBCASE("one worker, holders that park in a blocking call") {
    CHECK(max_gpu_holders(1, [] { lumen::blocking([] { std::this_thread::sleep_for(2ms); }); }) == 1);
  }

  SUBCASE("capacity 2 on four workers") {
    lumen::Runtime rt{lumen::Config{.workers = 4, .resources = {{"gpu", 2}}}};
    std::atomic<int> holders{0};
    std::atomic<int> max_holders{0};
    std::vector<lumen::ObjectRef<void>> refs;
    for (int i = 0; i < 16; ++i) {
      refs.push_back(lumen::task([&] {
                       note_max(max_holders, holders.fetch_add(1) + 1);
                       std::this_thread::sleep_for(1ms);
                       holders.fetch_sub(1);
                     })
                         .resources({{"gpu", 1}})
                         .submit());
    }
    // Tasks claiming both units exclude every other holder.
    for (int i = 0; i < 4; ++i) {
      refs.push_back(lumen::task([&] {
                       int before = holders.fetch_add(2);
                       note_max(max_holders, before + 2);
                       std::this_thread::sleep_for(1ms);
                       holders.fetch_sub(2);
                     })
                         .resources({{"gpu", 2}})
                         .submit());
    }
    lumen::get(refs);
    CHECK(max_holders.load() <= 2);
  }

  SUBCASE("a task that retries gives its units back between attempts") {
    lumen::Runtime rt{lumen::Config{.workers = 2, .resources = {{"gpu", 1}}}};
    std::atomic<int> holders{0};
    std::atomic<int> max_holders{0};
    std::atomic<int> attempts{0};
    auto flaky = lumen::task([&] {
                   note_max(max_holders, holders.fetch_add(1) + 1);
                   std::this_thread::sleep_for(1ms);
                   holders.fetch_sub(1);
                   if (attempts.fetch_add(1) < 2) throw std::runtime_error("again");
                   return 1;
                 })
                     .resources({{"gpu", 1}})
                     .retries(2)
                     .submit();
    std::vector<lumen::ObjectRef<int>> others;
    for (int i = 0; i < 6; ++i) {
      others.push_back(lumen::task([&] {
                         note_max(max_holders, holders.fetch_add(1) + 1);
                         std::this_thread::sleep_for(1ms);
                         holders.fetch_sub(1);
                         return 1;
                       })
                           .resources({{"gpu", 1}})
                           .submit());
    }
    CHECK(lumen::get(flaky) == 1);
    CHECK(attempts.load() == 3);
    for (auto& r : others) CHECK(lumen::get(r) == 1);
    CHECK(max_holders.load() == 1);
  }

  SUBCASE("claims beyond capacity are refused at submit") {
    lumen::Runtime rt{lumen::Config{.workers = 2, .resources = {{"gpu", 1}}}};
    CHECK_THROWS_AS(lumen::task([] { return 1; }).resources({{"gpu", 2}}).submit(), lumen::usage_error);
    CHECK_THROWS_AS(lumen::task([] { return 1; }).resources({{"CPU", 3}}).submit(), lumen::usage_error);
    // "CPU" is always there, equal to the workers.
    CHECK(lumen::get(lumen::task([] { return 1; }).resources({{"CPU", 2}}).submit()) == 1);
    CHECK(lumen::get(lumen::task([] { return 2; }).resources({{"CPU", 1}, {"gpu", 1}}).submit()) == 2);
  }
}

// Priorities are accepted; among queued tasks, higher priorities run first.
TEST_CASE("priority") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  CHECK(lumen::get(lumen::task([] { return 1; }).priority(5).submit()) == 1);
  CHECK(lumen::get(lumen::task([] { return 2; }).priority(-1).submit()) == 2);

  std::atomic<bool> started{false};
  std::atomic<bool> release{false};
  auto holder = lumen::submit([&] {
    started.store(true);
    while (!release.load()) std::this_thread::sleep_for(1ms);  // holds the only worker
  });
  while (!started.load()) std::this_thread::sleep_for(1ms);

  std::mutex order_mutex;
  std::vector<int> order;
  std::vector<lumen::ObjectRef<void>> refs;
  for (int i = 0; i < 10; ++i) {
    for (int p : {0, 2, 1}) {
      refs.push_back(lumen::task([&, p] {
                       std::lock_guard<std::mutex> lock(order_mutex);
                       order.push_back(p);
                     })
                         .priority(p)
                         .submit());
    }
  }
  release.store(true);
  lumen::get(holder);
  lumen::wait(refs, refs.size());  // not get: this thread must not run a queued task itself
  REQUIRE(order.size() == 30);
  CHECK(std::is_sorted(order.begin(), order.end(), std::greater<int>()));
}

// Free functions use the newest live runtime, and the previous one again once it is gone.
TEST_CASE("the runtime in scope") {
  lumen::Runtime outer{lumen::Config{.workers = 1}};
  {
    lumen::Runtime inner{lumen::Config{.workers = 2}};
    auto r = lumen::submit([] {});
    lumen::wait(std::vector<lumen::ObjectRef<void>>{r}, 1);  // run by a worker, not in place
    eventually([&] { return inner.stats().tasks_run >= 1; });
    CHECK(inner.stats().tasks_run == 1);
    CHECK(outer.stats().tasks_run == 0);
  }
  auto r = lumen::submit([] {});
  lumen::wait(std::vector<lumen::ObjectRef<void>>{r}, 1);
  eventually([&] { return outer.stats().tasks_run >= 1; });
  CHECK(outer.stats().tasks_run == 1);
}
