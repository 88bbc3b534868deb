// Deployments in process, through DeploymentHandle: routing over replicas, back-pressure,
// batching boundaries, user_config, health checks and replacement, replicas dying under a
// request, autoscaling up and down, drain on shutdown, composition, and misuse.
#include <doctest/doctest.h>
#include <lumen/lumen.h>
#include <lumen/serve/serve.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace serve = lumen::serve;

namespace {

// Waits (bounded) until cond holds; false if it never did. For states that settle on the
// controller's thread; no test asserts how fast.
bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return cond();
}

std::atomic<int> g_next_instance{1};

// What blocked replicas wait on: a promise the test resolves. Passed to constructors behind a
// shared_ptr, since an ObjectRef constructor argument would hold construction until it is ready.
struct Release {
  lumen::Promise<void> promise;
  lumen::ObjectRef<void> ref = promise.ref();
  std::atomic<bool> opened{false};
  void open() {
    if (!opened.exchange(true)) promise.set_value();
  }
};

// Answers with which instance served it; blocks until `release` opens first when given one.
struct Worker {
  explicit Worker(std::shared_ptr<Release> release = nullptr) : release_(std::move(release)) {}
  int instance = g_next_instance.fetch_add(1);
  std::shared_ptr<Release> release_;
  int who() {
    if (release_ != nullptr) lumen::get(release_->ref);
    return instance;
  }
  int twice(int x) { return 2 * x; }
  serve::Response operator()(const serve::Request& r) {
    if (release_ != nullptr) lumen::get(release_->ref);
    return serve::Response::json({{"instance", instance}, {"body", r.body}});
  }
};

bool all_running(const serve::DeploymentHandle<Worker>& d, int n) {
  return eventually([&] { return d.status().replicas_in(serve::ReplicaState::running) == n; });
}

}  // namespace

TEST_CASE("calls go to every replica, and results come back through ObjectRefs") {
  lumen::Runtime rt{{.workers = 2}};
  auto release = std::make_shared<Release>();
  auto d = serve::deploy<Worker>({.name = "spread", .num_replicas = 3}, release);
  REQUIRE(all_running(d, 3));
  // Replicas block until released, so 3 x 5 calls fill every replica: all three serve.
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 15; ++i) refs.push_back(d.call(&Worker::who));
  release->open();
  std::set<int> instances;
  for (auto& r : refs) instances.insert(lumen::get(r));
  CHECK(instances.size() == 3);
  CHECK(lumen::get(d.call(&Worker::twice, 21)) == 42);
  auto resp = lumen::get(d.request({.body = "hi"}));
  CHECK(resp.status == 200);
  CHECK(nlohmann::json::parse(resp.body)["body"] == "hi");
  auto st = d.status();
  CHECK(st.name == "spread");
  CHECK(st.replicas_in(serve::ReplicaState::running) == 3);
  CHECK(st.state == serve::DeploymentState::healthy);
  CHECK(st.requests == 17);
  d.shutdown();
}

namespace {
struct Converts {
  nlohmann::json operator()(const serve::Request& r) {
    if (r.path == "/text") throw serve::http_error(418, "teapot");
    return {{"n", r.json.is_object() ? r.json.value("n", 0) + 1 : 1}};
  }
};
struct Plain {
  std::string operator()(const serve::Request&) { return "plain"; }
};
struct Number {
  int operator()(serve::Request) { return 7; }
};
}  // namespace

TEST_CASE("an entry may return Response, json, a string or any JSON-convertible value") {
  lumen::Runtime rt{{.workers = 2}};
  auto c = serve::deploy<Converts>({.name = "converts"});
  auto p = serve::deploy<Plain>({.name = "plain"});
  auto n = serve::deploy<Number>({.name = "number"});
  auto r = lumen::get(c.request({.json = {{"n", 41}}}));
  CHECK(r.content_type == "application/json");
  CHECK(nlohmann::json::parse(r.body)["n"] == 42);
  CHECK(lumen::get(p.request({})).body == "plain");
  CHECK(lumen::get(n.request({})).body == "7");
  // An http_error reaches the caller with its status; the replica goes on serving.
  auto bad = c.request({.path = "/text"});
  CHECK_THROWS_AS(lumen::get(bad), serve::http_error);
  CHECK(lumen::get(c.request({})).status == 200);
}

