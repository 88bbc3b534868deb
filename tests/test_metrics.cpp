// Metrics (lumen/metrics.h): the runtime's and the program's, in Prometheus's text format,
// checked with Prometheus's own promtool where it is installed.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

// The value of the sample line that starts with `series` followed by a space.
double sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  FAIL("no sample " << series << " in\n" << text);
  return 0;
}

bool promtool_installed() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

// promtool's verdict on the text: empty when it passes, else what it said.
std::string promtool_check(const std::string& text) {
  char path[] = "/tmp/lumen-metrics-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  std::FILE* f = ::fdopen(fd, "w");
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
  const std::string cmd = std::string("promtool check metrics < ") + path + " 2>&1";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  std::string said;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) said += buf;
  const int status = ::pclose(p);
  std::remove(path);
  return status == 0 ? std::string() : (said.empty() ? std::string("promtool failed") : said);
}

}  // namespace

TEST_CASE("the runtime's metrics count what it did") {
  lumen::Runtime rt{{.workers = 2}};
  constexpr int kTasks = 300;
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < kTasks; ++i) refs.push_back(lumen::submit([i] { return i; }));
  for (auto& r : refs) lumen::get(r);
  auto counter = lumen::actor<std::vector<int>>();
  lumen::get(counter.call([](std::vector<int>& v) { v.push_back(1); }));
  auto big = lumen::put(std::vector<char>(1 << 20, 'x'));
  // A get returns once the value is published; its task ends (and leaves the pending count)
  // just after.
  for (int i = 0; i < 5000 && rt.stats().tasks_pending != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  const std::string text = lumen::metrics_text(rt);
  CHECK(sample(text, "lumen_workers") == 2);
  CHECK(sample(text, "lumen_tasks_run_total") >= kTasks);
  CHECK(sample(text, "lumen_tasks_pending") == 0);
  CHECK(sample(text, "lumen_actors_alive") == 1);
  CHECK(sample(text, "lumen_actor_calls_executed_total") >= 1);
  CHECK(sample(text, "lumen_object_bytes") >= (1 << 20));
  CHECK(sample(text, "lumen_worker_queue_length{worker=\"1\"}") >= 0);
  CHECK(sample(text, "lumen_worker_idle_seconds_total{worker=\"0\"}") >= 0);
  for (const char* family : {"lumen_steals_total", "lumen_parks_total", "lumen_fibers_created_total", "lumen_objects",
                             "lumen_object_table_bytes", "lumen_blocking_threads", "lumen_actor_calls_queued"})
    CHECK(text.find(std::string("# TYPE ") + family + " ") != std::string::npos);
  if (promtool_installed()) {
    CHECK(promtool_check(text) == "");
  } else {
    MESSAGE("promtool is not installed (apt-get install prometheus): the format was not checked by it");
  }
}

TEST_CASE("a worker with nothing to do counts its idle time, the span in progress included") {
  lumen::Runtime rt{{.workers = 1}};
  lumen::get(lumen::submit([] { return 1; }));
  const auto before = rt.stats().idle_ns.at(0);
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto after = rt.stats().idle_ns.at(0);
  const auto slept = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  // The worker was idle the whole time this thread slept (it had nothing queued), and idle
  // time never runs ahead of the clock.
  CHECK(after - before >= static_cast<std::uint64_t>(slept) / 2);
  CHECK(after - before <= static_cast<std::uint64_t>(slept) + 5'000'000);
}

