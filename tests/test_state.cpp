// The state API (lumen/state.h): tasks held in each phase are listed in it, with their name,
// worker, times and place in the source; summaries by name; actors and their mailboxes;
// objects by size and age; and the metrics that come from the same records.
#include <doctest/doctest.h>
#include <lumen/lumen.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using lumen::TaskPhase;

// The tasks named `name` in rt's live list.
std::vector<lumen::TaskInfo> live_named(lumen::Runtime& rt, const std::string& name) {
  return lumen::list_tasks(rt, {.name = name});
}

// Waits (a bounded time) until the task named `name` shows `phase`.
bool shows(lumen::Runtime& rt, const std::string& name, TaskPhase phase) {
  for (int i = 0; i < 5000; ++i) {
    for (const auto& t : live_named(rt, name))
      if (t.phase == phase) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

// A task's get returns once its value is published; the task ends (and leaves the live list)
// just after. Waits, a bounded time, for every submitted task to have ended.
void settle(lumen::Runtime& rt) {
  for (int i = 0; i < 5000 && rt.stats().tasks_pending != 0; ++i) std::this_thread::sleep_for(1ms);
  REQUIRE(rt.stats().tasks_pending == 0);
}

struct Mailbox {
  int slow(std::atomic<bool>* go) {
    while (!go->load()) std::this_thread::yield();
    return 1;
  }
  int quick() { return 2; }
};

}  // namespace

TEST_CASE("without Config::track_state, listing tasks says how to turn it on; actors and objects need nothing") {
  lumen::Runtime rt{{.workers = 1}};
  CHECK_THROWS_WITH_AS(lumen::list_tasks(rt), doctest::Contains("track_state"), lumen::usage_error);
  CHECK_THROWS_AS(lumen::summarize_tasks(rt), lumen::usage_error);
  CHECK(lumen::list_actors(rt).empty());
  auto big = lumen::put(std::string(5000, 'x'));
  const auto objects = lumen::list_objects({.limit = 1});
  REQUIRE(objects.size() == 1);
  CHECK(objects[0].id == big.id());
  CHECK(objects[0].age == std::chrono::nanoseconds(0));  // no creation time while nothing tracks
  CHECK_THROWS_AS(lumen::Runtime({.state_history = (std::size_t{1} << 24) + 1}), lumen::usage_error);
}

TEST_CASE("a task is listed pending, queued, running and parked while it is, and ended with its outcome") {
  lumen::Runtime rt{{.workers = 1, .track_state = true}};
  std::atomic<bool> release_runner{false};
  lumen::Promise<int> input;
  // Running: holds the only worker.
  const int runner_line = __LINE__ + 1;
  auto runner = lumen::task([&] {
                  while (!release_runner.load()) std::this_thread::yield();
                  return 1;
                }).name("runner").submit();
  REQUIRE(shows(rt, "runner", TaskPhase::running));
  // Pending: waits for an argument no one has set yet.
  auto waiter = lumen::task([](int x) { return x; }).name("waiter").submit(input.ref());
  // Queued: ready, but the worker is busy.
  auto queued = lumen::task([] { return 3; }).name("queued").submit();
  CHECK(shows(rt, "waiter", TaskPhase::pending));
  CHECK(shows(rt, "queued", TaskPhase::queued));

  const auto r = live_named(rt, "runner");
  REQUIRE(r.size() == 1);
  CHECK(r[0].object_id == runner.id());
  CHECK(r[0].worker == 0);
  CHECK(r[0].attempts == 1);
  CHECK(r[0].file.find("test_state.cpp") != std::string::npos);
  CHECK(r[0].line == static_cast<unsigned>(runner_line));
  CHECK(r[0].submitted <= r[0].started);
  CHECK(r[0].started <= std::chrono::steady_clock::now());
  CHECK(r[0].ended == lumen::TaskInfo::time_point{});

  release_runner = true;
  CHECK(lumen::get(runner) == 1);
  CHECK(lumen::get(queued) == 3);
  // Parked: a task whose get waits on the pending one.
  // (A captured ref, not an argument: an argument would keep it pending until resolved.)
  auto parked = lumen::task([waiter] { return lumen::get(waiter) + 1; }).name("parked").submit();
  CHECK(shows(rt, "parked", TaskPhase::parked));
  input.set_value(41);
  CHECK(lumen::get(parked) == 42);
  auto boom = lumen::task([]() -> int { throw std::runtime_error("boom"); }).name("boom").submit();
  CHECK_THROWS(lumen::get(boom));
  settle(rt);

  CHECK(lumen::list_tasks(rt).empty());  // nothing live
  const auto ended = lumen::list_tasks(rt, {.live = false, .ended = true});
  REQUIRE(ended.size() == 5);
  for (const auto& t : ended) {
    INFO(t.name);
    CHECK(t.phase == (t.name == "boom" ? TaskPhase::failed : TaskPhase::finished));
    CHECK(t.submitted <= t.started);
    CHECK(t.started <= t.ended);
    CHECK(t.worker == 0);
  }
  CHECK(std::is_sorted(ended.begin(), ended.end(), [](const auto& a, const auto& b) { return a.submitted < b.submitted; }));
  CHECK(lumen::to_string(TaskPhase::parked) == "parked");
}

TEST_CASE("a task may list the tasks of its own runtime, and sees itself running on its worker") {
  lumen::Runtime rt{{.workers = 2, .track_state = true}};
  auto self = lumen::task([&rt] {
                const auto mine = lumen::list_tasks(rt, {.name = "introspect"});
                return mine.size() == 1 && mine[0].phase == TaskPhase::running && mine[0].worker >= 0 && mine[0].worker < 2;
              }).name("introspect").submit();
  CHECK(lumen::get(self));
}

TEST_CASE("summaries group tasks by name, and unnamed ones by their callable's type") {
  lumen::Runtime rt{{.workers = 2, .track_state = true}};
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 100; ++i) refs.push_back(lumen::task([i] { return i; }).name("alpha").submit());
  for (int i = 0; i < 10; ++i) refs.push_back(lumen::task([]() -> int { throw std::logic_error("no"); }).name("beta").submit());
  struct Doubler {
    int operator()(int x) const { return 2 * x; }
  };
  for (int i = 0; i < 7; ++i) refs.push_back(lumen::submit(Doubler{}, i));
  for (auto& r : refs) {
    try {
      lumen::get(r);
    } catch (const std::logic_error&) {
    }
  }
  settle(rt);
  const auto summary = lumen::summarize_tasks(rt);
  REQUIRE(summary.size() == 3);
  CHECK(summary[0].name == "alpha");  // most tasks first
  CHECK(summary[0].finished == 100);
  CHECK(summary[0].failed == 0);
  CHECK(summary[0].max_time <= summary[0].total_time);
  CHECK(summary[1].name == "beta");
  CHECK(summary[1].failed == 10);
  CHECK(summary[2].name.find("Doubler") != std::string::npos);
  CHECK(summary[2].finished == 7);
  for (const auto& s : summary) CHECK(s.pending + s.queued + s.running + s.parked == 0);
  // lumen::submit cannot name its caller's place.
  const auto doublers = lumen::list_tasks(rt, {.live = false, .ended = true, .name = summary[2].name});
  REQUIRE(doublers.size() == 7);
  CHECK(doublers[0].file.empty());
  CHECK(doublers[0].line == 0);
}

