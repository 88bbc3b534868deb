// ObjectRef<T>: put/get, zero-copy reads, ids, copy and move, ObjectRef<void>, get of many
// refs, get with a timeout.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include "gate.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

template <>
struct doctest::StringMaker<lumen::ObjectId> {
  static doctest::String convert(lumen::ObjectId id) {
    return ("ObjectId{index " + std::to_string(id.index()) + ", generation " + std::to_string(id.generation()) + "}")
        .c_str();
  }
};

namespace {

// Counts live instances, to see exactly when the table destroys a value.
struct Tracked {
  static inline std::atomic<int> alive{0};
  int value;
  explicit Tracked(int v) : value(v) { ++alive; }
  Tracked(const Tracked& o) : value(o.value) { ++alive; }
  Tracked(Tracked&& o) noexcept : value(o.value) { ++alive; }
  ~Tracked() { --alive; }
};

}  // namespace

// Must stay the first test of this file: it owns the first object the process creates.
// The id of a live object is never the id an empty ref reports.
TEST_CASE("a live object's id differs from an empty ref's id") {
  auto first = lumen::put(1);
  auto second = lumen::put(2);
  const lumen::ObjectId none = lumen::ObjectRef<int>{}.id();
  CHECK(first.id() != none);
  CHECK(second.id() != none);
}

// put moves the value into the table and get reads it in place: one address for every read.
TEST_CASE("put/get is zero-copy") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::vector<int> v(1000, 7);
  const int* data = v.data();
  auto p = lumen::put(std::move(v));
  const std::vector<int>& a = lumen::get(p);
  const std::vector<int>& b = lumen::get(p);
  CHECK(&a == &b);
  CHECK(a.data() == data);  // moved in, not copied
  CHECK(a.size() == 1000);
  CHECK(a[999] == 7);

  auto q = p;  // a copy names the same object
  CHECK(&lumen::get(q) == &a);

  // Small values live inside the table's entry; still one address.
  auto small = lumen::put(42);
  CHECK(&lumen::get(small) == &lumen::get(small));
  auto small_copy = small;
  CHECK(&lumen::get(small_copy) == &lumen::get(small));
  CHECK(lumen::get(small) == 42);

  // A task's result is read in place as well.
  auto r = lumen::submit([] { return std::string(100, 'x'); });
  const std::string& s1 = lumen::get(r);
  auto r2 = r;
  CHECK(&lumen::get(r2) == &s1);
  CHECK(s1 == std::string(100, 'x'));
}

// Values of every size and alignment come back intact and stay at one address: small ones
// live in the table's entry, bigger or over-aligned ones in an allocation of their own.
TEST_CASE("values of any size and alignment") {
  struct Sixteen {
    std::uint64_t a, b;
  };
  struct Seventeen {
    std::uint64_t a, b;
    char c;
  };
  struct alignas(64) Aligned {
    int v;
  };
  struct Empty {};
  lumen::Runtime rt{lumen::Config{.workers = 1}};

  auto s16 = lumen::put(Sixteen{1, 2});
  auto s17 = lumen::put(Seventeen{3, 4, 'x'});
  auto al = lumen::put(Aligned{7});
  auto empty = lumen::put(Empty{});
  auto from_task = lumen::submit([] { return Aligned{9}; });
  CHECK(lumen::get(s16).b == 2);
  CHECK(lumen::get(s17).c == 'x');
  CHECK(&lumen::get(s17) == &lumen::get(s17));
  CHECK(lumen::get(al).v == 7);
  CHECK(reinterpret_cast<std::uintptr_t>(&lumen::get(al)) % 64 == 0);
  CHECK(lumen::get(from_task).v == 9);
  CHECK(reinterpret_cast<std::uintptr_t>(&lumen::get(from_task)) % 64 == 0);
  lumen::get(empty);
  CHECK(empty.ready());
}

// get on a temporary ref returns by value, not a reference that would dangle.
TEST_CASE("get on a temporary ref returns by value") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  static_assert(std::is_same_v<decltype(lumen::get(lumen::put(1))), int>);
  static_assert(std::is_same_v<decltype(lumen::get(std::declval<const lumen::ObjectRef<int>&>())), const int&>);
  static_assert(std::is_same_v<decltype(lumen::get(lumen::put(1), 1s)), int>);

  CHECK(lumen::get(lumen::put(std::string("temp"))) == "temp");
  CHECK(lumen::get(lumen::submit([] { return 5; })) == 5);

  // While other refs exist, the value is copied and the object keeps its value.
  auto p = lumen::put(std::vector<int>(100, 1));
  auto q = p;
  std::vector<int> copy = lumen::get(std::move(q));
  CHECK(copy.size() == 100);
  CHECK(lumen::get(p).size() == 100);
  CHECK(copy.data() != lumen::get(p).data());

  // The last ref may give its value away: moved out, no copy.
  auto last = lumen::put(std::vector<int>(100, 2));
  const int* data = lumen::get(last).data();
  std::vector<int> moved = lumen::get(std::move(last));
  CHECK(moved.data() == data);
  CHECK(moved.size() == 100);
}

