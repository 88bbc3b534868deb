// Actors: ordered calls and their state, concurrency limits, names, lifetime, and the fault
// model (kill, exit_actor, constructors and methods that throw, restarts and replays).
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <atomic>
#include <chrono>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gate.h"
#include "overlap.h"

namespace {

#if defined(LUMEN_TEST_SANITIZED)
constexpr int kCallsPerCaller = 2'000;
constexpr bool kSanitized = true;
#else
constexpr int kCallsPerCaller = 20'000;
constexpr bool kSanitized = false;
#endif

struct Counter {
  explicit Counter(int start) : n(start) {}
  int add(int k) { return n += k; }
  int get() const { return n; }
  void reset() { n = 0; }
  int n;
};

// Records, per caller, the last sequence number seen; a call out of order is counted.
struct OrderLog {
  explicit OrderLog(int callers) : last(static_cast<std::size_t>(callers), -1) {}
  void record(int caller, int seq) {
    if (seq != last[static_cast<std::size_t>(caller)] + 1) ++out_of_order;
    last[static_cast<std::size_t>(caller)] = seq;
    ++calls;
  }
  std::vector<int> last;
  int out_of_order = 0;
  int calls = 0;
};


struct Tracked {
  explicit Tracked(std::shared_ptr<std::atomic<int>> d) : destroyed(std::move(d)) {}
  ~Tracked() { destroyed->fetch_add(1); }
  int ping() { return 1; }
  std::shared_ptr<std::atomic<int>> destroyed;
};

std::string died_message(const auto& ref) {
  try {
    lumen::get(ref);
  } catch (const lumen::actor_died& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("calls see each other's effects, in order, with constructor arguments") {
  for (unsigned workers : {1u, 2u}) {
    lumen::Runtime rt(lumen::Config{.workers = workers});
    lumen::ActorHandle<Counter> c = lumen::actor<Counter>(5);
    std::vector<lumen::ObjectRef<int>> refs;
    for (int i = 1; i <= 100; ++i) refs.push_back(c.call(&Counter::add, 1));
    for (int i = 0; i < 100; ++i) CHECK(lumen::get(refs[static_cast<std::size_t>(i)]) == 6 + i);
    CHECK(lumen::get(c.call(&Counter::get)) == 105);
    lumen::ObjectRef<void> done = c.call(&Counter::reset);
    lumen::get(done);
    CHECK(lumen::get(c.call(&Counter::get)) == 0);
  }
}

TEST_CASE("calls from many threads and tasks keep each caller's order") {
  for (unsigned workers : {1u, 2u}) {
    lumen::Runtime rt(lumen::Config{.workers = workers});
    constexpr int kThreads = 3, kTasks = 3;
    auto log = lumen::actor<OrderLog>(kThreads + kTasks);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([log, t] {
        for (int i = 0; i < kCallsPerCaller; ++i) log.call(&OrderLog::record, t, i);
      });
    }
    std::vector<lumen::ObjectRef<void>> tasks;
    for (int t = kThreads; t < kThreads + kTasks; ++t) {
      tasks.push_back(lumen::submit([log, t] {
        for (int i = 0; i < kCallsPerCaller; ++i) log.call(&OrderLog::record, t, i);
      }));
    }
    for (auto& th : threads) th.join();
    for (auto& r : tasks) lumen::get(r);
    auto summary = log.call([](OrderLog& l) { return std::make_pair(l.calls, l.out_of_order); });
    auto [calls, out_of_order] = lumen::get(summary);
    CHECK(calls == (kThreads + kTasks) * kCallsPerCaller);
    CHECK(out_of_order == 0);
  }
}

TEST_CASE("max_concurrency 1 never overlaps calls, even when they park") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  auto overlap = std::make_shared<Overlap>();
  struct Serial {
    std::shared_ptr<Overlap> o;
    int work(lumen::ObjectRef<int> input) {
      o->enter();
      int v = lumen::get(lumen::submit([](int x) { return x + 1; }, input));  // parks this call
      o->leave();
      return v;
    }
  };
  auto a = lumen::actor<Serial>(overlap);
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 200; ++i) refs.push_back(a.call(&Serial::work, lumen::put(i)));
  for (int i = 0; i < 200; ++i) CHECK(lumen::get(refs[static_cast<std::size_t>(i)]) == i + 1);
  CHECK(overlap->most.load() == 1);
}

