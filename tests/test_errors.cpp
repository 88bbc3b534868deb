// Errors: exceptions keep their type through get, dependents fail without running,
// error_of describes the failure, retries, and the errors lumen raises itself.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct NotAnException {
  int code;
};

// Counts live exception objects, to see when a failure is freed.
struct CountedError {
  static inline std::atomic<int> alive{0};
  CountedError() { ++alive; }
  CountedError(const CountedError&) { ++alive; }
  ~CountedError() { --alive; }
};

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Waits until the object is resolved, whether it failed or not.
template <class T>
void settle(const lumen::ObjectRef<T>& r) {
  lumen::wait(std::vector<lumen::ObjectRef<T>>{r}, 1);
  REQUIRE(r.ready());
}

}  // namespace

// get rethrows a task's exception with its original type and contents.
TEST_CASE("exceptions keep their type through get") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};

  auto oor = lumen::submit([]() -> int { throw std::out_of_range("index 7"); });
  CHECK_THROWS_AS(lumen::get(oor), std::out_of_range);
  CHECK_THROWS_WITH(lumen::get(oor), "index 7");
  CHECK_THROWS_AS(lumen::get(oor), std::out_of_range);  // again: the error stays with the object

  auto rte = lumen::submit([] { throw std::runtime_error("runtime"); });  // a void task
  CHECK_THROWS_AS(lumen::get(rte), std::runtime_error);
  CHECK_THROWS_WITH(lumen::get(rte), "runtime");

  auto custom = lumen::submit([]() -> int { throw NotAnException{17}; });
  try {
    lumen::get(custom);
    FAIL("get did not throw");
  } catch (const NotAnException& e) {
    CHECK(e.code == 17);
  }

  auto integer = lumen::submit([]() -> std::string { throw 42; });
  try {
    lumen::get(integer);
    FAIL("get did not throw");
  } catch (int v) {
    CHECK(v == 42);
  }

  // A temporary ref, and a timed get, rethrow the same way. (The task is let finish first: if
  // its worker dropped the last reference while this thread still handles the exception,
  // ThreadSanitizer would flag the exception's refcount, kept in uninstrumented libstdc++.)
  auto temp = lumen::submit([]() -> int { throw std::out_of_range("tmp"); });
  for (int i = 0; i < 2000 && rt.stats().tasks_pending != 0; ++i) std::this_thread::sleep_for(1ms);
  CHECK_THROWS_AS(lumen::get(std::move(temp)), std::out_of_range);
  CHECK_THROWS_AS(lumen::get(oor, 1s), std::out_of_range);

  // A task that gets a failed ref sees the exception too, and may handle it.
  auto handled = lumen::submit([oor] {
    try {
      return lumen::get(oor);
    } catch (const std::out_of_range&) {
      return -1;
    }
  });
  CHECK(lumen::get(handled) == -1);
}

// A task whose dependency failed does not run; its result fails with the same exception.
TEST_CASE("dependents fail with the same error without running") {
  for (unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    std::atomic<int> runs{0};
    auto bad = lumen::task([]() -> int { throw std::out_of_range("root cause"); }).name("root").submit();
    auto dep1 = lumen::submit([&](int x) { runs.fetch_add(1); return x + 1; }, bad);
    auto dep2 = lumen::submit([&](int x) { runs.fetch_add(1); return x + 1; }, dep1);
    auto ok = lumen::put(5);
    auto dep3 = lumen::submit([&](int a, int b) { runs.fetch_add(1); return a + b; }, ok, dep2);  // one of two failed
    auto dep4 = lumen::submit([&](int) { runs.fetch_add(1); }, dep3);                            // void
    CHECK_THROWS_AS(lumen::get(dep1), std::out_of_range);
    CHECK_THROWS_AS(lumen::get(dep2), std::out_of_range);
    CHECK_THROWS_WITH(lumen::get(dep3), "root cause");
    CHECK_THROWS_AS(lumen::get(dep4), std::out_of_range);
    CHECK(runs.load() == 0);

    // The dependent's failure names the task that threw.
    auto why = lumen::error_of(dep3);
    REQUIRE(why.has_value());
    CHECK(why->task_name() == "root");

    // A dependent on a ref whose task fails later does not run either.
    std::promise<void> go;
    std::shared_future<void> go_f = go.get_future().share();
    auto late = lumen::submit([go_f]() -> int {
      lumen::blocking([go_f] { go_f.wait(); });
      throw std::runtime_error("late");
    });
    auto late_dep = lumen::submit([&](int x) { runs.fetch_add(1); return x; }, late);
    go.set_value();
    CHECK_THROWS_AS(lumen::get(late_dep), std::runtime_error);
    CHECK(runs.load() == 0);
  }
}

