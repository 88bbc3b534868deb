// The timeline (lumen/timeline.h): the Chrome trace a recording produces is parsed and its
// events are checked against what ran.
#include <doctest/doctest.h>
#include <lumen/lumen.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using nlohmann::json;

namespace {

struct Squarer {
  int operator()(int x) const { return x * x; }
};

struct Counter {
  int n = 0;
  int add(int k) { return n += k; }
};

std::vector<json> events_named(const json& trace, const std::string& name) {
  std::vector<json> out;
  for (const auto& e : trace["traceEvents"])
    if (e.value("name", "") == name && e["ph"] != "M") out.push_back(e);
  return out;
}

std::string temp_path(const char* tag) {
  return "/tmp/lumen-timeline-" + std::string(tag) + "-" + std::to_string(::getpid()) + ".json";
}

json read_file(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return json::parse(in);
}

// The names Chrome shows for each (pid, tid).
std::map<long, std::string> thread_names(const json& trace) {
  std::map<long, std::string> names;
  for (const auto& e : trace["traceEvents"])
    if (e["ph"] == "M" && e["name"] == "thread_name") names[e["tid"].get<long>()] = e["args"]["name"].get<std::string>();
  return names;
}

}  // namespace

TEST_CASE("a recording has one slice per named task, on worker tracks, never overlapping on one track") {
  lumen::Runtime rt{{.workers = 2}};
  lumen::TimelineRecording rec{rt};
  constexpr int kTasks = 200;
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < kTasks; ++i) refs.push_back(lumen::task([i] { return i + 1; }).name("alpha").submit());
  long sum = 0;
  for (auto& r : refs) sum += lumen::get(r);
  CHECK(sum == kTasks * (kTasks + 1) / 2);
  rec.stop();
  CHECK_FALSE(rec.recording());
  const json trace = json::parse(rec.chrome_trace());

  const auto alpha = events_named(trace, "alpha");
  CHECK(alpha.size() == kTasks);
  const auto names = thread_names(trace);
  for (const auto& e : alpha) {
    CHECK(e["ph"] == "X");
    CHECK(e["cat"] == "task");
    CHECK(e["ts"].get<double>() >= 0);
    CHECK(e["dur"].get<double>() >= 0);
    const long tid = e["tid"].get<long>();
    REQUIRE(names.count(tid) == 1);
    CHECK(names.at(tid).rfind("worker ", 0) == 0);
  }
  // Slices (tasks and idle spans) of one worker never overlap: each worker does one thing at a time.
  std::map<long, std::vector<std::pair<double, double>>> spans;
  for (const auto& e : trace["traceEvents"])
    if (e["ph"] == "X" && names.count(e["tid"].get<long>()) && names.at(e["tid"].get<long>()).rfind("worker ", 0) == 0)
      spans[e["tid"].get<long>()].emplace_back(e["ts"].get<double>(), e["ts"].get<double>() + e["dur"].get<double>());
  for (auto& [tid, list] : spans) {
    std::sort(list.begin(), list.end());
    for (std::size_t i = 1; i < list.size(); ++i) CHECK(list[i].first >= list[i - 1].second - 0.002);  // printed to the ns
  }
  CHECK(rec.events() >= kTasks);
  CHECK(rec.dropped() == 0);
  // The same slices, read without JSON.
  std::size_t named = 0;
  for (const auto& s : rec.slices()) {
    CHECK(s.worker < 2);
    CHECK(s.duration_us >= 0);
    if (s.name == "alpha") ++named;
  }
  CHECK(named == kTasks);
  CHECK(rec.start_steady_ns() > 0);
  CHECK(trace["otherData"]["dropped_events"] == 0);
}

TEST_CASE("an unnamed task is named after its callable's type, an actor's calls after its name or type") {
  lumen::Runtime rt{{.workers = 2}};
  lumen::TimelineRecording rec{rt};
  CHECK(lumen::get(lumen::submit(Squarer{}, 7)) == 49);
  auto named = lumen::actor<Counter>(lumen::ActorOptions{.name = "hits"});
  auto anonymous = lumen::actor<Counter>();
  for (int i = 0; i < 5; ++i) {
    lumen::get(named.call(&Counter::add, 1));
    lumen::get(anonymous.call(&Counter::add, 1));
  }
  rec.stop();
  const json trace = json::parse(rec.chrome_trace());
  bool squarer = false, counter = false;
  for (const auto& e : trace["traceEvents"]) {
    const std::string name = e.value("name", "");
    if (e["ph"] != "X") continue;
    squarer = squarer || name.find("Squarer") != std::string::npos;
    counter = counter || name.find("Counter") != std::string::npos;
  }
  CHECK(squarer);
  CHECK(counter);
  CHECK(events_named(trace, "hits").size() >= 1);
}