TEST_CASE("max_concurrency above 1 runs calls at once") {
  for (unsigned workers : {1u, 2u}) {
    lumen::Runtime rt(lumen::Config{.workers = workers});
    struct Rendezvous {
      std::atomic<int> arrived{0};
      // Waits (parked, not blocking the worker) until `n` calls are inside at once.
      bool meet(int n) {
        arrived.fetch_add(1);
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (arrived.load() < n) {
          if (std::chrono::steady_clock::now() > deadline) return false;
          lumen::blocking([] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); });
        }
        return true;
      }
    };
    auto a = lumen::actor<Rendezvous>(lumen::ActorOptions{.max_concurrency = 3});
    std::vector<lumen::ObjectRef<bool>> refs;
    for (int i = 0; i < 3; ++i) refs.push_back(a.call(&Rendezvous::meet, 3));
    for (auto& r : refs) CHECK(lumen::get(r));
  }
}

TEST_CASE("an actor waits on a call to itself when max_concurrency allows") {
  lumen::Runtime rt(lumen::Config{.workers = 1});
  struct Recursive {
    lumen::ActorHandle<Recursive> self;
    void set_self(lumen::ActorHandle<Recursive> h) { self = std::move(h); }
    int depth(int n) { return n == 0 ? 0 : 1 + lumen::get(self.call(&Recursive::depth, n - 1)); }
    void forget() { self = {}; }
  };
  auto a = lumen::actor<Recursive>(lumen::ActorOptions{.max_concurrency = 8});
  lumen::get(a.call(&Recursive::set_self, a));  // calls of a concurrent actor have no set order
  CHECK(lumen::get(a.call(&Recursive::depth, 5)) == 5);
  lumen::get(a.call(&Recursive::forget));  // breaks the cycle the handle made
}

TEST_CASE("ObjectRef arguments, ObjectRef results, overloads and callables") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  struct Calc {
    int twice(int x) const { return 2 * x; }
    double twice(double x) const { return 2 * x; }
    lumen::ObjectRef<int> later(int x) const { return lumen::submit([x] { return x * 10; }); }
    lumen::ObjectRef<std::string> text() const { return lumen::put(std::string("hello")); }
    bool is_ready(lumen::ObjectRef<int> r) const { return r.valid(); }
  };
  auto c = lumen::actor<Calc>();
  auto in = lumen::submit([] { return 21; });
  lumen::ObjectRef<int> a = c.call(static_cast<int (Calc::*)(int) const>(&Calc::twice), in);
  lumen::ObjectRef<double> b = c.call(static_cast<double (Calc::*)(double) const>(&Calc::twice), 1.5);
  CHECK(lumen::get(a) == 42);
  CHECK(lumen::get(b) == 3.0);
  lumen::ObjectRef<int> flat = c.call(&Calc::later, 4);  // not ObjectRef<ObjectRef<int>>
  CHECK(lumen::get(flat) == 40);
  CHECK(lumen::get(c.call(&Calc::text)) == "hello");
  CHECK(lumen::get(c.call(&Calc::is_ready, in)));
  CHECK(lumen::get(c.call([](Calc& self, int x) { return self.twice(x) + 1; }, 3)) == 7);
}

TEST_CASE("a failed ObjectRef argument fails the call; the actor keeps serving") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  auto c = lumen::actor<Counter>(0);
  auto bad = lumen::submit([]() -> int { throw std::out_of_range("no such index"); });
  auto r = c.call(&Counter::add, bad);
  CHECK_THROWS_AS(lumen::get(r), std::out_of_range);
  CHECK(lumen::get(c.call(&Counter::add, 2)) == 2);
}

TEST_CASE("a method that throws fails only its own call") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  struct Picky {
    int n = 0;
    int take(int k) {
      if (k < 0) throw std::invalid_argument("negative");
      return n += k;
    }
  };
  auto p = lumen::actor<Picky>();
  auto a = p.call(&Picky::take, 1);
  auto b = p.call(&Picky::take, -1);
  auto c = p.call(&Picky::take, 2);
  CHECK(lumen::get(a) == 1);
  CHECK_THROWS_AS(lumen::get(b), std::invalid_argument);
  CHECK(lumen::get(c) == 3);
  CHECK_FALSE(p.dead());
}

TEST_CASE("a constructor that throws ends the actor; its calls fail with actor_died") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  struct Broken {
    explicit Broken(int) { throw std::runtime_error("no config file"); }
    int f() { return 1; }
  };
  auto b = lumen::actor<Broken>(1);
  auto r = b.call(&Broken::f);
  std::string msg = died_message(r);
  CHECK(msg.find("constructor threw") != std::string::npos);
  CHECK(msg.find("no config file") != std::string::npos);
  CHECK(b.dead());
  CHECK(!died_message(b.call(&Broken::f)).empty());
}