TEST_CASE("the history keeps the most recent ended tasks, up to Config::state_history; limit and name filter") {
  lumen::Runtime rt{{.workers = 1, .track_state = true, .state_history = 10}};
  for (int i = 0; i < 50; ++i) lumen::get(lumen::task([i] { return i; }).name(i % 2 ? "odd" : "even").submit());
  settle(rt);
  auto ended = lumen::list_tasks(rt, {.live = false, .ended = true, .limit = 100});
  CHECK(ended.size() == 10);
  ended = lumen::list_tasks(rt, {.live = false, .ended = true, .name = "odd"});
  CHECK(ended.size() == 5);
  for (const auto& t : ended) CHECK(t.name == "odd");
  CHECK(lumen::list_tasks(rt, {.live = false, .ended = true, .limit = 3}).size() == 3);
  CHECK(lumen::list_tasks(rt, {.live = false, .ended = true, .limit = 0}).empty());
  // The totals still count every task.
  const auto summary = lumen::summarize_tasks(rt);
  REQUIRE(summary.size() == 2);
  CHECK(summary[0].finished + summary[1].finished == 50);

  lumen::Runtime none{{.workers = 1, .track_state = true, .state_history = 0}};
  lumen::get(lumen::task([] { return 1; }).submit());
  settle(none);
  CHECK(lumen::list_tasks(none, {.live = false, .ended = true}).empty());
  CHECK(lumen::summarize_tasks(none).size() == 1);
}

