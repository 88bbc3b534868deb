// pipeline: every stage mode, source order at serial_in_order stages, serial stages never
// overlapping, the token bound, empty streams, exceptions (type, no hang, no leaked values),
// nesting in tasks and task_group children, reuse; on one and on two workers.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "overlap.h"

using namespace std::chrono_literals;

namespace {

constexpr unsigned kWorkerCounts[] = {1, 2};
#ifdef LUMEN_TEST_SANITIZED
constexpr int kItems = 2000;
#else
constexpr int kItems = 20000;
#endif

using lumen::stage_mode;
constexpr stage_mode kModes[] = {stage_mode::serial_in_order, stage_mode::serial, stage_mode::parallel};

// A few hundred ns of arithmetic that varies with x, so items overtake each other.
long work(long x) {
  unsigned long v = static_cast<unsigned long>(x) + 1;
  for (long k = 0; k < (x * 7919) % 64; ++k) v = v * 6364136223846793005ULL + 1442695040888963407ULL;
  return x + static_cast<long>(v % 2);
}


// Counts live instances, to see that a cancelled pipeline destroys every value it holds.
struct Counted {
  static inline std::atomic<int> live{0};
  long v;
  explicit Counted(long x) : v(x) { live.fetch_add(1); }
  Counted(const Counted& o) : v(o.v) { live.fetch_add(1); }
  Counted(Counted&& o) noexcept : v(o.v) { live.fetch_add(1); }
  ~Counted() { live.fetch_sub(1); }
};

struct StageFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
  int item = 0;
  StageFailed(const char* what, int i) : std::runtime_error(what), item(i) {}
};

// Source 0..n-1 through a parallel and a middle stage of mode `mid` into a sink of mode
// `last`; returns the values in the order the sink saw them.
std::vector<long> run_modes(stage_mode mid, stage_mode last, int n, std::size_t tokens) {
  int next = 0;
  std::vector<long> seen;
  Overlap mid_overlap, sink_overlap;
  lumen::pipeline(tokens)
      .source([&](lumen::flow_control& fc) {
        if (next == n) fc.stop();
        return next++;
      })
      .stage(stage_mode::parallel, [](int x) { return work(x) - work(x) + x; })
      .stage(mid,
             [&](long x) {
               mid_overlap.enter();
               long r = work(x) - work(x) + x;
               mid_overlap.leave();
               return r;
             })
      .sink(last,
            [&](long x) {
              sink_overlap.enter();
              work(x);
              seen.push_back(x);  // unsynchronized: only serial sinks may touch it
              sink_overlap.leave();
            })
      .run();
  if (mid != stage_mode::parallel) CHECK(mid_overlap.most.load() == 1);
  CHECK(sink_overlap.most.load() == 1);
  return seen;
}

}  // namespace

// Every middle mode with every serial sink: each item arrives once; in order when asked.
TEST_CASE("stage modes") {
  for (unsigned workers : kWorkerCounts) {
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    for (stage_mode mid : kModes) {
      for (stage_mode last : {stage_mode::serial_in_order, stage_mode::serial}) {
        CAPTURE(workers);
        CAPTURE(static_cast<int>(mid));
        CAPTURE(static_cast<int>(last));
        std::vector<long> seen = run_modes(mid, last, kItems, 8);
        REQUIRE(seen.size() == static_cast<std::size_t>(kItems));
        if (last == stage_mode::serial_in_order) {
          bool in_order = true;
          for (int i = 0; i < kItems; ++i) in_order = in_order && seen[static_cast<std::size_t>(i)] == i;
          CHECK(in_order);
        }
        std::sort(seen.begin(), seen.end());
        bool each_once = true;
        for (int i = 0; i < kItems; ++i) each_once = each_once && seen[static_cast<std::size_t>(i)] == i;
        CHECK(each_once);
      }
    }
  }
}

// A parallel sink sees every item; the source is never called concurrently.
TEST_CASE("parallel sink and optional source") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    Overlap source_overlap;
    int next = 0;
    std::atomic<long> sum{0};
    std::atomic<int> count{0};
    lumen::pipeline(4)
        .source([&]() -> std::optional<int> {
          source_overlap.enter();
          std::optional<int> r;
          if (next < kItems) r = next++;
          source_overlap.leave();
          return r;
        })
        .stage(stage_mode::parallel, [](int x) { return static_cast<long>(work(x) - work(x) + x); })
        .sink(stage_mode::parallel, [&](long x) {
          sum.fetch_add(x);
          count.fetch_add(1);
        })
        .run();
    CHECK(count.load() == kItems);
    CHECK(sum.load() == static_cast<long>(kItems) * (kItems - 1) / 2);
    CHECK(source_overlap.most.load() == 1);
  }
}

