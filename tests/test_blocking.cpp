// Blocking inside tasks: nested gets never deadlock the pool, lumen::blocking frees the
// worker, and a parked task resumes on the thread it parked on.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include "gate.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Depth of nesting: each level submits its child and gets it.
int nest_inline(int depth) {
  if (depth == 0) return 0;
  auto child = lumen::submit(nest_inline, depth - 1);
  return lumen::get(child) + 1;
}

// As nest_inline, but a second task queued after the child keeps the child from being the
// newest task on the deque, so the get parks instead of running the child in place.
int nest_parked(int depth) {
  if (depth == 0) return 0;
  auto child = lumen::submit(nest_parked, depth - 1);
  auto behind = lumen::submit([] { return 0; });
  return lumen::get(child) + 1 + lumen::get(behind);
}

thread_local int tls_marker = 0;

bool on_worker() { return lumen::detail::worker_scheduler() != nullptr; }

// Read the thread's identity afresh on every call: the compiler may otherwise reuse a TLS
// address or a pthread_self() result from before a call that parks (the asm makes these
// functions impure, so calls to them are not merged).
[[gnu::noinline]] const int* tls_address() {
  asm volatile("" ::: "memory");
  return &tls_marker;
}
[[gnu::noinline]] std::thread::id thread_identity() {
  asm volatile("" ::: "memory");
  return std::this_thread::get_id();
}

}  // namespace

// With one worker, a task that gets the result of a task queued behind it completes.
TEST_CASE("one worker: get on a task queued behind the caller") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};

  SUBCASE("submitted by the task, not the newest on the deque") {
    std::atomic<bool> ran_on_worker{false};
    auto a = lumen::submit([&] {
      ran_on_worker.store(on_worker());
      auto b = lumen::submit([] { return 20; });
      auto c = lumen::submit([] { return 22; });  // now c is the newest, b is behind it
      return lumen::get(b) + lumen::get(c);
    });
    CHECK(lumen::get(a) == 42);
    CHECK(ran_on_worker.load());
  }

  SUBCASE("submitted by the main thread after the task started") {
    lumen::ObjectRef<int> b;
    std::atomic<bool> started{false};
    std::atomic<bool> published{false};
    auto a = lumen::submit([&] {
      started.store(true);
      // Holds the only worker until b exists: b is then queued behind this task.
      while (!published.load(std::memory_order_acquire)) std::this_thread::yield();
      return lumen::get(b) + 1;
    });
    while (!started.load()) std::this_thread::yield();
    b = lumen::submit([] { return 41; });
    published.store(true, std::memory_order_release);
    CHECK(lumen::get(a) == 42);
  }

  SUBCASE("a chain of tasks, each getting the next one's result") {
    constexpr int kTasks = 100;
    std::vector<lumen::ObjectRef<int>> refs(kTasks);
    std::atomic<bool> published{false};
    for (int i = 0; i < kTasks; ++i) {
      refs[static_cast<std::size_t>(i)] = lumen::submit([&refs, &published, i] {
        while (!published.load(std::memory_order_acquire)) std::this_thread::yield();
        if (i == kTasks - 1) return 1;
        return lumen::get(refs[static_cast<std::size_t>(i) + 1]) + 1;  // queued behind this one
      });
    }
    published.store(true, std::memory_order_release);
    CHECK(lumen::get(refs[0]) == kTasks);
  }
}

// A worker keeps at most max_idle_fibers idle fibers once it goes idle; the rest are freed.
TEST_CASE("idle fibers are trimmed to max_idle_fibers") {
  lumen::Runtime rt{lumen::Config{.workers = 1, .max_idle_fibers = 4}};
  Gate gate;
  // 40 tasks parked at once need 40 fibers.
  std::atomic<int> parked{0};
  std::vector<lumen::ObjectRef<int>> waiters;
  for (int i = 0; i < 40; ++i)
    waiters.push_back(lumen::submit([&parked, g = gate.ref] {
      parked.fetch_add(1);
      return lumen::get(g);
    }));
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (parked.load() < 40 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  gate.open(1);
  lumen::wait(waiters, waiters.size());
  CHECK(rt.stats().fibers_created >= 40);
  const auto trimmed = std::chrono::steady_clock::now() + 2s;
  while (rt.stats().fibers_pooled > 4 && std::chrono::steady_clock::now() < trimmed) std::this_thread::sleep_for(1ms);
  CHECK(rt.stats().fibers_pooled <= 4);
  // The worker still parks and resumes fine afterwards.
  CHECK(lumen::get(lumen::submit(nest_parked, 10)) == 10);
}

// A task submits a child and gets it, recursively 50 deep, on one worker.
TEST_CASE("one worker: deep nesting of submit and get") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  CHECK(lumen::get(lumen::submit(nest_inline, 50)) == 50);
  CHECK(lumen::get(lumen::submit(nest_parked, 50)) == 50);
  CHECK(rt.stats().parks >= 1);  // the second form had to park
}

