// Conformance of lumen's Ray API (<ray/api.h>, library lumen-ray) with Ray's C++ API reference:
// one TEST_CASE per public call or class, named after it, each checking the call as Ray's
// documentation and examples use it and the errors it documents. Where lumen documents that it
// differs from Ray (include/lumen/ray/*.h), the test checks lumen's documented behaviour and
// says so in its comment.
#include <doctest/doctest.h>
#include <ray/api.h>

namespace {

// Each test starts Ray and stops it, as a Ray program does.
class RayRuntime {
 public:
  RayRuntime() { ray::Init(); }
  explicit RayRuntime(ray::RayConfig config) : config_(std::move(config)) { ray::Init(config_); }
  RayRuntime(ray::RayConfig config, int argc, char** argv) : config_(std::move(config)) {
    ray::Init(config_, argc, argv);
  }
  RayRuntime(const RayRuntime&) = delete;
  RayRuntime& operator=(const RayRuntime&) = delete;
  ~RayRuntime() { ray::Shutdown(); }

 private:
  ray::RayConfig config_;
};

}  // namespace

// Ray programs use std::cout, std::any, std::map, msgpack, nlohmann::json (as ::json) and
// boost::optional with <ray/api.h> as their only include. This test comes before the file's
// other includes, so it compiles only if <ray/api.h> provides them.
TEST_CASE("<ray/api.h> provides std::cout, std::any, std::map, msgpack, ::json and boost::optional") {
  RayRuntime ray_runtime;
  std::cout << std::flush;
  CHECK(std::cout.good());

  std::any any = std::string("value");
  CHECK(std::any_cast<std::string>(any) == "value");

  std::map<std::string, int> stock{{"apples", 3}, {"pears", 5}};
  CHECK(*ray::Get(ray::Put(stock)) == stock);

  msgpack::sbuffer buffer;
  msgpack::pack(buffer, stock);
  msgpack::object_handle unpacked = msgpack::unpack(buffer.data(), buffer.size());
  CHECK(unpacked.get().as<std::map<std::string, int>>() == stock);

  json document = json::parse(R"({"apples": 3})");
  CHECK(document["apples"] == 3);
  nlohmann::json same = document;
  CHECK(same == document);

  boost::optional<int> none;
  boost::optional<int> some = 3;
  CHECK_FALSE(none.has_value());
  CHECK(*some == 3);
}

// What the rest of the suite needs beyond <ray/api.h>.
#include "ray_checks.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <stdexcept>
#include <type_traits>

namespace {

using ray::internal::RayActorException;
using ray::internal::RayException;
using ray::internal::RayFunctionNotFound;
using ray::internal::RayRuntimeEnvException;
using ray::internal::RayTaskException;
using ray::internal::RayTimeoutException;
using ray::internal::RayWorkerException;
using ray::internal::UnreconstructableException;

const std::string kNotInitialized = "Ray has not been initialized: call ray::Init() first";
const std::string kNotFound = "Function not found. Please use RAY_REMOTE to register this function.";
constexpr double kMiB = 1024.0 * 1024.0;

// The CPUs of the node, as Ray counts them.
double node_cpus() { return static_cast<double>(std::max(1u, std::thread::hardware_concurrency())); }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }


// An environment variable set for a scope, then put back as it was.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = std::string(old);
    set(value);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() { set(old_ ? old_->c_str() : nullptr); }

 private:
  void set(const char* value) {
    if (value != nullptr) {
      ::setenv(name_.c_str(), value, 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  std::string name_;
  boost::optional<std::string> old_;
};

// Holds the tasks that call Wait() until the test opens it: Ray code blocking its thread on a
// std::promise.
class Gate {
 public:
  void Arm() {
    std::lock_guard<std::mutex> lock(mutex_);
    release_ = std::promise<int>();
    released_ = release_.get_future().share();
    open_ = false;
    waiting_ = 0;
  }
  int Wait() {
    std::shared_future<int> released;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      released = released_;  // its own copy: the gate may be armed again meanwhile
      ++waiting_;
    }
    arrived_.notify_all();
    return released.get();
  }
  // True once `count` tasks wait (false after 10 s).
  bool AwaitWaiters(int count) {
    std::unique_lock<std::mutex> lock(mutex_);
    return arrived_.wait_for(lock, std::chrono::seconds(10), [&] { return waiting_ >= count; });
  }
  void Open(int value) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (open_) return;
    open_ = true;
    release_.set_value(value);
  }

 private:
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::promise<int> release_;
  std::shared_future<int> released_;
  bool open_ = true;
  int waiting_ = 0;
};

Gate g_gate;

// Arms g_gate for one test and opens it when the test ends. Declared after the test's
// RayRuntime, so that Shutdown finds no task held.
struct ArmedGate {
  ArmedGate() { g_gate.Arm(); }
  ArmedGate(const ArmedGate&) = delete;
  ArmedGate& operator=(const ArmedGate&) = delete;
  ~ArmedGate() { g_gate.Open(0); }
};

// True when `part` lists refs in the order they have in `all`.
template <class T>
bool keeps_order(const std::list<ray::ObjectRef<T>>& part, const std::vector<ray::ObjectRef<T>>& all) {
  auto at = all.begin();
  for (const auto& ref : part) {
    at = std::find(at, all.end(), ref);
    if (at == all.end()) return false;
    ++at;
  }
  return true;
}

// ---- remote functions ---------------------------------------------------------------------

int Return1() { return 1; }
int Plus1(int x) { return x + 1; }
int Plus(int x, int y) { return x + y; }
std::string Greet(std::string name) { return "hello " + name; }
// A T&& parameter: the task may take the value.
std::string TakeOver(std::string&& text) {
  std::string mine = std::move(text);
  return mine + "!";
}
// A const T& parameter.
std::size_t CountItems(const std::vector<int>& items) { return items.size(); }
// A T& parameter: the task changes its own copy.
std::string AppendMark(std::string& text) {
  text += "?";
  return text;
}
// A parameter declared ObjectRef<T>.
int ValueOfRef(ray::ObjectRef<int> ref) { return *ray::Get(ref) + 1000; }
int SumOfRefs(std::vector<ray::ObjectRef<int>> refs) {
  int sum = 0;
  for (const auto& ref : refs) sum += *ray::Get(ref);
  return sum;
}
int Divide(int a, int b) {
  if (b == 0) throw std::domain_error("division by zero");
  return a / b;
}
void DoNothing() {}
int Blocked() { return g_gate.Wait(); }
std::string ReadEnv(std::string name) {
  const char* value = std::getenv(name.c_str());
  return value != nullptr ? value : "<unset>";
}
int SubmitPlus1(int x) { return *ray::Get(ray::Task(Plus1).Remote(x)); }
void ShutdownInside() { ray::Shutdown(); }
void ExitOutsideActor() { ray::ExitActor(); }
int NotRegistered() { return 0; }
bool InitializedInside() { return ray::IsInitialized(); }
std::string NamespaceInside() { return ray::GetNamespace(); }
// A task returning a ref to an object it made.
ray::ObjectRef<int> PutInside(int value) { return ray::Put(value); }
int Scale(int x) { return x * 10; }
int Scale(int x, int y) { return x * y; }
std::string Scale(std::string s) { return s + s; }

std::atomic<bool> g_finished{false};
void FinishLater() {
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  g_finished = true;
}

int LogLines(int task) {
  for (int line = 0; line < 20; ++line) RAYLOG(WARNING) << "task " << task << " line " << line << " end";
  return task;
}

// ---- actors -------------------------------------------------------------------------------

class Counter {
 public:
  explicit Counter(int start) : count_(start) {}
  static Counter* FactoryCreate(int start) { return new Counter(start); }
  static Counter* FactoryThrows(int start) { throw std::runtime_error("no counter from " + std::to_string(start)); }
  static Counter* NotRegisteredFactory(int start) { return new Counter(start); }
  int Add(int k) { return count_ += k; }
  int Get() const { return count_; }
  int AddLength(const std::string& text) { return count_ += static_cast<int>(text.size()); }
  bool Restarted() const { return ray::WasCurrentActorRestarted(); }
  int Exit() { ray::ExitActor(); }
  int Fail() { throw std::invalid_argument("Fail was called"); }
  std::string Env(std::string name) const { return ReadEnv(std::move(name)); }
  int NotRegistered() { return -1; }
  // A parameter declared ObjectRef<T>.
  int AddFromRef(ray::ObjectRef<int> ref) { return count_ += *ray::Get(ref); }
  int AddFromRefs(std::vector<ray::ObjectRef<int>> refs) {
    for (const auto& ref : refs) count_ += *ray::Get(ref);
    return count_;
  }

 private:
  int count_;
};

// A handle as a task's argument.
int AddThrough(ray::ActorHandle<Counter> counter, int k) { return *ray::Get(counter.Task(&Counter::Add).Remote(k)); }

class Base {
 public:
  virtual ~Base() = default;
  int Hello() { return 42; }
};
class Derived : public Base {
 public:
  static Derived* FactoryCreate() { return new Derived(); }
};

// Ref-qualified member functions, one of them overloaded.
class Box {
 public:
  explicit Box(int value) : value_(value) {}
  static Box* FactoryCreate(int value) { return new Box(value); }
  int Get() const& { return value_; }
  int Take() && {
    int taken = value_;
    value_ = 0;
    return taken;
  }
  int Set(int value) & { return value_ = value; }
  int Set(int a, int b) & { return value_ = a + b; }

 private:
  int value_;
};

class Meeting {
 public:
  static Meeting* FactoryCreate() { return new Meeting(); }
  // Waits (at most 5 s) for a second call; true when both were inside at once.
  bool Meet() {
    std::unique_lock<std::mutex> lock(mutex_);
    ++arrived_;
    met_.notify_all();
    return met_.wait_for(lock, std::chrono::seconds(5), [&] { return arrived_ >= 2; });
  }
  // The most calls of Overlap seen inside at once.
  int Overlap() {
    int now = ++inside_;
    int seen = most_.load();
    while (now > seen && !most_.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    --inside_;
    return most_.load();
  }

 private:
  std::mutex mutex_;
  std::condition_variable met_;
  int arrived_ = 0;
  std::atomic<int> inside_{0};
  std::atomic<int> most_{0};
};

// ---- types that travel through msgpack ----------------------------------------------------

struct Point {
  int x = 0;
  double y = 0;
  std::string label;
  std::vector<int> path;
  MSGPACK_DEFINE(x, y, label, path)
  bool operator==(const Point&) const = default;
};

Point MovePoint(Point p, int dx) {
  p.x += dx;
  p.path.push_back(dx);
  return p;
}

// A type with a msgpack adaptor of its own instead of MSGPACK_DEFINE.
struct Temperature {
  double celsius = 0;
  bool operator==(const Temperature&) const = default;
};

Temperature Warmer(Temperature t, double by) { return Temperature{t.celsius + by}; }

class Ledger {
 public:
  explicit Ledger(Point origin) : origin_(std::move(origin)) {}
  static Ledger* FactoryCreate(Point origin) { return new Ledger(std::move(origin)); }
  Point Origin() const { return origin_; }
  Point Record(Point p) {
    last_ = p;
    return last_;
  }
  Temperature Heat(Temperature t) { return Temperature{t.celsius * 2}; }

 private:
  Point origin_;
  Point last_;
};

// A struct holding a ref and an actor handle: both travel through msgpack as their ids.
struct Order {
  std::string item;
  ray::ObjectRef<int> quantity;
  ray::ActorHandle<Counter> till;
  MSGPACK_DEFINE(item, quantity, till)
};

int PlaceOrder(Order order) {
  int quantity = *ray::Get(order.quantity);
  return *ray::Get(order.till.Task(&Counter::Add).Remote(quantity));
}

}  // namespace

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
namespace adaptor {
template <>
struct convert<Temperature> {
  const msgpack::object& operator()(const msgpack::object& in, Temperature& t) const {
    t.celsius = in.as<double>();
    return in;
  }
};
template <>
struct pack<Temperature> {
  template <class Stream>
  packer<Stream>& operator()(packer<Stream>& out, const Temperature& t) const {
    out.pack(t.celsius);
    return out;
  }
};
}  // namespace adaptor
}
}  // namespace msgpack