TEST_CASE("named actors: lookup, type check, taken names, name freed by kill") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  auto named = lumen::actor<Counter>(lumen::ActorOptions{.name = "hits", .max_concurrency = 1, .max_restarts = 2}, 0);
  lumen::get(named.call(&Counter::add, 7));
  std::optional<lumen::ActorHandle<Counter>> h = lumen::get_actor<Counter>("hits");
  REQUIRE(h.has_value());
  CHECK(*h == named);
  CHECK(h->name() == "hits");
  CHECK(lumen::get(h->call(&Counter::get)) == 7);
  CHECK_FALSE(lumen::get_actor<Counter>("misses").has_value());
  CHECK_THROWS_AS(lumen::get_actor<Tracked>("hits"), lumen::usage_error);
  CHECK_THROWS_AS(lumen::actor<Counter>(lumen::ActorOptions{.name = "hits"}, 1), lumen::usage_error);
  named.kill();
  // The kill is handled by the actor's task; once it is, the name is free again.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!named.dead() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  CHECK(named.dead());
  CHECK_FALSE(lumen::get_actor<Counter>("hits").has_value());
  auto again = lumen::actor<Counter>(lumen::ActorOptions{.name = "hits"}, 100);
  CHECK(lumen::get(again.call(&Counter::get)) == 100);
}

TEST_CASE("a named actor lives without handles until its runtime ends") {
  auto destroyed = std::make_shared<std::atomic<int>>(0);
  {
    lumen::Runtime rt(lumen::Config{.workers = 1});
    lumen::get(lumen::actor<Tracked>(lumen::ActorOptions{.name = "keeper"}, destroyed).call(&Tracked::ping));
    CHECK(destroyed->load() == 0);
    auto h = lumen::get_actor<Tracked>("keeper");
    REQUIRE(h.has_value());
    CHECK(lumen::get(h->call(&Tracked::ping)) == 1);
  }
  CHECK(destroyed->load() == 1);
}

TEST_CASE("kill fails pending calls; the running call finishes; later calls fail") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  Gate gate;
  auto started = std::make_shared<std::atomic<bool>>(false);
  struct Slow {
    std::shared_ptr<std::atomic<bool>> started;
    int wait_for(lumen::ObjectRef<int> r) {
      started->store(true);
      return lumen::get(r);  // parks this call; the actor's other calls wait behind it
    }
    int f(int x) { return x; }
  };
  auto s = lumen::actor<Slow>(started);
  auto blocked = s.call(&Slow::wait_for, gate.ref);
  std::vector<lumen::ObjectRef<int>> pending;
  for (int i = 0; i < 10; ++i) pending.push_back(s.call(&Slow::f, i));
  while (!started->load()) std::this_thread::yield();
  s.kill();
  gate.open(5);
  CHECK(lumen::get(blocked) == 5);
  for (auto& r : pending) CHECK(died_message(r).find("killed") != std::string::npos);
  CHECK(!died_message(s.call(&Slow::f, 3)).empty());
  CHECK(s.dead());
}

TEST_CASE("exit_actor ends the actor; max_restarts rebuilds it from its arguments") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  struct Phoenix {
    explicit Phoenix(int s) : n(s) {}
    int add(int k) { return n += k; }
    bool restarted() const { return lumen::actor_restarted(); }
    int quit() { lumen::exit_actor(); }
    int n;
  };
  auto p = lumen::actor<Phoenix>(lumen::ActorOptions{.max_restarts = 1}, 10);
  CHECK(lumen::get(p.call(&Phoenix::add, 5)) == 15);
  CHECK_FALSE(lumen::get(p.call(&Phoenix::restarted)));
  CHECK(died_message(p.call(&Phoenix::quit)).find("exit_actor") != std::string::npos);
  CHECK(lumen::get(p.call(&Phoenix::add, 1)) == 11);  // state rebuilt from the arguments
  CHECK(lumen::get(p.call(&Phoenix::restarted)));
  CHECK_FALSE(died_message(p.call(&Phoenix::quit)).empty());  // no restart left
  CHECK(died_message(p.call(&Phoenix::add, 1)).find("exit_actor") != std::string::npos);
  CHECK(p.dead());
  CHECK_THROWS_AS(lumen::exit_actor(), lumen::usage_error);
  CHECK_FALSE(lumen::actor_restarted());
}

TEST_CASE("exit_actor(true) and a constructor that throws without restart_failed_constructor end the actor for good") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  struct Quitter {
    int quit_for_good() { lumen::exit_actor(/*no_restart=*/true); }
    int one() { return 1; }
  };
  // With restarts left, on one worker (max_concurrency 1) and on several.
  for (int concurrency : {1, 3}) {
    auto q = lumen::actor<Quitter>(lumen::ActorOptions{.max_concurrency = concurrency, .max_restarts = -1});
    CHECK(lumen::get(q.call(&Quitter::one)) == 1);
    CHECK(died_message(q.call(&Quitter::quit_for_good)).find("exit_actor") != std::string::npos);
    CHECK(died_message(q.call(&Quitter::one)).find("exit_actor") != std::string::npos);
    CHECK(q.dead());
  }

  static std::atomic<int> constructions{0};
  struct Failing {
    Failing() {
      ++constructions;
      throw std::runtime_error("no");
    }
    int one() { return 1; }
  };
  constructions = 0;
  auto f = lumen::actor<Failing>(lumen::ActorOptions{.max_restarts = 3, .restart_failed_constructor = false});
  CHECK(died_message(f.call(&Failing::one)).find("constructor threw") != std::string::npos);
  CHECK(died_message(f.call(&Failing::one)).find("constructor threw") != std::string::npos);
  CHECK(constructions == 1);
  CHECK(f.dead());
}

