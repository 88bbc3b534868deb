// Config::object_memory_limit: eviction and rebuild of deterministic results, spilling to
// files, puts at the limit, and the values that must never leave memory.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "lumen/lumen.h"

namespace {

constexpr std::size_t kLimit = 4u << 20;       // 4 MiB
constexpr std::size_t kElements = 32 * 1024;   // 256 KiB of uint64_t per value
using Block = std::vector<std::uint64_t>;

std::uint64_t element(std::uint64_t block, std::uint64_t i) { return block * 1000003u + i * 7919u + 1; }

Block make_block(std::uint64_t block) {
  Block b(kElements);
  for (std::size_t i = 0; i < kElements; ++i) b[i] = element(block, i);
  return b;
}

// Checks every element; the number of wrong ones.
std::size_t wrong_elements(const Block& b, std::uint64_t block) {
  if (b.size() != kElements) return kElements;
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < kElements; ++i) wrong += b[i] != element(block, i) ? 1 : 0;
  return wrong;
}

lumen::Config limited(std::size_t limit = kLimit, std::string spill = {}, lumen::PutAtLimit at = lumen::PutAtLimit::wait) {
  lumen::Config c;
  c.workers = 2;
  c.object_memory_limit = limit;
  c.spill_directory = std::move(spill);
  c.put_at_limit = at;
  return c;
}

// Blocks first .. first + count - 1 as deterministic results, once all are stored: more than
// the limit pushes out what was read least recently.
std::vector<lumen::ObjectRef<Block>> deterministic_blocks(std::uint64_t first, std::uint64_t count) {
  std::vector<lumen::ObjectRef<Block>> refs;
  for (std::uint64_t b = first; b < first + count; ++b) refs.push_back(lumen::task(make_block).deterministic().submit(b));
  lumen::wait(refs, refs.size());
  return refs;
}

// A fresh folder under the system's temporary folder, removed at the end.
struct TempFolder {
  std::filesystem::path path;
  TempFolder() {
    path = std::filesystem::temp_directory_path() /
           ("lumen-spill-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::remove_all(path);
  }
  ~TempFolder() { std::filesystem::remove_all(path); }
  std::size_t files() const {
    if (!std::filesystem::exists(path)) return 0;
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(path)) ++n;
    return n;
  }
  static std::atomic<int>& counter() {
    static std::atomic<int> c{0};
    return c;
  }
};

}  // namespace

TEST_CASE("live data 4x the limit: deterministic results are evicted and rebuilt, value by value") {
  lumen::Runtime rt{limited()};
  std::atomic<int> runs{0};
  const std::uint64_t blocks = 4 * kLimit / (kElements * sizeof(std::uint64_t));  // 64
  std::vector<lumen::ObjectRef<Block>> refs;
  for (std::uint64_t b = 0; b < blocks; ++b) {
    refs.push_back(lumen::task([&runs](std::uint64_t k) {
                     runs.fetch_add(1);
                     return make_block(k);
                   })
                       .deterministic()
                       .submit(b));
  }
  lumen::wait(refs, refs.size());
  auto st = rt.stats();
  CHECK(st.object_memory_limit == kLimit);
  CHECK(st.objects_evicted > 0);
  CHECK(st.object_memory_used <= kLimit);
  MESSAGE("after the tasks: " << st.object_memory_used << " bytes in memory, " << st.objects_evicted << " evicted");

  // Read back twice, in order, with tasks and with read(): every element is right.
  std::size_t wrong = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (std::uint64_t b = 0; b < blocks; ++b) {
      if (b % 2 == 0) {
        wrong += lumen::get(lumen::submit([b](const Block& v) { return wrong_elements(v, b); }, refs[b]));
      } else {
        wrong += lumen::read(refs[b], [b](const Block& v) { return wrong_elements(v, b); });
      }
    }
  }
  CHECK(wrong == 0);
  st = rt.stats();
  CHECK(st.objects_rebuilt > 0);
  CHECK(runs.load() == static_cast<int>(blocks + st.objects_rebuilt));
  CHECK(st.object_memory_used <= kLimit + kElements * sizeof(std::uint64_t) + sizeof(Block));
  MESSAGE("rebuilt " << st.objects_rebuilt << " times for " << blocks << " blocks read twice");
}

