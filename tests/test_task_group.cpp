// task_group: run/wait, nesting, recursive fork/join, exceptions, cancel, run() from
// children, groups owned by the main thread; on one and on two workers.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr unsigned kWorkerCounts[] = {1, 2};

int fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

int fib_group(int n) {
  if (n < 2) return n;
  int a = 0;
  int b = 0;
  lumen::task_group g;
  g.run([&] { a = fib_group(n - 1); });
  b = fib_group(n - 2);
  g.wait();
  return a + b;
}

// Runs f on the main thread, or inside a task, as the group's owner.
template <class F>
void as_owner(bool in_task, F f) {
  if (in_task) {
    lumen::get(lumen::submit(f));
  } else {
    f();
  }
}

}  // namespace

// wait() returns after every child ran, for owners on the main thread and inside tasks.
TEST_CASE("run and wait") {
  for (unsigned workers : kWorkerCounts) {
    for (bool in_task : {false, true}) {
      CAPTURE(workers);
      CAPTURE(in_task);
      lumen::Runtime rt{lumen::Config{.workers = workers}};
      as_owner(in_task, [] {
        std::atomic<int> count{0};
        std::vector<int> slots(1000, 0);
        lumen::task_group g;
        for (int i = 0; i < 1000; ++i)
          g.run([&, i] {
            count.fetch_add(1);
            slots[static_cast<std::size_t>(i)] = i;
          });
        g.wait();
        CHECK(count.load() == 1000);
        for (int i = 0; i < 1000; ++i) CHECK(slots[static_cast<std::size_t>(i)] == i);
        // An empty wait, and a second round on the same group.
        g.wait();
        g.run([&] { count.fetch_add(1); });
        g.wait();
        CHECK(count.load() == 1001);
      });
    }
  }
}

// Groups inside children of groups each wait for their own children.
TEST_CASE("nested groups") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    std::atomic<int> leaves{0};
    std::atomic<int> early{0};  // a group whose children had not all finished at wait's return
    lumen::task_group outer;
    for (int i = 0; i < 10; ++i) {
      outer.run([&] {
        std::atomic<int> mine{0};
        lumen::task_group mid;
        for (int j = 0; j < 10; ++j) {
          mid.run([&] {
            std::atomic<int> inner_count{0};
            lumen::task_group inner;
            for (int k = 0; k < 10; ++k)
              inner.run([&] {
                inner_count.fetch_add(1);
                leaves.fetch_add(1);
              });
            inner.wait();
            if (inner_count.load() != 10) early.fetch_add(1);
            mine.fetch_add(1);
          });
        }
        mid.wait();
        if (mine.load() != 10) early.fetch_add(1);
      });
    }
    outer.wait();
    CHECK(leaves.load() == 1000);
    CHECK(early.load() == 0);
  }
}

// Recursive fork/join fib through task_group equals the serial fib.
TEST_CASE("recursive fib with task_group") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    CHECK(lumen::get(lumen::submit(fib_group, 22)) == fib_serial(22));
    CHECK(fib_group(20) == fib_serial(20));  // owned by the main thread at the top
  }
}

// wait() rethrows the first exception a child threw; the group works again afterwards.
TEST_CASE("exceptions from children") {
  for (unsigned workers : kWorkerCounts) {
    for (bool in_task : {false, true}) {
      CAPTURE(workers);
      CAPTURE(in_task);
      lumen::Runtime rt{lumen::Config{.workers = workers}};
      as_owner(in_task, [] {
        lumen::task_group g;
        std::atomic<int> count{0};
        g.run([] { throw std::out_of_range("child failed"); });
        for (int i = 0; i < 10; ++i) g.run([&] { count.fetch_add(1); });
        CHECK_THROWS_AS(g.wait(), std::out_of_range);

        // Reusable: no stale error, no stale cancellation.
        count.store(0);
        for (int i = 0; i < 10; ++i) g.run([&] { count.fetch_add(1); });
        CHECK_NOTHROW(g.wait());
        CHECK(count.load() == 10);

        // Custom types come through unchanged.
        g.run([] { throw 7; });
        CHECK_THROWS_AS(g.wait(), int);
        CHECK_NOTHROW(g.wait());
      });
    }
  }
}

// When several children throw, wait() rethrows the one that threw first.
TEST_CASE("the first exception wins") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  for (int round = 0; round < 20; ++round) {
    lumen::task_group g;
    g.run([] { throw std::runtime_error("first"); });
    g.run([&g] {
      // Throws only after the first exception was recorded (a recorded error cancels the group).
      const auto deadline = std::chrono::steady_clock::now() + 5s;
      while (!g.is_canceling() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
      throw std::runtime_error("second");
    });
    CHECK_THROWS_WITH(g.wait(), "first");
  }
}

