// Promise (an object resolved from outside any task) and on_resolved (a callback when an
// object resolves): values, errors, dropped promises, misuse, and both under many threads.
#include <doctest/doctest.h>
#include <lumen/lumen.h>
#include <lumen/on_resolved.h>
#include <lumen/promise.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("a promise's value reaches get, tasks that take its ref, and wait") {
  lumen::Runtime rt{{.workers = 2}};
  lumen::Promise<std::string> p;
  auto r = p.ref();
  auto len = lumen::submit([](const std::string& s) { return s.size(); }, r);
  CHECK_FALSE(r.ready());
  CHECK(lumen::wait(std::vector{r}, 1, 10ms).ready.empty());
  std::thread setter([&] { p.set_value(std::string(100, 'x')); });
  CHECK(lumen::get(len) == 100u);
  CHECK(lumen::get(r) == std::string(100, 'x'));
  CHECK(p.resolved());
  setter.join();
}

TEST_CASE("a promise's exception keeps its type through get and fails dependent tasks") {
  lumen::Runtime rt{{.workers = 2}};
  lumen::Promise<int> p;
  auto r = p.ref();
  auto twice = lumen::submit([](int x) { return 2 * x; }, r);
  p.set_exception(std::make_exception_ptr(std::out_of_range("no such row")));
  CHECK_THROWS_AS(lumen::get(r), std::out_of_range);
  CHECK_THROWS_WITH_AS(lumen::get(twice), "no such row", std::out_of_range);
}

TEST_CASE("a promise destroyed unresolved fails its object instead of leaving waiters hanging") {
  lumen::Runtime rt{{.workers = 2}};
  lumen::ObjectRef<int> r;
  lumen::ObjectRef<int> dependent;
  {
    lumen::Promise<int> p;
    r = p.ref();
    dependent = lumen::submit([](int x) { return x; }, r);
  }
  CHECK_THROWS_AS(lumen::get(r), lumen::cancelled_error);
  CHECK_THROWS_AS(lumen::get(dependent), lumen::cancelled_error);
  // Moving a promise hands over the duty: the moved-from one resolves nothing.
  lumen::Promise<int> a;
  auto ra = a.ref();
  lumen::Promise<int> b(std::move(a));
  lumen::Promise<int> c;
  auto rc = c.ref();
  c = std::move(b);  // c's own object is abandoned by the assignment
  CHECK_THROWS_AS(lumen::get(rc), lumen::cancelled_error);
  CHECK_FALSE(ra.ready());
  c.set_value(7);
  CHECK(lumen::get(ra) == 7);
}

TEST_CASE("promise misuse is refused with a clear error") {
  lumen::Runtime rt{{.workers = 1}};
  lumen::Promise<int> p;
  p.set_value(1);
  CHECK_THROWS_WITH_AS(p.set_value(2), "lumen: set_value on a Promise that is already resolved", lumen::usage_error);
  CHECK_THROWS_AS(p.set_exception(std::make_exception_ptr(std::runtime_error("x"))), lumen::usage_error);
  CHECK(lumen::get(p.ref()) == 1);
  lumen::Promise<int> q;
  CHECK_THROWS_AS(q.set_exception(nullptr), lumen::usage_error);
  CHECK_FALSE(q.resolved());
  lumen::Promise<int> moved(std::move(q));
  CHECK_THROWS_AS(q.ref(), lumen::usage_error);
  CHECK_THROWS_AS(q.set_value(3), lumen::usage_error);
  // A promise's object has no task behind it: cancel() has nothing to stop.
  CHECK_FALSE(lumen::cancel(moved.ref()));
  moved.set_value(4);
  CHECK(lumen::get(moved.ref()) == 4);
}

TEST_CASE("a value whose construction throws fails the object with that exception") {
  struct Picky {
    explicit Picky(int v) {
      if (v < 0) throw std::invalid_argument("negative");
    }
  };
  lumen::Runtime rt{{.workers = 1}};
  lumen::Promise<Picky> p;
  CHECK_THROWS_AS(p.set_value(-1), std::invalid_argument);
  CHECK_THROWS_AS(lumen::get(p.ref()), std::invalid_argument);
  lumen::Promise<void> v;
  v.set_value();
  lumen::get(v.ref());
}

