// Recursive fork/join: fib32 and skynet.
#include <omp.h>

#include <cstdint>
#include <string>

#include <lumen/lumen.h>
#include <oneapi/tbb/task_group.h>

#include "bench.h"

namespace bench {
namespace {

// Every run stores its answer here; verify checks and clears it.
long g_result = -1;

// ---------------------------------------------------------------- fib32
// Naive fib: every call with n >= 2 spawns fib(n-1) and computes fib(n-2) inline.

constexpr int kFibN = 32;
constexpr long kFib32 = 2178309;

[[gnu::noinline]] long fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

long fib_lumen(int n) {
  if (n < 2) return n;
  long a = 0;
  lumen::task_group g;
  g.run([&] { a = fib_lumen(n - 1); });
  long b = fib_lumen(n - 2);
  g.wait();
  return a + b;
}

long fib_futures(int n) {
  if (n < 2) return n;
  auto a = lumen::submit(fib_futures, n - 1);
  long b = fib_futures(n - 2);
  return lumen::get(a) + b;
}

long fib_tbb(int n) {
  if (n < 2) return n;
  long a = 0;
  tbb::task_group g;
  g.run([&] { a = fib_tbb(n - 1); });
  long b = fib_tbb(n - 2);
  g.wait();
  return a + b;
}

long fib_omp(int n) {
  if (n < 2) return n;
  long a = 0;
#pragma omp task shared(a) firstprivate(n)
  a = fib_omp(n - 1);
  long b = fib_omp(n - 2);
#pragma omp taskwait
  return a + b;
}

// Calls with n >= 2, the ones that spawn: fib(n+1) - 1 (3,524,577 for n = 32).
double fib_spawns(int n) {
  long a = 0, b = 1;  // fib(0), fib(1)
  for (int i = 0; i < n + 1; ++i) {
    long c = a + b;
    a = b;
    b = c;
  }
  return static_cast<double>(a - 1);
}

Workload fib32() {
  Workload w;
  w.name = "fib32";
  w.description = "naive fib(32); each call spawns fib(n-1), runs fib(n-2) inline";
  w.items = fib_spawns(kFibN);
  w.item = "spawned task (call with n>=2)";
  w.systems = {
      {"lumen", [](Context&) { g_result = lumen::get(lumen::submit([] { return fib_lumen(kFibN); })); }},
      {"lumen-futures", [](Context&) { g_result = lumen::get(lumen::submit(fib_futures, kFibN)); }},
      // The same runs with the timeline recording (lumen/timeline.h): its overhead.
      {"lumen+timeline",
       [](Context& c) {
         lumen::TimelineRecording rec{*c.runtime};
         g_result = lumen::get(lumen::submit([] { return fib_lumen(kFibN); }));
       }},
      {"lumen-futures+timeline",
       [](Context& c) {
         lumen::TimelineRecording rec{*c.runtime};
         g_result = lumen::get(lumen::submit(fib_futures, kFibN));
       }},
      // The state API's cost (Config::track_state): a runtime of the run's own, with and
      // without it, so both rows pay the same start and shutdown.
      {"lumen-futures/new-rt",
       [](Context& c) {
         lumen::Runtime rt{{.workers = c.threads}};
         g_result = lumen::get(lumen::submit(fib_futures, kFibN));
       }},
      {"lumen-futures+state/new-rt",
       [](Context& c) {
         lumen::Runtime rt{{.workers = c.threads, .track_state = true}};
         g_result = lumen::get(lumen::submit(fib_futures, kFibN));
       }},
      {"lumen/new-rt",
       [](Context& c) {
         lumen::Runtime rt{{.workers = c.threads}};
         g_result = lumen::get(lumen::submit([] { return fib_lumen(kFibN); }));
       }},
      {"lumen+state/new-rt",
       [](Context& c) {
         lumen::Runtime rt{{.workers = c.threads, .track_state = true}};
         g_result = lumen::get(lumen::submit([] { return fib_lumen(kFibN); }));
       }},
      {"tbb", [](Context& c) { c.arena->execute([] { g_result = fib_tbb(kFibN); }); }},
      {"omp",
       [](Context&) {
         long r = 0;
#pragma omp parallel shared(r)
#pragma omp single
         r = fib_omp(kFibN);
         g_result = r;
       }},
      {"serial", [](Context&) { g_result = fib_serial(kFibN); }},
  };
  w.verify = [](const System& s, Context&) {
    check(g_result == kFib32, "fib32/" + s.name + ": got " + std::to_string(g_result) + ", want " +
                                  std::to_string(kFib32));
    g_result = -1;
  };
  return w;
}

// ---------------------------------------------------------------- skynet
// A 10-ary tree with 1M leaves; leaf i returns i; the root sums them.

constexpr long kSkyLeaves = 1000000;
constexpr long kSkyDiv = 10;
constexpr long kSkySum = 499999500000L;

// noinline: one call per node, else the compiler flattens the tree into a sum of indices.
[[gnu::noinline]] long sky_serial(long num, long size) {
  if (size == 1) return num;
  long sub = size / kSkyDiv, sum = 0;
  for (long i = 0; i < kSkyDiv; ++i) sum += sky_serial(num + i * sub, sub);
  return sum;
}

long sky_lumen(long num, long size) {
  if (size == 1) return num;
  long sub = size / kSkyDiv;
  long part[kSkyDiv];
  lumen::task_group g;
  for (long i = 0; i < kSkyDiv; ++i) g.run([&part, i, num, sub] { part[i] = sky_lumen(num + i * sub, sub); });
  g.wait();
  long sum = 0;
  for (long v : part) sum += v;
  return sum;
}

long sky_futures(long num, long size) {
  if (size == 1) return num;
  long sub = size / kSkyDiv;
  lumen::ObjectRef<long> part[kSkyDiv];
  for (long i = 0; i < kSkyDiv; ++i) part[i] = lumen::submit(sky_futures, num + i * sub, sub);
  long sum = 0;
  for (const auto& r : part) sum += lumen::get(r);  // in submission order, as users write it
  return sum;
}

long sky_tbb(long num, long size) {
  if (size == 1) return num;
  long sub = size / kSkyDiv;
  long part[kSkyDiv];
  tbb::task_group g;
  for (long i = 0; i < kSkyDiv; ++i) g.run([&part, i, num, sub] { part[i] = sky_tbb(num + i * sub, sub); });
  g.wait();
  long sum = 0;
  for (long v : part) sum += v;
  return sum;
}

long sky_omp(long num, long size) {
  if (size == 1) return num;
  long sub = size / kSkyDiv;
  long part[kSkyDiv];
  for (long i = 0; i < kSkyDiv; ++i) {
#pragma omp task shared(part) firstprivate(i, num, sub)
    part[i] = sky_omp(num + i * sub, sub);
  }
#pragma omp taskwait
  long sum = 0;
  for (long v : part) sum += v;
  return sum;
}

Workload skynet() {
  Workload w;
  w.name = "skynet";
  w.description = "10-ary task tree with 1M leaves; leaves return their index, nodes sum";
  w.items = 1111110;  // every node but the root is a spawned task
  w.item = "spawned task (node below the root)";
  w.systems = {
      {"lumen", [](Context&) { g_result = lumen::get(lumen::submit([] { return sky_lumen(0, kSkyLeaves); })); }},
      {"lumen-futures", [](Context&) { g_result = lumen::get(lumen::submit(sky_futures, 0L, kSkyLeaves)); }},
      {"lumen+timeline",
       [](Context& c) {
         lumen::TimelineRecording rec{*c.runtime};
         g_result = lumen::get(lumen::submit([] { return sky_lumen(0, kSkyLeaves); }));
       }},
      {"lumen-futures+timeline",
       [](Context& c) {
         lumen::TimelineRecording rec{*c.runtime};
         g_result = lumen::get(lumen::submit(sky_futures, 0L, kSkyLeaves));
       }},
      {"lumen-futures/new-rt",
       [](Context& c) {
         lumen::Runtime rt{{.workers = c.threads}};
         g_result = lumen::get(lumen::submit(sky_futures, 0L, kSkyLeaves));
       }},
      {"lumen-futures+state/new-rt",
       [](Context& c) {
         lumen::Runtime rt{{.workers = c.threads, .track_state = true}};
         g_result = lumen::get(lumen::submit(sky_futures, 0L, kSkyLeaves));
       }},
      {"lumen/new-rt",
       [](Context& c) {
         lumen::Runtime rt{{.workers = c.threads}};
         g_result = lumen::get(lumen::submit([] { return sky_lumen(0, kSkyLeaves); }));
       }},
      {"lumen+state/new-rt",
       [](Context& c) {
         lumen::Runtime rt{{.workers = c.threads, .track_state = true}};
         g_result = lumen::get(lumen::submit([] { return sky_lumen(0, kSkyLeaves); }));
       }},
      {"tbb", [](Context& c) { c.arena->execute([] { g_result = sky_tbb(0, kSkyLeaves); }); }},
      {"omp",
       [](Context&) {
         long r = 0;
#pragma omp parallel shared(r)
#pragma omp single
         r = sky_omp(0, kSkyLeaves);
         g_result = r;
       }},
      {"serial", [](Context&) { g_result = sky_serial(0, kSkyLeaves); }},
  };
  w.verify = [](const System& s, Context&) {
    check(g_result == kSkySum, "skynet/" + s.name + ": got " + std::to_string(g_result) + ", want " +
                                   std::to_string(kSkySum));
    g_result = -1;
  };
  return w;
}

}  // namespace

void add_recursive_workloads(std::vector<Workload>& out) {
  out.push_back(fib32());
  out.push_back(skynet());
}

}  // namespace bench