// A failure is freed with the last ref that names it, its dependents' refs included: the
// exception object does not outlive them.
TEST_CASE("failures are freed with their last ref") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto settle_tasks = [&] {
    for (int i = 0; i < 2000 && rt.stats().tasks_pending != 0; ++i) std::this_thread::sleep_for(1ms);
  };
  SUBCASE("a failed task") {
    const int before = CountedError::alive.load();
    {
      auto bad = lumen::submit([]() -> int { throw CountedError{}; });
      CHECK_THROWS_AS(lumen::get(bad), CountedError);
      settle_tasks();
    }
    CHECK(CountedError::alive.load() == before);
  }
  SUBCASE("a failed task and dependents that failed with it") {
    const int before = CountedError::alive.load();
    {
      auto bad = lumen::submit([]() -> int { throw CountedError{}; });
      auto dep = lumen::submit([](int x) { return x; }, bad);
      auto dep2 = lumen::submit([](int x, int y) { return x + y; }, dep, lumen::put(1));
      CHECK_THROWS_AS(lumen::get(dep2), CountedError);
      CHECK_THROWS_AS(lumen::get(bad), CountedError);
      CHECK(CountedError::alive.load() > before);
      settle_tasks();
    }
    CHECK(CountedError::alive.load() == before);
  }
}

// error_of gives the failing task's name, its exception, and a description naming both.
TEST_CASE("error_of describes the failure") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto r = lumen::task([]() -> int { throw std::out_of_range("index 7 of 3"); }).name("loader").submit();
  settle(r);
  std::optional<lumen::task_error> e = lumen::error_of(r);
  REQUIRE(e.has_value());
  CHECK(e->task_name() == "loader");
  const std::string what = e->what();
  INFO("what(): " << what);
  CHECK(contains(what, "loader"));
  CHECK(contains(what, "out_of_range"));
  CHECK(contains(what, "index 7 of 3"));
  REQUIRE(e->cause() != nullptr);
  CHECK_THROWS_AS(std::rethrow_exception(e->cause()), std::out_of_range);
  CHECK_THROWS_AS(throw *e, lumen::error);  // task_error is a lumen::error

  // A custom type that is not a std::exception is named too.
  auto custom = lumen::task([]() -> int { throw NotAnException{3}; }).name("custom").submit();
  settle(custom);
  auto ce = lumen::error_of(custom);
  REQUIRE(ce.has_value());
  CHECK(ce->task_name() == "custom");
  INFO("what(): " << ce->what());
  CHECK(contains(ce->what(), "NotAnException"));

  // An unnamed task has an empty name.
  auto unnamed = lumen::submit([] { throw std::runtime_error("x"); });
  settle(unnamed);
  auto ue = lumen::error_of(unnamed);
  REQUIRE(ue.has_value());
  CHECK(ue->task_name().empty());
  CHECK(contains(ue->what(), "runtime_error"));

  // No error for a ready object, an empty ref, or a pending one.
  auto good = lumen::submit([] { return 1; });
  lumen::get(good);
  CHECK_FALSE(lumen::error_of(good).has_value());
  CHECK_FALSE(lumen::error_of(lumen::ObjectRef<int>{}).has_value());
  std::promise<void> go;
  std::shared_future<void> go_f = go.get_future().share();
  auto pending = lumen::submit([go_f] { lumen::blocking([go_f] { go_f.wait(); }); });
  CHECK_FALSE(lumen::error_of(pending).has_value());
  go.set_value();
  lumen::get(pending);
}