// lumen::blocking runs f off the worker: with one worker, four blocking calls are in
// flight at once.
TEST_CASE("blocking lets other tasks run while f blocks") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  constexpr int kCalls = 4;
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < kCalls; ++i) {
    refs.push_back(lumen::submit([&, i] {
      return lumen::blocking([&, i] {
        int now = in_flight.fetch_add(1) + 1;
        int seen = max_in_flight.load();
        while (now > seen && !max_in_flight.compare_exchange_weak(seen, now)) {
        }
        // Stay blocked until every call is in flight (or give up, and the check below fails).
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (max_in_flight.load() < kCalls && std::chrono::steady_clock::now() < deadline)
          std::this_thread::sleep_for(1ms);
        in_flight.fetch_sub(1);
        return i;
      });
    }));
  }
  lumen::wait(refs, refs.size());  // leaves all four tasks to the one worker
  for (int i = 0; i < kCalls; ++i) CHECK(lumen::get(refs[static_cast<std::size_t>(i)]) == i);
  CHECK(max_in_flight.load() == kCalls);
  CHECK(rt.stats().blocking_threads >= static_cast<std::size_t>(kCalls));
}

// lumen::blocking returns f's value, rethrows its exception, and outside a worker runs f in place.
TEST_CASE("blocking returns values and rethrows exceptions") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  auto value = lumen::submit([] { return lumen::blocking([] { return std::string("from a blocking thread"); }); });
  CHECK(lumen::get(value) == "from a blocking thread");
  auto thrower = lumen::submit([]() -> int { return lumen::blocking([]() -> int { throw std::length_error("too long"); }); });
  CHECK_THROWS_AS(lumen::get(thrower), std::length_error);
  auto caught = lumen::submit([] {
    try {
      lumen::blocking([] { throw std::runtime_error("inner"); });
    } catch (const std::runtime_error&) {
      return 1;
    }
    return 0;
  });
  CHECK(lumen::get(caught) == 1);
  // On a worker, f runs on another thread than the task's.
  std::atomic<bool> ran_on_worker{false};
  auto where = lumen::submit([&] {
    ran_on_worker.store(on_worker());
    auto worker = std::this_thread::get_id();
    auto blocking_thread = lumen::blocking([] { return std::this_thread::get_id(); });
    return worker != blocking_thread;
  });
  CHECK(lumen::get(where));
  CHECK(ran_on_worker.load());
  // Outside a worker, f just runs on the calling thread.
  CHECK(lumen::blocking([] { return std::this_thread::get_id(); }) == std::this_thread::get_id());
}

// A task that parks in get resumes on the same thread: fibers are pinned to their worker,
// so thread_local variables stay valid across a blocking call.
TEST_CASE("a parked task resumes on the thread it parked on") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  constexpr int kTasks = 32;
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    Gate gate;
    std::atomic<int> arrived{0};
    std::atomic<int> moved{0};
    std::atomic<int> tls_changed{0};
    std::vector<lumen::ObjectRef<int>> refs;
    const auto parks_before = rt.stats().parks;
    for (int i = 0; i < kTasks; ++i) {
      refs.push_back(lumen::submit([&] {
        const auto before = thread_identity();
        const int* marker = tls_address();
        arrived.fetch_add(1);
        const int v = lumen::get(gate.ref);  // parks until the gate opens
        // Keep the other worker busy with stealable work while this one resumes.
        auto noise = lumen::submit([] { return 1; });
        if (thread_identity() != before) moved.fetch_add(1);
        if (tls_address() != marker) tls_changed.fetch_add(1);
        return v + lumen::get(noise);
      }));
    }
    // Let every task reach its get (a task may still be queued; both orders are fine).
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (arrived.load() < kTasks && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(10ms);
    gate.open(1);
    for (auto& r : refs) CHECK(lumen::get(r) == 2);
    CHECK(moved.load() == 0);
    CHECK(tls_changed.load() == 0);
    CHECK(rt.stats().parks - parks_before >= static_cast<std::uint64_t>(kTasks));
  }
}
