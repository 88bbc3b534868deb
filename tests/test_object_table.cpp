// The object table: slots are reused under churn, lookup by id finds live objects only
// (never a newer object in a reused slot), and concurrent use keeps every value intact.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <chrono>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using lumen::detail::ObjectSlot;
using lumen::detail::ObjectState;
using lumen::detail::ObjectTable;
using lumen::detail::SlotValue;

namespace {

#if defined(LUMEN_TEST_SANITIZED)
constexpr int kChurnBatches = 200;
constexpr int kStressOps = 20'000;
#else
constexpr int kChurnBatches = 1000;
constexpr int kStressOps = 100'000;
#endif
constexpr int kBatch = 1000;

// Polls `done` for up to two seconds: a task drops its reference to its result just after
// publishing it.
template <class F>
void eventually(F done) {
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
}

struct Tracked {
  static inline std::atomic<int> alive{0};
  int value;
  explicit Tracked(int v) : value(v) { ++alive; }
  Tracked(const Tracked& o) : value(o.value) { ++alive; }
  ~Tracked() { --alive; }
};

// 16 bytes: stored inside the slot. `check` lets a reader see a torn or foreign value.
struct Value {
  std::uint64_t tag;
  std::uint64_t check;
};

}  // namespace

// A million objects put and dropped in batches of 1000: the count, the bytes and the
// table's size all come back to where they started, because slots are reused.
TEST_CASE("churn leaves the table as it found it") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  ObjectTable& table = ObjectTable::instance();
  const ObjectTable::Usage base = table.usage();
  const lumen::Stats base_stats = rt.stats();

  std::size_t peak_live = 0;
  std::uint64_t bad_values = 0;
  for (int batch = 0; batch < kChurnBatches; ++batch) {
    std::vector<lumen::ObjectRef<std::vector<int>>> refs;
    refs.reserve(kBatch);
    for (int i = 0; i < kBatch; ++i) refs.push_back(lumen::put(std::vector<int>(4, i)));
    // Some task results too, every tenth batch.
    std::vector<lumen::ObjectRef<int>> results;
    if (batch % 10 == 0)
      for (int i = 0; i < 100; ++i) results.push_back(lumen::submit([i] { return i; }));
    for (int i = 0; i < kBatch; ++i) bad_values += lumen::get(refs[static_cast<std::size_t>(i)])[3] == i ? 0 : 1;
    for (int i = 0; i < static_cast<int>(results.size()); ++i)
      bad_values += lumen::get(results[static_cast<std::size_t>(i)]) == i ? 0 : 1;
    if (batch == 0) peak_live = table.usage().live;
  }
  CHECK(bad_values == 0);
  CHECK(peak_live >= base.live + kBatch);

  eventually([&] { return table.usage().live == base.live; });
  const ObjectTable::Usage after = table.usage();
  CHECK(after.live == base.live);
  CHECK(after.bytes == base.bytes);
  INFO("capacity before " << base.capacity << ", after " << after.capacity);
  CHECK(after.capacity <= base.capacity + 16 * 1024);  // well under the million objects made
  CHECK(rt.stats().objects_live == base_stats.objects_live);
  CHECK(rt.stats().object_bytes == base_stats.object_bytes);
}

// acquire(id) finds a live object and adds a reference; a freed object's id finds nothing,
// even once its slot holds a newer object.
TEST_CASE("lookup by id") {
  ObjectTable& table = ObjectTable::instance();

  auto r = lumen::put(std::uint64_t{77});
  const lumen::ObjectId id = r.id();
  ObjectSlot* s = table.acquire(id.value);
  REQUIRE(s != nullptr);
  CHECK(s == r.slot());
  CHECK(*SlotValue<std::uint64_t>::get(s) == 77);
  table.release(s);

  // The reference acquire() adds keeps the object alive after every ref has gone.
  const int alive = Tracked::alive.load();
  auto t = lumen::put(Tracked(5));
  ObjectSlot* held = table.acquire(t.id().value);
  REQUIRE(held != nullptr);
  const lumen::ObjectId tid = t.id();
  t.reset();
  CHECK(Tracked::alive.load() == alive + 1);
  CHECK(SlotValue<Tracked>::get(held)->value == 5);
  ObjectSlot* again = table.acquire(tid.value);  // still findable while held
  CHECK(again == held);
  if (again != nullptr) table.release(again);
  table.release(held);
  CHECK(Tracked::alive.load() == alive);
  CHECK(table.acquire(tid.value) == nullptr);

  // Freed: the id no longer resolves.
  r.reset();
  CHECK(table.acquire(id.value) == nullptr);

  // Reuse the slot; the old id still finds nothing, the new one finds the new object.
  std::vector<lumen::ObjectRef<std::uint64_t>> fresh;
  std::size_t reused = SIZE_MAX;
  for (std::uint64_t i = 0; i < 100'000 && reused == SIZE_MAX; ++i) {
    fresh.push_back(lumen::put(i));
    if (fresh.back().id().index() == id.index()) reused = fresh.size() - 1;
  }
  REQUIRE(reused != SIZE_MAX);
  const lumen::ObjectId new_id = fresh[reused].id();
  CHECK(new_id.generation() != id.generation());
  CHECK(table.acquire(id.value) == nullptr);
  ObjectSlot* n = table.acquire(new_id.value);
  REQUIRE(n != nullptr);
  CHECK(n == fresh[reused].slot());
  CHECK(*SlotValue<std::uint64_t>::get(n) == reused);
  table.release(n);

  // Ids of slots the table never made find nothing.
  CHECK(table.acquire(0xffffffffull) == nullptr);
  CHECK(table.acquire((std::uint64_t{5} << 32) | 0x7fffffffu) == nullptr);
}

