// Cancellation and deadlines: lumen::cancel on queued, waiting, running and finished tasks,
// recursive cancels, TaskOptions::timeout, actor calls, task_group / pipeline / graph stop
// requests, and cancels racing with the ends of tasks.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gate.h"

using namespace std::chrono_literals;

namespace {

#if defined(LUMEN_TEST_SANITIZED)
constexpr int kRaceRounds = 3000;
#else
constexpr int kRaceRounds = 30000;
#endif

// Runs until a stop is requested, then returns how many times it looked.
int spin_until_stopped(std::atomic<bool>& started) {
  started.store(true);
  int polls = 0;
  while (!lumen::stop_requested()) {
    ++polls;
    std::this_thread::yield();
  }
  return polls;
}

void wait_for(const std::atomic<bool>& flag) {
  while (!flag.load()) std::this_thread::yield();
}

template <class T>
std::string error_text(const lumen::ObjectRef<T>& r) {
  try {
    lumen::get(r);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// A worker kept busy until release(), so that what is submitted behind it stays queued.
class BusyWorker {
 public:
  BusyWorker() {
    ref_ = lumen::submit([this] {
      started_.store(true);
      while (!released_.load()) std::this_thread::yield();
      return 0;
    });
    wait_for(started_);
  }
  ~BusyWorker() { release(); }
  void release() {
    if (!released_.exchange(true)) lumen::get(ref_);
  }

 private:
  std::atomic<bool> started_{false};
  std::atomic<bool> released_{false};
  lumen::ObjectRef<int> ref_;
};

}  // namespace

TEST_CASE("a queued task that is cancelled never runs, and its result fails at once") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  std::atomic<bool> ran{false};
  BusyWorker busy;
  auto victim = lumen::task([&ran] {
                  ran.store(true);
                  return 1;
                })
                    .name("victim")
                    .submit();
  CHECK(lumen::cancel(victim));
  CHECK(victim.ready());  // failed before the worker was free
  CHECK_THROWS_AS(lumen::get(victim), lumen::cancelled_error);
  CHECK(error_text(victim) == "lumen: task 'victim' was cancelled");
  auto failure = lumen::error_of(victim);
  REQUIRE(failure.has_value());
  CHECK(failure->task_name() == "victim");
  busy.release();
  CHECK(lumen::get(lumen::submit([] { return 2; })) == 2);
  CHECK_FALSE(ran.load());
  CHECK_FALSE(lumen::cancel(victim));  // cancelled already
}

TEST_CASE("a task waiting for its arguments that is cancelled never runs") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  Gate gate;
  std::atomic<bool> ran{false};
  auto victim = lumen::submit(
      [&ran](int v) {
        ran.store(true);
        return v;
      },
      gate.ref);
  CHECK(lumen::cancel(victim));
  CHECK_THROWS_AS(lumen::get(victim), lumen::cancelled_error);
  CHECK(error_text(victim) == "lumen: an unnamed task was cancelled");
  gate.open(5);
  CHECK(lumen::get(gate.ref) == 5);
  CHECK(lumen::get(lumen::submit([] { return 0; })) == 0);
  CHECK_FALSE(ran.load());
}

TEST_CASE("a running task sees the stop request; its result fails at once and what it returns is dropped") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::atomic<bool> started{false};
  std::atomic<bool> returned{false};
  auto victim = lumen::submit([&] {
    int polls = spin_until_stopped(started);
    returned.store(true);
    return polls;
  });
  wait_for(started);
  CHECK(lumen::cancel(victim));
  CHECK_THROWS_AS(lumen::get(victim), lumen::cancelled_error);
  wait_for(returned);
  CHECK_THROWS_AS(lumen::get(victim), lumen::cancelled_error);  // the value did not replace the failure
}

