// The dashboard (lumen/dashboard/dashboard.h) over loopback: curl for the page, the API and
// the metrics (checked by promtool where installed), raw sockets for connection limits, and
// teardown in either order.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <lumen/dashboard/dashboard.h>
#include <lumen/lumen.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using nlohmann::json;

namespace {

struct Reply {
  int status = 0;
  std::string headers, body;
};

// curl, the way a user would call it; -i keeps the headers.
Reply curl(const std::string& url, const std::string& extra = "") {
  const std::string cmd = "curl -s -i --max-time 10 " + extra + " '" + url + "'";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  Reply r;
  const auto split = out.find("\r\n\r\n");
  if (split == std::string::npos) return r;
  r.headers = out.substr(0, split);
  r.body = out.substr(split + 4);
  if (r.headers.rfind("HTTP/1.1 ", 0) == 0) r.status = std::stoi(r.headers.substr(9, 3));
  return r;
}

// Polls /api/stats until pred holds (the sampler runs every sample_interval).
json stats_when(const lumen::Dashboard& d, const std::function<bool(const json&)>& pred) {
  json j;
  for (int i = 0; i < 200; ++i) {
    const Reply r = curl(d.url() + "api/stats");
    if (r.status == 200) {
      j = json::parse(r.body);
      if (pred(j)) return j;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("the condition never held; last /api/stats: " << j.dump());
  return j;
}

int connect_to(unsigned short port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

bool promtool_installed() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

lumen::DashboardOptions fast() { return {.port = 0, .sample_interval = std::chrono::milliseconds(20)}; }

}  // namespace

TEST_CASE("the page, the API and the metrics over loopback show what the runtime ran") {
  lumen::Runtime rt{{.workers = 2}};
  lumen::Dashboard d{rt, fast()};
  CHECK(d.port() != 0);
  CHECK(d.url() == "http://127.0.0.1:" + std::to_string(d.port()) + "/");

  constexpr int kTasks = 500;
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < kTasks; ++i) refs.push_back(lumen::task([i] { return i; }).name("counted").submit());
  for (auto& r : refs) lumen::get(r);
  lumen::Counter mine{"dashboard_test_total", "A counter of the test's own"};
  mine.inc(3);

  const Reply page = curl(d.url());
  CHECK(page.status == 200);
  CHECK(page.headers.find("Content-Type: text/html; charset=utf-8") != std::string::npos);
  CHECK(page.headers.find("Content-Security-Policy:") != std::string::npos);
  CHECK(page.body.find("lumen dashboard") != std::string::npos);

  const json stats = stats_when(d, [](const json& j) { return j["tasks_run"].get<long>() >= kTasks; });
  CHECK(stats["workers"] == 2);
  CHECK(stats["runtime_ended"] == false);
  CHECK(stats["queue_lengths"].size() == 2);
  CHECK(stats["worker_busy"].size() == 2);
  for (const auto& b : stats["worker_busy"]) CHECK((b.get<double>() >= 0 && b.get<double>() <= 1));
  const auto& h = stats["history"];
  CHECK(h["time_s"].size() == h["tasks_run"].size());
  CHECK(h["time_s"].size() == h["worker_busy"].size());
  CHECK(h["time_s"].size() <= 240);

  const Reply timeline = curl(d.url() + "api/timeline");
  REQUIRE(timeline.status == 200);
  const json t = json::parse(timeline.body);
  long counted = 0;
  for (const auto& n : t["tasks_by_name"])
    if (n["name"] == "counted") counted = n["count"].get<long>();
  CHECK(counted == kTasks);
  for (const auto& e : t["events"]) {
    CHECK(e["worker"].get<int>() < 2);
    CHECK(e["dur_us"].get<double>() >= 0);
  }

  const Reply metrics = curl(d.url() + "metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.headers.find("text/plain; version=0.0.4") != std::string::npos);
  CHECK(metrics.body.find("\ndashboard_test_total 3\n") != std::string::npos);
  CHECK(metrics.body.find("\nlumen_workers 2\n") != std::string::npos);
  if (promtool_installed()) {
    const std::string cmd = "curl -s '" + d.url() + "metrics' | promtool check metrics";
    CHECK(std::system(cmd.c_str()) == 0);
  }
}

TEST_CASE("only GET and HEAD, unknown paths are 404, HEAD has no body, keep-alive holds") {
  lumen::Runtime rt{{.workers = 1}};
  lumen::Dashboard d{rt, fast()};
  const Reply post = curl(d.url() + "api/stats", "-X POST -d x=1");
  CHECK(post.status == 405);
  CHECK(post.headers.find("Allow: GET, HEAD") != std::string::npos);
  CHECK(curl(d.url() + "nothing-here").status == 404);
  CHECK(curl(d.url() + "api/stats?x=1").status == 200);  // a query string is ignored
  const Reply head = curl(d.url() + "api/stats", "-I");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  // Two requests on one connection.
  const std::string both = "curl -s -o /dev/null -o /dev/null -w '%{num_connects} ' '" + d.url() + "api/stats' '" + d.url() + "metrics'";
  std::FILE* p = ::popen(both.c_str(), "r");
  char buf[64] = {};
  CHECK(std::fread(buf, 1, sizeof buf - 1, p) > 0);
  ::pclose(p);
  CHECK(std::string(buf) == "1 0 ");
  // An oversized request is refused without taking the server down.
  const Reply big = curl(d.url() + "api/stats", "-H 'X-Big: " + std::string(20000, 'a') + "'");
  CHECK(big.status != 200);
  CHECK(curl(d.url() + "api/stats").status == 200);
}

TEST_CASE("bad options and an address in use are refused with the reason") {
  lumen::Runtime rt{{.workers = 1}};
  using std::chrono::milliseconds;
  CHECK_THROWS_WITH_AS(lumen::Dashboard(rt, {.port = 0, .sample_interval = milliseconds(5)}), doctest::Contains("sample_interval"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Dashboard(rt, {.port = 0, .history = 0}), doctest::Contains("history"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Dashboard(rt, {.port = 0, .timeline_window = milliseconds(99)}), doctest::Contains("timeline_window"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Dashboard(rt, {.port = 0, .timeline_events_per_thread = 0}), doctest::Contains("timeline_events_per_thread"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Dashboard(rt, {.port = 0, .max_connections = 0}), doctest::Contains("max_connections"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Dashboard(rt, {.host = "localhost", .port = 0}), doctest::Contains("not an IPv4 or IPv6"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(lumen::Dashboard(rt, {.host = "", .port = 0}), doctest::Contains("not an IPv4 or IPv6"), lumen::usage_error);

  lumen::Dashboard first{rt, fast()};
  try {
    lumen::Dashboard second{rt, {.port = first.port()}};
    FAIL("a second dashboard bound the same port");
  } catch (const std::system_error& e) {
    CHECK(std::string(e.what()).find(std::to_string(first.port())) != std::string::npos);
  }
  // Not an address of this machine.
  CHECK_THROWS_AS(lumen::Dashboard(rt, {.host = "192.0.2.1", .port = 0}), std::system_error);
  // IPv6 loopback, where the machine has it.
  try {
    lumen::Dashboard v6{rt, {.host = "::1", .port = 0}};
    CHECK(v6.url() == "http://[::1]:" + std::to_string(v6.port()) + "/");
  } catch (const std::system_error&) {
    MESSAGE("no IPv6 loopback here");
  }
}

namespace {
struct Slow {
  int wait(std::atomic<bool>* go) {
    while (!go->load()) std::this_thread::yield();
    return 1;
  }
  int ping() { return 2; }
};
}  // namespace

TEST_CASE("/api/state lists tasks by name and state, actors with their mailboxes, and the largest objects") {
  lumen::Runtime rt{{.workers = 2, .track_state = true}};
  lumen::Dashboard d{rt, fast()};
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 30; ++i) refs.push_back(lumen::task([i] { return i; }).name("listed").submit());
  for (auto& r : refs) lumen::get(r);
  auto big = lumen::put(std::string(1 << 22, 'x'));  // larger than any other object of this test
  auto actor = lumen::actor<Slow>(lumen::ActorOptions{.name = "slowpoke"});
  std::atomic<bool> go{false};
  auto first = actor.call(&Slow::wait, &go);
  std::vector<lumen::ObjectRef<int>> pings;
  for (int i = 0; i < 4; ++i) pings.push_back(actor.call(&Slow::ping));

  const Reply reply = curl(d.url() + "api/state");
  REQUIRE(reply.status == 200);
  const json st = json::parse(reply.body);
  CHECK(st["tracked"] == true);
  bool listed = false;
  for (const auto& t : st["tasks"])
    if (t["name"] == "listed") {
      listed = true;
      // Ended tasks leave the live list just after their get returns.
      CHECK(t["finished"].get<long>() + t["running"].get<long>() == 30);
    }
  CHECK(listed);
  REQUIRE(st["actors"].size() == 1);
  CHECK(st["actors"][0]["name"] == "slowpoke");
  CHECK(st["actors"][0]["type"].get<std::string>().find("Slow") != std::string::npos);
  CHECK(st["actors"][0]["calls_queued"].get<long>() >= 4);
  REQUIRE(!st["largest_objects"].empty());
  CHECK(st["largest_objects"][0]["id"].get<std::uint64_t>() == big.id().value);
  CHECK(st["largest_objects"][0]["bytes"].get<std::size_t>() >= (std::size_t{1} << 22));
  go = true;
  CHECK(lumen::get(first) == 1);
  for (auto& p : pings) CHECK(lumen::get(p) == 2);

  lumen::Runtime untracked{{.workers = 1}};
  lumen::Dashboard d2{untracked, fast()};
  const json st2 = json::parse(curl(d2.url() + "api/state").body);
  CHECK(st2["tracked"] == false);
  CHECK(st2["tasks"].empty());
}

TEST_CASE("teardown in either order: a dashboard outliving its runtime says so, and a runtime outliving its dashboard records again") {
  std::optional<lumen::Runtime> rt;
  rt.emplace(lumen::Config{.workers = 2});
  std::optional<lumen::Dashboard> d;
  d.emplace(*rt, fast());
  lumen::get(lumen::submit([] { return 1; }));
  rt.reset();  // the runtime first
  const json stats = stats_when(*d, [](const json& j) { return j["runtime_ended"].get<bool>(); });
  CHECK(stats["tasks_run"].get<long>() >= 0);
  CHECK(curl(d->url() + "metrics").status == 503);
  CHECK(curl(d->url() + "api/state").status == 503);
  CHECK(curl(d->url() + "api/timeline").status == 200);
  d.reset();

  lumen::Runtime rt2{{.workers = 1}};
  {
    lumen::Dashboard d2{rt2, fast()};
    stats_when(d2, [](const json& j) { return j["history"]["time_s"].size() >= 2; });
    d2.stop();
    d2.stop();  // idempotent
  }
  // The dashboard's timeline recording ended with it.
  lumen::TimelineRecording mine{rt2};
  CHECK(mine.recording());
}

TEST_CASE("a program that records the timeline itself keeps it; the dashboard says why it shows none") {
  lumen::Runtime rt{{.workers = 1}};
  lumen::TimelineRecording mine{rt};
  lumen::Dashboard d{rt, fast()};
  stats_when(d, [](const json& j) { return j["history"]["time_s"].size() >= 2; });
  const json t = json::parse(curl(d.url() + "api/timeline").body);
  CHECK(t["events"].empty());
  CHECK(t["note"].get<std::string>().find("records the timeline itself") != std::string::npos);
  CHECK(mine.recording());

  lumen::Dashboard without{rt, {.port = 0, .timeline = false}};
  const json t2 = json::parse(curl(without.url() + "api/timeline").body);
  CHECK(t2["note"].get<std::string>().find("without a timeline") != std::string::npos);
}

TEST_CASE("connections past max_connections are closed at once; stop() closes the rest") {
  lumen::Runtime rt{{.workers = 1}};
  lumen::Dashboard d{rt, {.port = 0, .max_connections = 2}};
  const int a = connect_to(d.port()), b = connect_to(d.port());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // both accepted
  const int c = connect_to(d.port());
  char byte;
  CHECK(::recv(c, &byte, 1, 0) == 0);  // closed by the server without a word
  ::close(c);
  d.stop();
  CHECK(::recv(a, &byte, 1, 0) == 0);
  CHECK(::recv(b, &byte, 1, 0) == 0);
  ::close(a);
  ::close(b);
}

TEST_CASE("out of file descriptors: the dashboard waits for one, then answers the client that waited") {
  lumen::Runtime rt{{.workers = 1}};
  lumen::Dashboard d{rt, fast()};
  // curl, started before this process runs out, connects while it is out (the kernel queues
  // the connection; the dashboard cannot accept it yet).
  const std::string cmd = "sh -c \"sleep 0.5; curl -s -o /dev/null -w '%{http_code}' --max-time 20 " + d.url() + "api/stats\"";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  std::vector<int> held;
  rlimit low = saved;
  low.rlim_cur = 256;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  for (int fd; (fd = ::dup(0)) >= 0;) held.push_back(fd);
  rusage before{}, after{};
  ::getrusage(RUSAGE_SELF, &before);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // curl has connected meanwhile
  ::getrusage(RUSAGE_SELF, &after);
  for (int fd : held) ::close(fd);
  // A failed accept retried at once would keep a core busy the whole time; waiting between
  // tries uses next to nothing.
  auto cpu_seconds = [](const rusage& u) {
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
  };
  CHECK(cpu_seconds(after) - cpu_seconds(before) < 0.75);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
  char code[8] = {};
  CHECK(std::fread(code, 1, sizeof code - 1, p) == 3);
  ::pclose(p);
  CHECK(std::string(code) == "200");
  CHECK(curl(d.url() + "api/stats").status == 200);
}

TEST_CASE("stress: many clients at once while tasks run, then stop with clients connected") {
#if defined(LUMEN_TEST_SANITIZED)
  constexpr int kRequests = 20;
#else
  constexpr int kRequests = 100;
#endif
  lumen::Runtime rt{{.workers = 2}};
  lumen::Dashboard d{rt, fast()};
  std::atomic<bool> done{false};
  std::thread work([&] {
    while (!done) {
      std::vector<lumen::ObjectRef<int>> refs;
      for (int i = 0; i < 100; ++i) refs.push_back(lumen::task([i] { return i; }).name("stress").submit());
      for (auto& r : refs) lumen::get(r);
    }
  });
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t)
    clients.emplace_back([&, t] {
      const char* paths[] = {"api/stats", "api/timeline", "metrics", ""};
      for (int i = 0; i < kRequests / 4; ++i) {
        const Reply r = curl(d.url() + paths[(i + t) % 4]);
        if (r.status == 200) {
          ok.fetch_add(1);
        } else {
          std::fprintf(stderr, "GET /%s: status %d, headers %s\n", paths[(i + t) % 4], r.status, r.headers.c_str());
        }
      }
    });
  for (auto& c : clients) c.join();
  CHECK(ok == kRequests / 4 * 4);
  // Tens of thousands of slices were recorded; the longest 4000 travel, the count says so.
  const json t = json::parse(curl(d.url() + "api/timeline").body);
  CHECK(t["events"].size() <= 4000);
  CHECK(t["events_total"].get<std::uint64_t>() >= t["events"].size());
  CHECK(t["events_total"].get<std::uint64_t>() > 4000);
  const int idle = connect_to(d.port());
  d.stop();
  char byte;
  CHECK(::recv(idle, &byte, 1, 0) <= 0);  // closed, or reset when stop() came before the accept
  ::close(idle);
  done = true;
  work.join();
}