TEST_CASE("a full queue refuses at once with back_pressure; queued requests run in order once there is room") {
  lumen::Runtime rt{{.workers = 2}};
  auto release = std::make_shared<Release>();
  auto d = serve::deploy<Worker>({.name = "bp", .num_replicas = 1, .max_ongoing_requests = 1, .max_queued_requests = 2},
                                 release);
  REQUIRE(all_running(d, 1));
  std::vector<lumen::ObjectRef<serve::Response>> accepted;
  accepted.push_back(d.request({.body = "0"}));  // on the replica
  accepted.push_back(d.request({.body = "1"}));
  accepted.push_back(d.request({.body = "2"}));
  REQUIRE(eventually([&] { return d.status().ongoing_requests == 1; }));
  CHECK(d.status().queued_requests == 2);
  CHECK_THROWS_AS(d.request({.body = "3"}), serve::back_pressure);
  CHECK_THROWS_AS(d.call(&Worker::twice, 1), serve::back_pressure);
  CHECK(d.status().refused_requests == 2);
  release->open();
  for (int i = 0; i < 3; ++i) CHECK(nlohmann::json::parse(lumen::get(accepted[i]).body)["body"] == std::to_string(i));
  CHECK(lumen::get(d.call(&Worker::twice, 2)) == 4);
  // max_queued_requests 0: nothing waits; a request either finds room or is refused.
  auto hold = std::make_shared<Release>();
  auto z = serve::deploy<Worker>({.name = "bp0", .num_replicas = 1, .max_ongoing_requests = 1, .max_queued_requests = 0},
                                 hold);
  REQUIRE(eventually([&] { return z.status().replicas_in(serve::ReplicaState::running) == 1; }));
  auto first = z.request({});
  CHECK_THROWS_AS(z.request({}), serve::back_pressure);
  hold->open();
  CHECK(lumen::get(first).status == 200);
}

namespace {
struct BatchLog {
  std::mutex mu;
  std::vector<std::size_t> sizes;
};
BatchLog g_batches;

struct Doubler {
  std::vector<nlohmann::json> operator()(std::vector<serve::Request> reqs) {
    {
      std::lock_guard lock(g_batches.mu);
      g_batches.sizes.push_back(reqs.size());
    }
    std::vector<nlohmann::json> out;
    for (auto& r : reqs) out.push_back(r.json.value("x", 0) * 2);
    return out;
  }
};
struct Miscounts {
  std::vector<std::string> operator()(std::vector<serve::Request> reqs) {
    return std::vector<std::string>(reqs.size() + 1, "x");
  }
};
// Doubles too, but its first batch waits until the test opens `release`.
struct HeldDoubler {
  explicit HeldDoubler(std::shared_ptr<Release> release) : release_(std::move(release)) {}
  std::shared_ptr<Release> release_;
  std::vector<nlohmann::json> operator()(std::vector<serve::Request> reqs) {
    {
      std::lock_guard lock(g_batches.mu);
      g_batches.sizes.push_back(reqs.size());
    }
    lumen::get(release_->ref);
    std::vector<nlohmann::json> out;
    for (auto& r : reqs) out.push_back(r.json.value("x", 0) * 2);
    return out;
  }
};
// Opens a Release when the test leaves, so that a failed check never leaves a replica blocked
// and the runtime's end waiting on it.
struct OpenOnExit {
  std::shared_ptr<Release> release;
  ~OpenOnExit() { release->open(); }
};
// Waits (bounded) until n batches have reached the model since the log was last read.
bool batches_entered(std::size_t n) {
  return eventually([n] {
    std::lock_guard lock(g_batches.mu);
    return g_batches.sizes.size() == n;
  });
}
// A HeldDoubler deployment, one replica, batches of up to 8 after 1 ms, once its replica runs.
serve::DeploymentHandle<HeldDoubler> deploy_held(const std::string& name, std::shared_ptr<Release> release,
                                                 int max_concurrency = 1) {
  auto d = serve::deploy<HeldDoubler>(
      {.name = name, .max_concurrency = max_concurrency, .batch = {.max_batch_size = 8, .batch_wait_timeout = 1ms}},
      std::move(release));
  REQUIRE(eventually([&] { return d.status().replicas_in(serve::ReplicaState::running) == 1; }));
  return d;
}
std::vector<std::size_t> batch_sizes() {
  std::lock_guard lock(g_batches.mu);
  return std::exchange(g_batches.sizes, {});
}
}  // namespace