TEST_CASE("kill(no_restart = false) restarts; kill() does not") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  auto c = lumen::actor<Counter>(lumen::ActorOptions{.max_restarts = -1}, 1);
  CHECK(lumen::get(c.call(&Counter::add, 1)) == 2);
  c.kill(false);
  CHECK(lumen::get(c.call(&Counter::add, 1)) == 2);  // a new instance, built from 1
  c.kill(false);
  CHECK(lumen::get(c.call(&Counter::get)) == 1);
  c.kill();
  CHECK(died_message(c.call(&Counter::get)).find("killed") != std::string::npos);
}

// Kills that restart use up max_restarts in order even before the actor has taken them: the
// kill that leaves none is final when it returns (it used to count only restarts already
// done, so the actor looked alive until the drain caught up).
TEST_CASE("a kill that uses the last restart is final when it returns, however fast they come") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  for (int round = 0; round < 200; ++round) {
    auto c = lumen::actor<Counter>(lumen::ActorOptions{.max_restarts = 2}, 1);
    c.kill(false);
    c.kill(false);
    CHECK_FALSE(c.dead());
    c.kill(false);  // the third: no restart left behind the two queued ones
    CHECK(c.dead());
    CHECK(died_message(c.call(&Counter::get)).find("killed") != std::string::npos);
  }
}

TEST_CASE("pending calls are replayed or failed as max_task_retries says") {
  for (int retries : {0, 1}) {
    lumen::Runtime rt(lumen::Config{.workers = 2});
    Gate gate;
    struct Fragile {
      int n = 0;
      int exit_after(const int&) { lumen::exit_actor(); }
      int add(int k) { return n += k; }
    };
    auto f = lumen::actor<Fragile>(lumen::ActorOptions{.max_restarts = 1, .max_task_retries = retries});
    lumen::get(f.call(&Fragile::add, 0));
    auto fatal = f.call(&Fragile::exit_after, gate.ref);
    std::vector<lumen::ObjectRef<int>> pending;
    for (int i = 0; i < 5; ++i) pending.push_back(f.call(&Fragile::add, 1));
    gate.open(0);
    CHECK_FALSE(died_message(fatal).empty());
    for (int i = 0; i < 5; ++i) {
      if (retries == 1) {
        CHECK(lumen::get(pending[static_cast<std::size_t>(i)]) == i + 1);  // replayed in order
      } else {
        CHECK(died_message(pending[static_cast<std::size_t>(i)]).find("exit_actor") != std::string::npos);
      }
    }
    CHECK(lumen::get(f.call(&Fragile::add, 10)) == (retries == 1 ? 15 : 10));
  }
}

TEST_CASE("a checkpoint survives a restart") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  struct Saver {
    int n = 0;
    int add(int k) { return n += k; }
    void crash() { lumen::exit_actor(); }
    int checkpoint() const { return n; }
    void restore(int saved) { n = saved; }
  };
  auto s = lumen::actor<Saver>(lumen::ActorOptions{.max_restarts = 1});
  lumen::get(s.call(&Saver::add, 3));
  lumen::get(s.call(&Saver::add, 4));
  CHECK_FALSE(died_message(s.call(&Saver::crash)).empty());
  CHECK(lumen::get(s.call(&Saver::add, 0)) == 7);
}

// Only calls that returned count toward checkpoint_interval: a call that threw changed
// nothing worth saving (it used to count, and trigger a save of the state before it).
TEST_CASE("calls that throw do not count toward a checkpoint") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  struct Saver {
    int n = 0;
    int add(int k) { return n += k; }
    int boom() { throw std::runtime_error("boom"); }
    void crash() { lumen::exit_actor(); }
    int checkpoint() const { return n; }
    void restore(int saved) { n = saved; }
  };
  auto s = lumen::actor<Saver>(lumen::ActorOptions{.max_restarts = 1, .checkpoint_interval = 2});
  lumen::get(s.call(&Saver::add, 1));
  CHECK_THROWS_AS(lumen::get(s.call(&Saver::boom)), std::runtime_error);
  CHECK_FALSE(died_message(s.call(&Saver::crash)).empty());
  CHECK(lumen::get(s.call(&Saver::add, 0)) == 0);  // one success: nothing was saved
}