TEST_CASE("the program's counters, gauges and histograms appear with their labels, HELP and TYPE") {
  lumen::Runtime rt{{.workers = 1}};
  lumen::Counter requests{"test_requests_total", "Requests handled", {{"route", "/predict"}}};
  lumen::Counter other_route{"test_requests_total", "Requests handled", {{"route", "/a\"b\\c\nd"}}};
  lumen::Gauge in_flight{"test_in_flight", "Requests in flight"};
  lumen::Histogram latency{"test_latency_seconds", "Time per request", {0.001, 0.01, 0.1}};
  requests.inc();
  requests.inc(2.5);
  other_route.inc();
  in_flight.set(7);
  in_flight.dec(2);
  in_flight.inc();
  for (double v : {0.0005, 0.001, 0.005, 0.05, 0.5, 3.0}) latency.observe(v);

  // The same name and labels is the same series.
  lumen::Counter again{"test_requests_total", "Requests handled", {{"route", "/predict"}}};
  again.inc();
  CHECK(requests.value() == 4.5);

  const std::string text = lumen::metrics_text(rt);
  CHECK(text.find("# HELP test_requests_total Requests handled\n# TYPE test_requests_total counter\n") != std::string::npos);
  CHECK(sample(text, "test_requests_total{route=\"/predict\"}") == 4.5);
  CHECK(sample(text, "test_requests_total{route=\"/a\\\"b\\\\c\\nd\"}") == 1);
  CHECK(sample(text, "test_in_flight") == 6);
  // Buckets are cumulative; +Inf equals the count; an observation on a bound falls in that bucket.
  CHECK(sample(text, "test_latency_seconds_bucket{le=\"0.001\"}") == 2);
  CHECK(sample(text, "test_latency_seconds_bucket{le=\"0.01\"}") == 3);
  CHECK(sample(text, "test_latency_seconds_bucket{le=\"0.10000000000000001\"}") == 4);
  CHECK(sample(text, "test_latency_seconds_bucket{le=\"+Inf\"}") == 6);
  CHECK(sample(text, "test_latency_seconds_count") == 6);
  CHECK(std::abs(sample(text, "test_latency_seconds_sum") - 3.5565) < 1e-9);
  CHECK(latency.count() == 6);
  if (promtool_installed()) CHECK(promtool_check(text) == "");
}

TEST_CASE("bad names, labels, bounds and values are refused with the reason") {
  CHECK_THROWS_WITH_AS(lumen::Counter("1abc", "x"), doctest::Contains("not a valid metric name"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Counter("a-b", "x"), doctest::Contains("not a valid metric name"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Counter("", "x"), doctest::Contains("not a valid metric name"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Gauge("lumen_mine", "x"), doctest::Contains("runtime's"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Counter("test_bad_label", "x", {{"__reserved", "v"}}), doctest::Contains("label name"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Counter("test_bad_label", "x", {{"a:b", "v"}}), doctest::Contains("label name"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Histogram("test_bad_le", "x", {1.0}, {{"le", "v"}}), doctest::Contains("label name"), lumen::usage_error);

  lumen::Counter c{"test_kind_clash", "help"};
  CHECK_THROWS_WITH_AS(lumen::Gauge("test_kind_clash", "help"), doctest::Contains("registered as a counter"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Counter("test_kind_clash", "other help"), doctest::Contains("another help"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(c.inc(-1), doctest::Contains("only goes up"), lumen::usage_error);
  CHECK_THROWS_AS(c.inc(std::nan("")), lumen::usage_error);
  CHECK(c.value() == 0);

  CHECK_THROWS_WITH_AS(lumen::Histogram("test_h1", "x", {}), doctest::Contains("at least one"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Histogram("test_h2", "x", {1, 1}), doctest::Contains("strictly increasing"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Histogram("test_h3", "x", {2, 1}), doctest::Contains("strictly increasing"), lumen::usage_error);
  CHECK_THROWS_AS(lumen::Histogram("test_h4", "x", {1, INFINITY}), lumen::usage_error);
  lumen::Histogram h{"test_h5", "x", {1, 2}};
  CHECK_THROWS_WITH_AS(lumen::Histogram("test_h5", "x", {1, 3}), doctest::Contains("other bucket bounds"), lumen::usage_error);
  CHECK_THROWS_AS(h.observe(std::nan("")), lumen::usage_error);
  h.observe(-INFINITY);  // falls in the first bucket
  h.observe(INFINITY);   // only in +Inf
  CHECK(h.count() == 2);
}

TEST_CASE("stress: metrics updated from many threads and tasks at once lose no update") {
  lumen::Runtime rt{{.workers = 2}};
  lumen::Counter hits{"test_stress_hits_total", "hits"};
  lumen::Gauge level{"test_stress_level", "level"};
  lumen::Histogram sizes{"test_stress_sizes", "sizes", {10, 100, 1000}};
  constexpr int kThreads = 4, kEach = 20000;
  std::vector<std::thread> threads;
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop) (void)lumen::metrics_text(rt);  // reads while others write
  });
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        hits.inc();
        level.inc();
        level.dec();
        sizes.observe((i * 7 + t) % 2000);
        if (i % 1000 == 0) lumen::Counter{"test_stress_hits_total", "hits"}.inc(0);  // registration races
      }
    });
  lumen::task_group g;
  for (int i = 0; i < kEach; ++i) g.run([&] { hits.inc(); });
  g.wait();
  for (auto& t : threads) t.join();
  stop = true;
  reader.join();
  CHECK(hits.value() == double(kThreads * kEach + kEach));
  CHECK(level.value() == 0);
  CHECK(sizes.count() == std::uint64_t(kThreads) * kEach);
}