TEST_CASE("batching: a batch leaves when full, or when the timer set by its first request fires") {
  lumen::Runtime rt{{.workers = 2}};
  batch_sizes();
  SUBCASE("size reached: four requests make one batch long before the timer") {
    auto d = serve::deploy<Doubler>({.name = "b-size", .batch = {.max_batch_size = 4, .batch_wait_timeout = 60s}});
    REQUIRE(eventually([&] { return d.status().replicas_in(serve::ReplicaState::running) == 1; }));
    std::vector<lumen::ObjectRef<serve::Response>> refs;
    for (int i = 0; i < 4; ++i) refs.push_back(d.request({.json = {{"x", i}}}));
    for (int i = 0; i < 4; ++i) CHECK(lumen::get(refs[i]).body == std::to_string(2 * i));
    CHECK(batch_sizes() == std::vector<std::size_t>{4});
    d.shutdown(0ms);
  }
  SUBCASE("timer fired: three requests wait for the timeout, then go together") {
    auto d = serve::deploy<Doubler>({.name = "b-timer", .batch = {.max_batch_size = 100, .batch_wait_timeout = 50ms}});
    REQUIRE(eventually([&] { return d.status().replicas_in(serve::ReplicaState::running) == 1; }));
    std::vector<lumen::ObjectRef<serve::Response>> refs;
    for (int i = 0; i < 3; ++i) refs.push_back(d.request({.json = {{"x", i}}}));
    for (int i = 0; i < 3; ++i) CHECK(lumen::get(refs[i]).body == std::to_string(2 * i));
    CHECK(batch_sizes() == std::vector<std::size_t>{3});
    // One request alone goes as a batch of one.
    CHECK(lumen::get(d.request({.json = {{"x", 5}}})).body == "10");
    CHECK(batch_sizes() == std::vector<std::size_t>{1});
    auto st = d.status();
    CHECK(st.batched_requests == 4);
  }
  SUBCASE("timer fired while the replica runs a batch: the next one goes on gathering and leaves when it is free") {
    auto release = std::make_shared<Release>();
    OpenOnExit opener{release};
    auto d = deploy_held("b-held", release);
    auto first = d.request({.json = {{"x", 100}}});
    REQUIRE(batches_entered(1));
    // Each of these arrives after the previous one's timer has passed; all of them find the
    // replica busy with the first batch.
    std::vector<lumen::ObjectRef<serve::Response>> refs;
    for (int i = 0; i < 5; ++i) {
      refs.push_back(d.request({.json = {{"x", i}}}));
      std::this_thread::sleep_for(5ms);
    }
    release->open();
    CHECK(lumen::get(first, 20s).body == "200");
    for (int i = 0; i < 5; ++i) CHECK(lumen::get(refs[i], 20s).body == std::to_string(2 * i));
    CHECK(batch_sizes() == std::vector<std::size_t>{1, 5});
    // Free again, the replica takes a lone request after the timeout, as a batch of one.
    CHECK(lumen::get(d.request({.json = {{"x", 7}}}), 20s).body == "14");
    CHECK(batch_sizes() == std::vector<std::size_t>{1});
  }
  SUBCASE("a replica that may run two batches at once holds a third only while both run") {
    auto release = std::make_shared<Release>();
    OpenOnExit opener{release};
    auto d = deploy_held("b-two", release, 2);
    std::vector<lumen::ObjectRef<serve::Response>> refs;
    refs.push_back(d.request({.json = {{"x", 0}}}));
    REQUIRE(batches_entered(1));
    refs.push_back(d.request({.json = {{"x", 1}}}));  // a second batch runs beside the first
    REQUIRE(batches_entered(2));
    refs.push_back(d.request({.json = {{"x", 2}}}));  // both run: these two gather and wait
    refs.push_back(d.request({.json = {{"x", 3}}}));
    std::this_thread::sleep_for(10ms);
    release->open();
    for (int i = 0; i < 4; ++i) CHECK(lumen::get(refs[i], 20s).body == std::to_string(2 * i));
    CHECK(batch_sizes() == std::vector<std::size_t>{1, 1, 2});
  }
  SUBCASE("shutdown fails a batch held behind one that never ends, at once") {
    auto release = std::make_shared<Release>();
    OpenOnExit opener{release};
    auto d = deploy_held("b-stuck", release);
    auto first = d.request({.json = {{"x", 1}}});
    REQUIRE(batches_entered(1));
    std::vector<lumen::ObjectRef<serve::Response>> held;
    for (int i = 0; i < 3; ++i) held.push_back(d.request({.json = {{"x", i}}}));
    std::this_thread::sleep_for(10ms);  // their timer has fired: the batch is held
    d.shutdown(50ms);
    // They fail (the replica was killed with their batch in its mailbox); none waits for the
    // stuck batch, which the test lets go only afterwards.
    for (auto& r : held) {
      try {
        lumen::get(r, 20s);
        FAIL("a request held behind the stuck batch was served after shutdown");
      } catch (const lumen::timeout_error&) {
        FAIL("a request held behind the stuck batch still waits after shutdown");
      } catch (const lumen::error&) {
      }
    }
    release->open();
    lumen::wait(std::vector{first}, 1, 20s);
  }
  SUBCASE("batches are not capped by max_ongoing_requests' default") {
    auto d = serve::deploy<Doubler>({.name = "b-big", .batch = {.max_batch_size = 32, .batch_wait_timeout = 60s}});
    REQUIRE(eventually([&] { return d.status().replicas_in(serve::ReplicaState::running) == 1; }));
    std::vector<lumen::ObjectRef<serve::Response>> refs;
    for (int i = 0; i < 32; ++i) refs.push_back(d.request({.json = {{"x", i}}}));
    for (auto& r : refs) lumen::get(r);
    CHECK(batch_sizes() == std::vector<std::size_t>{32});
  }
  SUBCASE("a batch entry that returns the wrong number of responses fails each request with a clear error") {
    auto d = serve::deploy<Miscounts>({.name = "b-bad", .batch = {.max_batch_size = 2, .batch_wait_timeout = 10ms}});
    auto a = d.request({});
    auto b = d.request({});
    CHECK_THROWS_WITH_AS(lumen::get(a), "lumen::serve: a batch of 2 requests got 3 responses", lumen::usage_error);
    CHECK_THROWS_AS(lumen::get(b), lumen::usage_error);
  }
}