// A concurrent actor's call may wait on a sibling that calls exit_actor(): the exiting call's
// result fails as soon as it returns, not when the instance ends (which waits for the
// sibling: they used to wait on each other forever).
TEST_CASE("a concurrent call can wait on a sibling that ends the actor") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  struct Box {
    lumen::ObjectRef<int> ref;
    std::atomic<bool> set{false};
  };
  struct Quitter {
    int quit() { lumen::exit_actor(); }
    int watch(const std::shared_ptr<Box>& box) {
      while (!box->set.load()) std::this_thread::yield();
      try {
        return lumen::get(box->ref);
      } catch (const lumen::actor_died&) {
        return -1;
      }
    }
  };
  auto q = lumen::actor<Quitter>(lumen::ActorOptions{.max_concurrency = 2});
  auto box = std::make_shared<Box>();
  auto watcher = q.call(&Quitter::watch, box);
  box->ref = q.call(&Quitter::quit);
  box->set.store(true);
  CHECK(lumen::get(watcher) == -1);
  CHECK(died_message(box->ref).find("exit_actor") != std::string::npos);
  CHECK(!died_message(q.call(&Quitter::quit)).empty());
}

// A concurrent actor that exits and restarts: a caller who sees the exiting call fail and
// calls again reaches the new instance, as with a serial actor.
TEST_CASE("a concurrent actor's caller who saw the exit reaches the restarted instance") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  struct Phoenix {
    int quit() { lumen::exit_actor(); }
    bool restarted() const { return lumen::actor_restarted(); }
  };
  auto p = lumen::actor<Phoenix>(lumen::ActorOptions{.max_concurrency = 3, .max_restarts = -1});
  for (int i = 0; i < 200; ++i) {
    CHECK(died_message(p.call(&Phoenix::quit)).find("exit_actor") != std::string::npos);
    CHECK(lumen::get(p.call(&Phoenix::restarted)));
  }
}

// max_concurrency has no upper bound to trip over: nothing is sized by it.
TEST_CASE("max_concurrency at INT_MAX") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  auto c = lumen::actor<Counter>(lumen::ActorOptions{.max_concurrency = std::numeric_limits<int>::max()}, 0);
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 100; ++i) refs.push_back(c.call(&Counter::get));
  for (auto& r : refs) CHECK(lumen::get(r) == 0);
}

TEST_CASE("handles travel into tasks and other actors") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  auto c = lumen::actor<Counter>(0);
  struct Forwarder {
    lumen::ActorHandle<Counter> target;
    int push(int k) { return lumen::get(target.call(&Counter::add, k)); }
  };
  auto f = lumen::actor<Forwarder>(c);
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 50; ++i) refs.push_back(lumen::submit([c] { return lumen::get(c.call(&Counter::add, 1)); }));
  for (int i = 0; i < 50; ++i) refs.push_back(f.call(&Forwarder::push, 1));
  for (auto& r : refs) lumen::get(r);
  CHECK(lumen::get(c.call(&Counter::get)) == 100);
}

TEST_CASE("an actor is destroyed when its last handle goes") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  auto destroyed = std::make_shared<std::atomic<int>>(0);
  {
    auto t = lumen::actor<Tracked>(destroyed);
    auto copy = t;
    std::vector<lumen::ObjectRef<int>> refs;
    for (int i = 0; i < 100; ++i) refs.push_back(copy.call(&Tracked::ping));
    for (auto& r : refs) CHECK(lumen::get(r) == 1);
    CHECK(destroyed->load() == 0);
  }
  // The last handle may go while the actor's task is still finishing: it lets go right after.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (destroyed->load() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  CHECK(destroyed->load() == 1);
  CHECK(destroyed.use_count() == 1);  // the stored constructor argument is gone too
  CHECK(rt.stats().actors_alive == 0);
}

TEST_CASE("calls queued when the last handle goes still run") {
  lumen::Runtime rt(lumen::Config{.workers = 1});
  std::vector<lumen::ObjectRef<int>> refs;
  {
    auto c = lumen::actor<Counter>(0);
    for (int i = 0; i < 1000; ++i) refs.push_back(c.call(&Counter::add, 1));
  }
  CHECK(lumen::get(refs.back()) == 1000);
}

TEST_CASE("stats count actors and their calls") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  auto a = lumen::actor<Counter>(0);
  auto b = lumen::actor<Counter>(0);
  for (int i = 0; i < 10; ++i) a.call(&Counter::add, 1);
  lumen::get(b.call(&Counter::add, 1));
  lumen::get(a.call(&Counter::get));
  lumen::Stats s = rt.stats();
  CHECK(s.actors_alive == 2);
  CHECK(s.actor_calls_executed == 12);
  CHECK(s.actor_calls_queued == 0);
}