TEST_CASE("a task that blocks is parked and resumed: its slice pauses between the two marks") {
  lumen::Runtime rt{{.workers = 1}};
  lumen::TimelineRecording rec{rt};
  lumen::Promise<int> promise;
  auto value = promise.ref();
  auto blocked = lumen::task([value] { return lumen::get(value) + 1; }).name("blocked").submit();
  // Let the task start and park before the value comes.
  while (rt.stats().parks == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  promise.set_value(41);
  CHECK(lumen::get(blocked) == 42);
  rec.stop();
  const json trace = json::parse(rec.chrome_trace());
  const auto parks = events_named(trace, "park");
  const auto resumes = events_named(trace, "resume");
  REQUIRE(parks.size() == 1);
  REQUIRE(resumes.size() == 1);
  CHECK(parks[0]["args"]["task"] == "blocked");
  CHECK(resumes[0]["args"]["task"] == "blocked");
  const auto slices = events_named(trace, "blocked");
  REQUIRE(slices.size() == 2);  // before the park, after the resume
  const double park_at = parks[0]["ts"].get<double>(), resume_at = resumes[0]["ts"].get<double>();
  CHECK(resume_at >= park_at);
  for (const auto& s : slices) {
    const double begin = s["ts"].get<double>(), end = begin + s["dur"].get<double>();
    CHECK((end <= park_at + 0.001 || begin >= resume_at - 0.001));
  }
}

TEST_CASE("threads that are not workers: a get that blocks and puts, on a track of their own") {
  lumen::Runtime rt{{.workers = 1}};
  lumen::TimelineRecording rec{rt};
  auto slow = lumen::submit([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return 5;
  });
  CHECK(lumen::get(slow) == 5);
  auto p = lumen::put(std::vector<double>(1000, 1.0));
  rec.stop();
  const json trace = json::parse(rec.chrome_trace());
  const auto gets = events_named(trace, "get");
  REQUIRE(gets.size() == 1);
  CHECK(gets[0]["dur"].get<double>() >= 1000.0);  // microseconds: it waited for the sleep
  const auto names = thread_names(trace);
  CHECK(names.at(gets[0]["tid"].get<long>()).find("not a worker") != std::string::npos);
  const auto puts = events_named(trace, "put");
  REQUIRE(puts.size() == 1);
  CHECK(puts[0]["args"]["bytes"].get<std::size_t>() == sizeof(std::vector<double>) + 1000 * sizeof(double));
}

TEST_CASE("steals are marked on the thief's track with the victim") {
  lumen::Runtime rt{{.workers = 2}};
  lumen::TimelineRecording rec{rt};
  std::atomic<long> ran{0};
  // One task fills its worker's deque; the other worker can only steal.
  lumen::get(lumen::submit([&] {
    lumen::task_group g;
    for (int i = 0; i < 2000; ++i)
      g.run([&] {
        volatile double x = 0;
        for (int k = 0; k < 2000; ++k) x = x + k;
        ran.fetch_add(1);
      });
    g.wait();
  }));
  CHECK(ran == 2000);
  rec.stop();
  const json trace = json::parse(rec.chrome_trace());
  const auto names = thread_names(trace);
  for (const auto& e : events_named(trace, "steal")) {
    const std::string thief = names.at(e["tid"].get<long>());
    CHECK(thief.rfind("worker ", 0) == 0);
    CHECK(e["args"]["victim"].get<std::string>().rfind("worker ", 0) == 0);
    CHECK(e["args"]["victim"].get<std::string>() != thief);
  }
  CHECK(events_named(trace, "steal").size() <= rt.stats().steals);
}

TEST_CASE("Config::timeline_path and LUMEN_TIMELINE record the runtime's whole life into a file") {
  const std::string path = temp_path("config");
  {
    lumen::Runtime rt{{.workers = 2, .timeline_path = path}};
    lumen::get(lumen::task([] { return 1; }).name("from-config").submit());
    // The runtime records already: a second recording is refused.
    CHECK_THROWS_AS(lumen::TimelineRecording{rt}, lumen::usage_error);
  }
  CHECK(events_named(read_file(path), "from-config").size() == 1);
  std::remove(path.c_str());

  const std::string env_path = temp_path("env");
  ::setenv("LUMEN_TIMELINE", env_path.c_str(), 1);
  {
    lumen::Runtime rt{{.workers = 1}};
    ::unsetenv("LUMEN_TIMELINE");
    lumen::get(lumen::task([] { return 1; }).name("from-env").submit());
  }
  CHECK(events_named(read_file(env_path), "from-env").size() == 1);
  std::remove(env_path.c_str());
}

TEST_CASE("bad settings and misuse get clear errors") {
  try {
    lumen::Runtime rt{{.workers = 1, .timeline_path = "/nonexistent-dir/x/trace.json"}};
    FAIL("a timeline_path that cannot be written was accepted");
  } catch (const lumen::usage_error& e) {
    CHECK(std::string(e.what()).find("Config::timeline_path") != std::string::npos);
    CHECK(std::string(e.what()).find("/nonexistent-dir/x/trace.json") != std::string::npos);
  }
  CHECK_THROWS_AS((lumen::Runtime{{.workers = 1, .timeline_events_per_thread = 0}}), lumen::usage_error);
  CHECK_THROWS_AS((lumen::Runtime{{.workers = 1, .timeline_events_per_thread = (std::size_t{1} << 30) + 1}}), lumen::usage_error);

  lumen::Runtime rt{{.workers = 1}};
  lumen::TimelineRecording first{rt};
  CHECK_THROWS_AS(lumen::TimelineRecording{rt}, lumen::usage_error);
  first.stop();
  first.stop();  // idempotent
  lumen::TimelineRecording second{rt};  // one at a time, so a new one may start now
  CHECK(second.recording());
  CHECK_THROWS_AS(second.write("/nonexistent-dir/x/trace.json"), std::system_error);

  lumen::TimelineRecording moved = std::move(second);
  CHECK(moved.recording());
  CHECK_THROWS_AS(second.chrome_trace(), lumen::usage_error);  // NOLINT: moved-from on purpose
}

TEST_CASE("a full log counts what it drops, and the trace stays valid") {
  lumen::Runtime rt{{.workers = 1, .timeline_events_per_thread = 1}};
  lumen::TimelineRecording rec{rt};
  for (int i = 0; i < 50; ++i) lumen::get(lumen::task([] { return 1; }).name("many").submit());
  rec.stop();
  CHECK(rec.dropped() > 0);
  const json trace = json::parse(rec.chrome_trace());
  CHECK(trace["otherData"]["dropped_events"].get<std::uint64_t>() == rec.dropped());
  CHECK(events_named(trace, "many").size() < 50);
}

TEST_CASE("a recording outlives its runtime: it stops with it and keeps its events") {
  std::optional<lumen::TimelineRecording> rec;
  {
    lumen::Runtime rt{{.workers = 2}};
    rec.emplace(rt);
    lumen::get(lumen::task([] { return 1; }).name("before-the-end").submit());
  }
  CHECK_FALSE(rec->recording());
  rec->stop();
  CHECK(events_named(json::parse(rec->chrome_trace()), "before-the-end").size() == 1);
}

TEST_CASE("stress: recordings start and stop and are read while tasks run from several threads") {
#if defined(LUMEN_TEST_SANITIZED)
  constexpr int kRounds = 20;
#else
  constexpr int kRounds = 200;
#endif
  lumen::Runtime rt{{.workers = 2}};
  std::atomic<bool> done{false};
  std::atomic<long> results{0};
  std::vector<std::thread> submitters;
  for (int t = 0; t < 3; ++t)
    submitters.emplace_back([&] {
      while (!done) {
        auto a = lumen::task([] { return 1; }).name("stress").submit();
        auto b = lumen::submit([](int x) { return x + 1; }, a);
        results += lumen::get(b);
        auto p = lumen::put(std::string(100, 'x'));
      }
    });
  for (int i = 0; i < kRounds; ++i) {
    lumen::TimelineRecording rec{rt};
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (i % 10 == 0) CHECK_FALSE(json::parse(rec.chrome_trace()).is_null());  // while recording
    rec.stop();
    CHECK_FALSE(json::parse(rec.chrome_trace()).is_null());
  }
  done = true;
  for (auto& t : submitters) t.join();
  CHECK(results > 0);
}
