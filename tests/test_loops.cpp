// Parallel loops: parallel_for, parallel_for_each, parallel_reduce (adaptive, grain,
// deterministic), parallel_scan, parallel_exclusive_scan, parallel_sort, parallel_invoke.
// Each against the serial result on sizes 0, 1, 2, primes and large; exceptions; nesting in
// tasks and in each other; from the main thread and inside tasks; on one and on two workers.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr unsigned kWorkerCounts[] = {1, 2};

#ifdef LUMEN_TEST_SANITIZED
constexpr std::size_t kLarge = 200'003;
#else
constexpr std::size_t kLarge = 3'000'017;
#endif
const std::size_t kSizes[] = {0, 1, 2, 3, 7, 31, 1021, 65'537, kLarge};

// Runs f on the main thread and inside a task, on one and on two workers.
template <class F>
void everywhere(F f) {
  for (unsigned workers : kWorkerCounts) {
    for (bool in_task : {false, true}) {
      CAPTURE(workers);
      CAPTURE(in_task);
      lumen::Runtime rt{lumen::Config{.workers = workers}};
      if (in_task) {
        lumen::get(lumen::submit(f));
      } else {
        f();
      }
    }
  }
}

struct Boom : std::runtime_error {
  explicit Boom(std::size_t i) : std::runtime_error("boom"), index(i) {}
  std::size_t index;
};

std::vector<std::int64_t> random_values(std::size_t n, std::uint64_t seed, std::int64_t range) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int64_t> dist(-range, range);
  std::vector<std::int64_t> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Busy work of uneven length, so that pieces run long enough for thieves to take some.
std::uint64_t spin(std::size_t i) {
  std::uint64_t x = i + 1;
  for (std::size_t k = 0; k < (i % 7) * 8; ++k) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}

}  // namespace

// Every index runs exactly once, in the index form, the chunk form and with a grain.
TEST_CASE("parallel_for covers every index once") {
  everywhere([] {
    for (std::size_t n : kSizes) {
      CAPTURE(n);
      std::vector<std::atomic<std::uint8_t>> hits(n);
      lumen::parallel_for(0, n, [&](std::size_t i) { hits[i].fetch_add(1, std::memory_order_relaxed); });
      std::size_t ok = 0;
      for (auto& h : hits) ok += h.exchange(0) == 1;
      CHECK(ok == n);

      std::atomic<std::size_t> chunks_bad{0};
      lumen::parallel_for(0, n, lumen::grain(100), [&](std::size_t lo, std::size_t hi) {
        if (hi <= lo || hi - lo > 100) chunks_bad.fetch_add(1);
        for (std::size_t i = lo; i < hi; ++i) hits[i].fetch_add(1, std::memory_order_relaxed);
      });
      CHECK(chunks_bad.load() == 0);
      ok = 0;
      for (auto& h : hits) ok += h.exchange(0) == 1;
      CHECK(ok == n);

      lumen::parallel_for(std::size_t{0}, n, [&](std::size_t lo, std::size_t hi) {
        for (std::size_t i = lo; i < hi; ++i) hits[i].fetch_add(1, std::memory_order_relaxed);
      });
      ok = 0;
      for (auto& h : hits) ok += h.exchange(0) == 1;
      CHECK(ok == n);
    }
  });
}

// int and size_t bounds give size_t indices; signed ranges across zero; reverse and empty.
TEST_CASE("parallel_for index types and empty ranges") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::vector<int> v(1000, 0);
  lumen::parallel_for(0, v.size(), [&](auto i) {
    static_assert(std::is_same_v<decltype(i), std::size_t>);
    v[i] = static_cast<int>(i);
  });
  for (std::size_t i = 0; i < v.size(); ++i) CHECK(v[i] == static_cast<int>(i));

  std::atomic<long> sum{0};
  lumen::parallel_for(-500, 501, [&](int i) { sum.fetch_add(i); });
  CHECK(sum.load() == 0);
  std::atomic<long> count{0};
  lumen::parallel_for(static_cast<std::int8_t>(-128), 127, [&](int) { count.fetch_add(1); });
  CHECK(count.load() == 255);

  std::atomic<int> ran{0};
  lumen::parallel_for(10, 3, [&](int) { ran.fetch_add(1); });
  lumen::parallel_for(5, 5, [&](int) { ran.fetch_add(1); });
  lumen::parallel_for(std::size_t{10}, 3, lumen::grain(4), [&](std::size_t, std::size_t) { ran.fetch_add(1); });
  CHECK(ran.load() == 0);
}

