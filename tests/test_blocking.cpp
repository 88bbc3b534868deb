// Blocking inside tasks: nested gets never deadlock the pool, lumen::blocking frees the
// worker, and a parked task resumes on the thread it parked on.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include "gate.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
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

// Polls `done` for up to ten seconds.
template <class F>
void eventually(F done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
}

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

// A chain of 100,000 nested submit + get: each child runs inline only while the stack has
// room, then on a fresh fiber, so the chain never overflows however deep it goes.
TEST_CASE("100,000 nested submit and get do not overflow the stack") {
  lumen::Runtime rt{lumen::Config{.workers = 1, .fiber_stack_size = 64 * 1024}};
#if defined(LUMEN_TEST_SANITIZED)
  constexpr int kDepth = 10'000;  // sanitizers' frames are large and their fibers slow to make
#else
  constexpr int kDepth = 100'000;
#endif
  CHECK(lumen::get(lumen::submit(nest_inline, kDepth)) == kDepth);
  CHECK(rt.stats().parks > 0);  // the chain moved to fresh fibers as stacks filled
  lumen::Runtime two{lumen::Config{.workers = 2, .fiber_stack_size = 64 * 1024}};
  CHECK(lumen::get(lumen::submit(nest_inline, kDepth)) == kDepth);
}

// A task run by the worker loop starts at the top of a fiber of the configured size: the
// same stack before any task parked and after many did.
TEST_CASE("every task starts with the whole configured stack") {
  constexpr std::size_t kStack = 128 * 1024;
  lumen::Runtime rt{lumen::Config{.workers = 1, .fiber_stack_size = kStack}};
  auto room = [] {
    // inline_floor sits halfway up the fiber's stack.
    const char* floor = lumen::detail::task_context().inline_floor;
    REQUIRE(floor != nullptr);
    const char* bottom = floor - kStack / 2;
    return static_cast<std::size_t>(static_cast<const char*>(__builtin_frame_address(0)) - bottom);
  };
  const std::size_t before = lumen::get(lumen::submit(room));
  CHECK(before > kStack - 8 * 1024);
  CHECK(lumen::get(lumen::submit(nest_parked, 20)) == 20);
  const std::size_t after = lumen::get(lumen::submit(room));
  CHECK(after > kStack - 8 * 1024);
}

// With Config::max_fibers fibers parked, a task that blocks fails its get with resource_error
// naming the limit; waits that must not fail (task_group, pipeline, graph, blocking) run
// other work on their stack instead; everything finishes once the parked tasks resume.
TEST_CASE("no fiber left to park on") {
  lumen::Runtime rt{lumen::Config{.workers = 1, .max_fibers = 4}};
  Gate gate;  // its task parks too
  std::vector<lumen::ObjectRef<int>> parked;
  for (int i = 0; i < 3; ++i) parked.push_back(lumen::submit([g = gate.ref] { return lumen::get(g); }));
  eventually([&] { return rt.stats().parks >= 4; });

  // get: resource_error, naming Config::max_fibers.
  auto refused = lumen::submit([g = gate.ref] { return lumen::get(g); });
  CHECK_THROWS_AS(lumen::get(refused), lumen::resource_error);
  auto why = lumen::error_of(refused);
  REQUIRE(why.has_value());
  CHECK(std::string(why->what()).find("max_fibers") != std::string::npos);

  // task_group::wait whose child cannot run inline (another task is on top of it).
  auto group = lumen::submit([] {
    std::atomic<int> n{0};
    lumen::task_group g;
    g.run([&n] { n.fetch_add(1); });
    auto on_top = lumen::submit([] { return 10; });
    g.wait();
    return n.load() + lumen::get(on_top);
  });
  CHECK(lumen::get(group) == 11);

  // A pipeline and a graph run to the end.
  auto flow = lumen::submit([] {
    int produced = 0;
    long sum = 0;
    lumen::pipeline(4)
        .source([&produced](lumen::flow_control& fc) {
          if (produced == 100) fc.stop();
          return produced++;
        })
        .stage(lumen::stage_mode::parallel, [](int x) { return x * 2; })
        .sink(lumen::stage_mode::serial_in_order, [&sum](int x) { sum += x; })
        .run();
    lumen::graph g;
    std::atomic<int> nodes{0};
    auto a = g.emplace([&nodes] { nodes.fetch_add(1); });
    auto b = g.emplace([&nodes] { nodes.fetch_add(1); });
    auto c = g.emplace([&nodes] { nodes.fetch_add(1); });
    a.precede(b, c);
    lumen::run(g).wait();
    return sum + nodes.load();
  });
  CHECK(lumen::get(flow) == 9900 + 3);

  // An actor call whose argument is not ready yet cannot park either: the call fails.
  struct Echo {
    int echo(int x) { return x; }
  };
  auto actor = lumen::actor<Echo>();
  auto call = actor.call(&Echo::echo, gate.ref);
  gate.open(7);
  for (auto& r : parked) CHECK(lumen::get(r) == 7);
  int outcome = 0;
  try {
    outcome = lumen::get(call);  // the argument was ready by the time the call ran
  } catch (const lumen::resource_error&) {  // or it was not, and the call failed cleanly
    outcome = -1;
  }
  CHECK((outcome == 7 || outcome == -1));
  CHECK(lumen::get(actor.call(&Echo::echo, 1)) == 1);
}