// A serial_in_order stage in the middle passes items on in source order, even after a
// parallel stage let them overtake each other.
TEST_CASE("serial_in_order in the middle keeps source order") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    int next = 0;
    std::vector<int> order;
    std::atomic<int> count{0};
    lumen::pipeline(16)
        .source([&](lumen::flow_control& fc) {
          if (next == kItems) fc.stop();
          return next++;
        })
        .stage(stage_mode::parallel, [](int x) { return static_cast<int>(work(x) - work(x)) + x; })
        .stage(stage_mode::serial_in_order,
               [&](int x) {
                 order.push_back(x);
                 return x;
               })
        .sink(stage_mode::parallel, [&](int) { count.fetch_add(1); })
        .run();
    CHECK(count.load() == kItems);
    REQUIRE(order.size() == static_cast<std::size_t>(kItems));
    bool in_order = true;
    for (int i = 0; i < kItems; ++i) in_order = in_order && order[static_cast<std::size_t>(i)] == i;
    CHECK(in_order);
  }
}

// No more than `tokens` items are between the source and the end of the sink.
TEST_CASE("tokens bound the items in flight") {
  for (unsigned workers : kWorkerCounts) {
    for (std::size_t tokens : {std::size_t{1}, std::size_t{3}}) {
      CAPTURE(workers);
      CAPTURE(tokens);
      lumen::Runtime rt{lumen::Config{.workers = workers}};
      Overlap in_flight;
      int next = 0;
      lumen::pipeline(tokens)
          .source([&](lumen::flow_control& fc) {
            if (next == kItems) {
              fc.stop();
            } else {
              in_flight.enter();
            }
            return next++;
          })
          .stage(stage_mode::parallel, [](int x) { return work(x); })
          .stage(stage_mode::serial, [](long x) { return x; })
          .sink(stage_mode::parallel, [&](long) { in_flight.leave(); })
          .run();
      CHECK(in_flight.inside.load() == 0);
      CHECK(in_flight.most.load() >= 1);
      CHECK(in_flight.most.load() <= static_cast<int>(tokens));
    }
  }
}

TEST_CASE("an empty stream calls no stage") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    std::atomic<int> calls{0};
    int sources = 0;
    lumen::pipeline(4)
        .source([&](lumen::flow_control& fc) {
          ++sources;
          fc.stop();
          return 1;
        })
        .stage(stage_mode::parallel, [&](int x) {
          calls.fetch_add(1);
          return x;
        })
        .sink(stage_mode::serial_in_order, [&](int) { calls.fetch_add(1); })
        .run();
    CHECK(sources == 1);
    CHECK(calls.load() == 0);
    CHECK_THROWS_AS(lumen::pipeline(0), lumen::usage_error);
  }
}

// A stage that throws stops the pipeline; run() rethrows that exception with its type once
// every item has left, and every value the pipeline held is destroyed.
TEST_CASE("a throwing stage stops the pipeline") {
  for (unsigned workers : kWorkerCounts) {
    for (int where : {0, 1, 2, 3}) {  // source, parallel stage, serial stage, in-order sink
      CAPTURE(workers);
      CAPTURE(where);
      lumen::Runtime rt{lumen::Config{.workers = workers}};
      int next = 0;
      std::atomic<int> sunk{0};
      const int bad = kItems / 3;
      auto maybe_throw = [bad](int stage_index, int stage_at, long v) {
        if (stage_index == stage_at && v == bad) throw StageFailed("bad item", static_cast<int>(v));
      };
      try {
        lumen::pipeline(8)
            .source([&](lumen::flow_control& fc) {
              if (next == kItems) fc.stop();
              maybe_throw(0, where, next);
              return Counted(next++);
            })
            .stage(stage_mode::parallel,
                   [&](Counted c) {
                     maybe_throw(1, where, c.v);
                     return Counted(work(c.v) - work(c.v) + c.v);
                   })
            .stage(stage_mode::serial,
                   [&](Counted c) {
                     maybe_throw(2, where, c.v);
                     return c;
                   })
            .sink(stage_mode::serial_in_order,
                  [&](const Counted& c) {
                    maybe_throw(3, where, c.v);
                    sunk.fetch_add(1);
                  })
            .run();
        FAIL("run() returned normally");
      } catch (const StageFailed& e) {
        CHECK(e.item == bad);
      }
      CHECK(sunk.load() < kItems);
      CHECK(Counted::live.load() == 0);
      // The failure does not stick: the next pipeline on this runtime runs to the end.
      std::vector<long> seen = run_modes(stage_mode::serial, stage_mode::serial_in_order, 100, 4);
      CHECK(seen.size() == 100);
    }
  }
}

