// wait(refs, k, timeout): ready/not-ready split in input order, the k cap, timeouts,
// misuse; many threads blocked in get on one object.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include "gate.h"

#include <atomic>
#include <chrono>
#include <future>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using Refs = std::vector<lumen::ObjectRef<int>>;

bool same(const Refs& a, const Refs& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i])) return false;
  return true;
}

// Checks one wait() result against the expected split.
void check_split(const lumen::WaitResult<int>& w, const Refs& ready, const Refs& not_ready) {
  CHECK(w.ready.size() == ready.size());
  CHECK(w.not_ready.size() == not_ready.size());
  CHECK(same(w.ready, ready));
  CHECK(same(w.not_ready, not_ready));
}

}  // namespace

// wait splits refs into ready and not ready, each in input order, at most k ready.
TEST_CASE("wait splits into ready and not ready in input order") {
  for (unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    Gate g0, g2;
    auto r1 = lumen::put(1);
    auto r3 = lumen::submit([] { return 3; });
    auto r4 = lumen::put(4);
    lumen::get(r3);
    const Refs refs{g0.ref, r1, g2.ref, r3, r4};

    // k = 2: the first two ready ones, in input order; the third ready one is not returned as ready.
    check_split(lumen::wait(refs, 2, 10s), {r1, r3}, {g0.ref, g2.ref, r4});
    check_split(lumen::wait(refs, 2), {r1, r3}, {g0.ref, g2.ref, r4});
    check_split(lumen::wait(refs, 1), {r1}, {g0.ref, g2.ref, r3, r4});
    check_split(lumen::wait(refs, 3), {r1, r3, r4}, {g0.ref, g2.ref});
    // k = 0 returns at once.
    check_split(lumen::wait(refs, 0), {}, {g0.ref, r1, g2.ref, r3, r4});

    // Fewer than k ready: returns when the timeout passes, with what is ready.
    check_split(lumen::wait(refs, 4, 30ms), {r1, r3, r4}, {g0.ref, g2.ref});
    check_split(lumen::wait(refs, 5, 0ms), {r1, r3, r4}, {g0.ref, g2.ref});

    // Once a gate opens, the result follows.
    g2.open(2);
    check_split(lumen::wait(refs, 4), {r1, g2.ref, r3, r4}, {g0.ref});
    g0.open(0);
    check_split(lumen::wait(refs, 5, 10s), {g0.ref, r1, g2.ref, r3, r4}, {});
  }
}

// wait on an rvalue vector moves the refs into the result: the same split, and each object
// still alive through the result alone.
TEST_CASE("wait on an rvalue moves the refs") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  Gate g0;
  auto r1 = lumen::put(1);
  auto r2 = lumen::submit([] { return 2; });
  lumen::get(r2);
  Refs refs{g0.ref, r1, r2};
  auto w = lumen::wait(std::move(refs), 1);
  check_split(w, {r1}, {g0.ref, r2});
  Refs again{g0.ref, r1, r2};
  auto timed = lumen::wait(std::move(again), 3, 20ms);
  check_split(timed, {r1, r2}, {g0.ref});
  r1.reset();
  r2.reset();
  CHECK(lumen::get(w.ready[0]) == 1);
  CHECK(lumen::get(timed.ready[1]) == 2);
  // The loop ray's microbenchmark runs: take one ready ref at a time until none is left.
  Refs pending;
  for (int i = 0; i < 100; ++i) pending.push_back(lumen::submit([i] { return i; }));
  int sum = 0;
  while (!pending.empty()) {
    auto split = lumen::wait(std::move(pending), 1);
    REQUIRE(split.ready.size() == 1);
    sum += lumen::get(split.ready[0]);
    pending = std::move(split.not_ready);
  }
  CHECK(sum == 4950);
  // Misuse is refused before anything moves: the caller's vector keeps its refs.
  Refs bad{w.ready[0], lumen::ObjectRef<int>{}};
  CHECK_THROWS_AS(lumen::wait(std::move(bad), 1), lumen::usage_error);
  Refs two{w.ready[0], timed.ready[1]};
  CHECK_THROWS_AS(lumen::wait(std::move(two), 3, 10ms), lumen::usage_error);
  CHECK(bad[0] == w.ready[0]);
  CHECK(bad[0].valid());
  CHECK(two.size() == 2);
  CHECK(two[0].valid());
  g0.open(0);
}

// wait inside a task parks the task and honours k and the timeout the same way.
TEST_CASE("wait inside a task") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  Gate gate;
  auto ready = lumen::put(7);
  const Refs refs{gate.ref, ready};
  auto timed = lumen::submit([refs] {
    auto w = lumen::wait(refs, 2, 30ms);  // times out with one ready
    return static_cast<int>(w.ready.size() * 10 + w.not_ready.size());
  });
  CHECK(lumen::get(timed) == 11);
  auto untimed = lumen::submit([refs] {
    auto w = lumen::wait(refs, 2);  // returns once the gate opens
    return static_cast<int>(w.ready.size() * 10 + w.not_ready.size());
  });
  std::thread opener([&] {
    std::this_thread::sleep_for(20ms);
    gate.open(1);
  });
  CHECK(lumen::get(untimed) == 20);
  opener.join();
}

// A wait without a timeout from the main thread returns once enough objects resolve.
TEST_CASE("wait blocks until k objects resolve") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  Gate a, b, c;
  const Refs refs{a.ref, b.ref, c.ref};
  std::thread opener([&] {
    std::this_thread::sleep_for(20ms);
    c.open(3);
    std::this_thread::sleep_for(5ms);
    a.open(1);
  });
  auto w = lumen::wait(refs, 2);
  CHECK(w.ready.size() == 2);
  CHECK(w.not_ready.size() == 1);
  CHECK(lumen::get(w.ready[0]) + lumen::get(w.ready[1]) == 4);
  CHECK(w.not_ready[0] == b.ref);
  opener.join();
}