TEST_CASE("cancelling what has nothing to cancel returns false and changes nothing") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto done = lumen::submit([] { return 7; });
  CHECK(lumen::get(done) == 7);
  CHECK_FALSE(lumen::cancel(done));
  CHECK(lumen::get(done) == 7);

  auto failed = lumen::submit([]() -> int { throw std::out_of_range("x"); });
  CHECK_THROWS_AS(lumen::get(failed), std::out_of_range);
  CHECK_FALSE(lumen::cancel(failed));
  CHECK_THROWS_AS(lumen::get(failed), std::out_of_range);

  auto put = lumen::put(std::string("kept"));
  CHECK_FALSE(lumen::cancel(put));
  CHECK(lumen::get(put) == "kept");

  CHECK_THROWS_AS(lumen::cancel(lumen::ObjectRef<int>{}), lumen::usage_error);
  std::vector<lumen::ObjectRef<int>> with_empty{done, lumen::ObjectRef<int>{}};
  CHECK_THROWS_AS(lumen::cancel(with_empty), lumen::usage_error);

  // Outside any task there is nothing to stop.
  CHECK_FALSE(lumen::stop_requested());
  CHECK_FALSE(lumen::get(lumen::submit([] { return lumen::stop_requested(); })));
}

TEST_CASE("cancelling many queued tasks at once") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  std::atomic<int> ran{0};
  BusyWorker busy;
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 1000; ++i) refs.push_back(lumen::submit([&ran, i] {
    ran.fetch_add(1);
    return i;
  }));
  CHECK(lumen::cancel(refs) == 1000);
  CHECK(lumen::cancel(refs) == 0);
  busy.release();
  for (auto& r : refs) CHECK_THROWS_AS(lumen::get(r), lumen::cancelled_error);
  CHECK(lumen::get(lumen::submit([] { return 1; })) == 1);
  CHECK(ran.load() == 0);
}

TEST_CASE("a recursive cancel stops what the task submitted; a plain one does not") {
  for (bool recursive : {true, false}) {
    CAPTURE(recursive);
    lumen::Runtime rt{lumen::Config{.workers = 1}};
    std::atomic<int> children_ran{0};
    std::atomic<bool> started{false};
    std::vector<lumen::ObjectRef<int>> children;
    std::atomic<bool> submitted{false};
    // On the only worker: the children stay queued behind it until it returns.
    auto parent = lumen::submit([&] {
      for (int i = 0; i < 8; ++i) {
        children.push_back(lumen::submit([&children_ran, i] {
          children_ran.fetch_add(1);
          return i;
        }));
      }
      submitted.store(true);
      return spin_until_stopped(started);
    });
    wait_for(submitted);
    CHECK(lumen::cancel(parent, {.recursive = recursive}));
    CHECK_THROWS_AS(lumen::get(parent), lumen::cancelled_error);
    for (auto& c : children) {
      if (recursive) {
        CHECK_THROWS_AS(lumen::get(c), lumen::cancelled_error);
        CHECK(error_text(c) == "lumen: an unnamed task was cancelled with the task that submitted it");
      } else {
        CHECK(lumen::get(c) >= 0);
      }
    }
    CHECK(children_ran.load() == (recursive ? 0 : 8));
  }
}

TEST_CASE("a recursive cancel reaches grandchildren through children that had not started") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  std::atomic<int> ran{0};
  std::atomic<bool> started{false};
  std::atomic<bool> submitted{false};
  lumen::ObjectRef<lumen::ObjectRef<int>> child;
  auto parent = lumen::submit([&] {
    child = lumen::submit([&ran] {
      ran.fetch_add(1);
      return lumen::submit([&ran] {
        ran.fetch_add(1);
        return 1;
      });
    });
    submitted.store(true);
    return spin_until_stopped(started);
  });
  wait_for(submitted);
  lumen::cancel(parent, {.recursive = true});
  CHECK_THROWS_AS(lumen::get(child), lumen::cancelled_error);
  CHECK(ran.load() == 0);
}

TEST_CASE("a running child of a recursively cancelled task sees the stop request and fails cancelled") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::atomic<bool> child_started{false};
  std::atomic<bool> parent_started{false};
  lumen::ObjectRef<int> child;
  std::atomic<bool> submitted{false};
  auto parent = lumen::submit([&] {
    child = lumen::submit([&] { return spin_until_stopped(child_started); });
    submitted.store(true);
    return spin_until_stopped(parent_started);
  });
  wait_for(submitted);
  wait_for(child_started);
  lumen::cancel(parent, {.recursive = true});
  CHECK_THROWS_AS(lumen::get(child), lumen::cancelled_error);
}