TEST_CASE("parallel_for_each visits every element once") {
  everywhere([] {
    for (std::size_t n : kSizes) {
      CAPTURE(n);
      std::vector<std::uint64_t> items(n);
      std::iota(items.begin(), items.end(), 0);
      lumen::parallel_for_each(items.begin(), items.end(), [](std::uint64_t& x) { x = x * 3 + 1; });
      std::size_t ok = 0;
      for (std::size_t i = 0; i < n; ++i) ok += items[i] == i * 3 + 1;
      CHECK(ok == n);
    }
    std::vector<int> none;
    lumen::parallel_for_each(none.begin(), none.end(), [](int&) { FAIL("ran on an empty range"); });
  });
}

// An exception from one index reaches the caller with its type, and the loop returns.
TEST_CASE("parallel_for propagates the first exception") {
  everywhere([] {
    for (std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{1021}, kLarge}) {
      for (std::size_t bad : {std::size_t{0}, n / 2, n - 1}) {
        CAPTURE(n);
        CAPTURE(bad);
        std::atomic<std::size_t> ran{0};
        try {
          lumen::parallel_for(0, n, [&](std::size_t i) {
            if (i == bad) throw Boom(i);
            ran.fetch_add(1, std::memory_order_relaxed);
          });
          FAIL("no exception");
        } catch (const Boom& e) {
          CHECK(e.index == bad);
        }
        CHECK(ran.load() < n);
      }
    }
    // Other chunks are cancelled: with every index throwing, only a few of them start.
    std::atomic<std::size_t> started{0};
    CHECK_THROWS_AS(lumen::parallel_for(0, kLarge, lumen::grain(1000),
                                        [&](std::size_t, std::size_t) {
                                          started.fetch_add(1);
                                          throw std::out_of_range("x");
                                        }),
                    std::out_of_range);
    CHECK(started.load() < kLarge / 1000);
  });
}

TEST_CASE("parallel_reduce equals the serial fold") {
  everywhere([] {
    for (std::size_t n : kSizes) {
      CAPTURE(n);
      std::uint64_t expect = 0;
      for (std::size_t i = 0; i < n; ++i) expect += spin(i);
      auto map = [](std::size_t i) { return spin(i); };
      CHECK(lumen::parallel_reduce(0, n, std::uint64_t{0}, map, std::plus<>{}) == expect);
      CHECK(lumen::parallel_reduce(0, n, std::uint64_t{0}, map, std::plus<>{}, lumen::grain(64)) == expect);
      CHECK(lumen::parallel_reduce(0, n, std::uint64_t{0}, map, std::plus<>{}, lumen::deterministic{}) == expect);
      CHECK(lumen::parallel_reduce(0, n, std::uint64_t{0}, map, std::plus<>{}, lumen::deterministic{.grain = 10}) ==
            expect);
    }
    // An empty or reversed range gives the identity.
    CHECK(lumen::parallel_reduce(7, 3, 42, [](int i) { return i; }, std::plus<>{}) == 42);
    CHECK(lumen::parallel_reduce(-100, 101, 0L, [](long i) { return i; }, std::plus<>{}) == 0);
  });
}

// Combination keeps index order: concatenation is associative but not commutative.
TEST_CASE("parallel_reduce keeps index order") {
  everywhere([] {
    const std::size_t n = 20'000;
    std::string expect;
    for (std::size_t i = 0; i < n; ++i) expect += static_cast<char>('a' + i % 26);
    auto map = [](std::size_t i) {
      [[maybe_unused]] volatile std::uint64_t busy = spin(i);
      return std::string(1, static_cast<char>('a' + i % 26));
    };
    auto cat = [](std::string a, const std::string& b) { return a + b; };
    CHECK(lumen::parallel_reduce(0, n, std::string{}, map, cat) == expect);
    CHECK(lumen::parallel_reduce(0, n, std::string{}, map, cat, lumen::grain(7)) == expect);
    CHECK(lumen::parallel_reduce(0, n, std::string{}, map, cat, lumen::deterministic{}) == expect);
  });
}