namespace {

RAY_REMOTE(Return1, Plus1, Plus, Greet, TakeOver, CountItems, AppendMark, ValueOfRef, SumOfRefs, Divide, DoNothing,
           Blocked, ReadEnv, SubmitPlus1, ShutdownInside, ExitOutsideActor, RAY_FUNC(Scale, int),
           RAY_FUNC(Scale, int, int), RAY_FUNC(Scale, std::string), FinishLater, LogLines, MovePoint, Warmer,
           PlaceOrder, InitializedInside, NamespaceInside, PutInside, AddThrough);
RAY_REMOTE(Counter::FactoryCreate, Counter::FactoryThrows, &Counter::Add, &Counter::Get, &Counter::AddLength,
           &Counter::Restarted, &Counter::Exit, &Counter::Fail, &Counter::Env, &Counter::AddFromRef,
           &Counter::AddFromRefs);
RAY_REMOTE(Derived::FactoryCreate, &Base::Hello);
RAY_REMOTE(Box::FactoryCreate, &Box::Get, &Box::Take, RAY_FUNC(&Box::Set, int), RAY_FUNC(&Box::Set, int, int));
RAY_REMOTE(Meeting::FactoryCreate, &Meeting::Meet, &Meeting::Overlap);
RAY_REMOTE(Ledger::FactoryCreate, &Ledger::Origin, &Ledger::Record, &Ledger::Heat);

}  // namespace

// ---- Init, Shutdown, namespaces -------------------------------------------------------------

TEST_CASE("ray::Init()") {
  // Before Init, the API refuses calls with RayException.
  REQUIRE_FALSE(ray::IsInitialized());
  CHECK(message_of([] { ray::Put(1); }) == kNotInitialized);
  CHECK(message_of([] { ray::Task(Return1).Remote(); }) == kNotInitialized);
  {
    // RAY_ADDRESS naming a cluster: a cluster needs Ray itself, so Init throws RayException.
    ScopedEnv address("RAY_ADDRESS", "10.0.0.1:6379");
    CHECK_THROWS_AS(RayRuntime(), RayException);
    CHECK_FALSE(ray::IsInitialized());
  }
  // RAY_ADDRESS "local" runs in this process.
  ScopedEnv address("RAY_ADDRESS", "local");
  RayRuntime ray_runtime;
  CHECK(ray::IsInitialized());
  CHECK(*ray::Get(ray::Task(Return1).Remote()) == 1);

  // A second Init is a no-op: the same job, its objects and actors live on.
  std::string job_namespace = ray::GetNamespace();
  auto kept = ray::Put(5);
  auto counter = ray::Actor(Counter::FactoryCreate).Remote(1);
  ray::Init();
  CHECK(ray::IsInitialized());
  CHECK(ray::GetNamespace() == job_namespace);
  CHECK(*ray::Get(kept) == 5);
  CHECK(*ray::Get(counter.Task(&Counter::Add).Remote(1)) == 2);
}

TEST_CASE("ray::Init(RayConfig& config)") {
  {
    // A cluster address: RayException, and Ray stays uninitialized.
    ray::RayConfig cluster;
    cluster.address = "10.0.0.1:6379";
    CHECK_THROWS_AS(ray::Init(cluster), RayException);
    CHECK_FALSE(ray::IsInitialized());
  }
  {
    // A runtime_env whose env_vars are not strings: RayRuntimeEnvException, Ray uninitialized.
    ray::RayConfig bad;
    ray::RuntimeEnv env;
    env.Set("env_vars", json{{"LUMEN_CONFORMANCE_NUMBER", 1}});
    bad.runtime_env = env;
    CHECK_THROWS_AS(ray::Init(bad), RayRuntimeEnvException);
    CHECK_FALSE(ray::IsInitialized());
  }
  // Every field Ray's RayConfig has is accepted; the job's env_vars are set in the process's
  // environment before tasks run, and the namespace is the job's.
  ScopedEnv mode("LUMEN_CONFORMANCE_MODE", nullptr);
  ray::RayConfig config;
  config.address = "local";
  config.local_mode = true;
  config.code_search_path = {"/nonexistent"};
  config.head_args = {"--num-cpus=2"};
  config.default_actor_lifetime = ray::ActorLifetime::DETACHED;
  config.ray_namespace = "conformance";
  ray::RuntimeEnv env;
  env.Set("env_vars", std::map<std::string, std::string>{{"LUMEN_CONFORMANCE_MODE", "fast"}});
  config.runtime_env = env;
  RayRuntime ray_runtime(config);
  CHECK(ray::IsInitialized());
  CHECK(ray::GetNamespace() == "conformance");
  CHECK(ReadEnv("LUMEN_CONFORMANCE_MODE") == "fast");
  CHECK(*ray::Get(ray::Task(ReadEnv).Remote(std::string("LUMEN_CONFORMANCE_MODE"))) == "fast");
  auto actor = ray::Actor(Counter::FactoryCreate).Remote(0);
  CHECK(*ray::Get(actor.Task(&Counter::Env).Remote(std::string("LUMEN_CONFORMANCE_MODE"))) == "fast");
}

TEST_CASE("ray::Init(RayConfig& config, int argc, char** argv)") {
  char program[] = "program";
  char other_flag[] = "--other_flag=1";
  char namespace_flag[] = "--ray_namespace=from-flag";
  char local_flag[] = "--ray_address=local";
  char cluster_flag[] = "--ray_address=10.0.0.1:6379";
  char positional[] = "input.txt";
  {
    // --ray_address naming a cluster takes precedence over the config's empty address.
    ray::RayConfig config;
    char* argv[] = {program, cluster_flag, nullptr};
    CHECK_THROWS_AS(ray::Init(config, 2, argv), RayException);
    CHECK_FALSE(ray::IsInitialized());
  }
  // --ray_address and --ray_namespace take precedence over the config; other arguments are
  // left as they were; the config's runtime_env applies.
  ScopedEnv variable("LUMEN_CONFORMANCE_ARGV", nullptr);
  ray::RayConfig config;
  config.address = "10.0.0.1:6379";
  config.ray_namespace = "from-config";
  ray::RuntimeEnv env;
  env.Set("env_vars", std::map<std::string, std::string>{{"LUMEN_CONFORMANCE_ARGV", "set"}});
  config.runtime_env = env;
  char* argv[] = {program, other_flag, namespace_flag, local_flag, positional, nullptr};
  RayRuntime ray_runtime(config, 5, argv);
  CHECK(ray::IsInitialized());
  CHECK(ray::GetNamespace() == "from-flag");
  CHECK(std::string(argv[0]) == "program");
  CHECK(std::string(argv[1]) == "--other_flag=1");
  CHECK(std::string(argv[2]) == "--ray_namespace=from-flag");
  CHECK(std::string(argv[3]) == "--ray_address=local");
  CHECK(std::string(argv[4]) == "input.txt");
  CHECK(argv[5] == nullptr);
  CHECK(*ray::Get(ray::Task(ReadEnv).Remote(std::string("LUMEN_CONFORMANCE_ARGV"))) == "set");
}

TEST_CASE("ray::IsInitialized()") {
  // False before Init and after Shutdown, true in between.
  CHECK_FALSE(ray::IsInitialized());
  RayRuntime ray_runtime;
  CHECK(ray::IsInitialized());
  CHECK(*ray::Get(ray::Task(InitializedInside).Remote()));
  ray::Shutdown();
  CHECK_FALSE(ray::IsInitialized());
  ray::Init();
  CHECK(ray::IsInitialized());
}

TEST_CASE("ray::Shutdown()") {
  // Without Ray running, Shutdown does nothing.
  CHECK_NOTHROW(ray::Shutdown());
  RayRuntime ray_runtime;

  // Shutdown waits for the tasks already submitted.
  g_finished = false;
  auto kept = ray::Put(std::string("kept"));
  auto named = ray::Actor(Counter::FactoryCreate).SetName("ends_with_shutdown").Remote(1);
  ray::Task(FinishLater).Remote();
  ray::Shutdown();
  CHECK(g_finished.load());
  CHECK_FALSE(ray::IsInitialized());

  // After Shutdown, calls throw RayException; a second Shutdown does nothing.
  CHECK(message_of([] { ray::Put(1); }) == kNotInitialized);
  CHECK(message_of([] { ray::Task(Return1).Remote(); }) == kNotInitialized);
  CHECK(message_of([&] { ray::Get(kept); }) == kNotInitialized);
  CHECK(message_of([] { ray::Actor(Counter::FactoryCreate).Remote(1); }) == kNotInitialized);
  CHECK(message_of([] { ray::GetActor<Counter>("someone"); }) == kNotInitialized);
  CHECK(message_of([] { ray::GetNamespace(); }) == kNotInitialized);
  CHECK(message_of([] { ray::GetAllPlacementGroups(); }) == kNotInitialized);
  CHECK_NOTHROW(ray::Shutdown());

  // Init may follow; refs from before keep their values.
  ray::Init();
  CHECK(*ray::Get(kept) == "kept");
  // Actors ended with the runtime: calls throw RayActorException, names are free.
  CHECK_THROWS_AS(ray::Get(named.Task(&Counter::Get).Remote()), RayActorException);
  CHECK_FALSE(ray::GetActor<Counter>("ends_with_shutdown").has_value());

  // Inside a task, Shutdown (which would wait for that task) throws RayException; Ray runs on.
  std::string inside = message_of<RayTaskException>([] { ray::Get(ray::Task(ShutdownInside).Remote()); });
  CHECK(contains(inside, "ShutdownInside"));
  CHECK(contains(inside, "RayException"));
  CHECK(ray::IsInitialized());

  // Tasks that can never be scheduled fail at Shutdown with RayException.
  ray::ObjectRef<int> never;
  logged_by([&] { never = ray::Task(Return1).SetResource("GPU", 1).Remote(); });
  ray::Shutdown();
  ray::Init();
  try {
    never.Get(2000);
    FAIL("Get of an infeasible task succeeded after Shutdown");
  } catch (const RayTimeoutException&) {
    FAIL("an infeasible task was still pending after Shutdown");
  } catch (const RayException& e) {
    CHECK_FALSE(e.msg_.empty());
  }
  ray::Shutdown();

  // The wait is bounded: with LUMEN_RAY_SHUTDOWN_TIMEOUT=0.2, a task blocked on a std::promise
  // makes Shutdown return with a warning; the task ends once released.
  {
    ScopedEnv timeout("LUMEN_RAY_SHUTDOWN_TIMEOUT", "0.2");
    ArmedGate gate;
    ray::Init();
    auto blocked = ray::Task(Blocked).Remote();
    REQUIRE(g_gate.AwaitWaiters(1));
    std::string warning = logged_by([] { ray::Shutdown(); });
    CHECK_FALSE(ray::IsInitialized());
    CHECK(contains(warning, "WARNING"));
    CHECK(contains(warning, "Shutdown"));
    g_gate.Open(1);
  }
  // A new runtime may start while the abandoned task finishes.
  ray::Init();
  CHECK(*ray::Get(ray::Task(Plus1).Remote(1)) == 2);
}

TEST_CASE("ray::GetNamespace()") {
  CHECK(message_of([] { ray::GetNamespace(); }) == kNotInitialized);
  RayRuntime ray_runtime;
  // Without RayConfig::ray_namespace, the job gets an anonymous namespace of its own, where its
  // named actors live.
  std::string anonymous = ray::GetNamespace();
  CHECK_FALSE(anonymous.empty());
  CHECK(*ray::Get(ray::Task(NamespaceInside).Remote()) == anonymous);
  auto named = ray::Actor(Counter::FactoryCreate).SetName("in_job_namespace").Remote(1);
  auto found = ray::GetActor<Counter>("in_job_namespace", anonymous);
  REQUIRE(found.has_value());
  CHECK(found->ID() == named.ID());
  ray::Shutdown();
  ray::Init();
  CHECK_FALSE(ray::GetNamespace().empty());
  CHECK(ray::GetNamespace() != anonymous);  // another job, another anonymous namespace
  ray::Shutdown();

  // With RayConfig::ray_namespace, that one.
  ray::RayConfig config;
  config.ray_namespace = "orders";
  ray::Init(config);
  CHECK(ray::GetNamespace() == "orders");
  CHECK(*ray::Get(ray::Task(NamespaceInside).Remote()) == "orders");
}