// get on a default-constructed or moved-from ref throws usage_error, a lumen::error.
TEST_CASE("get on an empty ref throws usage_error") {
  static_assert(std::is_base_of_v<lumen::error, lumen::usage_error>);
  static_assert(std::is_base_of_v<lumen::error, lumen::timeout_error>);
  static_assert(std::is_base_of_v<lumen::error, lumen::shutdown_error>);
  static_assert(std::is_base_of_v<lumen::error, lumen::task_error>);
  lumen::Runtime rt{lumen::Config{.workers = 1}};

  lumen::ObjectRef<int> empty;
  CHECK_FALSE(empty.valid());
  CHECK_FALSE(static_cast<bool>(empty));
  CHECK_FALSE(empty.ready());
  CHECK_THROWS_AS(lumen::get(empty), lumen::usage_error);
  CHECK_THROWS_AS(lumen::get(empty), lumen::error);
  CHECK_THROWS_AS(lumen::get(empty, 10ms), lumen::usage_error);
  CHECK_THROWS_AS(lumen::get(lumen::ObjectRef<int>{}), lumen::usage_error);
  CHECK_THROWS_AS(lumen::get(lumen::ObjectRef<void>{}), lumen::usage_error);

  auto p = lumen::put(1);
  auto q = std::move(p);
  CHECK_THROWS_AS(lumen::get(p), lumen::usage_error);  // NOLINT(bugprone-use-after-move)
  CHECK(lumen::get(q) == 1);

  std::vector<lumen::ObjectRef<int>> refs{lumen::put(1), lumen::ObjectRef<int>{}};
  CHECK_THROWS_AS(lumen::get(refs), lumen::usage_error);
}

// id() is the same on every call and on every copy, and differs between live objects.
TEST_CASE("ids are stable and distinct among live objects") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 500; ++i) refs.push_back(lumen::put(i));
  for (int i = 0; i < 500; ++i) refs.push_back(lumen::submit([i] { return i; }));
  std::set<std::uint64_t> ids;
  for (auto& r : refs) {
    const lumen::ObjectId id = r.id();
    CHECK(r.id() == id);
    auto copy = r;
    CHECK(copy.id() == id);
    lumen::get(r);  // resolving the object does not change its id
    CHECK(r.id() == id);
    ids.insert(id.value);
  }
  CHECK(ids.size() == refs.size());
}

// Copies share one object; moves transfer it; the value is destroyed with the last ref.
TEST_CASE("copy and move semantics") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  const int before = Tracked::alive.load();
  {
    auto a = lumen::put(Tracked(5));
    CHECK(Tracked::alive.load() == before + 1);  // the temporary is gone, the table's copy lives
    auto b = a;                                   // copy: same object
    CHECK(b == a);
    CHECK(b.id() == a.id());
    CHECK(&lumen::get(b) == &lumen::get(a));

    auto c = std::move(a);  // move: a is empty, c owns the object
    CHECK_FALSE(a.valid());  // NOLINT(bugprone-use-after-move)
    CHECK(c.valid());
    CHECK(c == b);

    lumen::ObjectRef<Tracked> d;
    d = c;  // copy assignment
    CHECK(d == c);
    lumen::ObjectRef<Tracked> e;
    e = std::move(d);  // move assignment
    CHECK_FALSE(d.valid());  // NOLINT(bugprone-use-after-move)
    CHECK(e == c);
    e = e;  // self-assignment keeps the object
    CHECK(e.valid());
    CHECK(lumen::get(e).value == 5);

    b.reset();
    c.reset();
    CHECK(Tracked::alive.load() == before + 1);  // e still holds it
    CHECK(lumen::get(e).value == 5);

    // Assigning another object over the last ref frees the old one.
    e = lumen::put(Tracked(6));
    CHECK(Tracked::alive.load() == before + 1);
    CHECK(lumen::get(e).value == 6);
  }
  CHECK(Tracked::alive.load() == before);

  // Distinct objects compare unequal even with equal values.
  auto x = lumen::put(1);
  auto y = lumen::put(1);
  CHECK_FALSE(x == y);
}