TEST_CASE("a rebuild rebuilds the evicted inputs it needs (lineage of two steps)") {
  lumen::Runtime rt{limited()};
  std::atomic<int> first_runs{0};
  std::atomic<int> second_runs{0};
  const std::uint64_t blocks = 48;
  std::vector<lumen::ObjectRef<Block>> second;
  for (std::uint64_t b = 0; b < blocks; ++b) {
    auto first = lumen::task([&first_runs](std::uint64_t k) {
                   first_runs.fetch_add(1);
                   return make_block(k);
                 })
                     .deterministic()
                     .submit(b);
    // The second step adds 1 to each element of the first.
    second.push_back(lumen::task([&second_runs](const Block& in) {
                       second_runs.fetch_add(1);
                       Block out(in);
                       for (auto& x : out) x += 1;
                       return out;
                     })
                         .deterministic()
                         .submit(first));
  }
  std::size_t wrong = 0;
  for (std::uint64_t b = 0; b < blocks; ++b) {
    wrong += lumen::read(second[b], [b](const Block& v) {
      std::size_t w = 0;
      for (std::size_t i = 0; i < kElements; ++i) w += v[i] != element(b, i) + 1 ? 1 : 0;
      return w;
    });
  }
  CHECK(wrong == 0);
  const auto st = rt.stats();
  CHECK(st.objects_rebuilt > 0);
  // Every run after a step's first is a rebuild, of a second step or of the input it needed.
  CHECK(first_runs.load() + second_runs.load() == static_cast<int>(2 * blocks + st.objects_rebuilt));
}

TEST_CASE("many readers of one evicted object wait for a single rebuild") {
  lumen::Runtime rt{limited()};
  std::atomic<int> runs{0};
  auto target = lumen::task([&runs] {
                  runs.fetch_add(1);
                  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // readers pile up
                  return make_block(7);
                })
                    .deterministic()
                    .submit();
  lumen::wait(std::vector{target}, 1);
  auto filler = deterministic_blocks(100, 40);
  const auto before = rt.stats().objects_rebuilt;
  REQUIRE(runs.load() == 1);
  REQUIRE(rt.stats().objects_evicted > 0);
  std::vector<lumen::ObjectRef<std::size_t>> checks;
  for (int i = 0; i < 16; ++i) checks.push_back(lumen::submit([](const Block& v) { return wrong_elements(v, 7); }, target));
  std::atomic<std::size_t> outside_wrong{0};
  std::thread outside([&] { outside_wrong = lumen::read(target, [](const Block& v) { return wrong_elements(v, 7); }); });
  for (auto& c : checks) CHECK(lumen::get(c) == 0);
  outside.join();
  CHECK(outside_wrong.load() == 0);
  // At most one rebuild of the target, whatever else was rebuilt meanwhile.
  CHECK(runs.load() <= 2);
  CHECK(rt.stats().objects_rebuilt >= before);
}

TEST_CASE("get(const ref&) keeps its object in memory; read() leaves it free to go") {
  lumen::Runtime rt{limited()};
  auto kept = lumen::task(make_block).deterministic().submit(std::uint64_t{1});
  const Block& view = lumen::get(kept);
  auto loose = lumen::task(make_block).deterministic().submit(std::uint64_t{2});
  CHECK(lumen::read(loose, [](const Block& v) { return wrong_elements(v, 2); }) == 0);
  auto filler = deterministic_blocks(10, 64);
  // The reference get returned is still the value: it never left memory.
  CHECK(&view == &lumen::get(kept));
  CHECK(wrong_elements(view, 1) == 0);
  CHECK(rt.stats().objects_evicted >= 1);
  CHECK(lumen::read(loose, [](const Block& v) { return wrong_elements(v, 2); }) == 0);
}