TEST_CASE("a task waiting out its retry delay is pending, and ends with its attempts counted") {
  lumen::Runtime rt{{.workers = 1, .track_state = true}};
  std::atomic<int> runs{0};
  auto r = lumen::task([&runs] {
             if (runs.fetch_add(1) == 0) throw std::runtime_error("first try fails");
             return 7;
           })
               .name("retried")
               .retries(1)
               .retry_backoff(std::chrono::milliseconds(300))
               .submit();
  while (runs.load() == 0) std::this_thread::yield();  // past the pending of its submit
  CHECK(shows(rt, "retried", TaskPhase::pending));
  CHECK(lumen::get(r) == 7);
  settle(rt);
  const auto ended = lumen::list_tasks(rt, {.live = false, .ended = true});
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].attempts == 2);
  CHECK(ended[0].phase == TaskPhase::finished);
}

TEST_CASE("a cancelled task and one whose argument failed end as failed") {
  lumen::Runtime rt{{.workers = 1, .track_state = true}};
  lumen::Promise<int> never;
  auto blocked = lumen::task([](int x) { return x; }).name("cancelled").submit(never.ref());
  CHECK(shows(rt, "cancelled", TaskPhase::pending));
  lumen::cancel(blocked);
  auto failing = lumen::task([]() -> int { throw std::runtime_error("x"); }).name("root").submit();
  auto dependent = lumen::task([](int x) { return x; }).name("dependent").submit(failing);
  CHECK_THROWS(lumen::get(dependent));
  CHECK_THROWS(lumen::get(blocked));
  never.set_value(1);
  settle(rt);
  for (const auto& t : lumen::list_tasks(rt, {.live = false, .ended = true})) {
    INFO(t.name);
    CHECK(t.phase == TaskPhase::failed);
  }
}

TEST_CASE("actors are listed with their type, name and mailbox, and as dead once killed") {
  lumen::Runtime rt{{.workers = 2}};
  auto plain = lumen::actor<Mailbox>();
  auto named = lumen::actor<Mailbox>(lumen::ActorOptions{.name = "inbox"});
  std::atomic<bool> go{false};
  auto first = named.call(&Mailbox::slow, &go);
  std::vector<lumen::ObjectRef<int>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(named.call(&Mailbox::quick));
  auto actors = lumen::list_actors(rt);
  REQUIRE(actors.size() == 2);
  CHECK(actors[0].id < actors[1].id);
  const auto& inbox = actors[0].name == "inbox" ? actors[0] : actors[1];
  CHECK(inbox.name == "inbox");
  CHECK(inbox.type.find("Mailbox") != std::string::npos);
  CHECK(inbox.calls_queued >= 5);
  CHECK(inbox.alive);
  go = true;
  CHECK(lumen::get(first) == 1);
  for (auto& q : queued) CHECK(lumen::get(q) == 2);
  plain.kill();
  actors = lumen::list_actors(rt);
  for (const auto& a : actors) {
    CHECK(a.alive == (a.name == "inbox"));
    if (a.name == "inbox") CHECK(a.calls_executed == 6);
  }
  // Another runtime's actors are not this one's.
  lumen::Runtime other{{.workers = 1}};
  CHECK(lumen::list_actors(other).empty());
}

TEST_CASE("objects are listed largest first, or oldest first with their ages while state is tracked") {
  lumen::Runtime rt{{.workers = 1, .track_state = true}};
  auto small = lumen::put(std::string(100, 'a'));
  std::this_thread::sleep_for(5ms);
  auto large = lumen::put(std::string(1 << 20, 'b'));
  auto medium = lumen::put(std::string(10000, 'c'));
  lumen::Promise<int> pending;
  auto largest = lumen::list_objects({.order = lumen::ObjectOrder::largest, .limit = 2});
  REQUIRE(largest.size() == 2);
  CHECK(largest[0].id == large.id());
  CHECK(largest[0].bytes >= (1u << 20));
  CHECK(largest[0].status == lumen::ObjectInfo::Status::ready);
  CHECK(largest[0].refs == 1);
  CHECK(largest[1].id == medium.id());
  // Oldest: among the objects made here, `small` first, and it is at least 5 ms old.
  std::vector<lumen::ObjectId> mine{small.id(), large.id(), medium.id(), pending.ref().id()};
  std::vector<lumen::ObjectInfo> oldest;
  for (const auto& o : lumen::list_objects({.order = lumen::ObjectOrder::oldest, .limit = 1000000}))
    if (std::find(mine.begin(), mine.end(), o.id) != mine.end()) oldest.push_back(o);
  REQUIRE(oldest.size() == 4);
  CHECK(oldest[0].id == small.id());
  CHECK(oldest[0].age >= 5ms);
  CHECK(oldest[3].id == pending.ref().id());
  CHECK(oldest[3].status == lumen::ObjectInfo::Status::pending);
  auto copy = large;
  CHECK(lumen::list_objects({.limit = 1})[0].refs == 2);
}