// The deterministic reduction gives the same bits on one worker, two workers, and every run;
// its tree is fixed, so it also equals a serial evaluation of that tree.
TEST_CASE("deterministic reduce is bit-identical across runs and worker counts") {
  const std::size_t n = kLarge;
  std::vector<double> x(n);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> dist(-1e6, 1e6);
  for (auto& v : x) v = dist(rng) * std::pow(10.0, static_cast<double>(rng() % 20) - 10);
  auto map = [&](std::size_t i) { return x[i]; };
  const std::size_t grain = (n + 2047) / 2048;
  std::function<double(std::size_t, std::size_t)> tree = [&](std::size_t lo, std::size_t hi) {
    if (hi - lo <= grain) {
      double s = 0;
      for (std::size_t i = lo; i < hi; ++i) s += x[i];
      return s;
    }
    std::size_t mid = lo + (hi - lo) / 2;
    double left = tree(lo, mid);
    return left + tree(mid, hi);
  };
  const double expect = tree(0, n);
  double serial = 0;
  for (double v : x) serial += v;
  CHECK(serial != expect);  // otherwise this test could not tell the orders apart

  for (unsigned workers : kWorkerCounts) {
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    for (int run = 0; run < 5; ++run) {
      double got = lumen::parallel_reduce(0, n, 0.0, map, std::plus<>{}, lumen::deterministic{});
      CHECK(std::memcmp(&got, &expect, sizeof got) == 0);
    }
  }
}

TEST_CASE("parallel_reduce propagates the first exception") {
  everywhere([] {
    for (std::size_t n : {std::size_t{1}, std::size_t{1021}, kLarge}) {
      CAPTURE(n);
      auto map = [n](std::size_t i) -> double {
        if (i == n / 3) throw Boom(i);
        return 1.0;
      };
      CHECK_THROWS_AS(lumen::parallel_reduce(0, n, 0.0, map, std::plus<>{}), Boom);
      CHECK_THROWS_AS(lumen::parallel_reduce(0, n, 0.0, map, std::plus<>{}, lumen::grain(16)), Boom);
      CHECK_THROWS_AS(lumen::parallel_reduce(0, n, 0.0, map, std::plus<>{}, lumen::deterministic{}), Boom);
    }
  });
}

// A deterministic reduction over a huge range with a tiny grain has billions of tree nodes:
// after the first exception the rest of the tree is abandoned, not walked leaf by leaf.
TEST_CASE("deterministic parallel_reduce stops splitting after an exception") {
  everywhere([] {
    std::atomic<std::uint64_t> calls{0};
    auto map = [&calls](std::uint64_t i) -> std::uint64_t {
      calls.fetch_add(1);
      if (i == 0) throw Boom(0);
      return 1;
    };
    CHECK_THROWS_AS(lumen::parallel_reduce(std::uint64_t{0}, std::uint64_t{1} << 40, std::uint64_t{0}, map,
                                           std::plus<>{}, lumen::deterministic{.grain = 1}),
                    Boom);
    CHECK(calls.load() < 1'000'000);
  });
}

// The default leaf size is computed without overflow for ranges near 2^64 (it once wrapped to
// zero and recursed on one-element ranges until the stack overflowed).
TEST_CASE("deterministic parallel_reduce over a range near 2^64") {
  everywhere([] {
    std::atomic<std::uint64_t> calls{0};
    auto map = [&calls](std::uint64_t i) -> std::uint64_t {
      if (calls.fetch_add(1) >= 100) throw Boom(i);
      return 1;
    };
    CHECK_THROWS_AS(lumen::parallel_reduce(std::uint64_t{0}, UINT64_MAX, std::uint64_t{0}, map, std::plus<>{},
                                           lumen::deterministic{}),
                    Boom);
  });
}