TEST_CASE("values that cannot be rebuilt or spilled are never evicted") {
  lumen::Runtime rt{limited()};
  std::vector<lumen::ObjectRef<Block>> refs;
  for (std::uint64_t b = 0; b < 32; ++b) refs.push_back(lumen::submit(make_block, b));  // not deterministic
  lumen::wait(refs, refs.size());
  const auto st = rt.stats();
  CHECK(st.objects_evicted == 0);
  CHECK(st.objects_spilled == 0);
  CHECK(st.object_memory_used > kLimit);  // the limit gives way: nothing could leave
  std::size_t wrong = 0;
  for (std::uint64_t b = 0; b < 32; ++b) wrong += wrong_elements(lumen::get(refs[b]), b);
  CHECK(wrong == 0);
  refs.clear();
  CHECK(rt.stats().object_memory_used == 0);
}

TEST_CASE("puts 4x the limit spill to files and come back; files go with their objects") {
  TempFolder folder;
  {
    lumen::Runtime rt{limited(kLimit, folder.path.string())};
    std::vector<lumen::ObjectRef<Block>> refs;
    std::vector<lumen::ObjectRef<std::string>> texts;
    for (std::uint64_t b = 0; b < 64; ++b) refs.push_back(lumen::put(make_block(b)));
    for (int i = 0; i < 8; ++i) texts.push_back(lumen::put(std::string(64 * 1024, static_cast<char>('a' + i))));
    auto st = rt.stats();
    CHECK(st.objects_spilled > 0);
    CHECK(st.object_memory_used <= kLimit);
    CHECK(folder.files() > 0);
    std::size_t wrong = 0;
    for (std::uint64_t b = 0; b < 64; ++b) wrong += lumen::read(refs[b], [b](const Block& v) { return wrong_elements(v, b); });
    CHECK(wrong == 0);
    for (int i = 0; i < 8; ++i)
      CHECK(lumen::read(texts[static_cast<std::size_t>(i)], [](const std::string& s) { return s; }) ==
            std::string(64 * 1024, static_cast<char>('a' + i)));
    st = rt.stats();
    CHECK(st.objects_restored > 0);
    MESSAGE("spilled " << st.objects_spilled << ", restored " << st.objects_restored);
    refs.clear();
    texts.clear();
    CHECK(folder.files() == 0);
    CHECK(rt.stats().object_memory_used == 0);
  }
}

TEST_CASE("a spill that cannot be written leaves the value in memory") {
  TempFolder folder;
  lumen::Runtime rt{limited(kLimit, folder.path.string())};
  std::filesystem::remove_all(folder.path);  // every spill now fails to open its file
  std::vector<lumen::ObjectRef<Block>> refs;
  for (std::uint64_t b = 0; b < 24; ++b) refs.push_back(lumen::submit(make_block, b));
  lumen::wait(refs, refs.size());
  const auto st = rt.stats();
  CHECK(st.spill_failures > 0);
  CHECK(st.objects_spilled == 0);
  std::size_t wrong = 0;
  for (std::uint64_t b = 0; b < 24; ++b) wrong += lumen::read(refs[b], [b](const Block& v) { return wrong_elements(v, b); });
  CHECK(wrong == 0);
}

TEST_CASE("a spill file that disappears is reported when the value is read") {
  TempFolder folder;
  lumen::Runtime rt{limited(kLimit, folder.path.string())};
  std::vector<lumen::ObjectRef<Block>> refs;
  for (std::uint64_t b = 0; b < 32; ++b) refs.push_back(lumen::put(make_block(b)));
  REQUIRE(rt.stats().objects_spilled > 0);
  for (const auto& e : std::filesystem::directory_iterator(folder.path)) std::filesystem::remove(e.path());
  std::size_t lost = 0;
  for (auto& r : refs) {
    try {
      lumen::read(r, [](const Block&) { return 0; });
    } catch (const lumen::resource_error& e) {
      ++lost;
      CHECK(std::string(e.what()).find("cannot be read back") != std::string::npos);
    }
  }
  CHECK(lost > 0);
}