namespace {
struct Configured {
  int instance = g_next_instance.fetch_add(1);
  std::string greeting = "unset";
  void reconfigure(const nlohmann::json& c) { greeting = c.at("greeting").get<std::string>(); }
  std::pair<int, std::string> look() { return {instance, greeting}; }
};
}  // namespace

TEST_CASE("user_config reaches every replica before traffic, and reconfigure changes it without a restart") {
  lumen::Runtime rt{{.workers = 2}};
  auto d = serve::deploy<Configured>({.name = "cfg", .num_replicas = 2, .user_config = {{"greeting", "hello"}}});
  std::set<int> before;
  for (int i = 0; i < 10; ++i) {
    auto [inst, g] = lumen::get(d.call(&Configured::look));
    CHECK(g == "hello");
    before.insert(inst);
  }
  d.reconfigure({{"greeting", "bonjour"}});
  std::set<int> after;
  for (int i = 0; i < 10; ++i) {
    auto [inst, g] = lumen::get(d.call(&Configured::look));
    CHECK(g == "bonjour");
    after.insert(inst);
  }
  for (int inst : after) CHECK(before.count(inst) + 1 > 0);
  CHECK(d.status().replicas_replaced == 0);
  auto ids = d.status().replicas;
  REQUIRE(ids.size() == 2);
  // A config the class rejects fails that reconfigure call only; replicas keep serving.
  d.reconfigure({{"wrong", 1}});
  CHECK(lumen::get(d.call(&Configured::look)).second == "bonjour");
}

namespace {
std::atomic<bool> g_sick{false};
std::atomic<int> g_checks{0};
struct Checked {
  int instance = g_next_instance.fetch_add(1);
  void check_health() {
    g_checks.fetch_add(1);
    if (g_sick.exchange(false)) throw std::runtime_error("out of GPU memory");
  }
  int who() { return instance; }
};
std::atomic<bool> g_slow_check{false};
struct SlowCheck {
  bool check_health() {
    if (g_slow_check.exchange(false)) std::this_thread::sleep_for(400ms);
    return true;
  }
  int one() { return 1; }
};
}  // namespace

