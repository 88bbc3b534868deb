// submit: callables of every kind, ObjectRef arguments as dependencies, void results,
// dynamic task graphs, long chains, wide fan-out, move-only arguments.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

#if defined(LUMEN_TEST_SANITIZED)
constexpr int kFanOut = 100'000;
#else
constexpr int kFanOut = 1'000'000;
#endif
constexpr int kChain = 100'000;

int add(int a, int b) { return a + b; }

std::size_t length(const std::string& s) { return s.size(); }

struct Multiply {
  int factor;
  int operator()(int x) const { return x * factor; }
};

struct Account {
  std::atomic<int> balance{0};
  int deposit(int amount) { return balance.fetch_add(amount) + amount; }
  int read() const { return balance.load(); }
};

int fib_tasks(int n) {
  if (n < 2) return n;
  auto a = lumen::submit(fib_tasks, n - 1);
  auto b = lumen::submit(fib_tasks, n - 2);
  return lumen::get(a) + lumen::get(b);
}

int fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

std::int64_t fan_out_fan_in(int n) {
  std::vector<lumen::ObjectRef<std::int64_t>> refs;
  refs.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) refs.push_back(lumen::submit([](std::int64_t x) { return x; }, std::int64_t{i}));
  std::int64_t sum = 0;
  for (const auto& r : refs) sum += lumen::get(r);
  return sum;
}

}  // namespace

// Free functions, lambdas, function objects and member functions all run and return results.
TEST_CASE("submit runs every kind of callable") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  CHECK(lumen::get(lumen::submit(add, 2, 3)) == 5);
  CHECK(lumen::get(lumen::submit(&add, 4, 5)) == 9);
  CHECK(lumen::get(lumen::submit([](int x) { return x + 1; }, 41)) == 42);
  int captured = 10;
  CHECK(lumen::get(lumen::submit([captured] { return captured * 2; })) == 20);
  CHECK(lumen::get(lumen::submit([](auto x) { return x * 3; }, 7)) == 21);  // generic lambda
  CHECK(lumen::get(lumen::submit(Multiply{6}, 7)) == 42);

  Account acct;
  auto d1 = lumen::submit(&Account::deposit, &acct, 5);
  CHECK(lumen::get(d1) >= 5);
  auto d2 = lumen::submit(&Account::deposit, &acct, 7);
  lumen::get(d2);
  CHECK(lumen::get(lumen::submit(&Account::read, &acct)) == 12);

  // One builder submits as many tasks as it is asked to, each with a copy of the callable.
  auto builder = lumen::task(Multiply{3}).name("triple");
  auto t1 = builder.submit(1);
  auto t2 = builder.submit(2);
  auto t3 = builder.submit(t2);
  CHECK(lumen::get(t1) == 3);
  CHECK(lumen::get(t2) == 6);
  CHECK(lumen::get(t3) == 18);
  CHECK(builder.options().name == "triple");

  // Arguments are stored by value: changing the caller's variable later does not matter.
  std::string s = "hello";
  auto len = lumen::submit(length, s);
  s = "changed after submit";
  CHECK(lumen::get(len) == 5);
}

// An ObjectRef argument is a dependency; a const T& parameter sees the value in the table.
TEST_CASE("ObjectRef arguments become dependencies and pass their values") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto a = lumen::submit(add, 1, 2);
  auto b = lumen::submit(add, a, 10);  // add receives the int
  CHECK(lumen::get(b) == 13);
  CHECK(lumen::get(lumen::submit(add, a, b)) == 16);

  auto big = lumen::put(std::vector<int>(1000, 3));
  // const T&: no copy, the very object the table holds.
  auto addr = lumen::submit([](const std::vector<int>& v) { return &v; }, big);
  CHECK(lumen::get(addr) == &lumen::get(big));
  // By value: a copy with the same contents.
  auto sum = lumen::submit([](std::vector<int> v) { return std::accumulate(v.begin(), v.end(), 0); }, big);
  CHECK(lumen::get(sum) == 3000);
  // Generic lambdas receive the value too.
  auto gen = lumen::submit([](const auto& v) { return v.size(); }, big);
  CHECK(lumen::get(gen) == 1000u);
  // Member functions take refs for their parameters as well.
  Account acct;
  CHECK(lumen::get(lumen::submit(&Account::deposit, &acct, a)) == 3);
  // Function objects and free functions with a reference parameter.
  CHECK(lumen::get(lumen::submit(Multiply{2}, b)) == 26);
  CHECK(lumen::get(lumen::submit(length, lumen::put(std::string("four")))) == 4u);

  // The dependent waits for its dependency, however long it takes.
  std::atomic<bool> slow_done{false};
  auto slow = lumen::submit([&] {
    int x = 0;
    for (int i = 0; i < 1000; ++i) x += lumen::get(lumen::submit([i] { return i; }));
    slow_done.store(true);
    return x;
  });
  auto after = lumen::submit([&](int x) { return slow_done.load() ? x : -1; }, slow);
  CHECK(lumen::get(after) == 999 * 1000 / 2);
}