// retries(n): a task that throws runs again, up to n more times.
TEST_CASE("retries") {
  for (unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    auto flaky = [](std::atomic<int>* runs) {
      return [runs] {
        if (runs->fetch_add(1) < 2) throw std::runtime_error("flaky");
        return 42;
      };
    };
    {
      std::atomic<int> runs{0};
      auto r = lumen::task(flaky(&runs)).retries(2).submit();
      CHECK(lumen::get(r) == 42);
      CHECK(runs.load() == 3);
    }
    {
      std::atomic<int> runs{0};
      auto r = lumen::task(flaky(&runs)).retries(1).submit();
      CHECK_THROWS_AS(lumen::get(r), std::runtime_error);
      CHECK(runs.load() == 2);
    }
    {
      std::atomic<int> runs{0};  // no retries: one run
      auto r = lumen::task(flaky(&runs)).submit();
      CHECK_THROWS_AS(lumen::get(r), std::runtime_error);
      CHECK(runs.load() == 1);
    }
    {
      // Each attempt sees the same arguments: they are not moved away by a failed attempt.
      std::atomic<int> runs{0};
      auto r = lumen::task([&runs](std::vector<int> v, int dep) {
                 if (runs.fetch_add(1) < 2) throw std::runtime_error("again");
                 return static_cast<int>(v.size()) + dep;
               })
                   .retries(5)
                   .submit(std::vector<int>(10, 1), lumen::put(100));
      CHECK(lumen::get(r) == 110);
      CHECK(runs.load() == 3);
    }
  }
}

// retry_on<E...>(): only those exceptions (and ones derived from them) are retried.
TEST_CASE("retry_on retries the listed exceptions only") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::atomic<int> runs{0};
  auto r = lumen::task([&runs] {
             if (runs.fetch_add(1) < 2) throw std::range_error("derives from runtime_error");
             return 7;
           })
               .retries(5)
               .retry_on<std::runtime_error>()
               .submit();
  CHECK(lumen::get(r) == 7);
  CHECK(runs.load() == 3);

  runs = 0;
  auto other = lumen::task([&runs]() -> int {
                 runs.fetch_add(1);
                 throw std::logic_error("not listed");
               })
                   .retries(5)
                   .retry_on<std::runtime_error, std::bad_alloc>()
                   .submit();
  CHECK_THROWS_AS(lumen::get(other), std::logic_error);
  CHECK(runs.load() == 1);
  CHECK(lumen::error_of(other)->attempts() == 1);
}

// Every attempt counts: in the error (attempts(), and its text) and in the runtime's stats.
TEST_CASE("a task that fails after retries says how many attempts it made") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  const std::uint64_t before = rt.stats().task_retries;
  auto r = lumen::task([]() -> int { throw std::runtime_error("always"); }).name("stubborn").retries(3).submit();
  CHECK_THROWS_AS(lumen::get(r), std::runtime_error);
  auto e = lumen::error_of(r);
  REQUIRE(e.has_value());
  CHECK(e->attempts() == 4);
  CHECK(std::string(e->what()).find("after 4 attempts") != std::string::npos);
  CHECK(std::string(e->what()).find("stubborn") != std::string::npos);
  CHECK(rt.stats().task_retries - before == 3);
}