TEST_CASE("a replica that fails its health check is replaced and gets no traffic meanwhile") {
  lumen::Runtime rt{{.workers = 2}};
  auto d = serve::deploy<Checked>(
      {.name = "health", .num_replicas = 1, .health_check_period = 20ms, .health_check_timeout = 2s});
  const int first = lumen::get(d.call(&Checked::who));
  REQUIRE(eventually([] { return g_checks.load() > 0; }));
  g_sick = true;
  REQUIRE(eventually([&] { return d.status().replicas_replaced == 1; }));
  CHECK(d.status().message.find("out of GPU memory") != std::string::npos);
  REQUIRE(eventually([&] { return d.status().replicas_in(serve::ReplicaState::running) == 1; }));
  CHECK(lumen::get(d.call(&Checked::who)) != first);
}

TEST_CASE("a health check slower than its timeout marks the replica unhealthy") {
  lumen::Runtime rt{{.workers = 2}};
  auto d = serve::deploy<SlowCheck>(
      {.name = "slowcheck", .num_replicas = 1, .health_check_period = 20ms, .health_check_timeout = 100ms});
  REQUIRE(eventually([&] { return d.status().replicas_in(serve::ReplicaState::running) == 1; }));
  g_slow_check = true;
  REQUIRE(eventually([&] { return d.status().replicas_replaced >= 1; }));
  CHECK(d.status().message.find("did not answer its health check") != std::string::npos);
  CHECK(lumen::get(d.call(&SlowCheck::one)) == 1);
}

namespace {
std::atomic<int> g_crashes_left{0};
struct Fragile {
  int instance = g_next_instance.fetch_add(1);
  serve::Response operator()(const serve::Request&) {
    if (g_crashes_left.fetch_sub(1) > 0) lumen::exit_actor();
    return serve::Response::text(std::to_string(instance));
  }
};
}  // namespace

TEST_CASE("a replica that dies mid-request: the request fails, or is retried once when asked; the replica is replaced") {
  lumen::Runtime rt{{.workers = 2}};
  SUBCASE("no retry: the caller gets actor_died, later requests are served by a replacement") {
    auto d = serve::deploy<Fragile>({.name = "fragile", .num_replicas = 1});
    g_crashes_left = 1;
    CHECK_THROWS_AS(lumen::get(d.request({})), lumen::actor_died);
    // At once, before the controller has noticed: the dead replica gets nothing, and the
    // request waits for the replacement.
    CHECK(lumen::get(d.request({})).status == 200);
    CHECK(d.status().replicas_replaced == 1);
    REQUIRE(eventually([&] { return d.status().replicas_in(serve::ReplicaState::running) == 1; }));
  }
  SUBCASE("retry_on_replica_death: the request runs again on another replica") {
    auto d = serve::deploy<Fragile>({.name = "fragile-retry", .num_replicas = 2, .retry_on_replica_death = true});
    REQUIRE(eventually([&] { return d.status().replicas_in(serve::ReplicaState::running) == 2; }));
    g_crashes_left = 1;
    CHECK(lumen::get(d.request({})).status == 200);
    // Dying twice fails it: a request is retried once only.
    g_crashes_left = 2;
    REQUIRE(eventually([&] { return d.status().replicas_in(serve::ReplicaState::running) == 2; }));
    CHECK_THROWS_AS(lumen::get(d.request({})), lumen::actor_died);
  }
  g_crashes_left = 0;
}

namespace {
struct NeverStarts {
  NeverStarts() { throw std::runtime_error("weights file missing"); }
  int f() { return 1; }
};
}  // namespace

TEST_CASE("a class whose replicas never start: queued requests and new ones are refused, naming why") {
  lumen::Runtime rt{{.workers = 2}};
  auto d = serve::deploy<NeverStarts>({.name = "broken"});
  auto queued = d.call(&NeverStarts::f);
  CHECK_THROWS_WITH_AS(lumen::get(queued), doctest::Contains("weights file missing"), serve::back_pressure);
  REQUIRE(eventually([&] { return d.status().state == serve::DeploymentState::unhealthy; }));
  CHECK_THROWS_AS(d.call(&NeverStarts::f), serve::back_pressure);
  d.shutdown(0ms);
}

TEST_CASE("autoscaling adds replicas under load and drains them when it is gone") {
  lumen::Runtime rt{{.workers = 2}};
  auto release = std::make_shared<Release>();
  serve::AutoscalingOptions a{.min_replicas = 1,
                              .max_replicas = 3,
                              .target_ongoing_requests = 1,
                              .upscale_delay = 0ms,
                              .downscale_delay = 100ms,
                              .look_back = 40ms};
  auto d = serve::deploy<Worker>({.name = "auto", .autoscaling = a, .max_ongoing_requests = 2}, release);
  CHECK(d.status().target_replicas == 1);
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 6; ++i) refs.push_back(d.call(&Worker::who));
  REQUIRE(eventually([&] { return d.status().replicas_in(serve::ReplicaState::running) == 3; }));
  CHECK(d.status().target_replicas == 3);
  release->open();
  for (auto& r : refs) lumen::get(r);
  REQUIRE(eventually([&] {
    auto s = d.status();
    return s.target_replicas == 1 && s.replicas.size() == 1;
  }));
  CHECK(lumen::get(d.call(&Worker::twice, 4)) == 8);
}