// A failed object counts as resolved: it shows up in `ready`.
TEST_CASE("failed objects count as ready") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  Gate gate;
  auto bad = lumen::submit([]() -> int { throw std::runtime_error("x"); });
  const Refs refs{gate.ref, bad};
  auto w = lumen::wait(refs, 1, 10s);
  REQUIRE(w.ready.size() == 1);
  CHECK(w.ready[0] == bad);
  CHECK_THROWS_AS(lumen::get(w.ready[0]), std::runtime_error);
}

// k larger than the number of refs, or an empty ref, is a usage error.
TEST_CASE("wait misuse throws usage_error") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  const Refs two{lumen::put(1), lumen::put(2)};
  CHECK_THROWS_AS(lumen::wait(two, 3), lumen::usage_error);
  CHECK_THROWS_AS(lumen::wait(two, 3, 10ms), lumen::usage_error);
  CHECK_THROWS_AS(lumen::wait(Refs{}, 1), lumen::usage_error);
  CHECK_THROWS_AS(lumen::wait(Refs{lumen::put(1), lumen::ObjectRef<int>{}}, 1), lumen::usage_error);
  CHECK(lumen::wait(Refs{}, 0).ready.empty());
}

// Eight threads blocked in get on one object all wake with its value when it resolves.
TEST_CASE("many external threads blocked in get wake together") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  Gate gate;
  auto value = lumen::submit([](int x) { return x * 2; }, gate.ref);
  constexpr int kThreads = 8;
  std::atomic<int> waiting{0};
  std::vector<int> seen(kThreads, -1);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      waiting.fetch_add(1);
      seen[static_cast<std::size_t>(i)] = lumen::get(value);
    });
  }
  while (waiting.load() < kThreads) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(20ms);  // let them block in get
  CHECK_FALSE(value.ready());
  gate.open(21);
  for (auto& t : threads) t.join();
  for (int v : seen) CHECK(v == 42);
}

// Timeouts too long to add to now() mean "no deadline": get and wait block until the object
// is ready (they used to overflow and time out at once). Negative ones poll.
TEST_CASE("timeouts of any length") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto later = [] {
    return lumen::submit([] { return lumen::blocking([] {
                                std::this_thread::sleep_for(20ms);
                                return 1;
                              }); });
  };
  CHECK(lumen::get(later(), std::chrono::hours::max()) == 1);
  CHECK(lumen::get(later(), std::chrono::seconds::max()) == 1);
  CHECK(lumen::get(later(), std::chrono::nanoseconds::max()) == 1);
  CHECK(lumen::get(later(), std::chrono::duration<int, std::milli>::max()) == 1);
  CHECK(lumen::get(later(), std::chrono::duration<double>(1e300)) == 1);
  CHECK(lumen::get(later(), std::chrono::duration<unsigned long long, std::nano>::max()) == 1);
  auto r = later();
  CHECK(lumen::wait(Refs{r}, 1, std::chrono::hours::max()).ready.size() == 1);
  // Inside a task too (the deadline goes to the runtime's timer).
  CHECK(lumen::get(lumen::submit([later] { return lumen::get(later(), std::chrono::hours::max()); })) == 1);
  // Negative and zero: look once.
  Gate gate;
  CHECK_THROWS_AS(lumen::get(gate.ref, std::chrono::seconds(-5)), lumen::timeout_error);
  CHECK_THROWS_AS(lumen::get(gate.ref, std::chrono::hours::min()), lumen::timeout_error);
  CHECK(lumen::wait(Refs{gate.ref}, 1, std::chrono::milliseconds(0)).ready.empty());
  // NaN is neither: a clear error, not undefined behaviour in the deadline's arithmetic.
  const std::chrono::duration<double> nan_seconds(std::numeric_limits<double>::quiet_NaN());
  CHECK_THROWS_AS(lumen::get(gate.ref, nan_seconds), lumen::usage_error);
  CHECK_THROWS_AS(lumen::get(lumen::put(1), nan_seconds), lumen::usage_error);  // ready or not
  CHECK_THROWS_AS(lumen::wait(Refs{gate.ref}, 1, nan_seconds), lumen::usage_error);
  CHECK_THROWS_AS(lumen::get(lumen::submit([&gate, nan_seconds] { return lumen::get(gate.ref, nan_seconds); })),
                  lumen::usage_error);
}

// A wait that times out takes its waiter back off the object and cancels its timer: a loop
// polling a pending object leaves nothing behind (the object's waiter list stays empty).
TEST_CASE("timed-out waits leave no waiter behind") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  Gate gate;
  auto waiters = [&gate] { return gate.ref.slot()->waiters.load(); };
  for (int i = 0; i < 2000; ++i) {
    CHECK_THROWS_AS(lumen::get(gate.ref, 1us), lumen::timeout_error);
    CHECK(lumen::wait(Refs{gate.ref}, 1, 1us).ready.empty());
  }
  CHECK(waiters() == 0);
  // The same from inside a task, whose waits park and use the runtime's timer, with deadlines
  // far away (their timers would otherwise pile up).
  auto poller = lumen::submit([g = gate.ref] {
    int timeouts = 0;
    for (int i = 0; i < 500; ++i) {
      auto r = lumen::wait(Refs{g}, 1, 1us);
      timeouts += r.ready.empty() ? 1 : 0;
    }
    return timeouts;
  });
  CHECK(lumen::get(poller) == 500);
  CHECK(waiters() == 0);
  gate.open(1);
  CHECK(lumen::get(gate.ref) == 1);
}
