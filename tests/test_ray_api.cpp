// Ray's C++ API (lumen/ray.h): the examples of Ray's C++ documentation, and each call's
// behaviour as Ray documents it, run in one process.
#include <doctest/doctest.h>
#include <ray/api.h>

#include <ray/api/function_manager.h>
#include <ray/api/logging.h>
#include <ray/api/serializer.h>

#include "ray_checks.h"

#include <atomic>
#include <cstdio>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

// Each test starts the runtime and stops it, as a Ray program does.
struct RayRuntime {
  RayRuntime() { ray::Init(); }
  ~RayRuntime() { ray::Shutdown(); }
};

int Return1() { return 1; }
int Plus1(int x) { return x + 1; }
int Plus(int x, int y) { return x + y; }
int Overload(int x) { return x * 10; }
int Overload(int x, int y) { return x * 100 + y; }
std::string Append(std::string& s) {
  s += "!";  // a parameter the task may change: its own copy
  return s;
}
std::size_t Length(const std::vector<int>& v) { return v.size(); }
int SumOfRef(ray::ObjectRef<int> ref) { return *ray::Get(ref) + 1000; }
int SumOfRefs(std::vector<ray::ObjectRef<int>> refs) {
  int sum = 0;
  for (const auto& r : refs) sum += *ray::Get(r);
  return sum;
}
void Nothing() {}
int Throws(int x) {
  if (x > 0) throw std::out_of_range("x is " + std::to_string(x));
  return x;
}
int NotRegistered() { return 0; }
int Slow(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
int Held(int) { return 7; }

void CallShutdown() { ray::Shutdown(); }

// Set by SlowThenChild once the task it submits has run.
std::atomic<int> g_child_result{0};
void SlowThenChild(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  g_child_result = *ray::Get(ray::Task(Plus1).Remote(ms));
}

// A task blocks its thread on a std::future, as Ray code does without telling anyone.
std::shared_ptr<std::promise<int>> g_promise;
std::shared_future<int> g_future;
int WaitForPromise() { return g_future.get(); }
int FulfilPromise(int v) {
  g_promise->set_value(v);
  return v;
}

std::atomic<int> g_inside{0};
std::atomic<int> g_most{0};
int CountOverlap() {
  int now = ++g_inside;
  int seen = g_most.load();
  while (now > seen && !g_most.compare_exchange_weak(seen, now)) {
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  --g_inside;
  return 0;
}

class Counter {
 public:
  explicit Counter(int init) : count_(init) {}
  static Counter* FactoryCreate(int init) { return new Counter(init); }
  static Counter* FactoryCreateFailing(int) { throw std::runtime_error("no counter today"); }
  static Counter* FactoryFromPointer(std::unique_ptr<int> init) { return new Counter(*init); }
  int Add(int x) {
    count_ += x;
    return count_;
  }
  int Get() const { return count_; }
  int Unregistered() { return -1; }
  int AddLength(const std::string& s) { return count_ += static_cast<int>(s.size()); }
  bool Restarted() { return ray::WasCurrentActorRestarted(); }
  void Exit() { ray::ExitActor(); }
  int Fail() { throw std::invalid_argument("Fail was called"); }
  int Block(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
  }
  void CallShutdown() { ray::Shutdown(); }

 private:
  int count_;
};

class Base {
 public:
  virtual ~Base() = default;
  int Hello() { return 42; }
};
class Derived : public Base {
 public:
  static Derived* FactoryCreate() { return new Derived(); }
};

class Concurrent {
 public:
  static Concurrent* FactoryCreate() { return new Concurrent(); }
  int Overlap() { return CountOverlap(); }
};

RAY_REMOTE(Return1, Plus1, Plus, RAY_FUNC(Overload, int), RAY_FUNC(Overload, int, int), Append, Length, SumOfRef, SumOfRefs,
           Nothing, Throws, Slow, Held, WaitForPromise, FulfilPromise, CountOverlap, CallShutdown, SlowThenChild);
RAY_REMOTE(Counter::FactoryCreate, Counter::FactoryCreateFailing, Counter::FactoryFromPointer, &Counter::Add,
           &Counter::Get, &Counter::AddLength, &Counter::Restarted, &Counter::Exit, &Counter::Fail, &Counter::Block,
           &Counter::CallShutdown);
RAY_REMOTE(Derived::FactoryCreate, &Base::Hello, Concurrent::FactoryCreate, &Concurrent::Overlap);


const std::string kNotInitialized = "Ray has not been initialized: call ray::Init() first";

// Every call of the API that needs a runtime, made when Ray has none: each must refuse with
// kNotInitialized rather than run on a runtime ray::Init did not start.
void check_every_call_refused() {
  auto refused = [](auto&& call) { CHECK(message_of(call) == kNotInitialized); };
  refused([] { ray::Task(Plus1).Remote(1); });
  refused([] { ray::Task(Return1).SetResource("CPU", 1).Remote(); });
  refused([] { ray::Put(1); });
  refused([] { ray::Get(ray::ObjectRef<int>()); });
  refused([] { ray::Get(ray::ObjectRef<int>(), 10); });
  refused([] { ray::Get(ray::ObjectRef<void>()); });
  refused([] { ray::Get(std::vector<ray::ObjectRef<int>>{}); });
  refused([] { ray::Get(std::vector<ray::ObjectRef<int>>{}, 10); });
  refused([] { ray::Wait(std::vector<ray::ObjectRef<int>>{ray::ObjectRef<int>()}, 1, 10); });
  refused([] { ray::Actor(Counter::FactoryCreate).Remote(1); });
  refused([] { ray::ActorHandle<Counter>().Task(&Counter::Get).Remote(); });
  refused([] { ray::ActorHandle<Counter>().Kill(); });
  refused([] { ray::GetActor<Counter>("someone"); });
  refused([] { ray::GetActor<Counter>("someone", "somewhere"); });
  refused([] { ray::GetNamespace(); });
  refused([] { ray::CreatePlacementGroup({"group", {{{"CPU", 1}}}, ray::PlacementStrategy::PACK}); });
  refused([] { ray::RemovePlacementGroup("0000000000000001"); });
  refused([] { ray::GetAllPlacementGroups(); });
  refused([] { ray::GetPlacementGroup("group"); });
  refused([] { ray::GetPlacementGroupById("0000000000000001"); });
}

}  // namespace

TEST_CASE("quick start: a task, an actor, put and get") {
  RayRuntime rt;
  CHECK(ray::IsInitialized());
  auto obj = ray::Put(100);
  CHECK(*ray::Get(obj) == 100);
  CHECK(*obj.Get() == 100);

  auto task_obj = ray::Task(Plus1).Remote(1);
  CHECK(*task_obj.Get() == 2);

  ray::ActorHandle<Counter> actor = ray::Actor(Counter::FactoryCreate).Remote(1);
  auto actor_obj = actor.Task(&Counter::Add).Remote(3);
  CHECK(*actor_obj.Get() == 4);
  auto actor_obj2 = actor.Task(&Counter::Add).Remote(3);
  CHECK(*actor_obj2.Get() == 7);
}

TEST_CASE("Init twice is a no-op; Shutdown then Init starts again") {
  ray::Init();
  std::string ns = ray::GetNamespace();
  ray::Init();
  CHECK(ray::GetNamespace() == ns);
  CHECK(*ray::Get(ray::Task(Return1).Remote()) == 1);
  ray::Shutdown();
  CHECK_FALSE(ray::IsInitialized());
  ray::Init();
  CHECK(*ray::Get(ray::Task(Return1).Remote()) == 1);
  ray::Shutdown();
}

TEST_CASE("a cluster address needs Ray") {
  ray::RayConfig config;
  config.address = "10.0.0.1:6379";
  try {
    ray::Init(config);
    FAIL("Init with a cluster address did not throw");
  } catch (const ray::internal::RayException& e) {
    CHECK(std::string(e.msg_).find("needs Ray itself") != std::string::npos);
  }
  CHECK_FALSE(ray::IsInitialized());

  ray::RayConfig local;
  local.local_mode = true;
  local.ray_namespace = "from-config";
  char program[] = "program";
  char flag[] = "--ray_namespace=from-flag";
  char* argv[] = {program, flag};
  ray::Init(local, 2, argv);
  CHECK(ray::GetNamespace() == "from-flag");
  ray::Shutdown();
}

TEST_CASE("tasks: arguments by value, ObjectRef arguments, overloads, references") {
  RayRuntime rt;
  auto one = ray::Task(Return1).Remote();
  auto two = ray::Task(Plus1).Remote(one);  // resolved to its value
  auto sum = ray::Task(Plus).Remote(two, 10);
  CHECK(*ray::Get(sum) == 12);

  CHECK(*ray::Get(ray::Task(RAY_FUNC(Overload, int)).Remote(3)) == 30);
  CHECK(*ray::Get(ray::Task(RAY_FUNC(Overload, int, int)).Remote(3, 4)) == 304);

  std::string s = "hi";
  CHECK(*ray::Get(ray::Task(Append).Remote(s)) == "hi!");
  CHECK(s == "hi");  // the caller's value is not the task's
  auto stored = ray::Put(std::string("ref"));
  CHECK(*ray::Get(ray::Task(Append).Remote(stored)) == "ref!");
  CHECK(*ray::Get(stored) == "ref");  // neither is the object's

  CHECK(*ray::Get(ray::Task(Length).Remote(std::vector<int>{1, 2, 3})) == 3);
  CHECK(*ray::Get(ray::Task(Length).Remote(ray::Put(std::vector<int>(5)))) == 5);

  // As on a Ray cluster, an ObjectRef argument for a parameter declared ObjectRef<T> is refused
  // at the call; refs inside a container reach the task as refs.
  CHECK_THROWS_AS(ray::Task(SumOfRef).Remote(ray::Put(1)), std::invalid_argument);
  CHECK(*ray::Get(ray::Task(SumOfRef).Remote(ray::Put(1).ID())) == 1001);  // a ref made from an id
  CHECK(*ray::Get(ray::Task(SumOfRefs).Remote(std::vector<ray::ObjectRef<int>>{ray::Put(1), ray::Put(2)})) == 3);

  ray::ObjectRef<void> done = ray::Task(Nothing).Remote();
  done.Get();
  ray::Get(done);
}

TEST_CASE("ObjectRef: copy, move, ID, equality, a copy per Get") {
  RayRuntime rt;
  auto a = ray::Put(5);
  auto b = a;
  CHECK(a == b);
  CHECK(a.ID() == b.ID());
  CHECK_FALSE(a.ID().empty());
  auto c = ray::Put(5);
  CHECK_FALSE(a == c);
  CHECK(a.ID() != c.ID());
  auto moved = std::move(b);
  CHECK(moved == a);
  std::shared_ptr<int> first = ray::Get(a);
  *first = 99;
  CHECK(*ray::Get(a) == 5);
  CHECK(ray::ObjectRef<int>().ID().empty());
}

TEST_CASE("registration: unregistered functions and duplicates throw RayException") {
  RayRuntime rt;
  try {
    ray::Task(NotRegistered);
    FAIL("Task of an unregistered function did not throw");
  } catch (const ray::internal::RayException& e) {
    CHECK(e.msg_ == "Function not found. Please use RAY_REMOTE to register this function.");
  }
  try {
    ray::internal::register_remote_functions("Plus1", Plus1);
    FAIL("registering Plus1 twice did not throw");
  } catch (const ray::internal::RayException& e) {
    CHECK(e.msg_ == "Duplicate RAY_REMOTE function: Plus1");
  }
  CHECK_THROWS_AS(ray::internal::register_remote_functions("Plus", NotRegistered), ray::internal::RayException);
  auto h = ray::Actor(Counter::FactoryCreate).Remote(0);
  CHECK_NOTHROW(h.Task(&Counter::Get));
  CHECK_THROWS_AS(h.Task(&Counter::Unregistered), ray::internal::RayException);
}

TEST_CASE("exceptions: a task's error reaches Get as RayTaskException naming it") {
  RayRuntime rt;
  auto bad = ray::Task(Throws).Remote(3);
  try {
    ray::Get(bad);
    FAIL("Get of a failed task did not throw");
  } catch (const ray::internal::RayTaskException& e) {
    CHECK(e.msg_ == "An exception was thrown while executing function(Throws): std::out_of_range: x is 3");
  }
  // A task whose argument failed fails with the same error, without running.
  CHECK_THROWS_AS(ray::Get(ray::Task(Plus1).Remote(bad)), ray::internal::RayTaskException);
  CHECK(*ray::Get(ray::Task(Throws).Remote(0)) == 0);
  CHECK_THROWS_AS(ray::Get(ray::ObjectRef<int>()), ray::internal::RayException);
}

TEST_CASE("timeouts: Get with a timeout throws RayTimeoutException; Wait returns what is ready") {
  RayRuntime rt;
  g_promise = std::make_shared<std::promise<int>>();
  g_future = g_promise->get_future().share();
  auto pending = ray::Task(WaitForPromise).Remote();
  CHECK_THROWS_AS(ray::Get(pending, 10), ray::internal::RayTimeoutException);
  CHECK_THROWS_AS(pending.Get(0), ray::internal::RayTimeoutException);
  auto ready = ray::Put(1);
  CHECK_THROWS_AS(ray::Get(std::vector<ray::ObjectRef<int>>{ready, pending}, 10), ray::internal::RayTimeoutException);

  ray::WaitResult<int> r = ray::Wait(std::vector<ray::ObjectRef<int>>{pending, ready}, 2, 10);
  REQUIRE(r.ready.size() == 1);
  REQUIRE(r.unready.size() == 1);
  CHECK(r.ready.front() == ready);
  CHECK(r.unready.front() == pending);
  CHECK_THROWS_AS(ray::Wait(std::vector<ray::ObjectRef<int>>{ready}, 2, 10), ray::internal::RayException);
  CHECK_THROWS_AS(ray::Wait(std::vector<ray::ObjectRef<int>>{ready}, 0, 10), ray::internal::RayException);

  g_promise->set_value(8);
  CHECK(*ray::Get(pending, -1) == 8);
  r = ray::Wait(std::vector<ray::ObjectRef<int>>{pending, ready}, 2, -1);
  CHECK(r.ready.size() == 2);
  CHECK(r.unready.empty());
  auto all = ray::Get(std::vector<ray::ObjectRef<int>>{pending, ready});
  REQUIRE(all.size() == 2);
  CHECK(*all[0] == 8);
  CHECK(*all[1] == 1);
}

TEST_CASE("blocking tasks: four tasks waiting on a promise that a fifth fulfils all finish") {
  RayRuntime rt;
  g_promise = std::make_shared<std::promise<int>>();
  g_future = g_promise->get_future().share();
  std::vector<ray::ObjectRef<int>> waiting;
  for (int i = 0; i < 4; ++i) waiting.push_back(ray::Task(WaitForPromise).Remote());
  // The waiting tasks are queued first; the fifth must still find a free worker.
  auto fulfil = ray::Task(FulfilPromise).Remote(6);
  CHECK(*ray::Get(fulfil) == 6);
  for (auto& r : waiting) CHECK(*ray::Get(r) == 6);
}

TEST_CASE("actors: ordered calls, methods of a base class, reference parameters") {
  RayRuntime rt;
  auto counter = ray::Actor(Counter::FactoryCreate).Remote(ray::Put(10));  // a ref to a plain parameter
  std::vector<ray::ObjectRef<int>> results;
  for (int i = 1; i <= 100; ++i) results.push_back(counter.Task(&Counter::Add).Remote(1));
  for (int i = 0; i < 100; ++i) CHECK(*ray::Get(results[static_cast<std::size_t>(i)]) == 11 + i);
  CHECK(*ray::Get(counter.Task(&Counter::AddLength).Remote(std::string("abc"))) == 113);
  CHECK(*ray::Get(counter.Task(&Counter::Add).Remote(ray::Task(Return1).Remote())) == 114);

  auto derived = ray::Actor(Derived::FactoryCreate).Remote();
  CHECK(*ray::Get(derived.Task(&Base::Hello).Remote()) == 42);
  CHECK_FALSE(counter.ID().empty());
  CHECK(counter.ID() != derived.ID());

  auto failing = counter.Task(&Counter::Fail).Remote();
  try {
    ray::Get(failing);
    FAIL("a method that threw did not fail its call");
  } catch (const ray::internal::RayTaskException& e) {
    CHECK(e.msg_ == "An exception was thrown while executing function(&Counter::Fail): std::invalid_argument: Fail was called");
  }
  CHECK(*ray::Get(counter.Task(&Counter::Get).Remote()) == 114);  // the actor lives on
}

TEST_CASE("named actors: GetActor in the job's namespace and in others") {
  ray::RayConfig config;
  config.ray_namespace = "shop";
  ray::Init(config);
  CHECK(ray::GetNamespace() == "shop");
  auto a = ray::Actor(Counter::FactoryCreate).SetName("till").Remote(1);
  auto b = ray::Actor(Counter::FactoryCreate).SetName("till", "other").Remote(100);
  boost::optional<ray::ActorHandle<Counter>> found = ray::GetActor<Counter>("till");
  REQUIRE(found.has_value());
  CHECK(*ray::Get(found->Task(&Counter::Add).Remote(1)) == 2);
  auto other = ray::GetActor<Counter>("till", "other");
  REQUIRE(other.has_value());
  CHECK(*ray::Get(other->Task(&Counter::Get).Remote()) == 100);
  CHECK_FALSE(ray::GetActor<Counter>("nobody").has_value());
  CHECK_FALSE(ray::GetActor<Counter>("").has_value());
  CHECK_FALSE(ray::GetActor<Counter>("till", "elsewhere").has_value());
  CHECK_THROWS_AS(ray::Actor(Counter::FactoryCreate).SetName("till").Remote(0), ray::internal::RayException);
  a.Kill();
  CHECK_THROWS_AS(ray::Get(a.Task(&Counter::Get).Remote()), ray::internal::RayActorException);
  CHECK_FALSE(ray::GetActor<Counter>("till").has_value());
  ray::Shutdown();
}

TEST_CASE("actor faults: Kill, a factory that throws, ExitActor, restarts through Kill(false)") {
  RayRuntime rt;
  auto killed = ray::Actor(Counter::FactoryCreate).Remote(0);
  CHECK(*ray::Get(killed.Task(&Counter::Add).Remote(1)) == 1);
  killed.Kill();
  CHECK_THROWS_AS(ray::Get(killed.Task(&Counter::Add).Remote(1)), ray::internal::RayActorException);

  auto broken = ray::Actor(Counter::FactoryCreateFailing).Remote(0);
  CHECK_THROWS_AS(ray::Get(broken.Task(&Counter::Get).Remote()), ray::internal::RayActorException);

  auto exiting = ray::Actor(Counter::FactoryCreate).Remote(0);
  CHECK_THROWS_AS(ray::Get(exiting.Task(&Counter::Exit).Remote()), ray::internal::RayActorException);
  CHECK_THROWS_AS(ray::Get(exiting.Task(&Counter::Get).Remote()), ray::internal::RayActorException);
  CHECK_THROWS_AS(ray::ExitActor(), std::logic_error);

  auto restarting = ray::Actor(Counter::FactoryCreate).SetMaxRestarts(1).Remote(5);
  CHECK(*ray::Get(restarting.Task(&Counter::Add).Remote(1)) == 6);
  CHECK_FALSE(*ray::Get(restarting.Task(&Counter::Restarted).Remote()));
  restarting.Kill(false);
  // Rebuilt from the factory's arguments: the state starts again from 5.
  CHECK(*ray::Get(restarting.Task(&Counter::Get).Remote()) == 5);
  CHECK(*ray::Get(restarting.Task(&Counter::Restarted).Remote()));
  restarting.Kill(false);  // no restarts left
  CHECK_THROWS_AS(ray::Get(restarting.Task(&Counter::Get).Remote()), ray::internal::RayActorException);

  auto no_restart = ray::Actor(Counter::FactoryCreate).SetMaxRestarts(3).Remote(0);
  no_restart.Kill();  // Kill() means no_restart = true
  CHECK_THROWS_AS(ray::Get(no_restart.Task(&Counter::Get).Remote()), ray::internal::RayActorException);
}

TEST_CASE("max concurrency: calls overlap only when the actor allows it") {
  RayRuntime rt;
  auto check_overlap = [](int max_concurrency) {
    g_most = 0;
    auto actor = ray::Actor(Concurrent::FactoryCreate).SetMaxConcurrency(max_concurrency).Remote();
    std::vector<ray::ObjectRef<int>> calls;
    for (int i = 0; i < 6; ++i) calls.push_back(actor.Task(&Concurrent::Overlap).Remote());
    for (auto& c : calls) ray::Get(c);
    return g_most.load();
  };
  CHECK(check_overlap(1) == 1);
  // Blocking calls of an actor with max_concurrency 3 run three at a time; the sleeps are long
  // enough that they meet, and if they never met the count would be 1.
  int most = check_overlap(3);
  CHECK(most > 1);
  CHECK(most <= 3);
  CHECK_THROWS_AS(ray::Actor(Concurrent::FactoryCreate).SetMaxConcurrency(0).Remote(), ray::internal::RayException);
}

TEST_CASE("resources: checked as Ray checks them, and held while tasks run") {
  RayRuntime rt;
  CHECK_THROWS_AS(ray::Task(Return1).SetResources({{"CPU", 0}}).Remote(), ray::internal::RayException);
  CHECK_THROWS_AS(ray::Task(Return1).SetResources({{"", 1}}).Remote(), ray::internal::RayException);
  CHECK_THROWS_AS(ray::Task(Return1).SetResource("CPU", 1.5).Remote(), ray::internal::RayException);
  // Infeasible: pending, as in Ray (a Get with a timeout times out).
  ray::ObjectRef<int> infeasible;
  logged_by([&] { infeasible = ray::Task(Return1).SetResource("GPU", 1).Remote(); });
  CHECK_THROWS_AS(infeasible.Get(20), ray::internal::RayTimeoutException);
  CHECK_THROWS_AS(ray::Actor(Counter::FactoryCreate).SetResources({{"CPU", -1}}).Remote(0), ray::internal::RayException);
  CHECK(*ray::Get(ray::Task(Return1).SetResource("CPU", 0.5).SetName("half").Remote()) == 1);

  // Tasks that each claim every CPU run one at a time.
  unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  g_most = 0;
  std::vector<ray::ObjectRef<int>> calls;
  for (int i = 0; i < 4; ++i)
    calls.push_back(ray::Task(CountOverlap).SetResources({{"CPU", static_cast<double>(cpus)}}).Remote());
  for (auto& c : calls) ray::Get(c);
  CHECK(g_most.load() == 1);
}

TEST_CASE("placement groups: bundles reserve resources that placed tasks draw from") {
  RayRuntime rt;
  unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  ray::PlacementGroupCreationOptions options{"group", {{{"CPU", 1}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup pg = ray::CreatePlacementGroup(options);
  CHECK(pg.Wait(10));
  CHECK(pg.GetState() == ray::PlacementGroupState::CREATED);
  CHECK(pg.GetName() == "group");
  CHECK(pg.GetBundles().size() == 1);
  CHECK(ray::GetPlacementGroup("group").GetID() == pg.GetID());
  CHECK(ray::GetPlacementGroupById(pg.GetID()).GetID() == pg.GetID());
  CHECK(ray::GetAllPlacementGroups().size() == 1);

  // The bundle has one CPU: tasks placed in it run one at a time.
  g_most = 0;
  std::vector<ray::ObjectRef<int>> calls;
  for (int i = 0; i < 4; ++i) calls.push_back(ray::Task(CountOverlap).SetPlacementGroup(pg, 0).Remote());
  for (auto& c : calls) ray::Get(c);
  CHECK(g_most.load() == 1);
  CHECK(*ray::Get(ray::Task(Plus1).SetPlacementGroup(pg, -1).Remote(1)) == 2);
  CHECK_THROWS_AS(ray::Task(Plus1).SetPlacementGroup(pg, 1).Remote(1), ray::internal::RayException);

  // What the group holds is not free for others: a group that wants every CPU waits for it.
  ray::PlacementGroupCreationOptions everything{"all", {{{"CPU", static_cast<double>(cpus)}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup big = ray::CreatePlacementGroup(everything);
  CHECK_FALSE(big.Wait(0));
  CHECK(big.GetState() == ray::PlacementGroupState::PENDING);
  CHECK_THROWS_AS(ray::Task(Plus1).SetPlacementGroup(big, 0).Remote(1), ray::internal::RayException);
  ray::RemovePlacementGroup(pg.GetID());
  CHECK(pg.GetState() == ray::PlacementGroupState::REMOVED);
  CHECK(big.Wait(10));
  CHECK_THROWS_AS(ray::Task(Plus1).SetPlacementGroup(pg, 0).Remote(1), ray::internal::RayException);

  // One node cannot hold bundles that must be on different nodes, nor more than it has.
  ray::PlacementGroupCreationOptions spread{"spread", {{{"CPU", 1}}, {{"CPU", 1}}}, ray::PlacementStrategy::STRICT_SPREAD};
  CHECK_FALSE(ray::CreatePlacementGroup(spread).Wait(0));
  ray::PlacementGroupCreationOptions huge{"huge", {{{"CPU", 4.0 * cpus}}}, ray::PlacementStrategy::PACK};
  CHECK_FALSE(ray::CreatePlacementGroup(huge).Wait(0));
  CHECK_THROWS_AS(ray::CreatePlacementGroup({"none", {}, ray::PlacementStrategy::PACK}), ray::internal::RayException);
  CHECK_THROWS_AS(ray::CreatePlacementGroup({"empty", {{}}, ray::PlacementStrategy::PACK}), ray::internal::RayException);
}

TEST_CASE("handles and refs travel into tasks and actors") {
  RayRuntime rt;
  auto counter = ray::Actor(Counter::FactoryCreate).Remote(0);
  // Tasks submitted from inside tasks, Get inside tasks: each parks its fiber.
  auto nested = ray::Task(Slow).Remote(1);
  CHECK(*ray::Get(ray::Task(Plus).Remote(nested, ray::Task(Plus1).Remote(nested))) == 3);
  auto blocked = counter.Task(&Counter::Block).Remote(5);
  CHECK(*ray::Get(blocked) == 5);
}

TEST_CASE("Shutdown inside a task or an actor method throws RayException and Ray keeps running") {
  RayRuntime rt;
  // Shutdown waits for every task, so called by one it would wait for its caller.
  std::string inside = "ray::internal::RayException: ray::Shutdown() was called inside a Ray task or actor method";
  std::string from_task = message_of<ray::internal::RayTaskException>([] { ray::Get(ray::Task(CallShutdown).Remote()); });
  CHECK(from_task.find("function(CallShutdown): " + inside) != std::string::npos);
  CHECK(ray::IsInitialized());

  auto counter = ray::Actor(Counter::FactoryCreate).Remote(1);
  std::string from_method = message_of<ray::internal::RayTaskException>(
      [&] { ray::Get(counter.Task(&Counter::CallShutdown).Remote()); });
  CHECK(from_method.find("function(&Counter::CallShutdown): " + inside) != std::string::npos);
  CHECK(ray::IsInitialized());
  CHECK(*ray::Get(ray::Task(Plus1).Remote(1)) == 2);
  CHECK(*ray::Get(counter.Task(&Counter::Get).Remote()) == 1);
}

TEST_CASE("before Init and after Shutdown every call throws RayException; refs, handles and groups stay defined") {
  REQUIRE_FALSE(ray::IsInitialized());
  check_every_call_refused();
  CHECK_NOTHROW(ray::Shutdown());  // nothing to stop

  ray::Init();
  auto ref = ray::Put(7);
  auto named = ray::Actor(Counter::FactoryCreate).SetName("kept").Remote(1);
  auto anonymous = ray::Actor(Counter::FactoryCreate).Remote(2);
  CHECK(*ray::Get(named.Task(&Counter::Get).Remote()) == 1);
  ray::PlacementGroup group = ray::CreatePlacementGroup({"kept", {{{"CPU", 1}}}, ray::PlacementStrategy::PACK});
  REQUIRE(group.Wait(10));
  ray::PlacementGroup pending =
      ray::CreatePlacementGroup({"never", {{{"CPU", 1}}, {{"CPU", 1}}}, ray::PlacementStrategy::STRICT_SPREAD});
  CHECK(pending.GetState() == ray::PlacementGroupState::PENDING);
  // Shutdown waits for this task, which calls the API while it waits.
  g_child_result = 0;
  ray::Task(SlowThenChild).Remote(20);
  ray::Shutdown();
  CHECK(g_child_result.load() == 21);

  check_every_call_refused();
  CHECK(message_of([&] { ray::Get(ref); }) == kNotInitialized);
  CHECK(message_of([&] { named.Task(&Counter::Get).Remote(); }) == kNotInitialized);
  CHECK(message_of([&] { named.Kill(); }) == kNotInitialized);
  CHECK(message_of([&] { ray::Task(Plus1).SetPlacementGroup(group, 0).Remote(1); }) == kNotInitialized);
  // Groups end with the runtime whose resources they reserved.
  CHECK(group.GetState() == ray::PlacementGroupState::REMOVED);
  CHECK(pending.GetState() == ray::PlacementGroupState::REMOVED);

  ray::Init();
  CHECK(*ray::Get(ref) == 7);  // objects outlive the runtime that made them
  CHECK(message_of<ray::internal::RayActorException>([&] { ray::Get(named.Task(&Counter::Get).Remote()); }) ==
        "The actor 'kept' died: ray::Shutdown() stopped it");
  CHECK(message_of<ray::internal::RayActorException>([&] { ray::Get(anonymous.Task(&Counter::Get).Remote()); }) ==
        "The actor " + anonymous.ID() + " died: ray::Shutdown() stopped it");
  CHECK_NOTHROW(named.Kill());
  CHECK_FALSE(ray::GetActor<Counter>("kept").has_value());
  CHECK(message_of([&] { ray::Task(Plus1).SetPlacementGroup(group, 0).Remote(1); }) ==
        "Placement group " + group.GetID() + " was removed");
  CHECK(message_of([&] { ray::RemovePlacementGroup(group.GetID()); }) == "No placement group with id " + group.GetID());
  CHECK(ray::GetAllPlacementGroups().empty());
  ray::Shutdown();
}

TEST_CASE("error texts name actors as their users did and resources in Ray's units") {
  ray::RayConfig config;
  config.ray_namespace = "shop";
  ray::Init(config);
  using ray::internal::RayActorException;

  auto named = ray::Actor(Counter::FactoryCreate).SetName("named").Remote(1);
  auto call_before_kill = named.Task(&Counter::Block).Remote(0);
  ray::Get(call_before_kill);
  named.Kill();
  CHECK(message_of<RayActorException>([&] { ray::Get(named.Task(&Counter::Get).Remote()); }) ==
        "The actor 'named' died: it was killed");
  auto exiting = ray::Actor(Counter::FactoryCreate).Remote(0);
  CHECK(message_of<RayActorException>([&] { ray::Get(exiting.Task(&Counter::Exit).Remote()); }) ==
        "The actor " + exiting.ID() + " died: ray::ExitActor() was called");
  auto broken = ray::Actor(Counter::FactoryCreateFailing).Remote(0);
  CHECK(message_of<RayActorException>([&] { ray::Get(broken.Task(&Counter::Get).Remote()); }) ==
        "The actor " + broken.ID() +
            " died: its factory threw ray::internal::RayTaskException: An exception was thrown while executing "
            "function(Counter::FactoryCreateFailing): std::runtime_error: no counter today");
  // A lumen error inside a remote function is described as the Ray exception it becomes.
  auto orphan = ray::Actor(Counter::FactoryCreate).Remote(named.Task(&Counter::Get).Remote());
  std::string nested = message_of<RayActorException>([&] { ray::Get(orphan.Task(&Counter::Get).Remote()); });
  CHECK(nested.find("function(Counter::FactoryCreate): ray::internal::RayActorException: The actor 'named' died: "
                    "it was killed") != std::string::npos);
  CHECK(nested.find("lumen") == std::string::npos);

  ray::Actor(Counter::FactoryCreate).SetName("till").Remote(1);
  CHECK(message_of([] { ray::Actor(Counter::FactoryCreate).SetName("till").Remote(2); }) ==
        "An actor named 'till' in namespace 'shop' already exists");
  ray::Actor(Counter::FactoryCreate).SetName("it's", "other").Remote(1);
  CHECK(message_of([] { ray::Actor(Counter::FactoryCreate).SetName("it's", "other").Remote(2); }) ==
        "An actor named 'it's' in namespace 'other' already exists");
  std::string wrong_type = message_of([] { ray::GetActor<Concurrent>("till"); });
  CHECK(wrong_type.find("'till' in namespace 'shop'") != std::string::npos);
  CHECK(wrong_type.find("lumen") == std::string::npos);
  CHECK(message_of([] { ray::Actor(Counter::FactoryCreate).SetMaxConcurrency(0).Remote(1); }) ==
        "SetMaxConcurrency(0): the maximum concurrency must be at least 1");
  CHECK(message_of([] { ray::Actor(Counter::FactoryCreate).SetMaxRestarts(-2).Remote(1); }) ==
        "SetMaxRestarts(-2): the maximum number of restarts must be -1 (without limit) or more");
  CHECK(message_of([] {
          ray::Actor(Counter::FactoryFromPointer).SetMaxRestarts(1).Remote(std::make_unique<int>(1));
        }).find("SetMaxRestarts needs factory arguments that can be copied") == 0);
  CHECK(*ray::Get(ray::Actor(Counter::FactoryFromPointer).Remote(std::make_unique<int>(4)).Task(&Counter::Get).Remote()) == 4);
  CHECK(message_of([] { ray::ActorHandle<Counter>().Task(&Counter::Get).Remote(); }) ==
        "Task(...).Remote() on an empty ActorHandle (default-constructed): it refers to no actor");
  CHECK(message_of([] { ray::ActorHandle<Counter>().Kill(); }) ==
        "Kill() on an empty ActorHandle (default-constructed): it refers to no actor");

  // Resources as the user wrote them, never in lumen's ten-thousandths: the warning about an
  // infeasible task.
  std::string cpus = std::to_string(std::max(1u, std::thread::hardware_concurrency()));
  CHECK(logged_by([] { ray::Task(Return1).SetResource("CPU", 1e9).Remote(); })
            .find("The task Return1 cannot be scheduled: it requires {CPU: 1e9}, but this node has {CPU: " + cpus + "}") !=
        std::string::npos);
  CHECK(logged_by([] { ray::Task(Return1).SetName("gpu_work").SetResource("GPU", 1).Remote(); })
            .find("The task gpu_work cannot be scheduled: it requires {GPU: 1}, but this node has no GPU") !=
        std::string::npos);
  CHECK(logged_by([] { ray::Task(Return1).SetResource("CPU", 1e300).Remote(); })
            .find("it requires {CPU: 1e300}, but this node has {CPU: " + cpus + "}") != std::string::npos);
  CHECK(message_of([] { ray::Task(Return1).SetResource("CPU", 1.5).Remote(); }) ==
        "A resource value should be an integer if it is greater than 1.0. Specified resource: CPU = 1.5.");
  CHECK(message_of([] { ray::Task(Return1).SetResource("CPU", 0.00001).Remote(); }) ==
        "Resource values should be at least 0.0001. Specified resource: CPU = 1e-5.");
  CHECK(message_of([] { ray::Task(Return1).SetResource("CPU", 0).Remote(); }) ==
        "Resource values should be positive. Specified resource: CPU = 0.");
  CHECK(*ray::Get(ray::Task(Return1).SetResource("CPU", 0.25).Remote()) == 1);
  ray::PlacementGroup group = ray::CreatePlacementGroup({"g", {{{"CPU", 1}}}, ray::PlacementStrategy::PACK});
  REQUIRE(group.Wait(10));
  CHECK(logged_by([&] { ray::Task(Return1).SetPlacementGroup(group, 0).SetResource("CPU", 2).Remote(); })
            .find("it requires {CPU: 2}, but bundle 0 of placement group " + group.GetID() + " has {CPU: 1}") !=
        std::string::npos);
  CHECK(logged_by([&] { ray::Task(Return1).SetPlacementGroup(group, -1).SetResource("GPU", 0.5).Remote(); })
            .find("it requires {GPU: 0.5}, but placement group " + group.GetID() + " has no GPU") != std::string::npos);
  CHECK(*ray::Get(ray::Task(Return1).SetPlacementGroup(group, 0).SetResource("CPU", 0.5).Remote()) == 1);
  CHECK_FALSE(ray::CreatePlacementGroup({"huge", {{{"CPU", 1e300}}}, ray::PlacementStrategy::PACK}).Wait(0));

  // Ray's calls, not lumen's.
  CHECK(message_of([] { ray::Get(ray::ObjectRef<int>()); }) ==
        "ray::Get on an empty ObjectRef (default-constructed or moved from)");
  CHECK(message_of([] { ray::Wait(std::vector<ray::ObjectRef<int>>{ray::ObjectRef<int>()}, 1, 0); }) ==
        "ray::Wait on an empty ObjectRef (default-constructed or moved from)");
  CHECK(message_of([] { ray::Task(Plus1).Remote(ray::ObjectRef<int>()); }) ==
        "Remote() was given an empty ObjectRef (default-constructed or moved from) for a parameter that needs its value");
  g_promise = std::make_shared<std::promise<int>>();
  g_future = g_promise->get_future().share();
  auto pending = ray::Task(WaitForPromise).Remote();
  CHECK(message_of<ray::internal::RayTimeoutException>([&] { ray::Get(pending, 0); }) ==
        "Get timed out: some object(s) not ready.");
  g_promise->set_value(1);
  ray::Get(pending);
  ray::Shutdown();
}

TEST_CASE("an actor holds its resources from its construction until it ends") {
  RayRuntime rt;
  const double cpus = std::max(1u, std::thread::hardware_concurrency());
  // Every CPU of the node, held by the actor once it is built (its first call has run).
  auto holder = ray::Actor(Counter::FactoryCreate).SetResources({{"CPU", cpus}}).Remote(0);
  REQUIRE(*holder.Task(&Counter::Get).Remote().Get() == 0);
  // A task that needs one CPU cannot run while the actor lives...
  auto waiting = ray::Task(Return1).SetResource("CPU", 1).Remote();
  CHECK_THROWS_AS(waiting.Get(50), ray::internal::RayTimeoutException);
  // ...and runs once it has ended.
  holder.Kill();
  CHECK(*waiting.Get() == 1);

  // An actor that asks for nothing holds nothing.
  auto free_actor = ray::Actor(Counter::FactoryCreate).Remote(1);
  REQUIRE(*free_actor.Task(&Counter::Get).Remote().Get() == 1);
  CHECK(*ray::Task(Return1).SetResource("CPU", cpus).Remote().Get() == 1);
}

TEST_CASE("an actor waits for resources other actors hold, and Shutdown lets go of them") {
  const double cpus = std::max(1u, std::thread::hardware_concurrency());
  ray::ObjectRef<int> second_call;
  ray::ObjectRef<int> task_needing_cpu;
  // Declared before the runtime, so that the first actor lives (and holds its CPUs) until
  // Shutdown: its last handle going first would end it and free them.
  ray::ActorHandle<Counter> first;
  {
    RayRuntime rt;
    first = ray::Actor(Counter::FactoryCreate).SetResources({{"CPU", cpus}}).Remote(1);
    REQUIRE(*first.Task(&Counter::Get).Remote().Get() == 1);
    // The second actor's factory waits for the CPUs the first holds; its calls queue meanwhile.
    auto second = ray::Actor(Counter::FactoryCreate).SetResources({{"CPU", 1}}).Remote(2);
    second_call = second.Task(&Counter::Get).Remote();
    CHECK_THROWS_AS(second_call.Get(50), ray::internal::RayTimeoutException);
    // Shutdown neither hangs on the waiting actor nor on a task that needs the held CPUs.
    task_needing_cpu = ray::Task(Return1).SetResource("CPU", cpus).Remote();
  }
  ray::Init();
  CHECK(*task_needing_cpu.Get() == 1);
  CHECK_THROWS_AS(second_call.Get(), ray::internal::RayActorException);
  ray::Shutdown();
}

TEST_CASE("an actor that asks for more than the node has stays pending until Shutdown") {
  ray::ObjectRef<int> call;
  {
    RayRuntime rt;
    std::string log = logged_by([&] {
      auto gpu_actor = ray::Actor(Counter::FactoryCreate).SetResources({{"GPU", 1}}).Remote(0);
      call = gpu_actor.Task(&Counter::Add).Remote(1);
    });
    CHECK(log.find("The actor Counter::FactoryCreate cannot be scheduled: it requires {GPU: 1}, but this node has no GPU") !=
          std::string::npos);
    CHECK_THROWS_AS(call.Get(50), ray::internal::RayTimeoutException);
  }
  ray::Init();
  CHECK(message_of<ray::internal::RayActorException>([&] { call.Get(); }).find("was never scheduled") !=
        std::string::npos);
  ray::Shutdown();
}

TEST_CASE("RayConfig::head_args give the node the resources `ray start --head` would") {
  ray::RayConfig config;
  config.head_args = {"--num-cpus", "3", "--resources", R"({"resource1": 1, "resource2": 2})", "--num-gpus=1",
                      "--port=6379"};
  ray::Init(config);
  CHECK(*ray::Task(Return1).SetResources({{"resource1", 1}, {"GPU", 1}, {"CPU", 3}}).Remote().Get() == 1);
  ray::ObjectRef<int> too_much;
  std::string log = logged_by([&] { too_much = ray::Task(Return1).SetResource("resource2", 3).Remote(); });
  CHECK(log.find("it requires {resource2: 3}, but this node has {resource2: 2}") != std::string::npos);
  CHECK_THROWS_AS(too_much.Get(20), ray::internal::RayTimeoutException);
  ray::Shutdown();

  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"--num-cpus", "many"}, {"--num-cpus=-1"}, {"--resources", "[1]"}, {"--resources", R"({"r": "x"})"},
           {"--resources", R"({"r": 1e12})"}}) {
    config.head_args = bad;
    CHECK_THROWS_AS(ray::Init(config), ray::internal::RayException);
    CHECK_FALSE(ray::IsInitialized());
  }
}

TEST_CASE("ExitActor and a factory that throws end a Ray actor for good, whatever its restarts") {
  RayRuntime rt;
  auto exiting = ray::Actor(Counter::FactoryCreate).SetMaxRestarts(-1).Remote(1);
  CHECK_THROWS_AS(exiting.Task(&Counter::Exit).Remote().Get(), ray::internal::RayActorException);
  CHECK_THROWS_AS(exiting.Task(&Counter::Get).Remote().Get(), ray::internal::RayActorException);
  // Kill(false) is a crash: it restarts.
  auto crashing = ray::Actor(Counter::FactoryCreate).SetMaxRestarts(1).Remote(1);
  REQUIRE(*crashing.Task(&Counter::Add).Remote(1).Get() == 2);
  crashing.Kill(false);
  CHECK(*crashing.Task(&Counter::Restarted).Remote().Get());

  auto failing = ray::Actor(Counter::FactoryCreateFailing).SetMaxRestarts(2).Remote(0);
  for (int i = 0; i < 3; ++i) {
    CHECK(message_of<ray::internal::RayActorException>([&] { failing.Task(&Counter::Get).Remote().Get(); })
              .find("no counter today") != std::string::npos);
  }
}

TEST_CASE("ID() asked by many threads at once of one ref: each gets the one id, written once") {
  RayRuntime rt;
  for (int round = 0; round < 200; ++round) {
    const ray::ObjectRef<int> ref = ray::Put(round);
    std::atomic<int> ready{0};
    std::vector<const std::string*> seen(8, nullptr);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < 8) std::this_thread::yield();
        seen[static_cast<std::size_t>(t)] = &ref.ID();
      });
    }
    for (auto& t : threads) t.join();
    for (const std::string* s : seen) {
      CHECK(s == seen[0]);
      CHECK(*s == ref.ID());
    }
    CHECK(ref.ID().size() == 15);
    // A copy made after the id is written carries it; one made before writes its own, equal.
    ray::ObjectRef<int> copy = ref;
    CHECK(copy.ID() == ref.ID());
  }
}