TEST_CASE("shutdown drains: requests running and queued all finish; later ones are refused") {
  lumen::Runtime rt{{.workers = 2}};
  auto release = std::make_shared<Release>();
  auto d = serve::deploy<Worker>({.name = "drain", .num_replicas = 1, .max_ongoing_requests = 1}, release);
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 5; ++i) refs.push_back(d.call(&Worker::who));
  std::thread opener([&] {
    std::this_thread::sleep_for(50ms);
    release->open();
  });
  d.shutdown(10s);
  opener.join();
  for (auto& r : refs) CHECK(lumen::get(r) > 0);
  CHECK_THROWS_AS(d.call(&Worker::who), lumen::shutdown_error);
  CHECK(d.status().state == serve::DeploymentState::stopped);
  // The name is free again.
  auto again = serve::deploy<Worker>({.name = "drain"});
  CHECK(lumen::get(again.call(&Worker::twice, 1)) == 2);
}

TEST_CASE("shutdown past its timeout fails what is still queued instead of hanging") {
  lumen::Runtime rt{{.workers = 2}};
  auto release = std::make_shared<Release>();
  auto d = serve::deploy<Worker>({.name = "cut", .num_replicas = 1, .max_ongoing_requests = 1}, release);
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 4; ++i) refs.push_back(d.call(&Worker::who));
  REQUIRE(eventually([&] { return d.status().ongoing_requests == 1; }));
  d.shutdown(20ms);
  release->open();
  int failed = 0;
  for (auto& r : refs) {
    try {
      lumen::get(r);
    } catch (const lumen::error&) {
      ++failed;
    }
  }
  CHECK(failed >= 3);  // the queued three; the running one may finish or die with its replica
}

namespace {
struct Embed {
  std::vector<float> embed(std::string s) { return std::vector<float>(s.size(), 1.0f); }
};
struct Score {
  float score(const std::vector<float>& v) {
    float sum = 0;
    for (float x : v) sum += x;
    return sum;
  }
};
// An ingress that fans out to two deployments and combines their answers.
struct Ensemble {
  serve::DeploymentHandle<Embed> embed;
  serve::DeploymentHandle<Score> score;
  nlohmann::json operator()(const serve::Request& r) {
    auto v = embed.call(&Embed::embed, r.body);
    auto a = score.call(&Score::score, v);  // v passed on unresolved
    auto b = score.call(&Score::score, v);
    return {{"sum", lumen::get(a) + lumen::get(b)}};
  }
};
}  // namespace

TEST_CASE("composition: deployments call each other and pass answers on unresolved") {
  lumen::Runtime rt{{.workers = 2}};
  auto embed = serve::deploy<Embed>({.name = "embed", .num_replicas = 2});
  auto score = serve::deploy<Score>({.name = "score", .num_replicas = 2});
  auto v = embed.call(&Embed::embed, std::string("abcd"));
  CHECK(lumen::get(score.call(&Score::score, v)) == 4.0f);
  auto ens = serve::deploy<Ensemble>({.name = "ensemble"}, embed, score);
  auto r = lumen::get(ens.request({.body = "hello"}));
  CHECK(nlohmann::json::parse(r.body)["sum"] == 10.0);
}

namespace {
struct NoReconfigure {
  int f() { return 1; }
};
}  // namespace