TEST_CASE("metrics show tasks by state, a histogram of task times and each actor's mailbox") {
  lumen::Runtime rt{{.workers = 2, .track_state = true}};
  for (int i = 0; i < 20; ++i) lumen::get(lumen::task([] { return 1; }).name("m").submit());
  auto fail = lumen::task([]() -> int { throw std::runtime_error("x"); }).submit();
  CHECK_THROWS(lumen::get(fail));
  auto a = lumen::actor<Mailbox>(lumen::ActorOptions{.name = "box\"1"});
  lumen::get(a.call(&Mailbox::quick));
  settle(rt);
  const std::string text = lumen::metrics_text(rt);
  CHECK(text.find("\nlumen_tasks{state=\"running\"} 0\n") != std::string::npos);
  CHECK(text.find("\nlumen_tasks_ended_total{state=\"finished\"} 20\n") != std::string::npos);
  CHECK(text.find("\nlumen_tasks_ended_total{state=\"failed\"} 1\n") != std::string::npos);
  CHECK(text.find("\nlumen_task_seconds_count 21\n") != std::string::npos);
  CHECK(text.find("\nlumen_task_seconds_bucket{le=\"+Inf\"} 21\n") != std::string::npos);
  CHECK(text.find("lumen_actor_mailbox_calls{actor=\"box\\\"1\",id=") != std::string::npos);
  if (std::system("command -v promtool >/dev/null 2>&1") == 0) {
    std::FILE* p = ::popen("promtool check metrics >/dev/null 2>&1", "w");
    REQUIRE(p != nullptr);
    std::fwrite(text.data(), 1, text.size(), p);
    CHECK(::pclose(p) == 0);
  }
  lumen::Runtime untracked{{.workers = 1}};
  CHECK(lumen::metrics_text(untracked).find("lumen_tasks{") == std::string::npos);
}

TEST_CASE("LUMEN_TRACK_STATE=1 turns tracking on") {
  ::setenv("LUMEN_TRACK_STATE", "1", 1);
  lumen::Runtime rt{{.workers = 1}};
  ::unsetenv("LUMEN_TRACK_STATE");
  lumen::get(lumen::task([] { return 1; }).name("env").submit());
  settle(rt);
  CHECK(lumen::summarize_tasks(rt).at(0).name == "env");
  lumen::Runtime off{{.workers = 1}};
  CHECK_THROWS_AS(lumen::list_tasks(off), lumen::usage_error);
}

TEST_CASE("stress: snapshots from other threads while tasks are submitted, run, park and end") {
#if defined(LUMEN_TEST_SANITIZED)
  constexpr int kRounds = 20;
#else
  constexpr int kRounds = 200;
#endif
  lumen::Runtime rt{{.workers = 2, .track_state = true, .state_history = 64}};
  std::atomic<bool> done{false};
  std::atomic<long> seen{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t)
    readers.emplace_back([&] {
      while (!done) {
        for (const auto& x : lumen::list_tasks(rt, {.ended = true})) seen += static_cast<long>(x.name.size() > 0);
        for (const auto& s : lumen::summarize_tasks(rt)) seen += static_cast<long>(s.finished);
        seen += static_cast<long>(lumen::metrics_text(rt).size() > 0);
        seen += static_cast<long>(lumen::list_objects({.limit = 10}).size());
      }
    });
  std::vector<std::thread> submitters;
  for (int t = 0; t < 2; ++t)
    submitters.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        std::vector<lumen::ObjectRef<int>> refs;
        for (int i = 0; i < 20; ++i) {
          auto leaf = lumen::task([i] { return i; }).name("leaf").submit();
          refs.push_back(lumen::task([](lumen::ObjectRef<int> l) { return lumen::get(l) + 1; }).name(t ? "join1" : "join0").submit(leaf));
        }
        for (auto& r : refs) lumen::get(r);
      }
    });
  for (auto& s : submitters) s.join();
  done = true;
  for (auto& r : readers) r.join();
  settle(rt);
  CHECK(seen > 0);
  const auto summary = lumen::summarize_tasks(rt);
  std::uint64_t total = 0;
  for (const auto& s : summary) total += s.finished;
  CHECK(total == static_cast<std::uint64_t>(2 * kRounds * 20 * 2));
  CHECK(lumen::list_tasks(rt).empty());
}