TEST_CASE("LUMEN_RAY_SHUTDOWN_TIMEOUT that is not a number of seconds: a warning, and the default") {
  for (const char* bad : {"soon", "-1", "1e20", "nan", ""}) {
    ::setenv("LUMEN_RAY_SHUTDOWN_TIMEOUT", bad, 1);
    ray::Init();
    CHECK(*ray::Task(Return1).Remote().Get() == 1);
    std::string log = logged_by([] { ray::Shutdown(); });
    CHECK(log.find("LUMEN_RAY_SHUTDOWN_TIMEOUT='" + std::string(bad) + "' is not a number of seconds") !=
          std::string::npos);
    CHECK_FALSE(ray::IsInitialized());
  }
  ::unsetenv("LUMEN_RAY_SHUTDOWN_TIMEOUT");
}

TEST_CASE("RayConfig::local_mode passes an ObjectRef argument to an ObjectRef parameter, as Ray's local mode does") {
  ray::RayConfig config;
  config.local_mode = true;
  ray::Init(config);
  CHECK(*ray::Get(ray::Task(SumOfRef).Remote(ray::Put(1))) == 1001);
  ray::Shutdown();
  ray::Init();  // cluster rules again
  CHECK_THROWS_AS(ray::Task(SumOfRef).Remote(ray::Put(1)), std::invalid_argument);
  ray::Shutdown();
}