// A task that returns nothing gives an ObjectRef<void> one can wait on.
TEST_CASE("ObjectRef<void>") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::atomic<int> done{0};
  lumen::ObjectRef<void> r = lumen::submit([&] { done.fetch_add(1); });
  static_assert(std::is_same_v<decltype(r), lumen::ObjectRef<void>>);
  lumen::get(r);
  CHECK(r.ready());
  CHECK(done.load() == 1);

  std::vector<lumen::ObjectRef<void>> all;
  for (int i = 0; i < 100; ++i) all.push_back(lumen::submit([&] { done.fetch_add(1); }));
  lumen::get(all);
  CHECK(done.load() == 101);

  // A void ref can be a dependency when the parameter is declared as the ref.
  auto after = lumen::submit([&](lumen::ObjectRef<void> dep) { return dep.ready() ? done.load() : -1; }, r);
  CHECK(lumen::get(after) == 101);

  Gate gate;
  auto pending = lumen::submit([](int) {}, gate.ref);
  CHECK_THROWS_AS(lumen::get(pending, 20ms), lumen::timeout_error);
  gate.open(1);
  lumen::get(pending, 10s);
  CHECK(pending.ready());
}

// get(vector) returns the values in the order of the refs, whatever order they finish in.
TEST_CASE("get of a vector of refs keeps their order") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  Gate gate;
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 200; ++i) {
    if (i % 2 == 0) {
      refs.push_back(lumen::submit([i](int) { return i; }, gate.ref));  // finish last
    } else if (i % 3 == 0) {
      refs.push_back(lumen::put(i));
    } else {
      refs.push_back(lumen::submit([i] { return i; }));
    }
  }
  gate.open(0);
  std::vector<int> values = lumen::get(refs);
  REQUIRE(values.size() == 200);
  for (int i = 0; i < 200; ++i) CHECK(values[static_cast<std::size_t>(i)] == i);

  // A failed element rethrows its exception.
  refs.push_back(lumen::submit([]() -> int { throw std::logic_error("bad element"); }));
  CHECK_THROWS_AS(lumen::get(refs), std::logic_error);
}

// get with a timeout throws timeout_error while the object is pending and returns once ready.
TEST_CASE("get with a timeout") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  Gate gate;
  auto dependent = lumen::submit([](int x) { return x * 2; }, gate.ref);

  CHECK_THROWS_AS(lumen::get(gate.ref, 20ms), lumen::timeout_error);
  CHECK_THROWS_AS(lumen::get(dependent, 1ms), lumen::timeout_error);
  CHECK_THROWS_AS(lumen::get(dependent, 0ms), lumen::timeout_error);
  CHECK_THROWS_AS(lumen::get(lumen::ObjectRef<int>(dependent), 5ms), lumen::timeout_error);
  CHECK_FALSE(dependent.ready());

  // Inside a task the wait parks the fiber and a timer ends it.
  auto in_task = lumen::submit([](lumen::ObjectRef<int> r) {
    try {
      lumen::get(r, 20ms);
      return 1;
    } catch (const lumen::timeout_error&) {
      return 0;
    }
  }, lumen::put(0));
  CHECK(lumen::get(in_task) == 1);  // ready: no timeout
  auto in_task_pending = lumen::submit([d = dependent] {
    try {
      lumen::get(d, 20ms);
      return 1;
    } catch (const lumen::timeout_error&) {
      return 0;
    }
  });
  CHECK(lumen::get(in_task_pending) == 0);

  gate.open(21);
  CHECK(lumen::get(dependent, 10s) == 42);
  CHECK(lumen::get(gate.ref, 0ms) == 21);  // ready: a zero timeout is enough
  CHECK(lumen::get(lumen::ObjectRef<int>(dependent), 0ms) == 42);

  // A failed object rethrows its own error, not timeout_error.
  auto bad = lumen::submit([]() -> int { throw std::out_of_range("gone"); });
  CHECK_THROWS_AS(lumen::get(bad, 10s), std::out_of_range);
}

// get on an rvalue that is the object's last ref moves the value out and empties the ref, so
// the moved-from value can never be read again; with other refs around it copies instead.
TEST_CASE("get on the last ref moves the value out and empties the ref") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto t = lumen::put(std::vector<int>(1000, 7));
  std::vector<int> v = lumen::get(std::move(t));
  CHECK(v.size() == 1000);
  CHECK_FALSE(t.valid());  // NOLINT(bugprone-use-after-move): the point of the test
  CHECK_THROWS_AS(lumen::get(t), lumen::usage_error);
  CHECK_THROWS_AS(lumen::submit([](const std::vector<int>&) {}, t), lumen::usage_error);

  auto shared = lumen::put(std::vector<int>(10, 3));
  auto other = shared;
  std::vector<int> copy = lumen::get(std::move(shared));
  CHECK(copy.size() == 10);
  CHECK(shared.valid());  // NOLINT(bugprone-use-after-move)
  CHECK(lumen::get(other).size() == 10);
  CHECK(lumen::get(shared).size() == 10);

  // A task result, got through its last ref.
  auto r = lumen::submit([] { return std::string(100, 'x'); });
  std::string s = lumen::get(std::move(r));
  CHECK(s.size() == 100);
  CHECK_FALSE(r.valid());  // NOLINT(bugprone-use-after-move)
}
