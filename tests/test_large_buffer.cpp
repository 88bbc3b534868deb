// LargeBufferAllocator's pool (warm reuse by size class, its bound, its errors) and put()
// of large values: a copy keeps the value, a move keeps the buffer.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <cstdint>
#include <limits>
#include <new>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Doubles, so that a vector of n MiB holds n << 17 elements.
lumen::large_vector<double> mib(std::size_t n) { return lumen::large_vector<double>(n * kMiB / sizeof(double), 1.5); }

// Frees v's buffer now (assigning {} would keep it: clear() keeps the capacity).
void free_now(lumen::large_vector<double>& v) { lumen::large_vector<double>().swap(v); }

// Restores the default bound after a test that changes it.
struct CacheLimit {
  std::size_t saved = lumen::large_buffer_cache_limit();
  explicit CacheLimit(std::size_t bytes) { lumen::set_large_buffer_cache_limit(bytes); }
  ~CacheLimit() { lumen::set_large_buffer_cache_limit(saved); }
};

}  // namespace

TEST_CASE("a freed large buffer is reused, warm, by the next allocation of its size class") {
  CacheLimit limit(64 * kMiB);
  lumen::set_large_buffer_cache_limit(0);  // start empty
  lumen::set_large_buffer_cache_limit(64 * kMiB);
  const void* first;
  {
    auto v = mib(8);
    first = v.data();
    CHECK(reinterpret_cast<std::uintptr_t>(first) % (2 * kMiB) == 0);  // aligned for huge pages
  }
  CHECK(lumen::large_buffer_cached_bytes() == 8 * kMiB);
  {
    auto other = mib(6);  // another class: a mapping of its own
    CHECK(other.data() != first);
    auto again = mib(8);
    CHECK(again.data() == first);
    CHECK(lumen::large_buffer_cached_bytes() == 0);
  }
  CHECK(lumen::large_buffer_cached_bytes() == 14 * kMiB);
  // Within a class, sizes share the mapping: 7 MiB + 1 byte rounds up to the 8 MiB class.
  lumen::large_vector<char> odd(7 * kMiB + 1);
  CHECK(static_cast<const void*>(odd.data()) == first);
}

TEST_CASE("the pool keeps at most its limit, dropping the oldest buffers first") {
  CacheLimit limit(0);
  CHECK(lumen::large_buffer_cached_bytes() == 0);
  { auto v = mib(4); }
  CHECK(lumen::large_buffer_cached_bytes() == 0);  // a limit of 0 keeps nothing

  lumen::set_large_buffer_cache_limit(8 * kMiB);
  const void* a;
  const void* c;
  {
    auto va = mib(4), vb = mib(4), vc = mib(4);
    a = va.data();
    c = vc.data();
    free_now(va);  // freed first: the oldest
    free_now(vb);
    free_now(vc);
  }
  CHECK(lumen::large_buffer_cached_bytes() == 8 * kMiB);
  auto x = mib(4), y = mib(4);
  CHECK(x.data() == c);  // the warmest first
  CHECK(y.data() != a);  // the oldest went back to the kernel
  CHECK(lumen::large_buffer_cached_bytes() == 0);

  // Lowering the limit gives back at once what is over it.
  free_now(x);
  free_now(y);
  CHECK(lumen::large_buffer_cached_bytes() == 8 * kMiB);
  lumen::set_large_buffer_cache_limit(4 * kMiB);
  CHECK(lumen::large_buffer_cached_bytes() == 4 * kMiB);
}

TEST_CASE("small allocations bypass the pool; impossible sizes throw") {
  CacheLimit limit(64 * kMiB);
  lumen::set_large_buffer_cache_limit(0);
  lumen::set_large_buffer_cache_limit(64 * kMiB);
  {
    lumen::large_vector<int> small(1000, 7);
    CHECK(small[999] == 7);
    lumen::large_vector<int> empty;
    CHECK(empty.empty());
  }
  CHECK(lumen::large_buffer_cached_bytes() == 0);

  lumen::LargeBufferAllocator<double> alloc;
  CHECK_THROWS_AS(alloc.allocate(std::numeric_limits<std::size_t>::max()), std::bad_array_new_length);
  // More than the address space holds: the mapping fails, as new would.
  CHECK_THROWS_AS(alloc.allocate(std::size_t{1} << 57), std::bad_alloc);
  // The largest count that does not overflow: rounding it up to a size class must not wrap
  // around to a small mapping.
  CHECK_THROWS_AS(alloc.allocate(std::numeric_limits<std::size_t>::max() / sizeof(double)), std::bad_alloc);
  lumen::LargeBufferAllocator<char> bytes;
  CHECK_THROWS_AS(bytes.allocate(std::numeric_limits<std::size_t>::max() - 1), std::bad_alloc);
  CHECK(lumen::large_buffer_cached_bytes() == 0);
}

TEST_CASE("put of a large value: a copy holds the same elements, a move hands over the buffer") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::vector<std::int64_t> plain(3 * kMiB);  // 24 MB: copied into memory advised for huge pages
  std::iota(plain.begin(), plain.end(), -5);
  auto copied = lumen::put(plain);
  CHECK(lumen::get(copied).data() != plain.data());
  CHECK(lumen::get(copied) == plain);

  const std::int64_t* buffer = plain.data();
  auto moved = lumen::put(std::move(plain));
  CHECK(lumen::get(moved).data() == buffer);  // O(1): no element was copied

  auto warm = mib(16);
  warm[12345] = -1;
  auto warm_copy = lumen::put(warm);
  CHECK(lumen::get(warm_copy) == warm);
  const double* warm_buffer = warm.data();
  auto warm_moved = lumen::put(std::move(warm));
  CHECK(lumen::get(warm_moved).data() == warm_buffer);

  // Elements that are not plain bytes take the ordinary copy.
  std::vector<std::string> words(100'000, "lumen");
  auto words_ref = lumen::put(words);
  CHECK(lumen::get(words_ref) == words);

  // A task's large result, read by another task.
  auto sum = lumen::submit([](const lumen::large_vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0); },
                           lumen::submit([] { return mib(8); }));
  CHECK(lumen::get(sum) == doctest::Approx(1.5 * static_cast<double>(8 * kMiB / sizeof(double))));
}

// Threads take and give back buffers of a few size classes at once; each writes its own
// pattern through the whole buffer and checks it, so two owners of one mapping show.
TEST_CASE("the pool under concurrent use") {
  CacheLimit limit(48 * kMiB);
#if defined(LUMEN_TEST_SANITIZED)
  const int rounds = 20;
#else
  const int rounds = 150;
#endif
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, rounds, &bad] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int r = 0; r < rounds; ++r) {
        const std::size_t n = (4 + rng() % 4) * kMiB / sizeof(std::uint64_t);
        lumen::large_vector<std::uint64_t> v(n);
        const std::uint64_t tag = (static_cast<std::uint64_t>(t) << 32) | static_cast<std::uint64_t>(r);
        for (std::size_t i = 0; i < n; i += 512) v[i] = tag;
        std::this_thread::yield();
        for (std::size_t i = 0; i < n; i += 512)
          if (v[i] != tag) bad.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad.load() == 0);
  CHECK(lumen::large_buffer_cached_bytes() <= 48 * kMiB);
}