TEST_CASE("a timeout fails the task with timeout_error and sets its stop request") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::atomic<bool> started{false};
  std::atomic<bool> saw_stop{false};
  auto slow = lumen::task([&] {
                spin_until_stopped(started);
                saw_stop.store(true);
                return 1;
              })
                  .name("slow")
                  .timeout(20ms)
                  .submit();
  CHECK_THROWS_AS(lumen::get(slow), lumen::timeout_error);
  CHECK(error_text(slow) == "lumen: task 'slow' passed its timeout");
  wait_for(saw_stop);

  // A timeout that does not pass changes nothing.
  auto quick = lumen::task([] { return 3; }).timeout(1h).submit();
  CHECK(lumen::get(quick) == 3);
  auto forever = lumen::task([] { return 4; }).timeout(std::chrono::hours::max()).submit();
  CHECK(lumen::get(forever) == 4);
  auto fractional = lumen::task([] { return 5; }).timeout(std::chrono::duration<double>(30.5)).submit();
  CHECK(lumen::get(fractional) == 5);
}

TEST_CASE("a queued task whose timeout passes never runs") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  std::atomic<bool> ran{false};
  BusyWorker busy;
  auto late = lumen::task([&ran] {
                ran.store(true);
                return 1;
              })
                  .timeout(5ms)
                  .submit();
  CHECK_THROWS_AS(lumen::get(late), lumen::timeout_error);  // while the worker is still busy
  busy.release();
  CHECK(lumen::get(lumen::submit([] { return 0; })) == 0);
  CHECK_FALSE(ran.load());
}

TEST_CASE("bad timeouts are refused with usage_error") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  auto f = [] { return 1; };
  CHECK_THROWS_AS(lumen::task(f).timeout(0ms).submit(), lumen::usage_error);
  CHECK_THROWS_AS(lumen::task(f).timeout(-5s).submit(), lumen::usage_error);
  CHECK_THROWS_AS(lumen::task(f).timeout(std::chrono::duration<std::int8_t>(-128)).submit(), lumen::usage_error);
  CHECK_THROWS_AS(lumen::task(f).timeout(std::chrono::duration<double>(std::nan(""))), lumen::usage_error);
  CHECK_THROWS_AS(lumen::task(f).timeout(std::chrono::hours::min()).submit(), lumen::usage_error);
}

TEST_CASE("a cancelled task is not retried") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::atomic<int> attempts{0};
  auto flaky = lumen::task([&attempts]() -> int {
                 attempts.fetch_add(1);
                 throw std::runtime_error("again");
               })
                   .retries(1000)
                   .retry_backoff(5ms, 5ms)
                   .submit();
  while (attempts.load() < 2) std::this_thread::yield();
  CHECK(lumen::cancel(flaky));
  CHECK_THROWS_AS(lumen::get(flaky), lumen::cancelled_error);
  std::this_thread::sleep_for(30ms);
  const int seen = attempts.load();
  std::this_thread::sleep_for(30ms);
  CHECK(attempts.load() == seen);
  CHECK(seen < 10);
}

namespace {
struct Counter {
  int calls = 0;
  int add(int n) {
    calls += n;
    return calls;
  }
  int hold(std::shared_ptr<std::atomic<bool>> started, std::shared_ptr<std::atomic<bool>> go) {
    started->store(true);
    while (!go->load()) std::this_thread::yield();
    return ++calls;
  }
};
}  // namespace