// A task_group wait with no fiber to park on runs queued work on its own stack. A child of
// the group run that way is not the group's owner though it shares the owner's context: what
// it spawns into the group counts as spawned by a child, and the wait waits for it too (it
// once returned first, and the grandchild ran against a group that was gone).
TEST_CASE("a wait that runs the group's children on its stack waits for what they spawn") {
  lumen::Runtime rt{lumen::Config{.workers = 1, .max_fibers = 4}};
  Gate gate;
  std::vector<lumen::ObjectRef<int>> parked;
  for (int i = 0; i < 3; ++i) parked.push_back(lumen::submit([g = gate.ref] { return lumen::get(g); }));
  eventually([&] { return rt.stats().parks >= 4; });
  auto group = lumen::submit([] {
    std::atomic<int> ran{0};
    {
      lumen::task_group g;
      g.run([&] {
        ran.fetch_add(1);
        g.run([&ran] { ran.fetch_add(1); });
      });
      auto on_top = lumen::submit([] { return 0; });  // keeps wait() from popping the child itself
      g.wait();
      lumen::get(on_top);
    }
    return ran.load();
  });
  CHECK(lumen::get(group) == 2);
  gate.open(1);
  for (auto& r : parked) CHECK(lumen::get(r) == 1);
}

// Blocking calls that wait on tasks which make blocking calls of their own: a call that is
// waiting does not hold one of the max_blocking_threads, so the chain never runs out of them.
TEST_CASE("blocking calls waiting on each other do not use up the blocking threads") {
  lumen::Runtime rt{lumen::Config{.workers = 2, .max_blocking_threads = 4}};
  std::vector<lumen::ObjectRef<int>> outer;
  for (int i = 0; i < 24; ++i) {
    outer.push_back(lumen::submit([i] {
      return lumen::blocking([i] {
        auto inner = lumen::submit([i] { return lumen::blocking([i] { return i * 2; }); });
        return lumen::get(inner) + 1;
      });
    }));
  }
  for (int i = 0; i < 24; ++i) CHECK(lumen::get(outer[static_cast<std::size_t>(i)], 60s) == i * 2 + 1);
}

// A task that gets its own result is told at once, with its name.
TEST_CASE("a task that waits for its own result gets usage_error") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto self = std::make_shared<lumen::ObjectRef<int>>();
  std::atomic<bool> assigned{false};
  *self = lumen::task([self, &assigned] {
            while (!assigned.load()) std::this_thread::yield();
            return lumen::get(*self) + 1;
          })
              .name("narcissus")
              .submit();
  assigned.store(true);
  CHECK_THROWS_AS(lumen::get(*self), lumen::usage_error);
  auto why = lumen::error_of(*self);
  REQUIRE(why.has_value());
  CHECK(std::string(why->what()).find("narcissus") != std::string::npos);
  self->reset();  // the task's capture holds the last other ref: break the cycle of ownership
}

// Tasks that get each other's results would wait forever: the one that closes the cycle gets
// usage_error, the others fail with it, and the runtime shuts down normally.
TEST_CASE("tasks waiting for each other in a cycle get usage_error") {
  for (unsigned workers : {1u, 2u}) {
    for (int length : {2, 3}) {
      lumen::Runtime rt{lumen::Config{.workers = workers}};
      std::vector<std::shared_ptr<lumen::ObjectRef<int>>> refs;
      for (int i = 0; i < length; ++i) refs.push_back(std::make_shared<lumen::ObjectRef<int>>());
      std::atomic<bool> assigned{false};
      for (int i = 0; i < length; ++i) {
        auto next = refs[static_cast<std::size_t>((i + 1) % length)];
        *refs[static_cast<std::size_t>(i)] = lumen::submit([next, &assigned] {
          while (!assigned.load()) lumen::blocking([] { std::this_thread::sleep_for(1ms); });
          return lumen::get(*next) + 1;
        });
      }
      assigned.store(true);
      int refused = 0;
      for (auto& r : refs) {
        try {
          lumen::get(*r);
        } catch (const lumen::usage_error&) {
          ++refused;
        }
      }
      CHECK(refused == length);
      for (auto& r : refs) r->reset();
    }
  }
}

// A task that an actor's method runs inline (submit + get) is not the actor's method:
// exit_actor() there is a usage_error and actor_restarted() is false.
TEST_CASE("a task run inline by an actor method does not see the actor") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  struct Host {
    bool inside() {
      auto r = lumen::submit([] {
        bool refused = false;
        try {
          lumen::exit_actor();
        } catch (const lumen::usage_error&) {
          refused = true;
        }
        return refused && !lumen::actor_restarted();
      });
      return lumen::get(r);
    }
    bool group() {
      std::atomic<bool> ok{true};
      lumen::task_group g;
      g.run([&ok] {
        try {
          lumen::exit_actor();
          ok.store(false);
        } catch (const lumen::usage_error&) {
        }
      });
      g.wait();
      return ok.load();
    }
    int alive() { return 1; }
  };
  auto host = lumen::actor<Host>(lumen::ActorOptions{.max_restarts = 1});
  CHECK(lumen::get(host.call(&Host::inside)));
  CHECK(lumen::get(host.call(&Host::group)));
  CHECK(lumen::get(host.call(&Host::alive)) == 1);
  CHECK_FALSE(host.dead());
}