TEST_CASE("on_resolved runs once, after the value is visible, on values and errors") {
  lumen::Runtime rt{{.workers = 2}};
  std::atomic<int> seen{0};
  auto slow = lumen::submit([] {
    std::this_thread::sleep_for(20ms);
    return 41;
  });
  lumen::on_resolved(slow, [slow, &seen]() noexcept { seen.fetch_add(lumen::get(slow) + 1); });
  auto bad = lumen::submit([]() -> int { throw std::runtime_error("boom"); });
  std::atomic<bool> saw_error{false};
  lumen::on_resolved(bad, [bad, &saw_error]() noexcept {
    try {
      lumen::get(bad);
    } catch (const std::runtime_error&) {
      saw_error = true;
    }
  });
  lumen::get(slow);
  lumen::wait(std::vector{bad}, 1);
  // The callbacks run on the resolving thread after publication: wait for them to be done.
  for (int i = 0; i < 2000 && (seen.load() == 0 || !saw_error.load()); ++i) std::this_thread::sleep_for(1ms);
  CHECK(seen.load() == 42);
  CHECK(saw_error.load());
  // Already resolved: the callback runs at once on this thread.
  std::thread::id where{};
  lumen::on_resolved(slow, [&where]() noexcept { where = std::this_thread::get_id(); });
  CHECK(where == std::this_thread::get_id());
  CHECK_THROWS_AS(lumen::on_resolved(lumen::ObjectRef<int>{}, []() noexcept {}), lumen::usage_error);
}

TEST_CASE("on_resolved's callback runs when no other ref to the object is left") {
  lumen::Runtime rt{{.workers = 2}};
  std::atomic<int> got{0};
  {
    auto r = lumen::submit([] {
      std::this_thread::sleep_for(10ms);
      return std::vector<int>(1000, 5);
    });
    lumen::on_resolved(r, [&got]() noexcept { got = 1; });
  }  // the caller's ref is gone before the task ends: the callback's own reference remains
  for (int i = 0; i < 2000 && got.load() == 0; ++i) std::this_thread::sleep_for(1ms);
  CHECK(got.load() == 1);
}

// Stress: threads resolve promises while others register callbacks on them, racing the
// registration against the resolution. Every callback runs exactly once.
TEST_CASE("promises and on_resolved under many threads: every callback runs exactly once") {
#if LUMEN_TEST_SANITIZED
  constexpr int kPromises = 2000;
#else
  constexpr int kPromises = 20000;
#endif
  lumen::Runtime rt{{.workers = 2}};
  std::vector<lumen::Promise<int>> promises(kPromises);
  std::vector<lumen::ObjectRef<int>> refs;
  for (auto& p : promises) refs.push_back(p.ref());
  auto counts = std::make_unique<std::atomic<int>[]>(kPromises);
  std::atomic<long> sum{0};
  std::thread setter([&] {
    for (int i = 0; i < kPromises; ++i) promises[i].set_value(i);
  });
  std::vector<std::thread> registrars;
  for (int t = 0; t < 2; ++t)
    registrars.emplace_back([&, t] {
      for (int i = t; i < kPromises; i += 2) {
        lumen::on_resolved(refs[i], [&, i, r = refs[i]]() noexcept {
          counts[i].fetch_add(1);
          sum.fetch_add(lumen::get(r));
        });
      }
    });
  // Tasks register too: callbacks from workers, resolutions from a thread outside.
  auto from_task = lumen::submit([&] {
    for (int i = 0; i < kPromises; i += 7) lumen::on_resolved(refs[i], [&, i]() noexcept { counts[i].fetch_add(100); });
  });
  setter.join();
  for (auto& t : registrars) t.join();
  lumen::get(from_task);
  long expected = 0;
  for (int i = 0; i < kPromises; ++i) {
    expected += i;
    CHECK(counts[i].load() == (i % 7 == 0 ? 101 : 1));
  }
  CHECK(sum.load() == expected);
}
