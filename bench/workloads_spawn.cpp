// Many tasks from one place: spawn1m (1M tasks from the main thread) and nested (1000 tasks
// that each fork 100 children and wait for them).
#include <omp.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
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

}  // namespace

void add_spawn_workloads(std::vector<Workload>& out) {
  out.push_back(spawn1m());
  out.push_back(nested());
}

}  // namespace bench