// Move-only values pass from stage to stage.
TEST_CASE("move-only values") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    int next = 0;
    long sum = 0;
    lumen::pipeline(4)
        .source([&]() -> std::optional<std::unique_ptr<int>> {
          if (next == 1000) return std::nullopt;
          return std::make_unique<int>(next++);
        })
        .stage(stage_mode::parallel,
               [](std::unique_ptr<int> p) {
                 *p *= 2;
                 return p;
               })
        .sink(stage_mode::serial_in_order, [&](std::unique_ptr<int> p) { sum += *p; })
        .run();
    CHECK(sum == 999L * 1000);
  }
}

// Items whose stages take longer than a hand-off between workers costs are spread over the
// workers: two of them reach the parallel stage at once. Each item after the first waits there
// (until 10 s after the start) for a second one; carried by one task at a time, none would come.
TEST_CASE("heavy items are spread over the workers") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  constexpr int kHeavy = 200;
  int next = 0;
  Overlap stage;
  std::atomic<bool> met{false};
  std::vector<int> order;
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  lumen::pipeline(8)
      .source([&](lumen::flow_control& fc) {
        if (next == kHeavy) fc.stop();
        return next++;
      })
      .stage(stage_mode::parallel,
             [&](int x) {
               stage.enter();
               const auto until = x == 0 || met ? std::chrono::steady_clock::now() + 20us : give_up;
               while (std::chrono::steady_clock::now() < until && !(x > 0 && !met && stage.inside.load() >= 2)) {
               }
               if (x > 0 && stage.inside.load() >= 2) met = true;
               stage.leave();
               return x;
             })
      .sink(stage_mode::serial_in_order, [&](int x) { order.push_back(x); })
      .run();
  CHECK(met.load());
  CHECK(stage.most.load() >= 2);
  REQUIRE(order.size() == static_cast<std::size_t>(kHeavy));
  bool in_order = true;
  for (int i = 0; i < kHeavy; ++i) in_order = in_order && order[static_cast<std::size_t>(i)] == i;
  CHECK(in_order);
}

// A closed pipeline runs again; its callables keep their state.
TEST_CASE("a closed pipeline runs many times") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  int next = 0, limit = 0;
  long sum = 0;
  auto p = lumen::pipeline(4)
               .source([&](lumen::flow_control& fc) {
                 if (next == limit) fc.stop();
                 return next++;
               })
               .sink(stage_mode::serial, [&](int x) { sum += x; });
  for (int round = 1; round <= 3; ++round) {
    next = 0;
    limit = 100 * round;
    sum = 0;
    p.run();
    CHECK(sum == static_cast<long>(limit) * (limit - 1) / 2);
  }
}

// Pipelines inside tasks and inside parallel task_group children, each waiting without
// holding a worker: with one worker this only finishes when the waits park or help.
TEST_CASE("nested in tasks and task_group children") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    auto one = [](int n) {
      std::vector<long> seen = run_modes(stage_mode::parallel, stage_mode::serial_in_order, n, 4);
      bool ok = seen.size() == static_cast<std::size_t>(n);
      for (int i = 0; ok && i < n; ++i) ok = seen[static_cast<std::size_t>(i)] == i;
      return ok;
    };
    CHECK(lumen::get(lumen::submit(one, 1000)));

    std::atomic<int> good{0};
    lumen::task_group g;
    for (int i = 0; i < 8; ++i) g.run([&] { good.fetch_add(one(500) ? 1 : 0); });
    g.wait();
    CHECK(good.load() == 8);

    // A pipeline whose parallel stage runs a pipeline of its own.
    std::atomic<long> total{0};
    int next = 0;
    lumen::pipeline(4)
        .source([&](lumen::flow_control& fc) {
          if (next == 16) fc.stop();
          return next++;
        })
        .stage(stage_mode::parallel, [&](int) { return one(200) ? 1L : 0L; })
        .sink(stage_mode::serial, [&](long ok) { total.fetch_add(ok); })
        .run();
    CHECK(total.load() == 16);
  }
}

// A token count whose buffers could not fit in memory is refused before anything runs: a
// count so large that the size wraps is a usage_error, one that is merely too large a
// resource_error, never a bare std::bad_alloc or a short buffer written past its end.
TEST_CASE("token counts too large to allocate") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  int calls = 0;
  auto make = [&calls](std::size_t tokens) {
    return lumen::pipeline(tokens)
        .source([&calls](lumen::flow_control& fc) {
          ++calls;
          fc.stop();
          return 0;
        })
        .sink(lumen::stage_mode::serial_in_order, [](int) {});
  };
  CHECK_THROWS_AS(make(SIZE_MAX).run(), lumen::usage_error);
  CHECK_THROWS_AS(make(SIZE_MAX / 64 + 1).run(), lumen::usage_error);
  CHECK_THROWS_AS(make(std::size_t{1} << 42).run(), lumen::resource_error);
  CHECK(calls == 0);
  make(1000).run();  // and a sane count still runs
  CHECK(calls == 1);
}
