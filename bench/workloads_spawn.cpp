// Many tasks from one place: spawn1m (1M tasks from the main thread), nested (1000 tasks that
// each fork 100 children and wait for them) and cancel1m (1M queued tasks cancelled).
#include <omp.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <lumen/lumen.h>
#include <oneapi/tbb/task_group.h>

#include "bench.h"

namespace bench {
namespace {

// ---------------------------------------------------------------- spawn1m
// 1M near-empty tasks spawned by the main thread (not a worker), then all awaited. Each task
// sets its own flag so that verify can see that every one of them ran exactly once.

constexpr std::size_t kSpawn = 1000000;

unsigned char* spawn_flags() {
  static std::unique_ptr<unsigned char[]> flags = [] {
    auto f = std::make_unique<unsigned char[]>(kSpawn);
    std::memset(f.get(), 0, kSpawn);
    return f;
  }();
  return flags.get();
}

// Refs of lumen-futures, kept across runs so that the vector's memory is not part of the time.
std::vector<lumen::ObjectRef<void>>& spawn_refs() {
  static std::vector<lumen::ObjectRef<void>> refs = [] {
    std::vector<lumen::ObjectRef<void>> v;
    v.reserve(kSpawn);
    return v;
  }();
  return refs;
}

Workload spawn1m() {
  Workload w;
  w.name = "spawn1m";
  w.description = "1M empty tasks spawned from the main thread, then all awaited";
  w.items = kSpawn;
  w.item = "task";
  w.systems = {
      {"lumen",
       [](Context&) {
         unsigned char* f = spawn_flags();
         lumen::task_group g;
         for (std::size_t i = 0; i < kSpawn; ++i) g.run([p = f + i] { *p = 1; });
         g.wait();
       }},
      {"lumen-futures",
       [](Context&) {
         unsigned char* f = spawn_flags();
         auto& refs = spawn_refs();
         for (std::size_t i = 0; i < kSpawn; ++i) refs.push_back(lumen::submit([p = f + i] { *p = 1; }));
         for (const auto& r : refs) lumen::get(r);
         refs.clear();
       }},
      {"tbb",
       [](Context& c) {
         c.arena->execute([] {
           unsigned char* f = spawn_flags();
           tbb::task_group g;
           for (std::size_t i = 0; i < kSpawn; ++i) g.run([p = f + i] { *p = 1; });
           g.wait();
         });
       }},
      {"omp",
       [](Context&) {
         unsigned char* f = spawn_flags();
#pragma omp parallel
#pragma omp single
         {
           for (std::size_t i = 0; i < kSpawn; ++i) {
             unsigned char* p = f + i;
#pragma omp task firstprivate(p)
             *p = 1;
           }
#pragma omp taskwait
         }
       }},
      {"serial",
       [](Context&) {
         unsigned char* f = spawn_flags();
         auto body = [](unsigned char* p) { *p = 1; };
         for (std::size_t i = 0; i < kSpawn; ++i) {
           body(f + i);
           do_not_optimize(f);
         }
       }},
  };
  w.verify = [](const System& s, Context&) {
    unsigned char* f = spawn_flags();
    std::size_t ran = 0;
    for (std::size_t i = 0; i < kSpawn; ++i) ran += f[i];
    check(ran == kSpawn, "spawn1m/" + s.name + ": " + std::to_string(ran) + " of " + std::to_string(kSpawn) +
                             " tasks ran before the wait returned");
    std::memset(f, 0, kSpawn);
  };
  return w;
}

// ---------------------------------------------------------------- nested
// 1000 tasks, each forks 100 children of a few hundred ns of arithmetic and blocks on them.

constexpr int kOuter = 1000;
constexpr int kInner = 100;

// About 250 ns here: a dependent chain the compiler cannot fold.
std::uint64_t work(std::uint64_t x) {
  for (int k = 0; k < 128; ++k) x = (x ^ (x >> 29)) * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}
std::uint64_t seed(int i, int j) { return static_cast<std::uint64_t>(i) * kInner + static_cast<std::uint64_t>(j) + 1; }

std::uint64_t outer_serial(int i) {
  std::uint64_t s = 0;
  for (int j = 0; j < kInner; ++j) s += work(seed(i, j));
  return s;
}

std::uint64_t nested_expected() {
  static const std::uint64_t v = [] {
    std::uint64_t s = 0;
    for (int i = 0; i < kOuter; ++i) s += outer_serial(i);
    return s;
  }();
  return v;
}

std::uint64_t g_nested = 0;

std::uint64_t outer_futures(int i) {
  lumen::ObjectRef<std::uint64_t> child[kInner];
  for (int j = 0; j < kInner; ++j) child[j] = lumen::submit(work, seed(i, j));
  std::uint64_t s = 0;
  for (const auto& r : child) s += lumen::get(r);
  return s;
}

std::uint64_t nested_futures() {
  std::vector<lumen::ObjectRef<std::uint64_t>> outer;
  outer.reserve(kOuter);
  for (int i = 0; i < kOuter; ++i) outer.push_back(lumen::submit(outer_futures, i));
  std::uint64_t s = 0;
  for (const auto& r : outer) s += lumen::get(r);
  return s;
}

template <class Group>
std::uint64_t nested_groups() {
  std::uint64_t part[kOuter];
  Group outer;
  for (int i = 0; i < kOuter; ++i) {
    outer.run([&part, i] {
      std::uint64_t r[kInner];
      Group inner;
      for (int j = 0; j < kInner; ++j) inner.run([&r, i, j] { r[j] = work(seed(i, j)); });
      inner.wait();
      std::uint64_t s = 0;
      for (auto v : r) s += v;
      part[i] = s;
    });
  }
  outer.wait();
  std::uint64_t s = 0;
  for (auto v : part) s += v;
  return s;
}

std::uint64_t nested_omp() {
  std::uint64_t part[kOuter];
#pragma omp parallel shared(part)
#pragma omp single
  {
    for (int i = 0; i < kOuter; ++i) {
#pragma omp task shared(part) firstprivate(i)
      {
        std::uint64_t r[kInner];
        for (int j = 0; j < kInner; ++j) {
#pragma omp task shared(r) firstprivate(i, j)
          r[j] = work(seed(i, j));
        }
#pragma omp taskwait
        std::uint64_t s = 0;
        for (auto v : r) s += v;
        part[i] = s;
      }
    }
#pragma omp taskwait
  }
  std::uint64_t s = 0;
  for (auto v : part) s += v;
  return s;
}

Workload nested() {
  Workload w;
  w.name = "nested";
  w.description = "1000 tasks, each forks 100 children (~250 ns of arithmetic) and blocks on them";
  w.items = kOuter + kOuter * kInner;
  w.item = "task (outer and child)";
  w.systems = {
      {"lumen",
       [](Context&) { g_nested = lumen::get(lumen::submit([] { return nested_groups<lumen::task_group>(); })); }},
      {"lumen-futures", [](Context&) { g_nested = lumen::get(lumen::submit(nested_futures)); }},
      {"tbb", [](Context& c) { c.arena->execute([] { g_nested = nested_groups<tbb::task_group>(); }); }},
      {"omp", [](Context&) { g_nested = nested_omp(); }},
      {"serial",
       [](Context&) {
         std::uint64_t s = 0;
         for (int i = 0; i < kOuter; ++i) s += outer_serial(i);
         g_nested = s;
       }},
  };
  w.verify = [](const System& s, Context&) {
    check(g_nested == nested_expected(), "nested/" + s.name + ": got " + std::to_string(g_nested) + ", want " +
                                             std::to_string(nested_expected()));
    g_nested = 0;
  };
  return w;
}

// ---------------------------------------------------------------- cancel1m
// 1M tasks queued behind workers kept busy, then cancelled before any of them starts, then
// awaited: what a cancel costs per queued task, beside oneTBB's task_group::cancel (which
// cancels a whole group; lumen has no per-task peer to compare with). The time includes the
// 1M submits; spawn1m times those alone.

std::atomic<std::uint64_t> g_cancel_ran{0};

// Occupies every worker until `release`: what is submitted next stays queued.
void occupy_workers(unsigned n, std::atomic<bool>& release, std::atomic<unsigned>& busy, lumen::task_group& g) {
  for (unsigned i = 0; i < n; ++i) {
    g.run([&release, &busy] {
      busy.fetch_add(1);
      while (!release.load()) std::this_thread::yield();
    });
  }
  while (busy.load() < n) std::this_thread::yield();
}

Workload cancel1m() {
  Workload w;
  w.name = "cancel1m";
  w.description = "1M tasks queued behind busy workers, cancelled before they start, then awaited";
  w.items = kSpawn;
  w.item = "task (submit + cancel + await)";
  w.systems = {
      {"lumen-futures",  // lumen::cancel on each ref
       [](Context& c) {
         std::atomic<bool> release{false};
         std::atomic<unsigned> busy{0};
         lumen::task_group blockers;
         occupy_workers(c.threads, release, busy, blockers);
         auto& refs = spawn_refs();
         for (std::size_t i = 0; i < kSpawn; ++i) refs.push_back(lumen::submit([] { g_cancel_ran.fetch_add(1); }));
         const std::size_t n = lumen::cancel(refs);
         check(n == kSpawn, "cancel1m/lumen-futures: cancelled " + std::to_string(n) + " of 1M queued tasks");
         release.store(true);
         for (const auto& r : refs) check(r.ready(), "cancel1m/lumen-futures: a cancelled ref is not resolved");
         check(lumen::error_of(refs.back()).has_value(), "cancel1m/lumen-futures: a cancelled ref did not fail");
         refs.clear();
         blockers.wait();
       }},
      {"lumen",  // task_group::cancel
       [](Context& c) {
         std::atomic<bool> release{false};
         std::atomic<unsigned> busy{0};
         lumen::task_group blockers;
         occupy_workers(c.threads, release, busy, blockers);
         lumen::task_group g;
         for (std::size_t i = 0; i < kSpawn; ++i) g.run([] { g_cancel_ran.fetch_add(1); });
         g.cancel();
         release.store(true);
         g.wait();
         blockers.wait();
       }},
      {"tbb",  // tbb::task_group::cancel
       [](Context& c) {
         c.arena->execute([&c] {
           std::atomic<bool> release{false};
           std::atomic<unsigned> busy{0};
           tbb::task_group blockers;
           const unsigned others = c.threads - 1;  // the caller holds one of the arena's slots
           for (unsigned i = 0; i < others; ++i) {
             blockers.run([&release, &busy] {
               busy.fetch_add(1);
               while (!release.load()) std::this_thread::yield();
             });
           }
           while (busy.load() < others) std::this_thread::yield();
           tbb::task_group g;
           for (std::size_t i = 0; i < kSpawn; ++i) g.run([] { g_cancel_ran.fetch_add(1); });
           g.cancel();
           release.store(true);
           g.wait();
           blockers.wait();
         });
       }},
  };
  w.verify = [](const System& s, Context&) {
    const std::uint64_t ran = g_cancel_ran.exchange(0);
    check(ran == 0, "cancel1m/" + s.name + ": " + std::to_string(ran) + " cancelled tasks ran");
  };
  return w;
}

}  // namespace

void add_spawn_workloads(std::vector<Workload>& out) {
  out.push_back(spawn1m());
  out.push_back(nested());
  out.push_back(cancel1m());
}

}  // namespace bench