TEST_CASE("parallel_scan and parallel_exclusive_scan equal the serial scans") {
  everywhere([] {
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{16'383},
                          std::size_t{16'384}, std::size_t{16'385}, std::size_t{100'003}, kLarge}) {
      CAPTURE(n);
      auto in = random_values(n, n, 1'000'000);
      std::vector<std::int64_t> expect(n), out(n, -1);
      std::inclusive_scan(in.begin(), in.end(), expect.begin(), std::plus<>{}, std::int64_t{5});
      lumen::parallel_scan(in.begin(), in.end(), out.begin(), std::int64_t{5}, std::plus<>{});
      CHECK(out == expect);

      std::exclusive_scan(in.begin(), in.end(), expect.begin(), std::int64_t{5});
      lumen::parallel_exclusive_scan(in.begin(), in.end(), out.begin(), std::int64_t{5}, std::plus<>{});
      CHECK(out == expect);

      // In place, and from int to a wider type.
      std::vector<std::int64_t> inplace = in;
      lumen::parallel_exclusive_scan(inplace.begin(), inplace.end(), inplace.begin(), std::int64_t{5}, std::plus<>{});
      CHECK(inplace == expect);
      std::vector<int> small(n);
      for (std::size_t i = 0; i < n; ++i) small[i] = static_cast<int>(in[i] % 1000);
      std::vector<long> wide(n), wide_expect(n);
      std::inclusive_scan(small.begin(), small.end(), wide_expect.begin(), std::plus<>{}, 0L);
      lumen::parallel_scan(small.begin(), small.end(), wide.begin(), 0L, std::plus<>{});
      CHECK(wide == wide_expect);
    }
  });
}

// Order matters to the operation: a 2x2 matrix product is associative, not commutative.
TEST_CASE("parallel_scan keeps order for a non-commutative operation") {
  using M = std::array<std::uint64_t, 4>;
  auto mul = [](const M& a, const M& b) {
    return M{a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3], a[2] * b[0] + a[3] * b[2],
             a[2] * b[1] + a[3] * b[3]};
  };
  const std::size_t n = 100'003;
  std::vector<M> in(n);
  for (std::size_t i = 0; i < n; ++i) in[i] = M{1, i % 5, i % 3, 1};
  std::vector<M> expect(n), out(n);
  std::inclusive_scan(in.begin(), in.end(), expect.begin(), mul, M{1, 0, 0, 1});
  everywhere([&] {
    std::fill(out.begin(), out.end(), M{});
    lumen::parallel_scan(in.begin(), in.end(), out.begin(), M{1, 0, 0, 1}, mul);
    CHECK(out == expect);
  });
}

TEST_CASE("parallel_scan propagates the first exception") {
  everywhere([] {
    const std::size_t n = kLarge;
    std::vector<int> in(n, 1), out(n);
    auto op = [n](long a, long b) {
      if (a == static_cast<long>(n / 2)) throw Boom(static_cast<std::size_t>(a));
      return a + b;
    };
    CHECK_THROWS_AS(lumen::parallel_scan(in.begin(), in.end(), out.begin(), 0L, op), Boom);
    CHECK_THROWS_AS(lumen::parallel_exclusive_scan(in.begin(), in.end(), out.begin(), 0L, op), Boom);
  });
}