TEST_CASE("bad options are rejected") {
  lumen::Runtime rt(lumen::Config{.workers = 1});
  CHECK_THROWS_AS(lumen::actor<Counter>(lumen::ActorOptions{.max_concurrency = 0}, 1), lumen::usage_error);
  CHECK_THROWS_AS(lumen::actor<Counter>(lumen::ActorOptions{.max_restarts = -2}, 1), lumen::usage_error);
  lumen::ActorHandle<Counter> empty;
  CHECK_THROWS_AS(empty.call(&Counter::get), lumen::usage_error);
  auto c = lumen::actor<Counter>(1);
  CHECK_THROWS_AS(c.call(&Counter::add, lumen::ObjectRef<int>{}), lumen::usage_error);
}

TEST_CASE("an actor outliving its runtime fails its calls with actor_died") {
  lumen::ActorHandle<Counter> survivor;
  {
    lumen::Runtime rt(lumen::Config{.workers = 1});
    survivor = lumen::actor<Counter>(1);
    CHECK(lumen::get(survivor.call(&Counter::get)) == 1);
  }
  CHECK(survivor.dead());
  CHECK(died_message(survivor.call(&Counter::get)).find("runtime shut down") != std::string::npos);
}

// A task on a worker of the actor's own runtime calls without announcing itself to that
// runtime's end, which cannot come while the task runs. Anything else on a worker announces
// itself: here a task's captures, destroyed after the task is counted as done, which may be
// while the runtime ends. Every call resolves, with its value or actor_died, and none runs on
// an instance the runtime's end destroyed (it used to: a crash in about one run in eight).
// With max_concurrency above one the late calls run as tasks of their own.
TEST_CASE("calls from the actor's own workers while its runtime ends all resolve") {
  struct Tally {
    std::atomic<int> n{0};
    int add(int k) { return n.fetch_add(k) + k; }
  };
  struct CallsWhenDestroyed {
    lumen::ActorHandle<Tally> target;
    std::shared_ptr<std::mutex> m;
    std::shared_ptr<std::vector<lumen::ObjectRef<int>>> refs;
    CallsWhenDestroyed(lumen::ActorHandle<Tally> t, std::shared_ptr<std::mutex> mu,
                       std::shared_ptr<std::vector<lumen::ObjectRef<int>>> r)
        : target(std::move(t)), m(std::move(mu)), refs(std::move(r)) {}
    CallsWhenDestroyed(CallsWhenDestroyed&&) = default;
    ~CallsWhenDestroyed() {
      if (!target.valid()) return;  // moved from
      // Late enough that the last task's call meets the runtime's end.
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      auto r = target.call(&Tally::add, 1);
      std::lock_guard lock(*m);
      refs->push_back(std::move(r));
    }
  };
  constexpr int kTasks = 200;
  for (int concurrency : {1, 4}) {
    for (int round = 0; round < 8; ++round) {
      auto m = std::make_shared<std::mutex>();
      auto late = std::make_shared<std::vector<lumen::ObjectRef<int>>>();
      std::vector<lumen::ObjectRef<int>> from_tasks;
      {
        lumen::Runtime rt(lumen::Config{.workers = 2});
        auto a = lumen::actor<Tally>(lumen::ActorOptions{.max_concurrency = concurrency});
        for (int i = 0; i < kTasks; ++i) {
          from_tasks.push_back(lumen::submit([a, captured = CallsWhenDestroyed{a, m, late}] {
            int answered = 0;
            for (int k = 0; k < 10; ++k) answered += lumen::get(a.call(&Tally::add, 1)) > 0 ? 1 : 0;
            return answered;
          }));
        }
      }  // the runtime ends with most tasks still queued
      for (auto& r : from_tasks) CHECK(lumen::get(r) == 10);
      REQUIRE(late->size() == static_cast<std::size_t>(kTasks));
      int answered = 0, died = 0;
      for (auto& r : *late) {
        try {
          answered += lumen::get(r) > 0 ? 1 : 0;
        } catch (const lumen::actor_died&) {
          ++died;
        }
      }
      CHECK(answered + died == kTasks);
    }
  }
}