TEST_CASE("a put that cannot fit fails at once with put_at_limit fail") {
  lumen::Runtime rt{limited(kLimit, {}, lumen::PutAtLimit::fail)};
  std::vector<lumen::ObjectRef<Block>> refs;
  bool refused = false;
  for (std::uint64_t b = 0; b < 64 && !refused; ++b) {
    try {
      refs.push_back(lumen::put(make_block(b)));
    } catch (const lumen::resource_error& e) {
      refused = true;
      CHECK(std::string(e.what()).find("object_memory_limit") != std::string::npos);
    }
  }
  CHECK(refused);
  CHECK(refs.size() < 64);
  CHECK(rt.stats().object_memory_used <= kLimit);
  // Letting go of one makes room for one more.
  refs.erase(refs.begin());
  CHECK_NOTHROW(refs.push_back(lumen::put(make_block(99))));
}

TEST_CASE("a put at the limit waits until an object is freed") {
  lumen::Runtime rt{limited()};
  std::vector<lumen::ObjectRef<Block>> refs;
  while (rt.stats().object_memory_used + kElements * sizeof(std::uint64_t) + sizeof(Block) <= kLimit)
    refs.push_back(lumen::put(make_block(refs.size())));
  std::atomic<bool> put_done{false};
  std::size_t put_wrong = 1;
  std::thread putter([&] {
    auto r = lumen::put(make_block(500));
    put_done = true;
    put_wrong = wrong_elements(lumen::get(r), 500);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(put_done.load());  // waiting: nothing could be evicted
  refs.pop_back();
  putter.join();
  CHECK(put_done.load());
  CHECK(put_wrong == 0);
  CHECK(rt.stats().puts_waited >= 1);
}

TEST_CASE("a put larger than the limit fails even when it may wait") {
  lumen::Runtime rt{limited(1u << 20)};
  CHECK_THROWS_AS(lumen::put(Block(1u << 18)), lumen::resource_error);  // 2 MiB
  CHECK_NOTHROW(lumen::put(int{5}));                                    // small values live in the table
}

TEST_CASE("a rebuild that fails reports its error, and the next read tries again") {
  lumen::Runtime rt{limited()};
  std::atomic<int> runs{0};
  std::atomic<bool> fail_next{false};
  auto target = lumen::task([&] {
                  runs.fetch_add(1);
                  if (fail_next.load()) throw std::runtime_error("rebuild broke");
                  return make_block(3);
                })
                    .deterministic()
                    .submit();
  lumen::wait(std::vector{target}, 1);
  auto filler = deterministic_blocks(100, 40);
  fail_next = true;
  // The target was read least recently, so it went first.
  CHECK_THROWS_WITH_AS(lumen::read(target, [](const Block&) { return 0; }), "rebuild broke", std::runtime_error);
  fail_next = false;
  CHECK(lumen::read(target, [](const Block& v) { return wrong_elements(v, 3); }) == 0);
  CHECK(runs.load() == 3);
}

TEST_CASE("actor methods read evicted arguments, and forward evicted results") {
  struct Summer {
    std::uint64_t total = 0;
    std::uint64_t add(const Block& b) {
      for (auto x : b) total += x;
      return total;
    }
    lumen::ObjectRef<Block> pass(lumen::ObjectRef<Block> r) { return r; }
  };
  lumen::Runtime rt{limited()};
  auto actor = lumen::actor<Summer>();
  auto refs = deterministic_blocks(0, 40);
  REQUIRE(rt.stats().objects_evicted > 0);
  std::uint64_t expected = 0;
  for (std::uint64_t b = 0; b < 40; ++b)
    for (std::size_t i = 0; i < kElements; ++i) expected += element(b, i);
  lumen::ObjectRef<std::uint64_t> last;
  for (auto& r : refs) last = actor.call(&Summer::add, r);
  CHECK(lumen::get(last) == expected);
  std::size_t wrong = 0;
  for (std::uint64_t b = 0; b < 40; ++b)
    wrong += lumen::read(actor.call(&Summer::pass, refs[b]), [b](const Block& v) { return wrong_elements(v, b); });
  CHECK(wrong == 0);
}

TEST_CASE("concurrent readers and producers under a small limit lose nothing") {
  TempFolder folder;
  lumen::Runtime rt{limited(2u << 20, folder.path.string())};
  std::vector<lumen::ObjectRef<Block>> refs;
  for (std::uint64_t b = 0; b < 32; ++b) {
    refs.push_back(b % 2 == 0 ? lumen::task(make_block).deterministic().submit(b) : lumen::submit(make_block, b));
  }
  // Reads in a scattered order, from tasks and from a second thread at once.
  std::vector<lumen::ObjectRef<std::size_t>> checks;
  for (std::uint64_t round = 0; round < 4; ++round) {
    for (std::uint64_t b = 0; b < 32; ++b) {
      const std::uint64_t block = (b * 7 + round) % 32;
      checks.push_back(lumen::submit([block](const Block& v) { return wrong_elements(v, block); }, refs[block]));
    }
  }
  std::size_t outside_wrong = 0;
  std::thread outside([&] {
    for (std::uint64_t b = 0; b < 32; ++b)
      outside_wrong += lumen::read(refs[31 - b], [b](const Block& v) { return wrong_elements(v, 31 - b); });
  });
  std::size_t wrong = 0;
  for (auto& c : checks) wrong += lumen::get(c);
  outside.join();
  CHECK(wrong == 0);
  CHECK(outside_wrong == 0);
  const auto st = rt.stats();
  CHECK(st.objects_evicted + st.objects_spilled > 0);
  refs.clear();
  checks.clear();
  CHECK(folder.files() == 0);
}

TEST_CASE("memory limit settings that make no sense are refused") {
  {
    lumen::Config c;
    c.workers = 1;
    c.spill_directory = "/tmp/lumen-never";
    CHECK_THROWS_AS(lumen::Runtime{c}, lumen::usage_error);  // spilling without a limit
  }
  {
    lumen::Config c = limited();
    c.spill_directory = "/proc/version/x";  // under a file
    CHECK_THROWS_AS(lumen::Runtime{c}, lumen::usage_error);
  }
  {
    lumen::Config c = limited();
    c.put_at_limit = static_cast<lumen::PutAtLimit>(7);
    CHECK_THROWS_AS(lumen::Runtime{c}, lumen::usage_error);
  }
  {
    lumen::Runtime first{limited()};
    CHECK_THROWS_AS(lumen::Runtime{limited()}, lumen::usage_error);  // one table, one limit
    lumen::Config plain;
    plain.workers = 1;
    CHECK_NOTHROW(lumen::Runtime{plain});
  }
  lumen::Runtime again{limited()};  // the limit went with its runtime
  struct MoveOnly {
    MoveOnly() = default;
    MoveOnly(MoveOnly&&) = default;
    MoveOnly(const MoveOnly&) = delete;
  };
  CHECK_THROWS_AS(lumen::task([](MoveOnly) { return make_block(0); }).deterministic().submit(MoveOnly{}),
                  lumen::usage_error);
}

TEST_CASE("without a limit nothing is counted and deterministic changes nothing") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto r = lumen::task(make_block).deterministic().submit(std::uint64_t{5});
  CHECK(wrong_elements(lumen::get(r), 5) == 0);
  const auto st = rt.stats();
  CHECK(st.object_memory_limit == 0);
  CHECK(st.object_memory_used == 0);
}

TEST_CASE("hostile uses: moving out an evicted value, refs inside values, runtimes that end, cancels") {
  SUBCASE("get(std::move(ref)) of an evicted object's last ref brings it back and moves it out") {
    lumen::Runtime rt{limited()};
    auto only = lumen::task(make_block).deterministic().submit(std::uint64_t{4});
    lumen::wait(std::vector{only}, 1);
    auto filler = deterministic_blocks(100, 40);
    REQUIRE(rt.stats().objects_evicted > 0);
    Block out = lumen::get(std::move(only));
    CHECK_FALSE(only.valid());
    CHECK(wrong_elements(out, 4) == 0);
  }
  SUBCASE("a value holding refs is rebuilt with refs to equal values") {
    lumen::Runtime rt{limited()};
    auto holder = lumen::task([](int n) {
                    std::vector<lumen::ObjectRef<int>> v;
                    for (int i = 0; i < n; ++i) v.push_back(lumen::put(i * 3));
                    return v;
                  })
                      .deterministic()
                      .submit(20000);  // about 160 KiB of refs
    lumen::wait(std::vector{holder}, 1);
    auto filler = deterministic_blocks(100, 40);
    const long sum = lumen::read(holder, [](const std::vector<lumen::ObjectRef<int>>& v) {
      long s = 0;
      for (const auto& r : v) s += lumen::get(r);
      return s;
    });
    CHECK(sum == 3L * 19999 * 20000 / 2);
  }
  SUBCASE("a put argument lives with the deterministic result that needs it") {
    lumen::Runtime rt{limited()};
    auto seed = lumen::put(std::uint64_t{11});
    auto derived = lumen::task([](std::uint64_t k) { return make_block(k); }).deterministic().submit(seed);
    seed.reset();  // only the recipe holds it now
    lumen::wait(std::vector{derived}, 1);
    auto filler = deterministic_blocks(100, 40);
    CHECK(lumen::read(derived, [](const Block& v) { return wrong_elements(v, 11); }) == 0);
  }
  SUBCASE("an object evicted under a runtime that has ended is rebuilt on the one in scope") {
    lumen::ObjectRef<Block> survivor;
    {
      lumen::Runtime rt{limited()};
      survivor = lumen::task(make_block).deterministic().submit(std::uint64_t{6});
      lumen::wait(std::vector{survivor}, 1);
      auto filler = deterministic_blocks(100, 40);
      REQUIRE(rt.stats().objects_evicted > 0);
    }
    lumen::Runtime next{lumen::Config{.workers = 1}};
    CHECK(lumen::read(survivor, [](const Block& v) { return wrong_elements(v, 6); }) == 0);
  }
  SUBCASE("cancelled and failed deterministic tasks leave nothing behind") {
    lumen::Runtime rt{limited()};
    std::atomic<bool> release{false};
    auto blocker = lumen::submit([&release] {
      while (!release.load()) std::this_thread::yield();
    });
    auto blocker2 = lumen::submit([&release] {
      while (!release.load()) std::this_thread::yield();
    });
    auto queued = lumen::task(make_block).deterministic().submit(std::uint64_t{1});
    CHECK(lumen::cancel(queued));
    auto failing = lumen::task([](int) -> Block { throw std::runtime_error("no"); }).deterministic().submit(1);
    release = true;
    CHECK_THROWS_AS(lumen::get(queued), lumen::cancelled_error);
    CHECK_THROWS_AS(lumen::get(failing), std::runtime_error);
    lumen::get(blocker);
    lumen::get(blocker2);
  }
  SUBCASE("a trivially copyable struct spills and comes back byte for byte") {
    TempFolder folder;
    lumen::Runtime rt{limited(1u << 20, folder.path.string())};
    struct Record {
      std::uint64_t words[64];
    };
    std::vector<lumen::ObjectRef<Record>> refs;
    for (std::uint64_t k = 0; k < 4096; ++k) {  // 2 MiB of 512-byte records
      Record r;
      for (std::uint64_t i = 0; i < 64; ++i) r.words[i] = element(k, i);
      refs.push_back(lumen::put(r));
    }
    CHECK(rt.stats().objects_spilled > 0);
    std::size_t wrong = 0;
    for (std::uint64_t k = 0; k < 4096; ++k) {
      wrong += lumen::read(refs[k], [k](const Record& r) {
        std::size_t w = 0;
        for (std::uint64_t i = 0; i < 64; ++i) w += r.words[i] != element(k, i) ? 1 : 0;
        return w;
      });
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("what a reviewer found: resources, shared rebuilds, pins, odd value types, a caught exit") {
  SUBCASE("a rebuild claims none of the units its reader holds") {
    lumen::Config c = limited();
    c.resources = {{"gpu", 1}};
    lumen::Runtime rt{c};
    auto first = lumen::task(make_block).deterministic().resources({{"gpu", 1}}).submit(std::uint64_t{8});
    lumen::wait(std::vector{first}, 1);
    auto filler = deterministic_blocks(100, 40);
    REQUIRE(rt.stats().objects_evicted > 0);
    // Holds the only gpu unit while its argument is rebuilt.
    auto reader = lumen::task([](const Block& b) { return wrong_elements(b, 8); }).resources({{"gpu", 1}}).submit(first);
    CHECK(lumen::get(reader) == 0);
  }
  SUBCASE("one reader's timeout does not fail the rebuild other readers share") {
    lumen::Runtime rt{limited()};
    auto slow = lumen::task([] {
                  std::this_thread::sleep_for(std::chrono::milliseconds(30));
                  return make_block(9);
                })
                    .deterministic()
                    .submit();
    lumen::wait(std::vector{slow}, 1);
    auto filler = deterministic_blocks(100, 40);
    REQUIRE(rt.stats().objects_evicted > 0);
    auto impatient = lumen::task([](const Block& b) { return wrong_elements(b, 9); })
                         .timeout(std::chrono::milliseconds(5))
                         .submit(slow);
    auto patient = lumen::submit([](const Block& b) { return wrong_elements(b, 9); }, slow);
    CHECK_THROWS_AS(lumen::get(impatient), lumen::timeout_error);
    CHECK(lumen::get(patient) == 0);
  }
  SUBCASE("a put waiting for room goes on once the reader pinning the only evictable value is done") {
    lumen::Runtime rt{limited(1u << 20)};
    auto big = lumen::task([] { return Block(100 * 1024, 1); }).deterministic().submit();  // 800 KiB
    lumen::wait(std::vector{big}, 1);
    std::atomic<bool> release{false};
    auto reader = lumen::submit(
        [&release](const Block& b) {
          while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          return b.size();
        },
        big);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the reader has it pinned
    std::thread putter([] { (void)lumen::put(Block(40 * 1024, 2)); });  // 320 KiB: must wait
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    release = true;
    putter.join();  // before the fix it waited for ever: unpinning freed nothing
    CHECK(lumen::get(reader) == 100 * 1024);
    CHECK(rt.stats().objects_evicted >= 1);
  }
  SUBCASE("types the spill codec cannot write still work as values") {
    TempFolder folder;
    lumen::Runtime rt{limited(kLimit, folder.path.string())};
    struct NoDefault {
      explicit NoDefault(int v) : value(v) {}
      int value;
    };
    auto bits = lumen::put(std::vector<bool>(100000, true));
    auto odd = lumen::put(std::vector<NoDefault>(1000, NoDefault(3)));
    auto filler = deterministic_blocks(100, 40);
    CHECK(lumen::read(bits, [](const std::vector<bool>& v) { return v.size() == 100000 && v[99999]; }));
    CHECK(lumen::read(odd, [](const std::vector<NoDefault>& v) { return v.size() == 1000 && v[999].value == 3; }));
  }
  SUBCASE("an actor method that catches its own exit and returns a value frees the value") {
    struct Quitter {
      Block quit() {
        try {
          lumen::exit_actor();
        } catch (...) {
        }
        return make_block(1);
      }
    };
    lumen::Runtime rt{limited()};
    auto q = lumen::actor<Quitter>();
    auto r = q.call(&Quitter::quit);
    CHECK_THROWS_AS(lumen::get(r), lumen::actor_died);
    r.reset();
    CHECK(rt.stats().object_memory_used == 0);
  }
}