TEST_CASE("parallel_sort sorts") {
  everywhere([] {
    for (std::size_t n : kSizes) {
      CAPTURE(n);
      auto v = random_values(n, n + 1, 1'000'000'000);
      auto expect = v;
      std::sort(expect.begin(), expect.end());
      lumen::parallel_sort(v.begin(), v.end());
      CHECK(v == expect);

      // Few distinct values, sorted, reversed, with a comparator.
      auto dup = random_values(n, n + 2, 3);
      auto dup_expect = dup;
      std::sort(dup_expect.begin(), dup_expect.end(), std::greater<>{});
      lumen::parallel_sort(dup.begin(), dup.end(), std::greater<>{});
      CHECK(dup == dup_expect);
      lumen::parallel_sort(dup.begin(), dup.end());
      std::reverse(dup_expect.begin(), dup_expect.end());
      CHECK(dup == dup_expect);
      lumen::parallel_sort(dup.begin(), dup.end());
      CHECK(dup == dup_expect);
    }
  });
}

// A key-only comparator on records: every record is kept, keys come out in order.
TEST_CASE("parallel_sort with a comparator on records") {
  struct Rec {
    int key;
    std::size_t id;
  };
  everywhere([] {
    const std::size_t n = 300'007;
    std::vector<Rec> v(n);
    std::mt19937 rng(3);
    for (std::size_t i = 0; i < n; ++i) v[i] = Rec{static_cast<int>(rng() % 1000), i};
    lumen::parallel_sort(v.begin(), v.end(), [](const Rec& a, const Rec& b) { return a.key < b.key; });
    CHECK(std::is_sorted(v.begin(), v.end(), [](const Rec& a, const Rec& b) { return a.key < b.key; }));
    std::vector<char> seen(n, 0);
    for (const Rec& r : v) seen[r.id] = 1;
    CHECK(std::count(seen.begin(), seen.end(), 1) == static_cast<long>(n));
  });
}

// Inputs that trip simple quicksorts: each comes out sorted, with every element kept.
TEST_CASE("parallel_sort sorts patterned inputs") {
  everywhere([] {
    const std::size_t n = 100'003;
    std::vector<std::pair<const char*, std::vector<std::int64_t>>> inputs;
    std::vector<std::int64_t> v(n);
    std::iota(v.begin(), v.end(), 0);
    inputs.emplace_back("sorted", v);
    inputs.emplace_back("reversed", std::vector<std::int64_t>(v.rbegin(), v.rend()));
    inputs.emplace_back("all equal", std::vector<std::int64_t>(n, 5));
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::int64_t>(std::min(i, n - i));
    inputs.emplace_back("organ pipe", v);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::int64_t>(i % 1000);
    inputs.emplace_back("sawtooth", v);
    std::iota(v.begin(), v.end(), 0);
    std::mt19937 rng(7);
    for (int k = 0; k < 100; ++k) std::swap(v[rng() % n], v[rng() % n]);
    inputs.emplace_back("sorted with 100 swaps", v);
    for (std::size_t i = 0; i < n; ++i) v[i] = (i % 2 == 0) ? static_cast<std::int64_t>(i) : -static_cast<std::int64_t>(i);
    inputs.emplace_back("interleaved", v);
    for (auto& [name, in] : inputs) {
      CAPTURE(name);
      auto expect = in;
      std::sort(expect.begin(), expect.end());
      lumen::parallel_sort(in.begin(), in.end());
      CHECK(in == expect);
    }
  });
}

// McIlroy's adversary ("A Killer Adversary for Quicksort", 1999) decides the order of items
// only as the sort compares them, so that every pivot is as bad as it can be: a quicksort
// without a fallback makes about n^2/4 comparisons. parallel_sort must stay within a
// multiple of n log n.
TEST_CASE("parallel_sort stays O(n log n) against an adversarial comparator") {
  everywhere([] {
    const int n = 20'000;
    const int gas = n;  // not yet decided; equal to every other undecided item
    std::vector<int> val(n, gas);
    int solid = 0;
    int candidate = -1;
    std::uint64_t comparisons = 0;
    std::mutex m;
    auto comp = [&](int x, int y) {
      std::lock_guard lock(m);
      ++comparisons;
      if (val[x] == gas && val[y] == gas) val[x == candidate ? x : y] = solid++;
      if (val[x] == gas) candidate = x;
      else if (val[y] == gas) candidate = y;
      return val[x] < val[y];
    };
    std::vector<int> items(n);
    std::iota(items.begin(), items.end(), 0);
    lumen::parallel_sort(items.begin(), items.end(), comp);
    CHECK(std::is_sorted(items.begin(), items.end(), [&](int x, int y) { return val[x] < val[y]; }));
    std::vector<int> ids = items;
    std::sort(ids.begin(), ids.end());
    for (int i = 0; i < n; ++i) REQUIRE(ids[static_cast<std::size_t>(i)] == i);
    const double bound = 8.0 * n * std::log2(static_cast<double>(n));
    CAPTURE(comparisons);
    CHECK(static_cast<double>(comparisons) < bound);
  });
}

TEST_CASE("parallel_sort propagates the comparator's exception") {
  everywhere([] {
    auto v = random_values(kLarge, 11, 1'000'000);
    std::atomic<std::size_t> calls{0};
    auto comp = [&](std::int64_t a, std::int64_t b) {
      if (calls.fetch_add(1, std::memory_order_relaxed) == 100'000) throw Boom(0);
      return a < b;
    };
    CHECK_THROWS_AS(lumen::parallel_sort(v.begin(), v.end(), comp), Boom);
  });
}

TEST_CASE("parallel_invoke runs every callable") {
  everywhere([] {
    std::atomic<int> mask{0};
    lumen::parallel_invoke([&] { mask.fetch_or(1); });
    lumen::parallel_invoke([&] { mask.fetch_or(2); }, [&] { mask.fetch_or(4); }, [&] { mask.fetch_or(8); });
    CHECK(mask.load() == 15);
    for (int thrower = 0; thrower < 3; ++thrower) {
      CAPTURE(thrower);
      std::atomic<int> ran{0};
      auto part = [&](int k) {
        if (k == thrower) throw Boom(static_cast<std::size_t>(k));
        ran.fetch_add(1);
      };
      try {
        lumen::parallel_invoke([&] { part(0); }, [&] { part(1); }, [&] { part(2); });
        FAIL("no exception");
      } catch (const Boom& e) {
        CHECK(e.index == static_cast<std::size_t>(thrower));
      }
      CHECK(ran.load() <= 2);
    }
  });
}

// Loops inside loops inside tasks, and every algorithm inside parallel_invoke: results are
// right and nothing hangs, on one worker as on two.
TEST_CASE("algorithms nest in each other and in tasks") {
  everywhere([] {
    const std::size_t outer = 200;
    const std::size_t inner = 300;
    std::vector<std::uint64_t> row(outer);
    lumen::parallel_for(0, outer, [&](std::size_t i) {
      row[i] = lumen::parallel_reduce(0, inner, std::uint64_t{0}, [i](std::size_t j) { return i * j; }, std::plus<>{});
    });
    for (std::size_t i = 0; i < outer; ++i) CHECK(row[i] == i * (inner * (inner - 1) / 2));

    std::vector<lumen::ObjectRef<std::uint64_t>> refs;
    for (int t = 0; t < 8; ++t)
      refs.push_back(lumen::submit([t] {
        // Each branch writes its own result: the two may run at once on different workers.
        std::uint64_t sorted = 0;
        std::uint64_t scanned = 0;
        lumen::parallel_invoke(
            [&] {
              auto v = random_values(50'000, static_cast<std::uint64_t>(t), 1000);
              lumen::parallel_sort(v.begin(), v.end());
              sorted = std::is_sorted(v.begin(), v.end()) ? 1 : 0;
            },
            [&] {
              std::vector<int> in(40'000, 1), out(40'000);
              lumen::parallel_scan(in.begin(), in.end(), out.begin(), 0, std::plus<>{});
              scanned = out.back() == 40'000 ? 10 : 0;
            });
        return sorted + scanned;
      }));
    for (auto& r : refs) CHECK(lumen::get(r) == 11);

    std::atomic<std::size_t> leaves{0};
    lumen::parallel_for(0, 20, [&](int) {
      lumen::parallel_for(0, 30, [&](int) { lumen::parallel_for(0, 40, [&](int) { leaves.fetch_add(1); }); });
    });
    CHECK(leaves.load() == 20 * 30 * 40);

    // An exception from an inner loop reaches the outer caller.
    CHECK_THROWS_AS(lumen::parallel_for(0, 100,
                                        [&](int i) {
                                          lumen::parallel_for(0, 100, [&](int j) {
                                            if (i == 50 && j == 50) throw Boom(0);
                                          });
                                        }),
                    Boom);
  });
}

// With two workers and bodies that take long enough, both workers run iterations.
TEST_CASE("parallel_for spreads work over the workers") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::vector<std::thread::id> who(64);
  lumen::parallel_for(0, who.size(), [&](std::size_t i) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
    while (std::chrono::steady_clock::now() < until) {
    }
    who[i] = std::this_thread::get_id();
  });
  std::sort(who.begin(), who.end());
  CHECK(std::unique(who.begin(), who.end()) - who.begin() == 2);
}

namespace {

// parallel_for over [first, last) of type T visits each index once: the count, the sum and
// the extremes of the visited indices match a serial loop.
template <class T>
void check_range_of(T first, T last) {
  INFO("type size " << sizeof(T) << ", signed " << std::is_signed_v<T> << ", [" << static_cast<long long>(first)
                    << ", " << static_cast<long long>(last) << ")");
  // Sums modulo 2^64: exact, and the same in any order.
  auto as_word = [](T i) { return static_cast<std::uint64_t>(static_cast<long long>(i)); };
  std::uint64_t expected_sum = 0;
  std::uint64_t expected_count = 0;
  for (T i = first; i < last; ++i) {
    expected_sum += as_word(i);
    ++expected_count;
  }
  std::atomic<std::uint64_t> count{0}, sum{0};
  std::mutex m;
  T lo = last, hi = first;
  lumen::parallel_for(first, last, [&](T i) {
    count.fetch_add(1);
    sum.fetch_add(as_word(i));
    std::lock_guard<std::mutex> lock(m);
    lo = std::min(lo, i);
    hi = std::max(hi, i);
  });
  CHECK(count.load() == expected_count);
  CHECK(sum.load() == expected_sum);
  if (expected_count != 0) {
    CHECK(lo == first);
    CHECK(hi == static_cast<T>(last - 1));
  }
  // Chunks cover the same indices.
  std::atomic<std::uint64_t> chunked{0};
  lumen::parallel_for(first, last, lumen::grain(7), [&](T a, T b) {
    for (T i = a; i != b; ++i) chunked.fetch_add(as_word(i));
  });
  CHECK(chunked.load() == expected_sum);
  // And parallel_reduce agrees.
  std::uint64_t reduced = lumen::parallel_reduce(first, last, std::uint64_t{0}, as_word, std::plus<std::uint64_t>());
  CHECK(reduced == expected_sum);
}

template <class T>
void check_type() {
  using L = std::numeric_limits<T>;
  check_range_of<T>(L::min(), static_cast<T>(L::min() + 200));
  check_range_of<T>(static_cast<T>(L::max() - 200), L::max());
  check_range_of<T>(L::max(), L::min());  // empty
  check_range_of<T>(static_cast<T>(L::min() + 100), static_cast<T>(L::min() + 100));
  if constexpr (std::is_signed_v<T>) {
    check_range_of<T>(static_cast<T>(-3), static_cast<T>(3));
    check_range_of<T>(static_cast<T>(-100), static_cast<T>(100));
  } else {
    check_range_of<T>(static_cast<T>(0), static_cast<T>(100));
  }
}

}  // namespace

// Every integral type, both signs, at its limits: the range size is computed in the type's
// own unsigned counterpart (no promotion to int), so short and char ranges are right too.
TEST_CASE("parallel_for and parallel_reduce over every integral type, at its limits") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  check_type<signed char>();
  check_type<unsigned char>();
  check_type<char>();
  check_type<short>();
  check_type<unsigned short>();
  check_type<int>();
  check_type<unsigned>();
  check_type<long>();
  check_type<unsigned long>();
  check_type<long long>();
  check_type<unsigned long long>();
  check_type<wchar_t>();
  check_type<char8_t>();
  check_type<char16_t>();
  check_type<char32_t>();
  // The case that used to hang: a short range across zero.
  std::atomic<int> n{0};
  lumen::parallel_for(static_cast<short>(-3), static_cast<short>(3), [&](short) { n.fetch_add(1); });
  CHECK(n.load() == 6);
}

// Bounds of mixed types compare as numbers: an empty range runs nothing whatever the types;
// a negative bound that the index type (unsigned) cannot hold is refused, not wrapped.
TEST_CASE("mixed bound types compare as numbers") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::atomic<int> ran{0};
  lumen::parallel_for(5u, -1, [&](auto) { ran.fetch_add(1); });  // 5 > -1: empty
  CHECK(ran.load() == 0);
  CHECK_THROWS_AS(lumen::parallel_for(-3, 3u, [&](auto) { ran.fetch_add(1); }), lumen::usage_error);
  CHECK_THROWS_AS(lumen::parallel_reduce(-3, std::size_t{3}, 0, [](std::size_t) { return 1; }, std::plus<>()),
                  lumen::usage_error);
  CHECK(ran.load() == 0);
  lumen::parallel_for(std::int8_t{-3}, 3L, [&](long) { ran.fetch_add(1); });  // common type long holds both
  CHECK(ran.load() == 6);
}