// cancel() skips the children that have not started; running ones finish.
TEST_CASE("cancel skips children not yet started") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};

  SUBCASE("owner on the main thread") {
    std::atomic<bool> started{false};
    std::atomic<bool> release{false};
    std::atomic<int> blocker_done{0};
    std::atomic<int> count{0};
    lumen::task_group g;
    g.run([&] {
      started.store(true);
      while (!release.load()) std::this_thread::yield();  // holds the only worker
      blocker_done.fetch_add(1);
    });
    while (!started.load()) std::this_thread::yield();
    for (int i = 0; i < 10; ++i) g.run([&] { count.fetch_add(1); });
    g.cancel();
    CHECK(g.is_canceling());
    release.store(true);
    g.wait();
    CHECK(blocker_done.load() == 1);
    CHECK(count.load() == 0);
    // The next round runs normally.
    CHECK_FALSE(g.is_canceling());
    for (int i = 0; i < 5; ++i) g.run([&] { count.fetch_add(1); });
    g.wait();
    CHECK(count.load() == 5);
  }

  SUBCASE("owner inside a task") {
    auto ran = lumen::submit([] {
      std::atomic<int> count{0};
      lumen::task_group g;
      for (int i = 0; i < 10; ++i) g.run([&] { count.fetch_add(1); });
      g.cancel();  // one worker, busy with this task: nothing has started
      g.wait();
      return count.load();
    });
    CHECK(lumen::get(ran) == 0);
  }

  SUBCASE("a child's exception cancels the rest") {
    std::atomic<int> count{0};
    lumen::task_group g;
    g.run([] { throw std::runtime_error("stop"); });
    // The exception is recorded (and the group cancelled) before the other children exist.
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!g.is_canceling() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    REQUIRE(g.is_canceling());
    for (int i = 0; i < 10; ++i) g.run([&] { count.fetch_add(1); });
    CHECK_THROWS_AS(g.wait(), std::runtime_error);
    CHECK(count.load() == 0);
  }
}

// Children may run() more children into their own group; wait() waits for all of them.
TEST_CASE("run from inside a child on the same group") {
  for (unsigned workers : kWorkerCounts) {
    for (bool in_task : {false, true}) {
      CAPTURE(workers);
      CAPTURE(in_task);
      lumen::Runtime rt{lumen::Config{.workers = workers}};
      as_owner(in_task, [] {
        std::atomic<int> count{0};
        lumen::task_group g;
        for (int i = 0; i < 10; ++i) {
          g.run([&] {
            count.fetch_add(1);
            for (int j = 0; j < 10; ++j) g.run([&] { count.fetch_add(1); });
          });
        }
        g.wait();
        CHECK(count.load() == 110);

        // A binary tree of children, 11 levels deep, all in one group.
        count.store(0);
        std::function<void(int)> grow = [&](int depth) {
          count.fetch_add(1);
          if (depth == 0) return;
          g.run([&, depth] { grow(depth - 1); });
          g.run([&, depth] { grow(depth - 1); });
        };
        g.run([&] { grow(10); });
        g.wait();
        CHECK(count.load() == 2047);
      });
    }
  }
}

// Children that park (get on a pending object) are waited for; the owner does not return early.
TEST_CASE("children that block") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    std::promise<int> promise;
    std::shared_future<int> future = promise.get_future().share();
    auto gate = lumen::submit([future] { return lumen::blocking([future] { return future.get(); }); });
    auto owner = lumen::submit([gate] {
      std::atomic<int> sum{0};
      lumen::task_group g;
      for (int i = 0; i < 20; ++i) g.run([&] { sum.fetch_add(lumen::get(gate)); });
      g.wait();
      return sum.load();
    });
    std::this_thread::sleep_for(10ms);
    CHECK_FALSE(owner.ready());
    promise.set_value(2);
    CHECK(lumen::get(owner) == 40);
  }
}

// The destructor waits for children still running, and swallows their exceptions.
TEST_CASE("destructor waits for children") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    std::atomic<int> count{0};
    {
      lumen::task_group g;
      for (int i = 0; i < 50; ++i)
        g.run([&] {
          std::this_thread::sleep_for(100us);
          count.fetch_add(1);
        });
    }
    CHECK(count.load() == 50);
    CHECK_NOTHROW([] {
      lumen::task_group g;
      g.run([] { throw std::runtime_error("dropped by the destructor"); });
    }());
  }
}

// A task_group owned by a thread that is not a worker counts as its runtime's work: the
// Runtime's destructor, on another thread, waits for its children (and for wait()); run()
// after the runtime is gone throws shutdown_error instead of touching it.
TEST_CASE("a task_group outside the workers holds its runtime until wait()") {
  auto* rt = new lumen::Runtime{lumen::Config{.workers = 2}};
  std::atomic<bool> child_done{false};
  std::atomic<bool> destroyed{false};
  {
    lumen::task_group g;
    g.run([&] {
      std::this_thread::sleep_for(20ms);
      child_done.store(true);
    });
    std::thread destroyer([&] {
      delete rt;
      destroyed.store(true);
    });
    std::this_thread::sleep_for(5ms);
    CHECK_FALSE(destroyed.load());  // still waiting for the group
    g.wait();
    CHECK(child_done.load());
    destroyer.join();
    CHECK(destroyed.load());
    CHECK_THROWS_AS(g.run([] {}), lumen::shutdown_error);
  }
}