// ---- registration -------------------------------------------------------------------------

TEST_CASE("RAY_REMOTE(functions...)") {
  RayRuntime ray_runtime;
  // Registered free functions, factories and member functions run.
  CHECK(*ray::Get(ray::Task(Plus).Remote(2, 3)) == 5);
  auto counter = ray::Actor(Counter::FactoryCreate).Remote(1);
  CHECK(*ray::Get(counter.Task(&Counter::Add).Remote(1)) == 2);
  auto derived = ray::Actor(Derived::FactoryCreate).Remote();
  CHECK(*ray::Get(derived.Task(&Base::Hello).Remote()) == 42);

  // Unregistered ones throw RayException "Function not found".
  CHECK(message_of([] { ray::Task(NotRegistered); }) == kNotFound);
  CHECK(message_of([] { ray::Actor(Counter::NotRegisteredFactory); }) == kNotFound);
  CHECK(message_of([&] { counter.Task(&Counter::NotRegistered); }) == kNotFound);

  // Registering a function a second time throws RayException.
  CHECK(message_of([] { RAY_REMOTE(Plus1); }) == "Duplicate RAY_REMOTE function: Plus1");
  CHECK(*ray::Get(ray::Task(Plus1).Remote(1)) == 2);
}

TEST_CASE("RAY_FUNC(function, parameter types...)") {
  RayRuntime ray_runtime;
  // Each overload of a free function, picked by its parameter types.
  CHECK(*ray::Get(ray::Task(RAY_FUNC(Scale, int)).Remote(4)) == 40);
  CHECK(*ray::Get(ray::Task(RAY_FUNC(Scale, int, int)).Remote(4, 5)) == 20);
  CHECK(*ray::Get(ray::Task(RAY_FUNC(Scale, std::string)).Remote(std::string("ab"))) == "abab");

  // Ref-qualified member functions (const &, &, &&) and overloads of one.
  auto box = ray::Actor(Box::FactoryCreate).Remote(7);
  CHECK(*ray::Get(box.Task(&Box::Get).Remote()) == 7);
  CHECK(*ray::Get(box.Task(RAY_FUNC(&Box::Set, int)).Remote(9)) == 9);
  CHECK(*ray::Get(box.Task(RAY_FUNC(&Box::Set, int, int)).Remote(2, 3)) == 5);
  CHECK(*ray::Get(box.Task(&Box::Take).Remote()) == 5);
  CHECK(*ray::Get(box.Task(&Box::Get).Remote()) == 0);  // Take ran on the actor's own object
}

// ---- tasks --------------------------------------------------------------------------------

TEST_CASE("ray::Task(f).Remote(args...)") {
  RayRuntime ray_runtime;
  // Arguments by value; the result is an ObjectRef of the return type.
  ray::ObjectRef<int> sum = ray::Task(Plus).Remote(1, 2);
  CHECK(*ray::Get(sum) == 3);

  // Arguments are copied at Remote and converted to the parameter's type.
  std::string name = "ray";
  auto greeting = ray::Task(Greet).Remote(name);
  name = "changed";
  CHECK(*ray::Get(greeting) == "hello ray");
  CHECK(*ray::Get(ray::Task(Greet).Remote("world")) == "hello world");

  // ObjectRef arguments reach the task as their values, from Put or from other tasks.
  CHECK(*ray::Get(ray::Task(Plus).Remote(ray::Put(10), ray::Task(Plus1).Remote(1))) == 12);

  // T&& parameters take rvalues, lvalues and refs; neither the caller's value nor the object
  // changes.
  CHECK(*ray::Get(ray::Task(TakeOver).Remote(std::string("a"))) == "a!");
  std::string mine = "b";
  CHECK(*ray::Get(ray::Task(TakeOver).Remote(mine)) == "b!");
  CHECK(mine == "b");
  auto stored = ray::Put(std::string("c"));
  CHECK(*ray::Get(ray::Task(TakeOver).Remote(stored)) == "c!");
  CHECK(*ray::Get(stored) == "c");

  // const T& parameters take values and refs.
  CHECK(*ray::Get(ray::Task(CountItems).Remote(std::vector<int>{1, 2, 3})) == 3);
  CHECK(*ray::Get(ray::Task(CountItems).Remote(ray::Put(std::vector<int>(5)))) == 5);

  // T& parameters get a copy of their own.
  std::string text = "t";
  CHECK(*ray::Get(ray::Task(AppendMark).Remote(text)) == "t?");
  CHECK(text == "t");
  auto object = ray::Put(std::string("o"));
  CHECK(*ray::Get(ray::Task(AppendMark).Remote(object)) == "o?");
  CHECK(*ray::Get(object) == "o");

  // An ObjectRef argument for a parameter declared ObjectRef<T>: std::invalid_argument, as on
  // a Ray cluster. Refs inside a std::vector reach the task as refs.
  CHECK_THROWS_AS(ray::Task(ValueOfRef).Remote(ray::Put(1)), std::invalid_argument);
  std::vector<ray::ObjectRef<int>> refs{ray::Put(1), ray::Put(2), ray::Task(Plus1).Remote(2)};
  CHECK(*ray::Get(ray::Task(SumOfRefs).Remote(refs)) == 6);

  // A task returning void, and a task that submits a task.
  ray::ObjectRef<void> done = ray::Task(DoNothing).Remote();
  CHECK_NOTHROW(ray::Get(done));
  CHECK(*ray::Get(ray::Task(SubmitPlus1).Remote(4)) == 5);

  // A task that throws: Get throws RayTaskException naming the function and the error; a task
  // taking its result fails the same way without running.
  auto failed = ray::Task(Divide).Remote(1, 0);
  std::string why = message_of<RayTaskException>([&] { ray::Get(failed); });
  CHECK(contains(why, "Divide"));
  CHECK(contains(why, "division by zero"));
  CHECK(contains(message_of<RayTaskException>([&] { ray::Get(ray::Task(Plus1).Remote(failed)); }), "division by zero"));

  // An empty ObjectRef argument: RayException.
  CHECK_THROWS_AS(ray::Task(Plus1).Remote(ray::ObjectRef<int>()), RayException);
}

TEST_CASE("ray::Task(f).SetName(name)") {
  RayRuntime ray_runtime;
  // A named task runs like any other.
  CHECK(*ray::Get(ray::Task(Plus).SetName("adder").Remote(2, 2)) == 4);
  // Its error still names its function.
  CHECK(contains(message_of<RayTaskException>([] { ray::Get(ray::Task(Divide).SetName("risky").Remote(1, 0)); }),
                 "Divide"));
  // The warning about a task that cannot be scheduled names it by the name given.
  CHECK(contains(logged_by([] { ray::Task(Return1).SetName("gpu_job").SetResource("GPU", 1).Remote(); }), "gpu_job"));
}

TEST_CASE("ray::Task(f).SetResources(resources) and SetResource(name, value)") {
  RayRuntime ray_runtime;
  // What the node has: the task runs.
  CHECK(*ray::Get(ray::Task(Return1).SetResources({{"CPU", 1}}).Remote()) == 1);
  CHECK(*ray::Get(ray::Task(Return1).SetResource("CPU", 0.5).Remote()) == 1);
  CHECK(*ray::Get(ray::Task(Return1).SetResources({{"CPU", node_cpus()}}).Remote()) == 1);
  CHECK(*ray::Get(ray::Task(Return1).SetResources({{"CPU", 1}}).SetResource("memory", 100 * kMiB).Remote()) == 1);
  CHECK(*ray::Get(ray::Task(Return1).SetResource("memory", 100 * kMiB).Remote()) == 1);
  CHECK(*ray::Get(ray::Task(Return1).SetResource("object_store_memory", 10 * kMiB).Remote()) == 1);

  // Values Ray refuses (an empty name, zero or less, a fraction above 1, less than 0.0001):
  // RayException at Remote.
  const std::vector<std::pair<std::string, double>> refused{
      {"", 1}, {"CPU", 0}, {"CPU", -1}, {"CPU", 1.5}, {"CPU", 0.00001}};
  for (const auto& claim : refused) {
    const std::string& name = claim.first;  // not a structured binding: lambdas capture it
    const double value = claim.second;
    CAPTURE(name);
    CAPTURE(value);
    CHECK_THROWS_AS(ray::Task(Return1).SetResource(name, value).Remote(), RayException);
    CHECK_THROWS_AS(ray::Task(Return1).SetResources({{name, value}}).Remote(), RayException);
  }

  // More than the node has, or a resource it lacks: the task stays pending (Get with a timeout
  // times out) and a warning is logged.
  const std::vector<std::pair<std::string, double>> infeasible{
      {"CPU", 1e6}, {"GPU", 1}, {"memory", 1e15}, {"object_store_memory", 1e15}};
  for (const auto& claim : infeasible) {
    const std::string& name = claim.first;
    const double value = claim.second;
    CAPTURE(name);
    ray::ObjectRef<int> pending;
    std::string warning = logged_by([&] { pending = ray::Task(Return1).SetResources({{name, value}}).Remote(); });
    CHECK(contains(warning, "WARNING"));
    CHECK(contains(warning, name));
    CHECK_THROWS_AS(pending.Get(20), RayTimeoutException);
  }
}