// retry_backoff: each retry waits at least its share of the growing delay (without jitter
// the waits are exactly 2, 4, 8, 8 ms: doubled, then capped). The task holds no worker while
// it waits: the one worker runs other tasks meanwhile.
TEST_CASE("retries back off exponentially up to the cap") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  using Clock = std::chrono::steady_clock;
  std::vector<Clock::time_point> starts;
  std::atomic<int> others{0};
  std::atomic<bool> others_queued{false};
  int others_by_last_attempt = -1;
  auto r = lumen::task([&] {
             // The first attempt fails only once the other tasks are queued behind it.
             while (!others_queued.load()) std::this_thread::yield();
             starts.push_back(Clock::now());
             if (starts.size() < 5) throw std::runtime_error("not yet");
             others_by_last_attempt = others.load();
             return static_cast<int>(starts.size());
           })
               .retries(4)
               .retry_backoff(std::chrono::milliseconds(2), std::chrono::milliseconds(8), 2.0, 0.0)
               .submit();
  std::vector<lumen::ObjectRef<void>> meanwhile;
  for (int i = 0; i < 20; ++i) meanwhile.push_back(lumen::submit([&others] { others.fetch_add(1); }));
  others_queued.store(true);
  CHECK(lumen::get(r) == 5);
  for (auto& m : meanwhile) lumen::get(m);
  CHECK(others_by_last_attempt > 0);  // a retry that held the worker while it waited would see 0
  const std::chrono::milliseconds planned[] = {std::chrono::milliseconds(2), std::chrono::milliseconds(4),
                                               std::chrono::milliseconds(8), std::chrono::milliseconds(8)};
  REQUIRE(starts.size() == 5);
  for (std::size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(starts[i + 1] - starts[i] >= planned[i]);
  }
}

// A runtime that ends does not wait out a retry's delay: the retry runs at once and its
// result resolves.
TEST_CASE("a retry waiting for its delay runs when the runtime ends") {
  std::atomic<int> runs{0};
  lumen::ObjectRef<int> r;
  {
    lumen::Runtime rt{lumen::Config{.workers = 1}};
    r = lumen::task([&runs] {
          if (runs.fetch_add(1) == 0) throw std::runtime_error("first");
          return 3;
        })
            .retries(1)
            .retry_backoff(std::chrono::hours(1), std::chrono::hours(1))
            .submit();
    while (runs.load() == 0) std::this_thread::yield();
  }
  CHECK(lumen::get(r) == 3);
  CHECK(runs.load() == 2);
}

TEST_CASE("retry options out of range are usage errors") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  auto f = [] { return 1; };
  using std::chrono::milliseconds;
  CHECK_THROWS_AS(lumen::task(f).retries(1).retry_backoff(milliseconds(-1)).submit(), lumen::usage_error);
  CHECK_THROWS_AS(lumen::task(f).retries(1).retry_backoff(milliseconds(1), milliseconds(10), 0.5).submit(),
                  lumen::usage_error);
  CHECK_THROWS_AS(lumen::task(f).retries(1).retry_backoff(milliseconds(1), milliseconds(10), std::nan("")).submit(),
                  lumen::usage_error);
  CHECK_THROWS_AS(lumen::task(f).retries(1).retry_backoff(milliseconds(1), milliseconds(10), 2.0, 1.5).submit(),
                  lumen::usage_error);
  CHECK_THROWS_AS(lumen::task(f).retries(1).retry_backoff(milliseconds(10), milliseconds(1)).submit(),
                  lumen::usage_error);
  CHECK(lumen::get(lumen::task(f).retries(1).retry_backoff(milliseconds(1), milliseconds::max()).submit()) == 1);
  // Durations of any type: NaN is refused when given, huge ones saturate, negative ones refused.
  const std::chrono::duration<double> nan_seconds(std::nan(""));
  CHECK_THROWS_AS(lumen::task(f).retry_backoff(nan_seconds), lumen::usage_error);
  CHECK_THROWS_AS(lumen::task(f).retries(1).retry_backoff(std::chrono::duration<std::int8_t>(-1)).submit(),
                  lumen::usage_error);
  CHECK(lumen::get(lumen::task(f)
                       .retries(1)
                       .retry_backoff(std::chrono::hours::max(), std::chrono::duration<double>(1e300))
                       .submit()) == 1);
}