// Four threads allocate, copy, drop and look up objects at once. Each thread keeps a model
// of its own objects: their values never change under it, its live ids always resolve, and
// its dropped ids never resolve to anything but the object they named. Lookups of other
// threads' ids see either nothing or an intact value.
TEST_CASE("concurrent use against a sequential model") {
  constexpr int kThreads = 4;
  constexpr int kPublished = 64;
  ObjectTable& table = ObjectTable::instance();
  const std::size_t base_live = table.usage().live;

  std::array<std::array<std::atomic<std::uint64_t>, kPublished>, kThreads> published{};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> foreign_hits{0};  // found through a published id (any thread's)
  std::atomic<std::uint64_t> stale_checks{0};

  auto body = [&](int me) {
    struct Owned {
      lumen::ObjectRef<Value> ref;
      std::uint64_t id;
      std::uint64_t tag;
      std::vector<lumen::ObjectRef<Value>> copies;  // add_ref through ObjectRef copies
      int raw_refs = 0;                             // add_ref through the table directly
    };
    std::vector<Owned> owned;
    struct Stale {
      std::uint64_t id;
      std::uint64_t tag;
    };
    std::vector<Stale> stale;  // objects this thread dropped
    std::mt19937_64 rng(static_cast<std::uint64_t>(me) * 7919 + 1);
    std::uint64_t next_tag = 0;
    std::uint64_t local_errors = 0;
    auto expect = [&](bool ok) { local_errors += ok ? 0 : 1; };
    // A dropped object's id finds nothing, unless another thread's lookup still holds the
    // object: then it finds that same object, never a newer one in a reused slot.
    auto check_stale = [&](const Stale& st) {
      if (ObjectSlot* s = table.acquire(st.id)) {
        expect(s->id() == st.id);
        expect(SlotValue<Value>::get(s)->tag == st.tag);
        table.release(s);
      }
    };

    for (int op = 0; op < kStressOps; ++op) {
      const unsigned pick = static_cast<unsigned>(rng() % 100);
      if (owned.empty() || pick < 25) {  // allocate
        const std::uint64_t tag = (static_cast<std::uint64_t>(me) << 48) | next_tag++;
        auto ref = lumen::put(Value{tag, ~tag});
        const std::uint64_t id = ref.id().value;
        owned.push_back(Owned{std::move(ref), id, tag, {}, 0});
        published[static_cast<std::size_t>(me)][next_tag % kPublished].store(id, std::memory_order_release);
        continue;
      }
      Owned& o = owned[rng() % owned.size()];
      if (pick < 35) {  // add a reference by copying the ref
        o.copies.push_back(o.ref);
      } else if (pick < 42) {  // add a reference through the table
        ObjectTable::add_ref(o.ref.slot());
        ++o.raw_refs;
      } else if (pick < 50) {  // drop one extra reference
        if (!o.copies.empty()) {
          o.copies.pop_back();
        } else if (o.raw_refs > 0) {
          table.release(o.ref.slot());
          --o.raw_refs;
        }
      } else if (pick < 65) {  // free the object entirely
        for (; o.raw_refs > 0; --o.raw_refs) table.release(o.ref.slot());
        o.copies.clear();
        stale.push_back(Stale{o.id, o.tag});
        o = std::move(owned.back());
        owned.pop_back();
      } else if (pick < 80) {  // look up an own object by id
        ObjectSlot* s = table.acquire(o.id);
        expect(s == o.ref.slot());
        if (s != nullptr) {
          const Value* v = SlotValue<Value>::get(s);
          expect(v->tag == o.tag && v->check == ~o.tag);
          table.release(s);
        }
        expect(lumen::get(o.ref).tag == o.tag);
      } else if (pick < 88) {  // look up an own dropped object: gone, or still the same object
        if (!stale.empty()) {
          check_stale(stale[rng() % stale.size()]);
          stale_checks.fetch_add(1, std::memory_order_relaxed);
        }
      } else {  // look up another thread's object: gone, or intact
        const int other = static_cast<int>(rng() % kThreads);
        const std::uint64_t id =
            published[static_cast<std::size_t>(other)][rng() % kPublished].load(std::memory_order_acquire);
        if (id == 0) continue;
        if (ObjectSlot* s = table.acquire(id)) {
          expect(s->state.load(std::memory_order_acquire) == ObjectState::ready);
          const Value* v = SlotValue<Value>::get(s);
          expect(v->check == ~v->tag);
          expect((v->tag >> 48) == static_cast<std::uint64_t>(other));
          expect(s->id() == id);
          table.release(s);
          foreign_hits.fetch_add(1, std::memory_order_relaxed);
        }
      }
    }
    // Everything still owned reads back as written.
    for (Owned& o : owned) {
      expect(lumen::get(o.ref).tag == o.tag);
      for (const auto& c : o.copies) expect(c == o.ref);
      for (; o.raw_refs > 0; --o.raw_refs) table.release(o.ref.slot());
    }
    owned.clear();
    for (const Stale& st : stale) check_stale(st);
    errors.fetch_add(local_errors);
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(body, t);
  for (auto& t : threads) t.join();

  CHECK(errors.load() == 0);
  CHECK(stale_checks.load() > 0);
  CHECK(foreign_hits.load() > 0);  // the lookups did find objects, not only nothing
  CHECK(table.usage().live == base_live);
}

namespace {
std::size_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (f != nullptr) {
    if (std::fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}
}  // namespace

// Millions of objects put and dropped: once the runtime ends (or a worker idles), the large
// segments of the table whose entries are all free go back to the system; ids of the dropped
// objects still find nothing, and the table grows again as needed with fresh ids.
TEST_CASE("the table gives the memory of dropped objects back") {
#if defined(LUMEN_TEST_SANITIZED)
  constexpr int kObjects = 400'000;
#else
  constexpr int kObjects = 3'000'000;
#endif
  ObjectTable& table = ObjectTable::instance();
  std::vector<lumen::ObjectId> old_ids;
  std::size_t peak_committed = 0, peak_resident = 0;
  {
    lumen::Runtime rt{lumen::Config{.workers = 2}};
    std::vector<lumen::ObjectRef<std::uint64_t>> refs;
    refs.reserve(kObjects);
    for (int i = 0; i < kObjects; ++i) refs.push_back(lumen::put(static_cast<std::uint64_t>(i)));
    for (int i = 0; i < kObjects; i += 9973) old_ids.push_back(refs[static_cast<std::size_t>(i)].id());
    peak_committed = table.committed_bytes();
    peak_resident = resident_bytes();
    CHECK(peak_committed >= std::size_t{kObjects} * sizeof(ObjectSlot));
  }  // refs go first, then the runtime, whose end trims the table
  const std::size_t after_committed = table.committed_bytes();
  const std::size_t after_resident = resident_bytes();
  INFO("table " << peak_committed << " -> " << after_committed << " bytes; resident " << peak_resident << " -> "
                << after_resident);
  CHECK(after_committed < peak_committed / 4);
  CHECK(after_resident + (peak_committed - after_committed) / 2 < peak_resident);
  for (lumen::ObjectId id : old_ids) CHECK(table.acquire(id.value) == nullptr);

  // The table grows back, and the objects made then are whole.
  std::vector<lumen::ObjectRef<std::uint64_t>> again;
  again.reserve(kObjects);
  for (int i = 0; i < kObjects; ++i) again.push_back(lumen::put(static_cast<std::uint64_t>(i) * 3));
  std::uint64_t bad = 0;
  for (int i = 0; i < kObjects; ++i) bad += lumen::get(again[static_cast<std::size_t>(i)]) == static_cast<std::uint64_t>(i) * 3 ? 0 : 1;
  CHECK(bad == 0);
  for (lumen::ObjectId id : old_ids) CHECK(table.acquire(id.value) == nullptr);
  for (std::size_t i = 0; i < again.size(); i += 9973) {
    ObjectSlot* s = table.acquire(again[i].id().value);
    REQUIRE(s == again[i].slot());
    table.release(s);
  }
}

// Trimming while other threads make and drop objects: nothing live is ever given back.
TEST_CASE("trim under concurrent churn") {
  ObjectTable& table = ObjectTable::instance();
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> bad{0};
  std::vector<std::thread> churners;
  for (int t = 0; t < 3; ++t) {
    churners.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(t));
      while (!stop.load()) {
        std::vector<lumen::ObjectRef<std::uint64_t>> refs;
        const std::size_t n = 1000 + rng() % 200'000;
        refs.reserve(n);
        for (std::size_t i = 0; i < n; ++i) refs.push_back(lumen::put(i ^ 0x5555));
        for (std::size_t i = 0; i < n; i += 7) bad += lumen::get(refs[i]) == (i ^ 0x5555) ? 0 : 1;
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    table.trim();
    std::this_thread::sleep_for(1ms);
  }
  stop.store(true);
  for (auto& t : churners) t.join();
  CHECK(bad.load() == 0);
}