TEST_CASE("an actor call can be cancelled until it starts") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto counter = lumen::actor<Counter>(lumen::ActorOptions{.name = "counter"});
  auto started = std::make_shared<std::atomic<bool>>(false);
  auto go = std::make_shared<std::atomic<bool>>(false);
  auto running = counter.call(&Counter::hold, started, go);
  wait_for(*started);
  auto queued = counter.call(&Counter::add, 100);
  auto after = counter.call(&Counter::add, 1);
  CHECK_FALSE(lumen::cancel(running));  // started: it runs to its end
  CHECK(lumen::cancel(queued));
  CHECK_THROWS_AS(lumen::get(queued), lumen::cancelled_error);
  CHECK(error_text(queued) == "lumen: a call to actor 'counter' was cancelled");
  go->store(true);
  CHECK(lumen::get(running) == 1);
  CHECK(lumen::get(after) == 2);  // the cancelled call's 100 was never added
  CHECK(lumen::get(counter.call(&Counter::add, 0)) == 2);
  CHECK(rt.stats().actor_calls_queued == 0);
}

TEST_CASE("task_group cancel, and a failing pipeline or graph, set stop_requested in their bodies") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  {
    lumen::task_group g;
    std::atomic<bool> started{false};
    std::atomic<int> polls{-1};
    g.run([&] { polls.store(spin_until_stopped(started)); });
    wait_for(started);
    CHECK_FALSE(lumen::stop_requested());  // the owner is not a child
    g.cancel();
    g.wait();
    CHECK(polls.load() >= 0);
  }
  {
    lumen::graph graph;
    std::atomic<bool> started{false};
    std::atomic<bool> stopped{false};
    graph.emplace([&] {
      spin_until_stopped(started);
      stopped.store(true);
    });
    graph.emplace([&] {
      wait_for(started);
      throw std::runtime_error("node failed");
    });
    CHECK_THROWS_AS(lumen::run(graph).wait(), std::runtime_error);
    CHECK(stopped.load());
  }
}

// Every round: a task that ends on its own, and a cancel from another thread at about the same
// time. Exactly one outcome wins, and what get() says agrees with what cancel() returned.
TEST_CASE("cancels racing with the ends of tasks publish exactly one outcome") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::atomic<int> value_wins{0};
  std::atomic<int> cancel_wins{0};
  for (int round = 0; round < kRaceRounds; round += 100) {
    std::vector<lumen::ObjectRef<int>> refs;
    for (int i = 0; i < 100; ++i) refs.push_back(lumen::submit([i] { return i; }));
    std::vector<char> cancelled(refs.size());
    std::thread canceller([&] {
      for (std::size_t i = 0; i < refs.size(); ++i) cancelled[i] = lumen::cancel(refs[i]) ? 1 : 0;
    });
    canceller.join();
    for (std::size_t i = 0; i < refs.size(); ++i) {
      if (cancelled[i] != 0) {
        CHECK_THROWS_AS(lumen::get(refs[i]), lumen::cancelled_error);
        cancel_wins.fetch_add(1);
      } else {
        CHECK(lumen::get(refs[i]) == static_cast<int>(i));
        value_wins.fetch_add(1);
      }
    }
  }
  MESSAGE("values " << value_wins.load() << ", cancels " << cancel_wins.load());
  CHECK(value_wins.load() + cancel_wins.load() == kRaceRounds);
}

TEST_CASE("cancels racing with actor calls and timeouts publish exactly one outcome") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto counter = lumen::actor<Counter>();
  int expected = 0;
  int values = 0;
  int timeouts = 0;
  for (int round = 0; round < kRaceRounds / 10; ++round) {
    auto a = counter.call(&Counter::add, 1);
    auto t = lumen::task([round] { return round; }).timeout(std::chrono::microseconds(round % 50 + 1)).submit();
    const bool cancelled = lumen::cancel(a);
    if (cancelled) {
      CHECK_THROWS_AS(lumen::get(a), lumen::cancelled_error);
    } else {
      CHECK(lumen::get(a) == ++expected);
    }
    try {
      const int v = lumen::get(t);
      CHECK(v == round);
      ++values;
    } catch (const lumen::timeout_error&) {
      ++timeouts;
    }
  }
  CHECK(lumen::get(counter.call(&Counter::add, 0)) == expected);
  MESSAGE("calls served " << expected << "; timed tasks: values " << values << ", timeouts " << timeouts);
  CHECK(values + timeouts == kRaceRounds / 10);
}