TEST_CASE("loops, pipelines and graphs run inside an actor's methods") {
  for (unsigned workers : {1u, 2u}) {
    lumen::Runtime rt(lumen::Config{.workers = workers});
    struct Numeric {
      std::vector<long> data = std::vector<long>(100'000);
      long fill_and_sum() {
        lumen::parallel_for(std::size_t{0}, data.size(), [&](std::size_t i) { data[i] = static_cast<long>(i); });
        return lumen::parallel_reduce(std::size_t{0}, data.size(), 0L, [&](std::size_t i) { return data[i]; },
                                      std::plus<>{});
      }
      long piped(long n) {
        long next = 0, total = 0;
        lumen::pipeline(4)
            .source([&](lumen::flow_control& fc) {
              if (next == n) fc.stop();
              return next++;
            })
            .stage(lumen::stage_mode::parallel, [](long x) { return 2 * x; })
            .sink(lumen::stage_mode::serial_in_order, [&](long x) { total += x; })
            .run();
        return total;
      }
      int graphed() {
        std::atomic<int> steps{0};
        lumen::graph g;
        auto a = g.emplace([&] { steps.fetch_add(1); });
        auto b = g.emplace([&] { steps.fetch_add(1); });
        a.precede(b);
        lumen::run_n(g, 3).wait();
        return steps.load();
      }
    };
    auto n = lumen::actor<Numeric>();
    auto sum = n.call(&Numeric::fill_and_sum);
    auto piped = n.call(&Numeric::piped, 1000L);
    auto graphed = n.call(&Numeric::graphed);
    CHECK(lumen::get(sum) == 100'000L * 99'999L / 2);
    CHECK(lumen::get(piped) == 1000L * 999L);
    CHECK(lumen::get(graphed) == 6);
  }
}

// kill() for good shows when it returns: dead(), no name, the name free for a new actor,
// calls failing at once; the call that was running finishes first.
TEST_CASE("kill is visible to callers as soon as it returns") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  struct Slow {
    int work(const lumen::ObjectRef<int>& gate) { return lumen::get(gate); }
    int quick() { return 1; }
  };
  for (int round = 0; round < 50; ++round) {
    Gate gate;
    auto a = lumen::actor<Slow>(lumen::ActorOptions{.name = "reused", .max_restarts = round % 2});
    auto running = a.call(&Slow::work, gate.ref);
    auto pending = a.call(&Slow::quick);
    a.kill();
    CHECK(a.dead());
    CHECK_FALSE(lumen::get_actor<Slow>("reused").has_value());
    CHECK_THROWS_AS(lumen::get(a.call(&Slow::quick)), lumen::actor_died);
    auto b = lumen::actor<Slow>(lumen::ActorOptions{.name = "reused"});  // the name is free
    CHECK(lumen::get(b.call(&Slow::quick)) == 1);
    gate.open(5);
    int outcome = 0;
    try {
      outcome = lumen::get(running);  // it had started: it finishes
    } catch (const lumen::actor_died&) {  // or it had not, and was failed with the others
      outcome = -1;
    }
    CHECK((outcome == 5 || outcome == -1));
    CHECK_THROWS_AS(lumen::get(pending), lumen::actor_died);
    b.kill();
  }
}

// A kill(no_restart = false) with no restart left is an end for good, and shows at once too.
TEST_CASE("kill with no restarts left is final at once") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  struct Plain {
    int one() { return 1; }
  };
  auto a = lumen::actor<Plain>(lumen::ActorOptions{.name = "once"});
  CHECK(lumen::get(a.call(&Plain::one)) == 1);
  a.kill(false);
  CHECK(a.dead());
  CHECK_FALSE(lumen::get_actor<Plain>("once").has_value());
}

// A constructor that always throws, with unlimited restarts: restarts are paced on a timer
// (the worker stays free), calls fail or wait, and the runtime still shuts down.
TEST_CASE("an actor whose constructor always throws does not pin a worker or stop shutdown") {
  static std::atomic<int> constructions{0};
  struct Hopeless {
    Hopeless() {
      constructions.fetch_add(1);
      throw std::runtime_error("never");
    }
    int one() { return 1; }
  };
  constructions.store(0);
  {
    lumen::Runtime rt{lumen::Config{.workers = 1}};
    auto a = lumen::actor<Hopeless>(lumen::ActorOptions{.max_restarts = -1});
    // The only worker keeps running other tasks meanwhile.
    for (int i = 0; i < 20; ++i) CHECK(lumen::get(lumen::submit([i] { return i; })) == i);
    auto call = a.call(&Hopeless::one);
    CHECK_THROWS_AS(lumen::get(call), lumen::actor_died);
  }
  const int made = constructions.load();
  CHECK(made >= 1);
}

// The same actor with no handle left and no call waiting ends at its next restart instead of
// being rebuilt forever (it used to stay alive, on the runtime's timer, until the runtime ended).
// A named one stays: get_actor() can still find it.
TEST_CASE("an actor whose constructor keeps failing ends once no handle is left") {
  struct Hopeless {
    Hopeless() { throw std::runtime_error("never"); }
    int one() { return 1; }
  };
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  for (int i = 0; i < 10; ++i) (void)lumen::actor<Hopeless>(lumen::ActorOptions{.max_restarts = -1});
  {
    auto dropped = lumen::actor<Hopeless>(lumen::ActorOptions{.max_restarts = -1});
    auto named = lumen::actor<Hopeless>(lumen::ActorOptions{.name = "still wanted", .max_restarts = -1});
  }
  // Polled for a bounded time: restarts back off, so the last attempt may be a while away.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (rt.stats().actors_alive > 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  CHECK(rt.stats().actors_alive == 1);  // the named one
  auto found = lumen::get_actor<Hopeless>("still wanted");
  REQUIRE(found.has_value());
  found->kill();
  CHECK(rt.stats().actors_alive == 0);
}

