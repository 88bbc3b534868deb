// Runtime: worker count, shutdown that finishes queued work, stats, idle parking,
// resources, priorities, the runtime in scope.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <time.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gate.h"

using namespace std::chrono_literals;

namespace {

#if defined(LUMEN_TEST_SANITIZED)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif

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

// A burst of one task per worker, submitted from outside while every worker sleeps, runs on
// all of them at once: each task waits until every task of its burst has started, which needs
// a worker apiece. A lost wake-up leaves a task waiting for its 10 s limit, or never started
// (get's 20 s limit). How soon the workers wake is measured (lumen-bench --suite idle), not
// asserted here.
TEST_CASE("a burst from outside onto sleeping workers gets a worker per task") {
  constexpr unsigned kWorkers = 4;
  lumen::Runtime rt{lumen::Config{.workers = kWorkers, .idle_spin = std::chrono::microseconds(0)}};
  for (int round = 0; round < (sanitized ? 20 : 100); ++round) {
    std::this_thread::sleep_for(1ms);  // every worker asleep again
    std::atomic<unsigned> started{0};
    std::vector<lumen::ObjectRef<bool>> refs;
    for (unsigned i = 0; i < kWorkers; ++i) {
      refs.push_back(lumen::submit([&started] {
        started.fetch_add(1);
        const auto give_up = std::chrono::steady_clock::now() + 10s;
        while (started.load() < kWorkers) {
          if (std::chrono::steady_clock::now() > give_up) return false;
          std::this_thread::yield();
        }
        return true;
      }));
    }
    for (auto& r : refs) CHECK(lumen::get(r, 20s));
  }
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

// Runtimes destroyed in any order: the one in scope is always the newest that is still alive,
// and a call after all of them are gone starts the default runtime, never a freed one.
TEST_CASE("runtimes destroyed in any order") {
  auto* a = new lumen::Runtime{lumen::Config{.workers = 1}};
  auto* b = new lumen::Runtime{lumen::Config{.workers = 2}};
  auto* c = new lumen::Runtime{lumen::Config{.workers = 3}};
  auto workers_in_scope = [] { return lumen::get(lumen::submit([] { return lumen::detail::worker_scheduler(); })); };
  CHECK(workers_in_scope() == &c->scheduler());
  delete b;  // not the newest: c stays in scope
  CHECK(workers_in_scope() == &c->scheduler());
  delete c;  // a is the newest alive again
  CHECK(workers_in_scope() == &a->scheduler());
  auto* d = new lumen::Runtime{lumen::Config{.workers = 1}};
  delete a;
  CHECK(workers_in_scope() == &d->scheduler());
  delete d;
  CHECK(lumen::get(lumen::submit([] { return 7; })) == 7);  // the default runtime
}

// Every field of Config is checked when the Runtime is made.
TEST_CASE("Config fields out of range are refused with usage_error") {
  using lumen::Config;
  CHECK_THROWS_AS(lumen::Runtime(Config{.workers = 100000}), lumen::usage_error);
  CHECK_THROWS_AS(lumen::Runtime(Config{.fiber_stack_size = SIZE_MAX}), lumen::usage_error);
  CHECK_THROWS_AS(lumen::Runtime(Config{.fiber_stack_size = 0}), lumen::usage_error);
  CHECK_THROWS_AS(lumen::Runtime(Config{.fiber_stack_size = 4096}), lumen::usage_error);
  CHECK_THROWS_AS(lumen::Runtime(Config{.max_blocking_threads = 0}), lumen::usage_error);
  CHECK_THROWS_AS(lumen::Runtime(Config{.max_blocking_threads = SIZE_MAX}), lumen::usage_error);
  CHECK_THROWS_AS(lumen::Runtime(Config{.idle_spin = std::chrono::microseconds(-1)}), lumen::usage_error);
  CHECK_THROWS_AS(lumen::Runtime(Config{.idle_spin = std::chrono::hours(1)}), lumen::usage_error);
  for (double bad : {1e30, 1e300, -1.0, 0.5, std::numeric_limits<double>::infinity(), std::nan("")}) {
    INFO(bad);
    CHECK_THROWS_AS(lumen::Runtime(Config{.workers = 1, .resources = {{"gpu", bad}}}), lumen::usage_error);
  }
  CHECK_THROWS_AS(lumen::Runtime(Config{.workers = 1, .resources = {{"", 1}}}), lumen::usage_error);
  try {
    lumen::Runtime rt{Config{.fiber_stack_size = SIZE_MAX}};
  } catch (const lumen::usage_error& e) {
    CHECK(std::string(e.what()).find("fiber_stack_size") != std::string::npos);
  }
  // The limits themselves are accepted.
  lumen::Runtime small{Config{.workers = 1, .fiber_stack_size = 16 * 1024, .max_blocking_threads = 1,
                              .resources = {{"big", 4294967295.0}}, .idle_spin = std::chrono::microseconds(0)}};
  CHECK(lumen::get(lumen::task([] { return 1; }).resources({{"big", 4294967295.0}}).submit()) == 1);
}

// A task's claim on a resource is checked the same way.
TEST_CASE("resource claims out of range are refused with usage_error") {
  lumen::Runtime rt{lumen::Config{.workers = 1, .resources = {{"gpu", 2}}}};
  for (double bad : {1e30, 1e300, 3.0, 0.0, -1.0, 1.5, std::nan("")}) {
    INFO(bad);
    CHECK_THROWS_AS(lumen::task([] {}).resources({{"gpu", bad}}).submit(), lumen::usage_error);
  }
  try {
    lumen::task([] {}).resources({{"gpu", 1e30}}).submit();
  } catch (const lumen::usage_error& e) {
    CHECK(std::string(e.what()).find("1e+30") != std::string::npos);  // the number as given, not 0
  }
}

// While a Runtime's destructor waits for its tasks, a thread that submits to it gets
// shutdown_error; it never silently starts another runtime meanwhile.
TEST_CASE("submits from other threads during shutdown get shutdown_error") {
  auto* rt = new lumen::Runtime{lumen::Config{.workers = 1}};
  Gate gate;
  auto held = lumen::submit([&gate] { return lumen::get(gate.ref); });  // keeps rt draining
  std::thread destroyer([rt] { delete rt; });
  int refused = 0;
  // Wait until the destructor has started (it refuses from then on), then try a few times.
  for (int i = 0; i < 200000 && refused < 5; ++i) {
    try {
      auto r = lumen::submit([] { return 1; });
      CHECK(lumen::detail::worker_scheduler() == nullptr);
      std::this_thread::yield();
    } catch (const lumen::shutdown_error&) {
      ++refused;
    }
  }
  CHECK(refused == 5);
  gate.open(3);
  destroyer.join();
  CHECK(lumen::get(held) == 3);
}

// Threads submitting while another thread destroys the runtime: each submit succeeds (the
// task runs) or gets shutdown_error; none reads a runtime that is being freed (ThreadSanitizer
// and AddressSanitizer check that).
TEST_CASE("submitting while a runtime is destroyed on another thread") {
  for (int round = 0; round < (sanitized ? 10 : 40); ++round) {
    auto* rt = new lumen::Runtime{lumen::Config{.workers = 2}};
    std::atomic<bool> stop{false};
    std::atomic<int> ran{0}, accepted{0};
    std::vector<std::thread> submitters;
    for (int t = 0; t < 3; ++t) {
      submitters.emplace_back([&] {
        while (!stop.load()) {
          try {
            lumen::submit([&ran] { ran.fetch_add(1); });
            accepted.fetch_add(1);
          } catch (const lumen::shutdown_error&) {
          }
        }
      });
    }
    std::this_thread::sleep_for(1ms);
    delete rt;
    stop.store(true);
    for (auto& t : submitters) t.join();
    // Accepted tasks all ran: on rt, or on the default runtime once rt was gone.
    eventually([&] { return ran.load() == accepted.load(); });
    CHECK(ran.load() == accepted.load());
  }
}

// A Runtime destroyed by one of its own tasks does not wait for that task (which would never
// end): it stops taking outside work and finishes its shutdown after the task returns.
TEST_CASE("a runtime destroyed by its own task") {
  auto* rt = new lumen::Runtime{lumen::Config{.workers = 2}};
  std::atomic<bool> after{false};
  auto r = lumen::submit([rt, &after] {
    delete rt;
    after.store(true);
    return 5;
  });
  CHECK(lumen::get(r) == 5);
  CHECK(after.load());
}

// A worker of runtime A resolves the object a parked fiber of runtime B waits for; B's task
// finishes at once and B is destroyed while A's worker may still be waking B's worker. B's end
// waits for that wake-up to be over (ThreadSanitizer reported the freed Worker otherwise).
TEST_CASE("a runtime ends only after a thread of another runtime has finished waking it") {
  lumen::Runtime a{lumen::Config{.workers = 2}};
  for (int round = 0; round < 200; ++round) {
    auto parked = std::make_shared<std::atomic<bool>>(false);
    auto from_a = lumen::submit([parked, round] {
      while (!parked->load()) std::this_thread::yield();
      std::this_thread::sleep_for(std::chrono::microseconds(round % 4 * 100));  // B's worker parks, then sleeps
      return 1;
    });
    auto b = std::make_unique<lumen::Runtime>(lumen::Config{.workers = 1});
    auto from_b = lumen::submit([parked, from_a] {
      parked->store(true);
      return lumen::get(from_a) + 1;  // parks this fiber of B until A's worker resolves it
    });
    CHECK(lumen::get(from_b) == 2);
    b.reset();
  }
}

// A thread that is not a worker queues a task and then looks at the workers' idle state to
// wake one. The task may run and finish first, and another thread that saw it finish may end
// the runtime at once: the end waits until the submitting thread is done with the runtime.
// Without that wait the submitting thread reads a freed scheduler, which AddressSanitizer
// reports, but only when that thread is preempted in the few instructions between its push
// and its look: a stress test of the teardown, not a certain catch (with the wait removed it
// passed 6,000 rounds under AddressSanitizer and 900 under ThreadSanitizer).
TEST_CASE("a runtime ends only after an outside thread that queued its last task has finished waking it") {
  for (int round = 0; round < 300; ++round) {
    auto rt = std::make_unique<lumen::Runtime>(lumen::Config{.workers = 2});
    lumen::detail::Scheduler& sched = rt->scheduler();
    // Some rounds find the workers asleep, some spinning, some busy.
    if (round % 3 == 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::atomic<bool> ran{false};
    // Kept until the end: dropping it in the submitting thread would order that thread's
    // accesses before the runtime's end through the task's result, hiding a missing wait.
    lumen::ObjectRef<void> ref;
    std::thread submitter([&] { ref = lumen::detail::submit_with(sched, nullptr, [&ran] { ran.store(true); }); });
    while (!ran.load()) std::this_thread::yield();
    rt.reset();
    submitter.join();
    CHECK(ref.valid());
  }
}

// A thread that submits to two runtimes in turn keeps one queue in each; a thread that exits
// hands its queue to the next thread that submits.
TEST_CASE("threads that submit keep one queue per runtime, and pass it on when they exit") {
  lumen::Runtime a{lumen::Config{.workers = 1}};
  lumen::Runtime b{lumen::Config{.workers = 1}};
  std::thread alternating([&] {
    for (int i = 0; i < 200; ++i) {
      auto on_a = lumen::detail::submit_with(a.scheduler(), nullptr, [] { return 1; });
      auto on_b = lumen::detail::submit_with(b.scheduler(), nullptr, [] { return 2; });
      CHECK(lumen::get(on_a) + lumen::get(on_b) == 3);
    }
  });
  alternating.join();
  CHECK(a.stats().outside_queues == 1);
  CHECK(b.stats().outside_queues == 1);
  for (int i = 0; i < 100; ++i) {
    std::thread once([&] { CHECK(lumen::get(lumen::detail::submit_with(a.scheduler(), nullptr, [] { return 1; })) == 1); });
    once.join();
  }
  CHECK(a.stats().outside_queues == 1);
}

// Priority tasks submitted while every worker sleeps always wake one (the sleeper's last look
// at the priority queue is ordered with the push).
TEST_CASE("a priority task wakes a sleeping runtime") {
  lumen::Runtime rt{lumen::Config{.workers = 2, .idle_spin = std::chrono::microseconds(0)}};
  for (int i = 0; i < (sanitized ? 50 : 300); ++i) {
    eventually([&] { return rt.stats().tasks_pending == 0; });
    auto r = lumen::task([i] { return i; }).priority(1 + i % 3).submit();
    // The timeout only keeps a lost wake-up from hanging the suite.
    CHECK(lumen::get(r, 10s) == i);
  }
}