TEST_CASE("ray::Task(f).SetPlacementGroup(group, bundle_index)") {
  RayRuntime ray_runtime;
  ray::PlacementGroupCreationOptions options{"for_tasks", {{{"CPU", 1}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup group = ray::CreatePlacementGroup(options);
  REQUIRE(group.Wait(10));
  // In bundle 0, in the group as a whole (-1), with resources of its own: the task runs.
  CHECK(*ray::Get(ray::Task(Plus1).SetPlacementGroup(group, 0).Remote(1)) == 2);
  CHECK(*ray::Get(ray::Task(Plus1).SetPlacementGroup(group, -1).Remote(2)) == 3);
  CHECK(*ray::Get(ray::Task(Plus1).SetPlacementGroup(group, 0).SetResource("CPU", 0.5).Remote(3)) == 4);

  // A bundle index the group lacks: RayException.
  CHECK_THROWS_AS(ray::Task(Plus1).SetPlacementGroup(group, 1).Remote(1), RayException);

  // More than the bundle holds: pending, with a warning.
  ray::ObjectRef<int> too_big;
  CHECK(contains(logged_by([&] { too_big = ray::Task(Plus1).SetPlacementGroup(group, 0).SetResource("CPU", 2).Remote(1); }),
                 "WARNING"));
  CHECK_THROWS_AS(too_big.Get(20), RayTimeoutException);

  // A group not created yet: RayException (lumen documents this; Ray queues the task).
  ray::PlacementGroupCreationOptions spread{"spread", {{{"CPU", 1}}, {{"CPU", 1}}}, ray::PlacementStrategy::STRICT_SPREAD};
  ray::PlacementGroup pending = ray::CreatePlacementGroup(spread);
  CHECK_THROWS_AS(ray::Task(Plus1).SetPlacementGroup(pending, 0).Remote(1), RayException);

  // A removed group: RayException.
  ray::RemovePlacementGroup(group.GetID());
  CHECK_THROWS_AS(ray::Task(Plus1).SetPlacementGroup(group, 0).Remote(1), RayException);
}

TEST_CASE("ray::Task(f).SetRuntimeEnv(runtime_env)") {
  RayRuntime ray_runtime;
  // env_vars mapping strings to strings: the task runs.
  ray::RuntimeEnv env;
  env.Set("env_vars", std::map<std::string, std::string>{{"LUMEN_CONFORMANCE_TASK", "1"}});
  CHECK(*ray::Get(ray::Task(Plus1).SetRuntimeEnv(env).Remote(1)) == 2);

  // env_vars with values that are not strings, or not a map: RayRuntimeEnvException.
  ray::RuntimeEnv numbers;
  numbers.Set("env_vars", json{{"LUMEN_CONFORMANCE_TASK", 1}});
  CHECK_THROWS_AS(ray::Task(Plus1).SetRuntimeEnv(numbers).Remote(1), RayRuntimeEnvException);
  ray::RuntimeEnv text;
  text.Set("env_vars", std::string("LUMEN_CONFORMANCE_TASK=1"));
  CHECK_THROWS_AS(ray::Task(Plus1).SetRuntimeEnv(text).Remote(1), RayRuntimeEnvException);
}

// ---- objects ------------------------------------------------------------------------------

TEST_CASE("ray::Put(const T& obj)") {
  RayRuntime ray_runtime;
  // Put stores a copy, ready at once.
  std::vector<int> values{1, 2, 3};
  ray::ObjectRef<std::vector<int>> stored = ray::Put(values);
  values.push_back(4);
  CHECK(*ray::Get(stored) == std::vector<int>{1, 2, 3});
  ray::ObjectRef<int> number = ray::Put(100);
  CHECK(ray::Wait(std::vector<ray::ObjectRef<int>>{number}, 1, 0).ready.size() == 1);
  CHECK(*ray::Get(number) == 100);
  // Each Put makes a new object, even of an equal value.
  CHECK_FALSE(ray::Put(100) == number);
  CHECK(*ray::Get(ray::Put(std::string("text"))) == "text");
  // A ref to an object a task put reaches its caller, and the object outlives the task.
  ray::ObjectRef<ray::ObjectRef<int>> nested = ray::Task(PutInside).Remote(7);
  std::shared_ptr<ray::ObjectRef<int>> inner = ray::Get(nested);
  CHECK(*ray::Get(*inner) == 7);
}

TEST_CASE("ray::Get(const ObjectRef<T>& object)") {
  RayRuntime ray_runtime;
  // The value, as a shared_ptr to a copy of its own.
  auto ref = ray::Put(std::string("value"));
  std::shared_ptr<std::string> value = ray::Get(ref);
  CHECK(*value == "value");
  *value = "changed";
  CHECK(*ray::Get(ref) == "value");
  CHECK(*ref.Get() == "value");
  // Waits for a task's result; a void task's Get waits and returns nothing.
  CHECK(*ray::Get(ray::Task(Plus1).Remote(1)) == 2);
  CHECK_NOTHROW(ray::Get(ray::Task(DoNothing).Remote()));

  // A task that threw: RayTaskException. An actor that died: RayActorException. An empty ref:
  // RayException.
  CHECK_THROWS_AS(ray::Get(ray::Task(Divide).Remote(1, 0)), RayTaskException);
  auto counter = ray::Actor(Counter::FactoryCreate).Remote(0);
  counter.Kill();
  CHECK_THROWS_AS(ray::Get(counter.Task(&Counter::Get).Remote()), RayActorException);
  CHECK_THROWS_AS(ray::Get(ray::ObjectRef<int>()), RayException);
}

TEST_CASE("ray::Get(const ObjectRef<T>& object, const int& timeout_ms)") {
  RayRuntime ray_runtime;
  ArmedGate gate;
  // A ready object: its value, whatever the timeout.
  CHECK(*ray::Get(ray::Put(3), 0) == 3);
  CHECK(*ray::Get(ray::Put(3), 1000) == 3);
  // An object not ready in time: RayTimeoutException.
  auto pending = ray::Task(Blocked).Remote();
  CHECK_THROWS_AS(ray::Get(pending, 10), RayTimeoutException);
  CHECK_THROWS_AS(pending.Get(0), RayTimeoutException);
  // A negative timeout waits without limit.
  g_gate.Open(8);
  CHECK(*ray::Get(pending, -1) == 8);
  CHECK(*pending.Get(1000) == 8);
  // A task that threw: RayTaskException, not a timeout.
  CHECK_THROWS_AS(ray::Get(ray::Task(Divide).Remote(1, 0), 5000), RayTaskException);
}

TEST_CASE("ray::Get(const std::vector<ObjectRef<T>>& objects)") {
  RayRuntime ray_runtime;
  // Every value, in order.
  std::vector<ray::ObjectRef<int>> refs{ray::Put(1), ray::Task(Plus1).Remote(1), ray::Task(Plus).Remote(1, 2)};
  std::vector<std::shared_ptr<int>> values = ray::Get(refs);
  REQUIRE(values.size() == 3);
  CHECK(*values[0] == 1);
  CHECK(*values[1] == 2);
  CHECK(*values[2] == 3);
  CHECK(ray::Get(std::vector<ray::ObjectRef<int>>{}).empty());
  // A failed object's error is thrown; an empty ref throws RayException.
  refs.push_back(ray::Task(Divide).Remote(1, 0));
  CHECK_THROWS_AS(ray::Get(refs), RayTaskException);
  CHECK_THROWS_AS(ray::Get(std::vector<ray::ObjectRef<int>>{ray::Put(1), ray::ObjectRef<int>()}), RayException);
}

TEST_CASE("ray::Get(const std::vector<ObjectRef<T>>& objects, const int& timeout_ms)") {
  RayRuntime ray_runtime;
  ArmedGate gate;
  auto ready = ray::Put(1);
  auto computed = ray::Task(Plus1).Remote(1);
  // All ready in time: every value, in order.
  std::vector<std::shared_ptr<int>> values = ray::Get(std::vector<ray::ObjectRef<int>>{ready, computed}, 5000);
  REQUIRE(values.size() == 2);
  CHECK(*values[0] == 1);
  CHECK(*values[1] == 2);
  // One not ready in time: RayTimeoutException.
  auto pending = ray::Task(Blocked).Remote();
  CHECK_THROWS_AS(ray::Get(std::vector<ray::ObjectRef<int>>{ready, pending}, 10), RayTimeoutException);
  CHECK_THROWS_AS(ray::Get(std::vector<ray::ObjectRef<int>>{pending, ready}, 0), RayTimeoutException);
  // A negative timeout waits without limit.
  g_gate.Open(5);
  values = ray::Get(std::vector<ray::ObjectRef<int>>{ready, pending}, -1);
  REQUIRE(values.size() == 2);
  CHECK(*values[1] == 5);
  // A failed object's error, not a timeout.
  CHECK_THROWS_AS(ray::Get(std::vector<ray::ObjectRef<int>>{ready, ray::Task(Divide).Remote(1, 0)}, 5000),
                  RayTaskException);
}

TEST_CASE("ray::Get(const std::vector<std::string>& ids)") {
  RayRuntime ray_runtime;
  // The values of the objects with these ids, in order.
  std::vector<ray::ObjectRef<int>> refs{ray::Put(1), ray::Put(2), ray::Task(Plus1).Remote(2)};
  std::vector<std::string> ids{refs[0].ID(), refs[1].ID(), refs[2].ID()};
  std::vector<std::shared_ptr<int>> values = ray::Get<int>(ids);
  REQUIRE(values.size() == 3);
  CHECK(*values[0] == 1);
  CHECK(*values[1] == 2);
  CHECK(*values[2] == 3);
  CHECK(ray::Get<int>(std::vector<std::string>{}).empty());
  // Ids of objects of another type, malformed ids, ids of dropped objects: RayException.
  CHECK_THROWS_AS(ray::Get<std::string>(ids), RayException);
  CHECK_THROWS_AS(ray::Get<int>(std::vector<std::string>{"not an object id"}), RayException);
  std::string dropped = ray::Put(9).ID();
  CHECK_THROWS_AS(ray::Get<int>(std::vector<std::string>{dropped}), RayException);
}

TEST_CASE("ray::ObjectRef<T>") {
  RayRuntime ray_runtime;
  auto ref = ray::Put(42);
  // ID() returns a reference to the ref's own id.
  CHECK(std::is_same_v<decltype(ref.ID()), const std::string&>);
  const std::string& id = ref.ID();
  CHECK(&id == &ref.ID());
  CHECK_FALSE(id.empty());
  CHECK(ray::ObjectRef<int>::IsObjectRef());

  // A default-constructed ref has an empty id and no value.
  ray::ObjectRef<int> none;
  CHECK(none.ID().empty());
  CHECK_THROWS_AS(ray::Get(none), RayException);

  // Copies name the same object, compare equal and keep it alive.
  ray::ObjectRef<int> copy = ref;
  CHECK(copy == ref);
  CHECK(copy.ID() == id);
  ray::ObjectRef<int> assigned;
  assigned = ref;
  CHECK(assigned == ref);
  CHECK_FALSE(ray::Put(42) == ref);
  ray::ObjectRef<int> survivor;
  {
    auto original = ray::Task(Plus1).Remote(1);
    survivor = original;
  }
  CHECK(*ray::Get(survivor) == 2);

  // ObjectRef<T>(id) finds the object while another ref keeps it alive.
  ray::ObjectRef<int> from_id(id);
  CHECK(from_id == ref);
  CHECK(*ray::Get(from_id) == 42);
  ray::ObjectRef<int> result_by_id(survivor.ID());
  CHECK(*ray::Get(result_by_id) == 2);

  // The id of a dropped object, of an object of another type, or a malformed id: RayException.
  std::string dropped = ray::Put(7).ID();
  CHECK_THROWS_AS(ray::Get(ray::ObjectRef<int>(dropped)), RayException);
  CHECK_THROWS_AS(ray::Get(ray::ObjectRef<std::string>(id)), RayException);
  CHECK_THROWS_AS(ray::Get(ray::ObjectRef<int>(std::string("not an object id"))), RayException);
  CHECK_THROWS_AS(ray::Get(ray::ObjectRef<int>(std::string(id.size(), 'z'))), RayException);
}

TEST_CASE("ray::internal::ObjectRefsToObjectIDs(object_refs)") {
  RayRuntime ray_runtime;
  // The ids of the refs, in order, which Get<T>(ids) reads.
  std::vector<ray::ObjectRef<int>> refs{ray::Put(1), ray::Task(Plus1).Remote(1), ray::Put(3)};
  std::vector<std::string> ids = ray::internal::ObjectRefsToObjectIDs(refs);
  REQUIRE(ids.size() == 3);
  for (std::size_t i = 0; i < refs.size(); ++i) CHECK(ids[i] == refs[i].ID());
  std::vector<std::shared_ptr<int>> values = ray::Get<int>(ids);
  REQUIRE(values.size() == 3);
  CHECK(*values[0] == 1);
  CHECK(*values[1] == 2);
  CHECK(*values[2] == 3);
  CHECK(ray::internal::ObjectRefsToObjectIDs(std::vector<ray::ObjectRef<int>>{}).empty());
}

TEST_CASE("ray::Wait(objects, num_objects, timeout_ms)") {
  RayRuntime ray_runtime;
  ArmedGate gate;
  auto ready_a = ray::Put(1);
  auto pending_b = ray::Task(Blocked).Remote();
  auto ready_c = ray::Task(Plus1).Remote(2);
  auto pending_d = ray::Task(Blocked).Remote();
  REQUIRE(g_gate.AwaitWaiters(2));
  ray::Get(ready_c);
  std::vector<ray::ObjectRef<int>> refs{ready_a, pending_b, ready_c, pending_d};

  // At the timeout, Wait returns what is ready without throwing; both lists keep the input's
  // order.
  ray::WaitResult<int> result = ray::Wait(refs, 4, 10);
  CHECK(result.ready == std::list<ray::ObjectRef<int>>{ready_a, ready_c});
  CHECK(result.unready == std::list<ray::ObjectRef<int>>{pending_b, pending_d});

  // ready holds at most num_objects refs, all of them ready; every ref is in one list.
  result = ray::Wait(refs, 1, 0);
  REQUIRE(result.ready.size() == 1);
  CHECK((result.ready.front() == ready_a || result.ready.front() == ready_c));
  CHECK(result.unready.size() == 3);
  CHECK(keeps_order(result.ready, refs));
  CHECK(keeps_order(result.unready, refs));

  // num_objects outside 1..size, or an empty ref: RayException.
  CHECK_THROWS_AS(ray::Wait(refs, 0, 0), RayException);
  CHECK_THROWS_AS(ray::Wait(refs, -1, 0), RayException);
  CHECK_THROWS_AS(ray::Wait(refs, 5, 0), RayException);
  CHECK_THROWS_AS(ray::Wait(std::vector<ray::ObjectRef<int>>{}, 1, 0), RayException);
  CHECK_THROWS_AS(ray::Wait(std::vector<ray::ObjectRef<int>>{ray::ObjectRef<int>()}, 1, 0), RayException);

  // A failed object counts as ready; Wait does not throw its error.
  auto failed = ray::Task(Divide).Remote(1, 0);
  CHECK(ray::Wait(std::vector<ray::ObjectRef<int>>{failed}, 1, -1).ready.size() == 1);

  // A negative timeout waits until num_objects are ready.
  g_gate.Open(5);
  result = ray::Wait(refs, 4, -1);
  CHECK(result.ready.size() == 4);
  CHECK(result.unready.empty());
  CHECK(keeps_order(result.ready, refs));
}

TEST_CASE("ray::WaitResult<T>") {
  RayRuntime ray_runtime;
  // Two std::lists of refs, ready and unready; empty by default, or built from two lists.
  CHECK(std::is_same_v<decltype(ray::WaitResult<int>::ready), std::list<ray::ObjectRef<int>>>);
  CHECK(std::is_same_v<decltype(ray::WaitResult<int>::unready), std::list<ray::ObjectRef<int>>>);
  ray::WaitResult<int> empty;
  CHECK(empty.ready.empty());
  CHECK(empty.unready.empty());
  auto a = ray::Put(1);
  auto b = ray::Put(2);
  ray::WaitResult<int> built(std::list<ray::ObjectRef<int>>{a}, std::list<ray::ObjectRef<int>>{b});
  REQUIRE(built.ready.size() == 1);
  REQUIRE(built.unready.size() == 1);
  CHECK(built.ready.front() == a);
  CHECK(built.unready.front() == b);
}

// ---- actors -------------------------------------------------------------------------------

TEST_CASE("ray::Actor(factory).Remote(args...)") {
  RayRuntime ray_runtime;
  // The factory's object is the actor; its calls run one at a time, in the order made.
  auto counter = ray::Actor(Counter::FactoryCreate).Remote(10);
  std::vector<ray::ObjectRef<int>> results;
  for (int i = 0; i < 50; ++i) results.push_back(counter.Task(&Counter::Add).Remote(1));
  for (int i = 0; i < 50; ++i) CHECK(*ray::Get(results[static_cast<std::size_t>(i)]) == 11 + i);

  // Factory arguments: values and refs (resolved to their values).
  auto from_put = ray::Actor(Counter::FactoryCreate).Remote(ray::Put(5));
  CHECK(*ray::Get(from_put.Task(&Counter::Get).Remote()) == 5);
  auto from_task = ray::Actor(Counter::FactoryCreate).Remote(ray::Task(Plus1).Remote(1));
  CHECK(*ray::Get(from_task.Task(&Counter::Get).Remote()) == 2);
  // Each Remote makes an actor of its own.
  CHECK(*ray::Get(counter.Task(&Counter::Get).Remote()) == 60);
  CHECK(counter.ID() != from_put.ID());

  // A factory that throws: the actor's calls throw RayActorException.
  auto broken = ray::Actor(Counter::FactoryThrows).Remote(1);
  CHECK_THROWS_AS(ray::Get(broken.Task(&Counter::Get).Remote()), RayActorException);
}

TEST_CASE("ray::Actor(factory).SetName(name)") {
  ray::RayConfig config;
  config.ray_namespace = "names";
  RayRuntime ray_runtime(config);
  // A named actor is found by GetActor in the job's namespace.
  auto till = ray::Actor(Counter::FactoryCreate).SetName("till").Remote(1);
  auto found = ray::GetActor<Counter>("till");
  REQUIRE(found.has_value());
  CHECK(found->ID() == till.ID());
  CHECK(ray::GetActor<Counter>("till", "names").has_value());
  CHECK(*ray::Get(found->Task(&Counter::Add).Remote(1)) == 2);
  CHECK(*ray::Get(till.Task(&Counter::Get).Remote()) == 2);
  // A name a live actor of the namespace has: RayException.
  CHECK_THROWS_AS(ray::Actor(Counter::FactoryCreate).SetName("till").Remote(2), RayException);
  // Once that actor is killed, the name is free again.
  till.Kill();
  CHECK_FALSE(ray::GetActor<Counter>("till").has_value());
  auto again = ray::Actor(Counter::FactoryCreate).SetName("till").Remote(3);
  CHECK(*ray::Get(again.Task(&Counter::Get).Remote()) == 3);
}

TEST_CASE("ray::Actor(factory).SetName(name, ray_namespace)") {
  RayRuntime ray_runtime;
  // One name in two namespaces: two actors, each found in its own namespace only.
  auto east = ray::Actor(Counter::FactoryCreate).SetName("shared", "east").Remote(1);
  auto west = ray::Actor(Counter::FactoryCreate).SetName("shared", "west").Remote(2);
  auto found_east = ray::GetActor<Counter>("shared", "east");
  auto found_west = ray::GetActor<Counter>("shared", "west");
  REQUIRE(found_east.has_value());
  REQUIRE(found_west.has_value());
  CHECK(*ray::Get(found_east->Task(&Counter::Get).Remote()) == 1);
  CHECK(*ray::Get(found_west->Task(&Counter::Get).Remote()) == 2);
  CHECK_FALSE(ray::GetActor<Counter>("shared").has_value());
  // A name taken in that namespace: RayException.
  CHECK_THROWS_AS(ray::Actor(Counter::FactoryCreate).SetName("shared", "east").Remote(3), RayException);
}

TEST_CASE("ray::Actor(factory).SetMaxRestarts(max_restarts)") {
  RayRuntime ray_runtime;
  // Kill(false) restarts the actor from its factory and arguments while restarts are left.
  auto restarting = ray::Actor(Counter::FactoryCreate).SetMaxRestarts(1).Remote(5);
  CHECK(*ray::Get(restarting.Task(&Counter::Add).Remote(1)) == 6);
  restarting.Kill(false);
  CHECK(*ray::Get(restarting.Task(&Counter::Get).Remote()) == 5);
  restarting.Kill(false);
  CHECK_THROWS_AS(ray::Get(restarting.Task(&Counter::Get).Remote()), RayActorException);

  // -1: restarts without limit.
  auto always = ray::Actor(Counter::FactoryCreate).SetMaxRestarts(-1).Remote(0);
  for (int i = 0; i < 3; ++i) {
    always.Kill(false);
    CHECK(*ray::Get(always.Task(&Counter::Add).Remote(1)) == 1);
  }
  // The default is no restart.
  auto once = ray::Actor(Counter::FactoryCreate).Remote(0);
  once.Kill(false);
  CHECK_THROWS_AS(ray::Get(once.Task(&Counter::Get).Remote()), RayActorException);
  // Below -1: RayException.
  CHECK_THROWS_AS(ray::Actor(Counter::FactoryCreate).SetMaxRestarts(-2).Remote(0), RayException);
}

TEST_CASE("ray::Actor(factory).SetMaxConcurrency(max_concurrency)") {
  RayRuntime ray_runtime;
  // With max concurrency 2, two calls run at once: each sees the other arrive.
  auto two = ray::Actor(Meeting::FactoryCreate).SetMaxConcurrency(2).Remote();
  auto first = two.Task(&Meeting::Meet).Remote();
  auto second = two.Task(&Meeting::Meet).Remote();
  CHECK(*ray::Get(first));
  CHECK(*ray::Get(second));
  // With the default of 1, calls never overlap.
  auto one = ray::Actor(Meeting::FactoryCreate).Remote();
  std::vector<ray::ObjectRef<int>> calls;
  for (int i = 0; i < 4; ++i) calls.push_back(one.Task(&Meeting::Overlap).Remote());
  for (auto& call : calls) CHECK(*ray::Get(call) == 1);
  // Less than 1: RayException.
  CHECK_THROWS_AS(ray::Actor(Meeting::FactoryCreate).SetMaxConcurrency(0).Remote(), RayException);
}

TEST_CASE("ray::Actor(factory).SetResources(resources) and SetResource(name, value)") {
  RayRuntime ray_runtime;
  // Resources the node has: the actor is created and runs its calls.
  auto a = ray::Actor(Counter::FactoryCreate).SetResources({{"CPU", 1}}).Remote(1);
  CHECK(*ray::Get(a.Task(&Counter::Get).Remote()) == 1);
  auto b = ray::Actor(Counter::FactoryCreate).SetResource("CPU", 0.5).SetResource("memory", 100 * kMiB).Remote(2);
  CHECK(*ray::Get(b.Task(&Counter::Get).Remote()) == 2);
  // Values Ray refuses: RayException.
  CHECK_THROWS_AS(ray::Actor(Counter::FactoryCreate).SetResources({{"CPU", -1}}).Remote(0), RayException);
  CHECK_THROWS_AS(ray::Actor(Counter::FactoryCreate).SetResource("CPU", 1.5).Remote(0), RayException);
  CHECK_THROWS_AS(ray::Actor(Counter::FactoryCreate).SetResource("", 1).Remote(0), RayException);
}

TEST_CASE("ray::Actor(factory).SetPlacementGroup(group, bundle_index)") {
  RayRuntime ray_runtime;
  ray::PlacementGroupCreationOptions options{"for_actors", {{{"CPU", 1}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup group = ray::CreatePlacementGroup(options);
  REQUIRE(group.Wait(10));
  // In a bundle of a created group, or in the group as a whole: the actor runs.
  auto in_bundle = ray::Actor(Counter::FactoryCreate).SetPlacementGroup(group, 0).Remote(1);
  CHECK(*ray::Get(in_bundle.Task(&Counter::Get).Remote()) == 1);
  auto in_group = ray::Actor(Counter::FactoryCreate).SetPlacementGroup(group, -1).Remote(2);
  CHECK(*ray::Get(in_group.Task(&Counter::Get).Remote()) == 2);
  // A bundle index the group lacks: RayException.
  CHECK_THROWS_AS(ray::Actor(Counter::FactoryCreate).SetPlacementGroup(group, 3).Remote(0), RayException);
}

TEST_CASE("ray::Actor(factory).SetRuntimeEnv(runtime_env)") {
  RayRuntime ray_runtime;
  // env_vars mapping strings to strings: the actor runs.
  ray::RuntimeEnv env;
  env.Set("env_vars", std::map<std::string, std::string>{{"LUMEN_CONFORMANCE_ACTOR", "1"}});
  auto actor = ray::Actor(Counter::FactoryCreate).SetRuntimeEnv(env).Remote(4);
  CHECK(*ray::Get(actor.Task(&Counter::Get).Remote()) == 4);
  // env_vars with values that are not strings: RayRuntimeEnvException.
  ray::RuntimeEnv bad;
  bad.Set("env_vars", json{{"LUMEN_CONFORMANCE_ACTOR", true}});
  CHECK_THROWS_AS(ray::Actor(Counter::FactoryCreate).SetRuntimeEnv(bad).Remote(0), RayRuntimeEnvException);
}

TEST_CASE("ray::ActorHandle<T>::Task(&T::method).Remote(args...)") {
  RayRuntime ray_runtime;
  auto counter = ray::Actor(Counter::FactoryCreate).Remote(0);
  // Arguments by value or as refs (resolved to their values); const T& parameters.
  CHECK(*ray::Get(counter.Task(&Counter::Add).Remote(1)) == 1);
  CHECK(*ray::Get(counter.Task(&Counter::Add).Remote(ray::Put(10))) == 11);
  CHECK(*ray::Get(counter.Task(&Counter::Add).Remote(ray::Task(Plus1).Remote(1))) == 13);
  CHECK(*ray::Get(counter.Task(&Counter::AddLength).Remote(std::string("abc"))) == 16);
  // An ObjectRef argument for a parameter declared ObjectRef<T>: std::invalid_argument; refs
  // inside a std::vector reach the method as refs.
  CHECK_THROWS_AS(counter.Task(&Counter::AddFromRef).Remote(ray::Put(1)), std::invalid_argument);
  std::vector<ray::ObjectRef<int>> no_refs;
  CHECK(*ray::Get(counter.Task(&Counter::AddFromRefs).Remote(no_refs)) == 16);
  // A handle passed to a task reaches the same actor.
  CHECK(*ray::Get(ray::Task(AddThrough).Remote(counter, 4)) == 20);
  CHECK(*ray::Get(counter.Task(&Counter::AddFromRefs).Remote(std::vector<ray::ObjectRef<int>>{ray::Put(-4)})) == 16);
  // Methods of a base class of the actor's class.
  auto derived = ray::Actor(Derived::FactoryCreate).Remote();
  CHECK(*ray::Get(derived.Task(&Base::Hello).Remote()) == 42);

  // A method that throws: RayTaskException naming it; the actor lives on.
  std::string why = message_of<RayTaskException>([&] { ray::Get(counter.Task(&Counter::Fail).Remote()); });
  CHECK(contains(why, "Counter::Fail"));
  CHECK(contains(why, "Fail was called"));
  CHECK(*ray::Get(counter.Task(&Counter::Get).Remote()) == 16);

  // An unregistered method, or a default-constructed handle: RayException.
  CHECK(message_of([&] { counter.Task(&Counter::NotRegistered); }) == kNotFound);
  CHECK_THROWS_AS(ray::ActorHandle<Counter>().Task(&Counter::Get).Remote(), RayException);
}

TEST_CASE("ray::ActorHandle<T>::Task(&T::method).SetName(name), SetResources(resources), SetResource(name, value)") {
  RayRuntime ray_runtime;
  auto counter = ray::Actor(Counter::FactoryCreate).Remote(0);
  // Options set before Remote: the call runs.
  CHECK(*ray::Get(counter.Task(&Counter::Add).SetName("add_one").Remote(1)) == 1);
  CHECK(*ray::Get(counter.Task(&Counter::Add).SetResources({{"CPU", 1}}).Remote(1)) == 2);
  CHECK(*ray::Get(counter.Task(&Counter::Add).SetResource("CPU", 0.5).Remote(1)) == 3);
  CHECK(*ray::Get(counter.Task(&Counter::Add).SetName("all").SetResources({{"CPU", 1}}).SetResource("memory", kMiB).Remote(1)) ==
        4);
  // Values Ray refuses: RayException at Remote.
  CHECK_THROWS_AS(counter.Task(&Counter::Add).SetResource("CPU", 1.5).Remote(1), RayException);
  CHECK_THROWS_AS(counter.Task(&Counter::Add).SetResources({{"CPU", 0}}).Remote(1), RayException);
  CHECK_THROWS_AS(counter.Task(&Counter::Add).SetResource("", 1).Remote(1), RayException);
  CHECK(*ray::Get(counter.Task(&Counter::Get).Remote()) == 4);
}

TEST_CASE("ray::ActorHandle<T>::ID()") {
  RayRuntime ray_runtime;
  auto a = ray::Actor(Counter::FactoryCreate).SetName("identified").Remote(0);
  auto b = ray::Actor(Counter::FactoryCreate).Remote(0);
  // A reference to the handle's own id; unique among actors, the same for every handle.
  CHECK(std::is_same_v<decltype(a.ID()), const std::string&>);
  const std::string& id = a.ID();
  CHECK(&id == &a.ID());
  CHECK_FALSE(id.empty());
  CHECK(id != b.ID());
  ray::ActorHandle<Counter> copy = a;
  CHECK(copy.ID() == id);
  auto found = ray::GetActor<Counter>("identified");
  REQUIRE(found.has_value());
  CHECK(found->ID() == id);
  CHECK(ray::ActorHandle<Counter>().ID().empty());
}

TEST_CASE("ray::ActorHandle<T>(id) and ray::ActorHandle<T>::FromBytes(id)") {
  RayRuntime ray_runtime;
  // Both reach the actor whose ID() they were given.
  auto original = ray::Actor(Counter::FactoryCreate).Remote(1);
  ray::ActorHandle<Counter> by_id(original.ID());
  ray::ActorHandle<Counter> from_bytes = ray::ActorHandle<Counter>::FromBytes(original.ID());
  CHECK(by_id.ID() == original.ID());
  CHECK(from_bytes.ID() == original.ID());
  CHECK(*ray::Get(by_id.Task(&Counter::Add).Remote(10)) == 11);
  CHECK(*ray::Get(from_bytes.Task(&Counter::Add).Remote(100)) == 111);
  CHECK(*ray::Get(original.Task(&Counter::Get).Remote()) == 111);

  // A malformed id, or the id of an actor of another class: RayException.
  CHECK_THROWS_AS(ray::ActorHandle<Counter>(std::string("not an actor id")), RayException);
  auto box = ray::Actor(Box::FactoryCreate).Remote(1);
  CHECK_THROWS_AS(ray::ActorHandle<Counter>(box.ID()), RayException);

  // The id of an actor that has ended: calls through the handle throw RayActorException.
  auto ended = ray::Actor(Counter::FactoryCreate).Remote(1);
  std::string ended_id = ended.ID();
  ended.Kill();
  ray::ActorHandle<Counter> late(ended_id);
  CHECK_THROWS_AS(ray::Get(late.Task(&Counter::Get).Remote()), RayActorException);
  CHECK_THROWS_AS(ray::Get(ray::ActorHandle<Counter>::FromBytes(ended_id).Task(&Counter::Get).Remote()), RayActorException);
}

TEST_CASE("ray::ActorHandle<T>::Kill()") {
  RayRuntime ray_runtime;
  // Kill ends the actor for every handle, without restart even with restarts left.
  auto counter = ray::Actor(Counter::FactoryCreate).SetMaxRestarts(2).Remote(1);
  ray::ActorHandle<Counter> copy = counter;
  CHECK(*ray::Get(counter.Task(&Counter::Get).Remote()) == 1);
  counter.Kill();
  CHECK_THROWS_AS(ray::Get(counter.Task(&Counter::Get).Remote()), RayActorException);
  CHECK_THROWS_AS(ray::Get(copy.Task(&Counter::Get).Remote()), RayActorException);
  // Killing it again does nothing.
  CHECK_NOTHROW(counter.Kill());
  // A named actor's name is released.
  auto named = ray::Actor(Counter::FactoryCreate).SetName("to_kill").Remote(0);
  named.Kill();
  CHECK_FALSE(ray::GetActor<Counter>("to_kill").has_value());
  // A default-constructed handle: RayException.
  CHECK_THROWS_AS(ray::ActorHandle<Counter>().Kill(), RayException);
}

TEST_CASE("ray::ActorHandle<T>::Kill(bool no_restart)") {
  RayRuntime ray_runtime;
  // Kill(false) with restarts left rebuilds the actor; Kill(true) ends it for good.
  auto counter = ray::Actor(Counter::FactoryCreate).SetMaxRestarts(1).Remote(3);
  CHECK(*ray::Get(counter.Task(&Counter::Add).Remote(1)) == 4);
  counter.Kill(false);
  CHECK(*ray::Get(counter.Task(&Counter::Get).Remote()) == 3);
  CHECK(*ray::Get(counter.Task(&Counter::Restarted).Remote()));
  auto other = ray::Actor(Counter::FactoryCreate).SetMaxRestarts(5).Remote(0);
  other.Kill(true);
  CHECK_THROWS_AS(ray::Get(other.Task(&Counter::Get).Remote()), RayActorException);
}

TEST_CASE("ray::ActorHandle<T>::IsActorHandle()") {
  RayRuntime ray_runtime;
  // Ray tells handles from other arguments by it.
  CHECK(ray::ActorHandle<Counter>::IsActorHandle());
  auto counter = ray::Actor(Counter::FactoryCreate).Remote(0);
  CHECK(counter.IsActorHandle());
}

TEST_CASE("ray::GetActor<T>(actor_name)") {
  RayRuntime ray_runtime;
  // The live actor of that name in the job's namespace, sharing its state.
  auto named = ray::Actor(Counter::FactoryCreate).SetName("lookup").Remote(7);
  boost::optional<ray::ActorHandle<Counter>> found = ray::GetActor<Counter>("lookup");
  REQUIRE(found.has_value());
  CHECK(found->ID() == named.ID());
  CHECK(*ray::Get(found->Task(&Counter::Add).Remote(1)) == 8);
  CHECK(*ray::Get(named.Task(&Counter::Get).Remote()) == 8);
  // None for a missing or empty name, or an actor that was killed.
  CHECK_FALSE(ray::GetActor<Counter>("nobody").has_value());
  CHECK_FALSE(ray::GetActor<Counter>("").has_value());
  named.Kill();
  CHECK_FALSE(ray::GetActor<Counter>("lookup").has_value());
}

TEST_CASE("ray::GetActor<T>(actor_name, ray_namespace)") {
  ray::RayConfig config;
  config.ray_namespace = "home";
  RayRuntime ray_runtime(config);
  // An actor named in another namespace is found there, not in the job's.
  auto away = ray::Actor(Counter::FactoryCreate).SetName("traveller", "abroad").Remote(1);
  auto found = ray::GetActor<Counter>("traveller", "abroad");
  REQUIRE(found.has_value());
  CHECK(found->ID() == away.ID());
  CHECK_FALSE(ray::GetActor<Counter>("traveller").has_value());
  CHECK_FALSE(ray::GetActor<Counter>("traveller", "home").has_value());
  // The job's namespace, named explicitly.
  auto local = ray::Actor(Counter::FactoryCreate).SetName("resident").Remote(2);
  auto resident = ray::GetActor<Counter>("resident", "home");
  REQUIRE(resident.has_value());
  CHECK(resident->ID() == local.ID());
  // None for a missing name or namespace.
  CHECK_FALSE(ray::GetActor<Counter>("traveller", "nowhere").has_value());
}

TEST_CASE("ray::ExitActor()") {
  RayRuntime ray_runtime;
  // Inside a method it ends the actor: that call and later ones throw RayActorException.
  auto exiting = ray::Actor(Counter::FactoryCreate).Remote(0);
  CHECK_THROWS_AS(ray::Get(exiting.Task(&Counter::Exit).Remote()), RayActorException);
  CHECK_THROWS_AS(ray::Get(exiting.Task(&Counter::Get).Remote()), RayActorException);
  // An intentional exit is not restarted, whatever SetMaxRestarts allows: Ray restarts only
  // actors that die unexpectedly (or Kill(false)).
  auto with_restarts = ray::Actor(Counter::FactoryCreate).SetMaxRestarts(1).Remote(0);
  CHECK_THROWS_AS(ray::Get(with_restarts.Task(&Counter::Exit).Remote()), RayActorException);
  CHECK_THROWS_AS(ray::Get(with_restarts.Task(&Counter::Get).Remote()), RayActorException);
  // Outside an actor's method it throws std::logic_error, as Ray does; inside a plain task,
  // that task fails.
  CHECK_THROWS_AS(ray::ExitActor(), std::logic_error);
  CHECK_THROWS_AS(ray::Get(ray::Task(ExitOutsideActor).Remote()), RayTaskException);
}

TEST_CASE("ray::WasCurrentActorRestarted()") {
  RayRuntime ray_runtime;
  // False in the first instance of an actor, true in one rebuilt after Kill(false).
  auto counter = ray::Actor(Counter::FactoryCreate).SetMaxRestarts(1).Remote(0);
  CHECK_FALSE(*ray::Get(counter.Task(&Counter::Restarted).Remote()));
  counter.Kill(false);
  CHECK(*ray::Get(counter.Task(&Counter::Restarted).Remote()));
}

// ---- placement groups ---------------------------------------------------------------------

TEST_CASE("ray::CreatePlacementGroup(create_options)") {
  RayRuntime ray_runtime;
  // A group that fits is created.
  ray::PlacementGroupCreationOptions options{"first", {{{"CPU", 0.5}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup group = ray::CreatePlacementGroup(options);
  CHECK_FALSE(group.Empty());
  CHECK(group.Wait(10));
  // A second group with the name of a live one: RayException. Unnamed groups never clash.
  CHECK_THROWS_AS(ray::CreatePlacementGroup(options), RayException);
  ray::PlacementGroupCreationOptions unnamed{"", {{{"CPU", 0.1}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup unnamed_a = ray::CreatePlacementGroup(unnamed);
  ray::PlacementGroup unnamed_b = ray::CreatePlacementGroup(unnamed);
  CHECK(unnamed_a.GetID() != unnamed_b.GetID());
  // Once removed, its name may be used again.
  ray::RemovePlacementGroup(group.GetID());
  ray::PlacementGroup again = ray::CreatePlacementGroup(options);
  CHECK(again.Wait(10));
  CHECK(again.GetID() != group.GetID());
  ray::RemovePlacementGroup(again.GetID());

  // Bundles may hold memory; tasks placed in them draw from it.
  ray::PlacementGroupCreationOptions with_memory{
      "with_memory", {{{"CPU", 0.5}, {"memory", 200 * kMiB}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup memory_group = ray::CreatePlacementGroup(with_memory);
  REQUIRE(memory_group.Wait(10));
  CHECK(*ray::Get(
            ray::Task(Return1).SetPlacementGroup(memory_group, 0).SetResources({{"CPU", 0.5}, {"memory", 100 * kMiB}}).Remote()) ==
        1);
  ray::ObjectRef<int> too_much;
  logged_by([&] { too_much = ray::Task(Return1).SetPlacementGroup(memory_group, 0).SetResource("memory", 300 * kMiB).Remote(); });
  CHECK_THROWS_AS(too_much.Get(20), RayTimeoutException);

  // STRICT_SPREAD of two bundles needs two nodes: pending. So is a group bigger than the node.
  ray::PlacementGroupCreationOptions spread{"spread", {{{"CPU", 1}}, {{"CPU", 1}}}, ray::PlacementStrategy::STRICT_SPREAD};
  ray::PlacementGroup spread_group = ray::CreatePlacementGroup(spread);
  CHECK_FALSE(spread_group.Wait(0));
  CHECK(spread_group.GetState() == ray::PlacementGroupState::PENDING);
  ray::PlacementGroupCreationOptions huge{"huge", {{{"CPU", 4 * node_cpus()}}}, ray::PlacementStrategy::PACK};
  CHECK_FALSE(ray::CreatePlacementGroup(huge).Wait(0));

  // No bundles, an empty bundle, a value Ray refuses: RayException.
  ray::PlacementGroupCreationOptions no_bundles{"no_bundles", {}, ray::PlacementStrategy::PACK};
  CHECK_THROWS_AS(ray::CreatePlacementGroup(no_bundles), RayException);
  ray::PlacementGroupCreationOptions empty_bundle{"empty_bundle", {{}}, ray::PlacementStrategy::PACK};
  CHECK_THROWS_AS(ray::CreatePlacementGroup(empty_bundle), RayException);
  ray::PlacementGroupCreationOptions zero{"zero", {{{"CPU", 0}}}, ray::PlacementStrategy::PACK};
  CHECK_THROWS_AS(ray::CreatePlacementGroup(zero), RayException);
}

TEST_CASE("ray::PlacementGroup::Wait(timeout_seconds)") {
  RayRuntime ray_runtime;
  // True once the group is created.
  ray::PlacementGroupCreationOptions everything{"everything", {{{"CPU", node_cpus()}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup all = ray::CreatePlacementGroup(everything);
  CHECK(all.Wait(10));
  // False while it is pending: the node's CPUs are all reserved.
  ray::PlacementGroupCreationOptions one{"later", {{{"CPU", 1}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup later = ray::CreatePlacementGroup(one);
  CHECK_FALSE(later.Wait(0));
  // Created once the group holding the CPUs is removed.
  ray::RemovePlacementGroup(all.GetID());
  CHECK(later.Wait(10));
  // False for a removed group.
  CHECK_FALSE(all.Wait(0));
}

TEST_CASE("ray::PlacementGroup::GetState()") {
  RayRuntime ray_runtime;
  // CREATED, PENDING, then REMOVED after RemovePlacementGroup.
  ray::PlacementGroupCreationOptions fits{"fits", {{{"CPU", 1}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup created = ray::CreatePlacementGroup(fits);
  REQUIRE(created.Wait(10));
  CHECK(created.GetState() == ray::PlacementGroupState::CREATED);
  ray::PlacementGroupCreationOptions spread{"never", {{{"CPU", 1}}, {{"CPU", 1}}}, ray::PlacementStrategy::STRICT_SPREAD};
  ray::PlacementGroup pending = ray::CreatePlacementGroup(spread);
  CHECK(pending.GetState() == ray::PlacementGroupState::PENDING);
  ray::RemovePlacementGroup(created.GetID());
  ray::RemovePlacementGroup(pending.GetID());
  CHECK(created.GetState() == ray::PlacementGroupState::REMOVED);
  CHECK(pending.GetState() == ray::PlacementGroupState::REMOVED);
}

TEST_CASE("ray::PlacementGroup::GetID()") {
  RayRuntime ray_runtime;
  // Non-empty, stable, different for each group, and what GetPlacementGroupById takes.
  ray::PlacementGroupCreationOptions a_options{"a", {{{"CPU", 0.5}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroupCreationOptions b_options{"b", {{{"CPU", 0.5}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup a = ray::CreatePlacementGroup(a_options);
  ray::PlacementGroup b = ray::CreatePlacementGroup(b_options);
  CHECK_FALSE(a.GetID().empty());
  CHECK(a.GetID() == a.GetID());
  CHECK(a.GetID() != b.GetID());
  CHECK(ray::GetPlacementGroupById(a.GetID()).GetName() == "a");
}

TEST_CASE("ray::PlacementGroup::GetName()") {
  RayRuntime ray_runtime;
  // The name given at creation; empty for an unnamed group.
  ray::PlacementGroupCreationOptions named{"named_group", {{{"CPU", 0.5}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroupCreationOptions unnamed{"", {{{"CPU", 0.5}}}, ray::PlacementStrategy::PACK};
  CHECK(ray::CreatePlacementGroup(named).GetName() == "named_group");
  CHECK(ray::CreatePlacementGroup(unnamed).GetName().empty());
}

TEST_CASE("ray::PlacementGroup::GetBundles()") {
  RayRuntime ray_runtime;
  // The bundles given at creation, in order.
  std::vector<std::unordered_map<std::string, double>> bundles{{{"CPU", 0.5}}, {{"CPU", 0.25}, {"memory", 10 * kMiB}}};
  ray::PlacementGroupCreationOptions options{"bundled", bundles, ray::PlacementStrategy::PACK};
  ray::PlacementGroup group = ray::CreatePlacementGroup(options);
  CHECK(group.GetBundles() == bundles);
}

TEST_CASE("ray::PlacementGroup::GetStrategy()") {
  RayRuntime ray_runtime;
  // The strategy given at creation.
  for (auto strategy : {ray::PlacementStrategy::PACK, ray::PlacementStrategy::SPREAD, ray::PlacementStrategy::STRICT_PACK,
                        ray::PlacementStrategy::STRICT_SPREAD}) {
    ray::PlacementGroupCreationOptions options{"", {{{"CPU", 0.1}}}, strategy};
    ray::PlacementGroup group = ray::CreatePlacementGroup(options);
    CHECK(group.GetStrategy() == strategy);
    ray::RemovePlacementGroup(group.GetID());
  }
}

TEST_CASE("ray::RemovePlacementGroup(placement_group_id)") {
  RayRuntime ray_runtime;
  ray::PlacementGroupCreationOptions everything{"to_remove", {{{"CPU", node_cpus()}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup group = ray::CreatePlacementGroup(everything);
  REQUIRE(group.Wait(10));
  ray::PlacementGroupCreationOptions one{"waiting", {{{"CPU", 1}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup waiting = ray::CreatePlacementGroup(one);
  CHECK_FALSE(waiting.Wait(0));
  // The group is REMOVED, its name no longer found, its reservation free for others, and
  // tasks can no longer be placed in it.
  ray::RemovePlacementGroup(group.GetID());
  CHECK(group.GetState() == ray::PlacementGroupState::REMOVED);
  CHECK(ray::GetPlacementGroup("to_remove").Empty());
  CHECK(waiting.Wait(10));
  CHECK_THROWS_AS(ray::Task(Plus1).SetPlacementGroup(group, 0).Remote(1), RayException);
  // A pending group may be removed too.
  ray::PlacementGroupCreationOptions spread{"never", {{{"CPU", 1}}, {{"CPU", 1}}}, ray::PlacementStrategy::STRICT_SPREAD};
  ray::PlacementGroup pending = ray::CreatePlacementGroup(spread);
  ray::RemovePlacementGroup(pending.GetID());
  CHECK(pending.GetState() == ray::PlacementGroupState::REMOVED);
}

TEST_CASE("ray::GetPlacementGroup(name)") {
  RayRuntime ray_runtime;
  // The live group of that name; an empty group for a missing or removed one.
  ray::PlacementGroupCreationOptions options{"by_name", {{{"CPU", 0.5}}}, ray::PlacementStrategy::SPREAD};
  ray::PlacementGroup group = ray::CreatePlacementGroup(options);
  ray::PlacementGroup found = ray::GetPlacementGroup("by_name");
  CHECK_FALSE(found.Empty());
  CHECK(found.GetID() == group.GetID());
  CHECK(found.GetStrategy() == ray::PlacementStrategy::SPREAD);
  CHECK(ray::GetPlacementGroup("missing").Empty());
  ray::RemovePlacementGroup(group.GetID());
  CHECK(ray::GetPlacementGroup("by_name").Empty());
}

TEST_CASE("ray::GetPlacementGroupById(id)") {
  RayRuntime ray_runtime;
  // The group with that id; an empty group for an unknown id.
  ray::PlacementGroupCreationOptions options{"by_id", {{{"CPU", 0.5}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup group = ray::CreatePlacementGroup(options);
  ray::PlacementGroup found = ray::GetPlacementGroupById(group.GetID());
  CHECK_FALSE(found.Empty());
  CHECK(found.GetID() == group.GetID());
  CHECK(found.GetName() == "by_id");
  CHECK(found.GetBundles() == options.bundles);
  CHECK(ray::GetPlacementGroupById("no such id").Empty());
}

TEST_CASE("ray::GetAllPlacementGroups()") {
  RayRuntime ray_runtime;
  // Every group of the job, created or pending.
  CHECK(ray::GetAllPlacementGroups().empty());
  ray::PlacementGroupCreationOptions fits{"listed", {{{"CPU", 0.5}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroupCreationOptions spread{"listed_pending", {{{"CPU", 1}}, {{"CPU", 1}}}, ray::PlacementStrategy::STRICT_SPREAD};
  ray::PlacementGroup created = ray::CreatePlacementGroup(fits);
  ray::PlacementGroup pending = ray::CreatePlacementGroup(spread);
  std::vector<ray::PlacementGroup> all = ray::GetAllPlacementGroups();
  REQUIRE(all.size() == 2);
  std::vector<std::string> ids{all[0].GetID(), all[1].GetID()};
  CHECK(std::count(ids.begin(), ids.end(), created.GetID()) == 1);
  CHECK(std::count(ids.begin(), ids.end(), pending.GetID()) == 1);
}

// ---- runtime environments -----------------------------------------------------------------

TEST_CASE("ray::RuntimeEnv::Set(name, value) and Get<T>(name)") {
  RayRuntime ray_runtime;
  // Fields of any type JSON converts, read back typed.
  ray::RuntimeEnv env;
  std::map<std::string, std::string> vars{{"MODE", "fast"}, {"LEVEL", "3"}};
  env.Set("env_vars", vars);
  env.Set("config", nlohmann::json{{"setup_timeout_seconds", 60}});
  env.Set("pip", std::vector<std::string>{"requests", "numpy"});
  env.Set("working_dir", std::string("/tmp/work"));
  CHECK((env.Get<std::map<std::string, std::string>>("env_vars") == vars));
  CHECK(env.Get<nlohmann::json>("config") == nlohmann::json{{"setup_timeout_seconds", 60}});
  CHECK(env.Get<nlohmann::json>("config")["setup_timeout_seconds"].get<int>() == 60);
  CHECK((env.Get<std::vector<std::string>>("pip") == std::vector<std::string>{"requests", "numpy"}));
  CHECK(env.Get<std::string>("working_dir") == "/tmp/work");
  // Setting a field again replaces it.
  env.Set("working_dir", std::string("/tmp/other"));
  CHECK(env.Get<std::string>("working_dir") == "/tmp/other");
  // A missing field, or one of another type: RayRuntimeEnvException.
  CHECK_THROWS_AS(env.Get<std::string>("conda"), RayRuntimeEnvException);
  CHECK_THROWS_AS(env.Get<int>("env_vars"), RayRuntimeEnvException);
  CHECK_THROWS_AS((env.Get<std::map<std::string, std::string>>("pip")), RayRuntimeEnvException);
}

TEST_CASE("ray::RuntimeEnv::SetJsonStr(name, json_str) and GetJsonStr(name)") {
  RayRuntime ray_runtime;
  // A field from JSON text, read back typed or as JSON text.
  ray::RuntimeEnv env;
  env.SetJsonStr("env_vars", R"({"MODE": "fast"})");
  CHECK((env.Get<std::map<std::string, std::string>>("env_vars") == std::map<std::string, std::string>{{"MODE", "fast"}}));
  CHECK(json::parse(env.GetJsonStr("env_vars")) == json{{"MODE", "fast"}});
  env.Set("pip", std::vector<std::string>{"requests"});
  CHECK(json::parse(env.GetJsonStr("pip")) == json::array({"requests"}));
  // Text that is not JSON, or a missing field: RayRuntimeEnvException.
  CHECK_THROWS_AS(env.SetJsonStr("broken", "{not json"), RayRuntimeEnvException);
  CHECK_THROWS_AS(env.GetJsonStr("missing"), RayRuntimeEnvException);
}

TEST_CASE("ray::RuntimeEnv::Contains(name), Remove(name) and Empty()") {
  RayRuntime ray_runtime;
  ray::RuntimeEnv env;
  // Empty until a field is set; Remove says whether the field was there.
  CHECK(env.Empty());
  CHECK_FALSE(env.Contains("pip"));
  env.Set("pip", std::vector<std::string>{"requests"});
  CHECK_FALSE(env.Empty());
  CHECK(env.Contains("pip"));
  CHECK(env.Remove("pip"));
  CHECK_FALSE(env.Contains("pip"));
  CHECK_FALSE(env.Remove("pip"));
  CHECK(env.Empty());
}

TEST_CASE("ray::RuntimeEnv::Serialize() and RuntimeEnv::Deserialize(serialized_runtime_env)") {
  RayRuntime ray_runtime;
  // A round trip keeps every field.
  ray::RuntimeEnv env;
  std::map<std::string, std::string> vars{{"MODE", "fast"}};
  env.Set("env_vars", vars);
  env.Set("config", json{{"setup_timeout_seconds", 60}});
  std::string serialized = env.Serialize();
  ray::RuntimeEnv back = ray::RuntimeEnv::Deserialize(serialized);
  CHECK((back.Get<std::map<std::string, std::string>>("env_vars") == vars));
  CHECK(back.Get<json>("config") == json{{"setup_timeout_seconds", 60}});
  CHECK(back.Serialize() == serialized);
  CHECK(ray::RuntimeEnv::Deserialize(ray::RuntimeEnv().Serialize()).Empty());
  CHECK(json::parse(env.SerializeToRuntimeEnvInfo())["serialized_runtime_env"] == serialized);
  // Text that is not a serialized environment: RayRuntimeEnvException.
  CHECK_THROWS_AS(ray::RuntimeEnv::Deserialize("not json"), RayRuntimeEnvException);
}

// ---- logging ------------------------------------------------------------------------------

TEST_CASE("RAYLOG(level)") {
  RayRuntime ray_runtime;
  const bool default_level = std::getenv("RAY_BACKEND_LOG_LEVEL") == nullptr;
  auto one_line = [](const std::string& text) {
    return !text.empty() && std::count(text.begin(), text.end(), '\n') == 1 && text.back() == '\n';
  };
  // INFO, WARNING and ERROR write one line to standard error holding the message.
  if (default_level) {
    std::string info = logged_by([] { RAYLOG(INFO) << "conformance info " << 1; });
    CHECK(contains(info, "conformance info 1"));
    CHECK(one_line(info));
  }
  std::string warning = logged_by([] { RAYLOG(WARNING) << "conformance warning " << 2.5; });
  CHECK(contains(warning, "conformance warning 2.5"));
  CHECK(one_line(warning));
  std::string error = logged_by([] { RAYLOG(ERROR) << "conformance error " << std::string("text"); });
  CHECK(contains(error, "conformance error text"));
  CHECK(one_line(error));

  // DEBUG is not written by default, and its stream is not evaluated.
  if (default_level) {
    int evaluated = 0;
    std::string debug = logged_by([&] { RAYLOG(DEBUG) << "conformance debug " << ++evaluated; });
    CHECK(debug.empty());
    CHECK(evaluated == 0);
  }

  // A RAYLOG statement leaves an `else` after it to its own `if`.
  bool flag = false;
  std::string branch = logged_by([&] {
    if (flag)
      RAYLOG(WARNING) << "taken";
    else
      RAYLOG(WARNING) << "not taken";
  });
  CHECK(contains(branch, "not taken"));

  // Lines logged by tasks at once stay whole, one per statement.
  std::string many = logged_by([] {
    std::vector<ray::ObjectRef<int>> tasks;
    for (int i = 0; i < 8; ++i) tasks.push_back(ray::Task(LogLines).Remote(i));
    ray::Get(tasks);
  });
  CHECK(std::count(many.begin(), many.end(), '\n') == 160);
  std::size_t whole = 0;
  for (std::size_t start = 0, end; (end = many.find('\n', start)) != std::string::npos; start = end + 1) {
    std::string line = many.substr(start, end - start);
    if (contains(line, "task ") && line.size() >= 4 && line.compare(line.size() - 4, 4, " end") == 0 &&
        std::count(line.begin(), line.end(), '[') == 1)
      ++whole;
  }
  CHECK(whole == 160);
}

// ---- msgpack ------------------------------------------------------------------------------

TEST_CASE("msgpack: MSGPACK_DEFINE types through ray::Put, ray::Get, tasks and actors") {
  RayRuntime ray_runtime;
  // The values arrive intact everywhere a Ray program passes them.
  Point origin{3, 4.5, "home", {1, 2}};
  CHECK(*ray::Get(ray::Put(origin)) == origin);
  Point moved{4, 4.5, "home", {1, 2, 1}};
  CHECK(*ray::Get(ray::Task(MovePoint).Remote(origin, 1)) == moved);
  CHECK(*ray::Get(ray::Task(MovePoint).Remote(ray::Put(origin), 1)) == moved);
  auto ledger = ray::Actor(Ledger::FactoryCreate).Remote(origin);
  CHECK(*ray::Get(ledger.Task(&Ledger::Origin).Remote()) == origin);
  CHECK(*ray::Get(ledger.Task(&Ledger::Record).Remote(moved)) == moved);
  // What Ray would send is the same value too.
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, origin);
  msgpack::object_handle unpacked = msgpack::unpack(buffer.data(), buffer.size());
  CHECK(unpacked.get().as<Point>() == origin);
}

TEST_CASE("msgpack: a type with its own msgpack adaptor through ray::Put, ray::Get, tasks and actors") {
  RayRuntime ray_runtime;
  // The values arrive intact everywhere a Ray program passes them.
  Temperature warm{21.5};
  CHECK(*ray::Get(ray::Put(warm)) == warm);
  CHECK(*ray::Get(ray::Task(Warmer).Remote(warm, 1.0)) == Temperature{22.5});
  CHECK(*ray::Get(ray::Task(Warmer).Remote(ray::Put(warm), 0.5)) == Temperature{22.0});
  auto ledger = ray::Actor(Ledger::FactoryCreate).Remote(Point{});
  CHECK(*ray::Get(ledger.Task(&Ledger::Heat).Remote(warm)) == Temperature{43.0});
  // The adaptor itself round-trips.
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, warm);
  msgpack::object_handle unpacked = msgpack::unpack(buffer.data(), buffer.size());
  CHECK(unpacked.get().as<Temperature>() == warm);
}

TEST_CASE("msgpack: a MSGPACK_DEFINE struct holding a ray::ObjectRef and a ray::ActorHandle") {
  RayRuntime ray_runtime;
  auto till = ray::Actor(Counter::FactoryCreate).Remote(100);
  auto quantity = ray::Put(3);
  Order order{"apples", quantity, till};
  // After msgpack::pack and unpack, the ref and the handle still reach the object and the actor.
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, order);
  msgpack::object_handle unpacked = msgpack::unpack(buffer.data(), buffer.size());
  Order back = unpacked.get().as<Order>();
  CHECK(back.item == "apples");
  CHECK(back.quantity == quantity);
  CHECK(back.till.ID() == till.ID());
  CHECK(*ray::Get(back.quantity) == 3);
  CHECK(*ray::Get(back.till.Task(&Counter::Add).Remote(1)) == 101);
  // As a task's argument and through Put, they do too.
  CHECK(*ray::Get(ray::Task(PlaceOrder).Remote(back)) == 104);
  CHECK(*ray::Get(till.Task(&Counter::Get).Remote()) == 104);
  auto stored = ray::Put(order);
  CHECK(*ray::Get(ray::Task(PlaceOrder).Remote(stored)) == 107);
}

// ---- exceptions ---------------------------------------------------------------------------

TEST_CASE("ray::internal::RayException and the exceptions derived from it") {
  RayRuntime ray_runtime;
  // Every exception derives from RayException, a std::exception whose what() is msg_.
  CHECK(std::is_base_of_v<std::exception, RayException>);
  CHECK(std::is_base_of_v<RayException, RayActorException>);
  CHECK(std::is_base_of_v<RayException, RayTaskException>);
  CHECK(std::is_base_of_v<RayException, RayWorkerException>);
  CHECK(std::is_base_of_v<RayException, UnreconstructableException>);
  CHECK(std::is_base_of_v<RayException, RayFunctionNotFound>);
  CHECK(std::is_base_of_v<RayException, RayRuntimeEnvException>);
  CHECK(std::is_base_of_v<RayException, RayTimeoutException>);
  auto caught = [](auto thrown) {
    try {
      throw thrown;
    } catch (const RayException& e) {
      CHECK(e.msg_ == "the message");
      CHECK(std::string(e.what()) == "the message");
      return true;
    }
    return false;
  };
  CHECK(caught(RayException("the message")));
  CHECK(caught(RayActorException("the message")));
  CHECK(caught(RayTaskException("the message")));
  CHECK(caught(RayWorkerException("the message")));
  CHECK(caught(UnreconstructableException("the message")));
  CHECK(caught(RayFunctionNotFound("the message")));
  CHECK(caught(RayRuntimeEnvException("the message")));
  CHECK(caught(RayTimeoutException("the message")));
  RayException changed("before");
  changed.msg_ = "after";
  CHECK(std::string(changed.what()) == "after");

  // What the API throws is caught as RayException, with its text in msg_ and what().
  auto thrown_by = [](auto call) {
    try {
      call();
    } catch (const RayException& e) {
      CHECK_FALSE(e.msg_.empty());
      CHECK(std::string(e.what()) == e.msg_);
      return true;
    }
    return false;
  };
  CHECK(thrown_by([] { ray::Get(ray::Task(Divide).Remote(1, 0)); }));
  CHECK(thrown_by([] {
    auto counter = ray::Actor(Counter::FactoryCreate).Remote(0);
    counter.Kill();
    ray::Get(counter.Task(&Counter::Get).Remote());
  }));
  CHECK(thrown_by([] { ray::RuntimeEnv().Get<int>("missing"); }));
  CHECK(thrown_by([] { ray::Task(NotRegistered); }));
  ArmedGate gate;
  CHECK(thrown_by([] { ray::Get(ray::Task(Blocked).Remote(), 0); }));
}