// Threads calling an actor while its runtime is destroyed on another thread: each call gives a
// ref (a value, or actor_died once the runtime is gone) or throws shutdown_error while it
// drains; none touches the runtime after it is freed (ThreadSanitizer and AddressSanitizer
// check that).
TEST_CASE("calls racing the end of the actor's runtime") {
  for (int round = 0; round < (kSanitized ? 10 : 40); ++round) {
    auto* rt = new lumen::Runtime{lumen::Config{.workers = 2}};
    auto a = lumen::actor<Counter>(0);
    std::atomic<bool> stop{false};
    std::atomic<int> odd{0};
    std::vector<std::thread> callers;
    for (int t = 0; t < 3; ++t) {
      callers.emplace_back([&] {
        while (!stop.load()) {
          try {
            auto r = a.call(&Counter::add, 1);
            try {
              lumen::get(r);
            } catch (const lumen::actor_died&) {
            }
          } catch (const lumen::shutdown_error&) {
          } catch (...) {
            odd.fetch_add(1);
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    delete rt;
    CHECK(a.dead());
    stop.store(true);
    for (auto& t : callers) t.join();
    CHECK(odd.load() == 0);
    CHECK_THROWS_AS(lumen::get(a.call(&Counter::add, 1)), lumen::actor_died);
  }
}

// actor_died says which actor ended and why, in parts as well as in what().
TEST_CASE("actor_died names the actor and the reason") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  struct Plain {
    int one() { return 1; }
  };
  auto named = lumen::actor<Plain>(lumen::ActorOptions{.name = "ledger"});
  auto anonymous = lumen::actor<Plain>();
  named.kill();
  anonymous.kill();
  try {
    lumen::get(named.call(&Plain::one));
    FAIL("the call should have failed");
  } catch (const lumen::actor_died& e) {
    CHECK(e.actor_name() == "ledger");
    CHECK(e.actor_id() == named.id());
    CHECK(e.reason() == "it was killed");
    CHECK(std::string(e.what()) == "lumen: actor 'ledger' died: it was killed");
  }
  try {
    lumen::get(anonymous.call(&Plain::one));
    FAIL("the call should have failed");
  } catch (const lumen::actor_died& e) {
    CHECK(e.actor_name().empty());
    CHECK(std::string(e.what()) == "lumen: actor #" + std::to_string(anonymous.id()) + " died: it was killed");
  }
}

// The runtime ends while another thread drops the last handles of its actors: every actor is
// either ended by the runtime or destroyed by its last handle, never both (a core whose count
// reached zero is not revived), and nothing hangs.
TEST_CASE("the runtime ends while the last handles go on another thread") {
  for (int round = 0; round < (kSanitized ? 100 : 1000); ++round) {
    auto rt = std::make_unique<lumen::Runtime>(lumen::Config{.workers = 1});
    std::vector<lumen::ActorHandle<Counter>> handles;
    for (int i = 0; i < 16; ++i) handles.push_back(lumen::actor<Counter>(i));
    std::atomic<bool> go{false};
    std::thread dropper([&] {
      while (!go.load()) {
      }
      for (auto& h : handles) h = {};
    });
    go.store(true);
    rt.reset();
    dropper.join();
  }
}

// kill() from another thread while the actor's runtime drains is final and does not throw:
// the actor is dead at once and its queued calls fail.
TEST_CASE("kill while the actor's runtime shuts down") {
  lumen::ActorHandle<Counter> a;
  lumen::ObjectRef<int> queued;
  std::atomic<bool> killed{false};
  std::thread killer;
  std::optional<Gate> gate_holder;  // outlives the runtime: the destructor must wait on it
  {
    lumen::Runtime rt{lumen::Config{.workers = 1}};
    Gate& gate = gate_holder.emplace();
    a = lumen::actor<Counter>(lumen::ActorOptions{.max_restarts = -1}, 0);
    auto busy = a.call([](Counter&, const lumen::ObjectRef<int>& g) { return lumen::get(g); }, gate.ref);
    queued = a.call(&Counter::add, 1);
    killer = std::thread([&] {
      // The runtime's destructor is waiting for `busy` by now (it waits for the gate).
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      a.kill(false);
      killed.store(true);
      gate.open(2);
    });
  }
  killer.join();
  CHECK(killed.load());
  CHECK(a.dead());
  CHECK_THROWS_AS(lumen::get(queued), lumen::actor_died);
}