// Misuse is reported at submit with usage_error.
TEST_CASE("usage errors at submit") {
  lumen::Runtime rt{lumen::Config{.workers = 1, .resources = {{"gpu", 2}}}};
  auto f = [] { return 1; };
  CHECK_THROWS_AS(lumen::task(f).retries(-1).submit(), lumen::usage_error);
  CHECK_THROWS_AS(lumen::task(f).resources({{"tpu", 1}}).submit(), lumen::usage_error);
  CHECK_THROWS_AS(lumen::task(f).resources({{"gpu", 3}}).submit(), lumen::usage_error);
  CHECK_THROWS_AS(lumen::task(f).resources({{"gpu", 0.5}}).submit(), lumen::usage_error);
  CHECK_THROWS_AS(lumen::task(f).resources({{"gpu", -1}}).submit(), lumen::usage_error);
  CHECK_THROWS_AS(lumen::task(f).resources({{"", 1}}).submit(), lumen::usage_error);
  CHECK_THROWS_AS(lumen::submit([](int x) { return x; }, lumen::ObjectRef<int>{}), lumen::usage_error);
  // Retries need arguments that can be passed again.
  CHECK_THROWS_AS(lumen::task([](std::unique_ptr<int> p) { return *p; }).retries(1).submit(std::make_unique<int>(1)),
                  lumen::usage_error);
  // Valid options still work after the failed submits.
  CHECK(lumen::get(lumen::task(f).name("fine").retries(0).resources({{"gpu", 2}}).submit()) == 1);
  // Bad Config values are usage errors too.
  CHECK_THROWS_AS(lumen::Runtime(lumen::Config{.workers = 1, .resources = {{"gpu", 1.5}}}), lumen::usage_error);
  CHECK_THROWS_AS(lumen::Runtime(lumen::Config{.workers = 1, .resources = {{"", 1}}}), lumen::usage_error);
}

// A thread that is not a worker submitting to a runtime that is shutting down gets
// shutdown_error. The free functions switch to another runtime as soon as shutdown begins,
// so this reaches the stopping runtime through Runtime::scheduler().
TEST_CASE("submit during shutdown throws shutdown_error") {
  auto rt = std::make_unique<lumen::Runtime>(lumen::Config{.workers = 1});
  lumen::detail::Scheduler& sched = rt->scheduler();
  std::atomic<bool> release{false};
  std::atomic<bool> started{false};
  // Holds the worker so that the destructor has to wait.
  auto holder = lumen::submit([&] {
    started.store(true);
    while (!release.load()) std::this_thread::sleep_for(1ms);
    return 1;
  });
  while (!started.load()) std::this_thread::sleep_for(1ms);

  std::thread destroyer([&] { rt.reset(); });
  bool refused = false;
  std::vector<lumen::ObjectRef<int>> accepted;  // submitted before shutdown began: they still run
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!refused && std::chrono::steady_clock::now() < deadline) {
    try {
      accepted.push_back(lumen::detail::submit_with(sched, nullptr, [] { return 2; }));
      std::this_thread::sleep_for(100us);
    } catch (const lumen::shutdown_error&) {
      refused = true;
    }
  }
  release.store(true);
  destroyer.join();
  CHECK(refused);
  CHECK(lumen::get(holder) == 1);
  for (auto& r : accepted) CHECK(lumen::get(r) == 2);
}

namespace {
// An exception type whose what() returns null, as a careless user type may.
struct NullWhat : std::exception {
  const char* what() const noexcept override { return nullptr; }
};
}  // namespace

// A task throwing an exception with no text fails its result like any other; the runtime and
// the process carry on.
TEST_CASE("an exception whose what() returns null") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto a = lumen::task([]() -> int { throw NullWhat{}; }).name("null-what").submit();
  // By hand: doctest's CHECK_THROWS_AS reads what() of the exception it catches.
  bool caught = false;
  try {
    lumen::get(a);
  } catch (const NullWhat&) {
    caught = true;
  }
  CHECK(caught);
  auto why = lumen::error_of(a);
  REQUIRE(why.has_value());
  CHECK(std::string(why->what()).find("null-what") != std::string::npos);
  CHECK(std::string(why->what()).find("NullWhat") != std::string::npos);
  CHECK(lumen::get(lumen::submit([] { return 1; })) == 1);
}