int NeverRegistered(int x) { return x; }
int RegisteredByHand(int x) { return x * 2; }

TEST_CASE("Ray's own headers by name: FunctionManager, CheckTaskOptions, Serializer, IsLevelEnabled") {
  using ray::internal::FunctionManager;
  // Registering by hand: a name and a function once each, as RAY_REMOTE does.
  CHECK(FunctionManager::Instance().RegisterRemoteFunction("RegisteredByHand", RegisteredByHand));
  CHECK_THROWS_AS(FunctionManager::Instance().RegisterRemoteFunction("RegisteredByHand", RegisteredByHand),
                  ray::internal::RayException);
  CHECK_THROWS_AS(FunctionManager::Instance().RegisterRemoteFunction("Other", RegisteredByHand),
                  ray::internal::RayException);
  CHECK_THROWS_AS(FunctionManager::Instance().RegisterRemoteFunction("Plus1", NeverRegistered),
                  ray::internal::RayException);  // the name RAY_REMOTE gave Plus1
  CHECK(FunctionManager::Instance().GetFunctionName(RegisteredByHand) == "RegisteredByHand");
  CHECK(FunctionManager::Instance().GetFunctionName(&Counter::Add) == "&Counter::Add");
  CHECK(FunctionManager::Instance().GetFunctionName(NeverRegistered).empty());
  CHECK(FunctionManager::GetClassNameByFuncName("RAY_FUNC(Counter::FactoryCreate)") == "Counter");
  CHECK(FunctionManager::GetClassNameByFuncName("RAY_FUNC(Counter::FactoryCreate, int)") == "Counter");
  CHECK(FunctionManager::GetClassNameByFuncName("Counter::FactoryCreate") == "Counter");
  CHECK(FunctionManager::GetClassNameByFuncName("&Counter::Add") == "Counter");
  CHECK(FunctionManager::GetClassNameByFuncName("FactoryCreate").empty());
  CHECK(FunctionManager::GetClassNameByFuncName("").empty());
  CHECK(FunctionManager::GetClassNameByFuncName("::FactoryCreate").empty());
  {
    RayRuntime rt;
    CHECK(*ray::Task(RegisteredByHand).Remote(21).Get() == 42);
  }

  CHECK_THROWS_AS(ray::internal::CheckTaskOptions({{"", 1}}), ray::internal::RayException);
  CHECK_THROWS_AS(ray::internal::CheckTaskOptions({{"dummy", 0}}), ray::internal::RayException);
  CHECK_THROWS_AS(ray::internal::CheckTaskOptions({{"dummy", 2.5}}), ray::internal::RayException);
  CHECK_NOTHROW(ray::internal::CheckTaskOptions({{"dummy", 2.0}, {"other", 0.5}}));

  using ray::internal::Serializer;
  std::map<std::string, std::vector<int>> value{{"a", {1, 2}}, {"b", {}}};
  msgpack::sbuffer bytes = Serializer::Serialize(value);
  CHECK(Serializer::Deserialize<decltype(value)>(bytes.data(), bytes.size()) == value);
  msgpack::sbuffer two;
  msgpack::pack(two, 7);
  std::size_t first = two.size();
  msgpack::pack(two, std::string("x"));
  CHECK(Serializer::Deserialize<std::string>(two.data(), two.size(), first) == "x");
  CHECK_THROWS(Serializer::Deserialize<int>(bytes.data(), bytes.size()));

  CHECK(ray::IsLevelEnabled(ray::RayLoggerLevel::ERROR));
  CHECK(ray::IsLevelEnabled(ray::RayLogLevel::FATAL));
}