TEST_CASE("bad options and misuse are refused with errors that name the field") {
  lumen::Runtime rt{{.workers = 1}};
  CHECK_THROWS_WITH_AS(serve::deploy<Worker>({}), "lumen::serve: DeploymentOptions::name is required", lumen::usage_error);
  CHECK_THROWS_WITH_AS(serve::deploy<Worker>({.name = "w", .num_replicas = 0}), doctest::Contains("num_replicas"),
                       lumen::usage_error);
  CHECK_THROWS_WITH_AS(serve::deploy<Worker>({.name = "w", .num_replicas = -3}), doctest::Contains("num_replicas"),
                       lumen::usage_error);
  CHECK_THROWS_WITH_AS(serve::deploy<Worker>({.name = "w", .max_ongoing_requests = -1}),
                       doctest::Contains("max_ongoing_requests"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(serve::deploy<Worker>({.name = "w", .max_queued_requests = -2}),
                       doctest::Contains("max_queued_requests"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(serve::deploy<Worker>({.name = "w", .max_concurrency = 0}), doctest::Contains("max_concurrency"),
                       lumen::usage_error);
  CHECK_THROWS_WITH_AS(serve::deploy<NoReconfigure>({.name = "w", .user_config = {{"a", 1}}}),
                       doctest::Contains("reconfigure"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(serve::deploy<Worker>({.name = "w", .batch = {.max_batch_size = 4}}),
                       doctest::Contains("operator()(std::vector<Request>)"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(
      serve::deploy<Doubler>({.name = "w", .max_ongoing_requests = 2, .batch = {.max_batch_size = 4}}),
      doctest::Contains("batches could never fill"), lumen::usage_error);
  CHECK_THROWS_AS(serve::deploy<Worker>({.name = "w", .health_check_period = 0ms}), lumen::usage_error);
  CHECK_THROWS_AS(serve::deploy<Worker>({.name = "w", .autoscaling = serve::AutoscalingOptions{.max_replicas = 0}}),
                  lumen::usage_error);
  CHECK_THROWS_AS(
      serve::deploy<Worker>({.name = "w", .autoscaling = serve::AutoscalingOptions{.target_ongoing_requests = -1}}),
      lumen::usage_error);
  auto w = serve::deploy<Worker>({.name = "taken"});
  CHECK_THROWS_WITH_AS(serve::deploy<Worker>({.name = "taken"}), doctest::Contains("already named 'taken'"),
                       lumen::usage_error);
  CHECK_THROWS_AS(w.reconfigure({{"a", 1}}), lumen::usage_error);
  serve::DeploymentHandle<Worker> empty;
  CHECK_FALSE(empty.valid());
  CHECK_THROWS_AS(empty.call(&Worker::twice, 1), lumen::usage_error);
  CHECK_THROWS_AS(empty.request({}), lumen::usage_error);
}

// Stress: threads call while the deployment shuts down. Every call either throws at once
// (shutdown_error, back_pressure) or returns a ref that resolves: nothing hangs, nothing is lost.
TEST_CASE("calls racing shutdown all resolve") {
#if LUMEN_TEST_SANITIZED
  constexpr int kCalls = 300;
#else
  constexpr int kCalls = 3000;
#endif
  lumen::Runtime rt{{.workers = 2}};
  auto d = serve::deploy<Worker>({.name = "race", .num_replicas = 2, .max_queued_requests = -1});
  std::atomic<int> resolved{0}, refused{0};
  std::vector<std::thread> callers;
  std::mutex mu;
  std::vector<lumen::ObjectRef<int>> refs;
  for (int t = 0; t < 3; ++t)
    callers.emplace_back([&] {
      for (int i = 0; i < kCalls; ++i) {
        try {
          auto r = d.call(&Worker::twice, i);
          std::lock_guard lock(mu);
          refs.push_back(std::move(r));
        } catch (const lumen::shutdown_error&) {
          refused.fetch_add(1);
        } catch (const serve::back_pressure&) {
          refused.fetch_add(1);
        }
      }
    });
  std::this_thread::sleep_for(2ms);
  d.shutdown(10s);
  for (auto& t : callers) t.join();
  for (auto& r : refs) {
    try {
      lumen::get(r);
    } catch (const lumen::error&) {
    }
    resolved.fetch_add(1);
  }
  CHECK(resolved.load() + refused.load() == 3 * kCalls);
}

namespace {
std::atomic<int> g_loads{0};
struct Multiplexed {
  int instance = g_next_instance.fetch_add(1);
  serve::ModelCache<std::string> models{2};
  nlohmann::json operator()(const serve::Request& r) {
    auto m = models.get(std::string(r.model_id()), [](const std::string& id) {
      g_loads.fetch_add(1);
      return std::make_shared<std::string>("model " + id);
    });
    return {{"instance", instance}, {"model", *m}};
  }
};
serve::Request for_model(const std::string& id) {
  return {.headers = {{"serve_multiplexed_model_id", id}}};
}
}  // namespace

TEST_CASE("multiplexing: requests for a model go to the replica that has it, which loads it once") {
  lumen::Runtime rt{{.workers = 2}};
  auto d = serve::deploy<Multiplexed>({.name = "mux", .num_replicas = 3, .max_models_per_replica = 2});
  REQUIRE(eventually([&] { return d.status().replicas_in(serve::ReplicaState::running) == 3; }));
  g_loads = 0;
  std::map<std::string, std::set<int>> served_by;
  for (int round = 0; round < 10; ++round)
    for (std::string id : {"a", "b", "c"}) {
      auto j = nlohmann::json::parse(lumen::get(d.request(for_model(id))).body);
      CHECK(j["model"] == "model " + id);
      served_by[id].insert(j["instance"].get<int>());
    }
  // One at a time, every replica has room: each model stays on one replica, loaded once.
  for (auto& [id, replicas] : served_by) CHECK(replicas.size() == 1);
  CHECK(g_loads.load() == 3);
}

TEST_CASE("ModelCache keeps the most recently used models and loads each once, even when asked at once") {
  serve::ModelCache<int> cache(2);
  std::atomic<int> loads{0};
  auto load = [&](const std::string& id) {
    loads.fetch_add(1);
    std::this_thread::sleep_for(5ms);
    return std::make_shared<int>(static_cast<int>(id.size()));
  };
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) ts.emplace_back([&] { CHECK(*cache.get("xx", load) == 2); });
  for (auto& t : ts) t.join();
  CHECK(loads.load() == 1);
  cache.get("y", load);
  cache.get("xx", load);    // xx is now the most recent
  cache.get("zzz", load);   // evicts y
  CHECK(cache.size() == 2);
  const int before = loads.load();
  cache.get("xx", load);
  CHECK(loads.load() == before);
  cache.get("y", load);
  CHECK(loads.load() == before + 1);
  CHECK_THROWS_AS(cache.get("bad", [](const std::string&) -> std::shared_ptr<int> { throw std::runtime_error("no file"); }),
                  std::runtime_error);
  CHECK_THROWS_AS(serve::ModelCache<int>(0), lumen::usage_error);
}

namespace {
struct Tokens {
  void operator()(const serve::Request& r, lumen::Emitter<std::string>& out) {
    const int n = std::stoi(r.body);
    for (int i = 0; i < n; ++i) out.emit(std::to_string(i));
    if (n == 3) throw std::runtime_error("ran out after three");
  }
};
}  // namespace

TEST_CASE("a streaming deployment hands its parts out as they are emitted; its result says how it ended") {
  lumen::Runtime rt{{.workers = 2}};
  auto d = serve::deploy<Tokens>({.name = "tokens"});
  auto [parts, done] = d.stream({.body = "5"});
  std::string all;
  while (auto p = parts.next()) all += lumen::get(*p);
  CHECK(all == "01234");
  CHECK(lumen::get(done).status == 200);
  auto [cut, failed] = d.stream({.body = "3"});
  std::string some;
  while (auto p = cut.next()) some += lumen::get(*p);
  CHECK(some == "012");
  CHECK_THROWS_WITH_AS(lumen::get(failed), "ran out after three", std::runtime_error);
  CHECK_THROWS_AS(lumen::get(d.request({.body = "1"})), lumen::usage_error);  // it has no plain entry
}

TEST_CASE("a deployment outliving its runtime stops: calls fail with shutdown_error, no replica starts elsewhere") {
  serve::DeploymentHandle<Worker> d;
  {
    lumen::Runtime rt{{.workers = 2}};
    d = serve::deploy<Worker>({.name = "orphan", .num_replicas = 2});
    CHECK(lumen::get(d.call(&Worker::twice, 2)) == 4);
  }
  CHECK_THROWS_WITH_AS(d.call(&Worker::twice, 1), doctest::Contains("has shut down"), lumen::shutdown_error);
  CHECK_THROWS_AS(d.request({}), lumen::shutdown_error);
  REQUIRE(eventually([&] { return d.status().state == serve::DeploymentState::stopped; }));
  CHECK(d.status().replicas.empty());
  d.shutdown(0ms);  // nothing left to stop: returns at once
  // Its name is free for a deployment on a new runtime.
  lumen::Runtime again{{.workers = 1}};
  auto fresh = serve::deploy<Worker>({.name = "orphan"});
  CHECK(lumen::get(fresh.call(&Worker::twice, 3)) == 6);
}