// A parameter declared ObjectRef<T> receives the ref itself, not the value.
TEST_CASE("an ObjectRef<T> parameter receives the ref") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto p = lumen::put(std::string("payload"));
  auto id = lumen::submit([](lumen::ObjectRef<std::string> r) { return r.id().value; }, p);
  CHECK(lumen::get(id) == p.id().value);
  auto same = lumen::submit([](const lumen::ObjectRef<std::string>& r) { return &lumen::get(r); }, p);
  CHECK(lumen::get(same) == &lumen::get(p));
  // Mixed: one parameter takes the ref, the other the value.
  auto mixed = lumen::submit([](lumen::ObjectRef<std::string> r, const std::string& v) { return lumen::get(r) + v; }, p, p);
  CHECK(lumen::get(mixed) == "payloadpayload");
}

// A task that returns nothing gives ObjectRef<void>; its side effects are visible after get.
TEST_CASE("void results") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  int value = 0;
  auto r = lumen::submit([&value](int x) { value = x; }, 17);
  static_assert(std::is_same_v<decltype(r), lumen::ObjectRef<void>>);
  lumen::get(r);
  CHECK(value == 17);
  // A void task that depends on a value.
  auto v = lumen::submit([&value](int x) { value += x; }, lumen::submit(add, 1, 1));
  lumen::get(v);
  CHECK(value == 19);
}

// Tasks may submit tasks and wait on them: a recursive graph built while it runs.
TEST_CASE("tasks submit tasks (dynamic graphs)") {
  for (unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    CHECK(lumen::get(lumen::submit(fib_tasks, 16)) == fib_serial(16));

    // A task may also return the ref of a task it submitted, without waiting on it.
    auto outer = lumen::submit([] { return lumen::submit(add, 20, 22); });
    static_assert(std::is_same_v<decltype(outer), lumen::ObjectRef<lumen::ObjectRef<int>>>);
    CHECK(lumen::get(lumen::get(outer)) == 42);
  }
}

// A chain of 100k tasks, each adding 1 to the previous result, gives 100000.
TEST_CASE("a chain of 100k dependent tasks") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  lumen::ObjectRef<int> r = lumen::put(0);
  for (int i = 0; i < kChain; ++i) r = lumen::submit([](int x) { return x + 1; }, r);
  CHECK(lumen::get(r) == kChain);

  // The same chain built inside a task.
  auto built_inside = lumen::submit([] {
    lumen::ObjectRef<int> c = lumen::put(0);
    for (int i = 0; i < kChain; ++i) c = lumen::submit([](int x) { return x + 1; }, c);
    return lumen::get(c);
  });
  CHECK(lumen::get(built_inside) == kChain);
}

// Wide fan-out then fan-in, from the main thread and from inside a task.
TEST_CASE("fan-out/fan-in of many tasks") {
  const std::int64_t expected = std::int64_t{kFanOut} * (kFanOut - 1) / 2;
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  SUBCASE("from the main thread") { CHECK(fan_out_fan_in(kFanOut) == expected); }
  SUBCASE("from inside a task") { CHECK(lumen::get(lumen::submit(fan_out_fan_in, kFanOut)) == expected); }
}

// Many threads may submit at once, more than have a queue of their own, and a thread may
// exit and leave its submitted tasks behind: every task runs.
TEST_CASE("submits from many threads") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  constexpr int kThreads = 80;
  constexpr int kPerThread = 100;
  std::vector<std::int64_t> sums(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&sums, t] {
      std::vector<lumen::ObjectRef<std::int64_t>> refs;
      for (int i = 0; i < kPerThread; ++i) refs.push_back(lumen::submit([](std::int64_t x) { return x; }, std::int64_t{i}));
      for (const auto& r : refs) sums[static_cast<std::size_t>(t)] += lumen::get(r);
    });
  }
  for (auto& th : threads) th.join();
  for (std::int64_t s : sums) CHECK(s == kPerThread * (kPerThread - 1) / 2);

  // Submitted, then the thread is gone before anything ran.
  std::vector<lumen::ObjectRef<int>> left_behind;
  std::thread submitter([&left_behind] {
    for (int i = 0; i < 1000; ++i) left_behind.push_back(lumen::submit([i] { return i; }));
  });
  submitter.join();
  lumen::wait(left_behind, left_behind.size());
  for (int i = 0; i < 1000; ++i) CHECK(lumen::get(left_behind[static_cast<std::size_t>(i)]) == i);
}

// Move-only arguments, callables and results work.
TEST_CASE("move-only arguments and results") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto r = lumen::submit([](std::unique_ptr<int> p) { return *p + 1; }, std::make_unique<int>(41));
  CHECK(lumen::get(r) == 42);

  auto owner = std::make_unique<int>(7);
  auto by_capture = lumen::submit([p = std::move(owner)] { return *p; });  // move-only callable
  CHECK(lumen::get(by_capture) == 7);

  // The last ref to a move-only result gives it away.
  auto made = lumen::submit([] { return std::make_unique<std::string>("moved out"); });
  std::unique_ptr<std::string> out = lumen::get(std::move(made));
  REQUIRE(out != nullptr);
  CHECK(*out == "moved out");

  // A move-only value produced by one task can be read in place by another.
  auto source = lumen::submit([] { return std::make_unique<int>(5); });
  auto reader = lumen::submit([](const std::unique_ptr<int>& p) { return *p * 2; }, source);
  CHECK(lumen::get(reader) == 10);
}
