// Parallel loops: reduce (sum of square roots), triad (a = b * k + c), matmul, sort, scan and
// nestfor (loops inside a loop), each with lumen's algorithms, oneTBB's and OpenMP's; sort also
// beside Boost.Sort's parallel block_indirect_sort and its single-threaded pdqsort (the floor a
// parallel sort must beat with 2+ threads).
//
// Inputs are allocated and filled once, outside every timed region; verify checks every
// run's answer and, where a run works in place, restores the input for the next one.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <boost/sort/block_indirect_sort/block_indirect_sort.hpp>
#include <boost/sort/pdqsort/pdqsort.hpp>
#include <lumen/lumen.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_reduce.h>
#include <oneapi/tbb/parallel_scan.h>
#include <oneapi/tbb/parallel_sort.h>

#include "bench.h"

namespace bench {
namespace {

using Range = tbb::blocked_range<std::size_t>;

// ---------------------------------------------------------------- reduce
// sum of sqrt(i) for i < 2e8: compute-bound, one add chain per piece.

constexpr std::size_t kReduceN = 200'000'000;
double g_sum = 0;

double sqrt_of(std::size_t i) { return std::sqrt(static_cast<double>(i)); }

double reduce_expected() {
  static const double v = [] {
    double s = 0;
    for (std::size_t i = 0; i < kReduceN; ++i) s += sqrt_of(i);
    return s;
  }();
  return v;
}

Workload reduce() {
  Workload w;
  w.name = "reduce";
  w.description = "sum of sqrt(i) over 2e8 indices (parallel_reduce)";
  w.items = kReduceN;
  w.item = "index";
  w.systems = {
      {"lumen",
       [](Context&) {
         g_sum = lumen::parallel_reduce(0, kReduceN, 0.0, [](std::size_t i) { return sqrt_of(i); }, std::plus<>{});
       }},
      {"lumen-det",
       [](Context&) {
         g_sum = lumen::parallel_reduce(0, kReduceN, 0.0, [](std::size_t i) { return sqrt_of(i); }, std::plus<>{},
                                        lumen::deterministic{});
       }},
      {"tbb",
       [](Context& c) {
         c.arena->execute([] {
           g_sum = tbb::parallel_reduce(
               Range(0, kReduceN), 0.0,
               [](const Range& r, double s) {
                 for (std::size_t i = r.begin(); i != r.end(); ++i) s += sqrt_of(i);
                 return s;
               },
               std::plus<>{});
         });
       }},
      {"omp",
       [](Context&) {
         double s = 0;
#pragma omp parallel for reduction(+ : s)
         for (std::size_t i = 0; i < kReduceN; ++i) s += sqrt_of(i);
         g_sum = s;
       }},
  };
  w.verify = [](const System& s, Context&) {
    double want = reduce_expected();
    check(std::abs(g_sum - want) <= 1e-9 * want,
          "reduce/" + s.name + ": got " + std::to_string(g_sum) + ", want " + std::to_string(want));
    g_sum = 0;
  };
  return w;
}

// ---------------------------------------------------------------- triad
// a[i] = b[i] * k + c[i] over 1e8 doubles: bound by memory bandwidth. k changes every run,
// so verify sees that each run wrote all of a.

constexpr std::size_t kTriadN = 100'000'000;

struct Triad {
  std::vector<double> a, b, c;
  double k = 1;
  Triad() : a(kTriadN), b(kTriadN), c(kTriadN) {
    for (std::size_t i = 0; i < kTriadN; ++i) {
      b[i] = static_cast<double>(i % 1000);
      c[i] = static_cast<double>(i % 7);
    }
  }
  void run(std::size_t lo, std::size_t hi) {
    double* pa = a.data();
    const double* pb = b.data();
    const double* pc = c.data();
    for (std::size_t i = lo; i < hi; ++i) pa[i] = pb[i] * k + pc[i];
  }
};

Triad& triad_data() {
  static Triad t;
  return t;
}

Workload triad() {
  Workload w;
  w.name = "triad";
  w.description = "a = b * k + c over 1e8 doubles (parallel_for, memory-bound)";
  w.items = kTriadN;
  w.item = "element";
  w.systems = {
      {"lumen",
       [](Context&) {
         Triad& t = triad_data();
         lumen::parallel_for(0, kTriadN, [&t](std::size_t lo, std::size_t hi) { t.run(lo, hi); });
       }},
      {"tbb",
       [](Context& c) {
         Triad& t = triad_data();
         c.arena->execute([&t] { tbb::parallel_for(Range(0, kTriadN), [&t](const Range& r) { t.run(r.begin(), r.end()); }); });
       }},
      {"omp",
       [](Context&) {
         Triad& t = triad_data();
         double* pa = t.a.data();
         const double* pb = t.b.data();
         const double* pc = t.c.data();
         const double k = t.k;
#pragma omp parallel for
         for (std::size_t i = 0; i < kTriadN; ++i) pa[i] = pb[i] * k + pc[i];
       }},
  };
  w.verify = [](const System& s, Context&) {
    Triad& t = triad_data();
    std::size_t bad = 0;
    for (std::size_t i = 0; i < kTriadN; ++i) bad += t.a[i] != t.b[i] * t.k + t.c[i];
    check(bad == 0, "triad/" + s.name + ": " + std::to_string(bad) + " elements wrong");
    t.k += 1;
  };
  return w;
}

// ---------------------------------------------------------------- matmul
// C = A * B, 1024 x 1024 doubles, the naive triple loop (i, k, j order) with the i loop
// parallel.

constexpr std::size_t kDim = 1024;

struct Matmul {
  std::vector<double> a, b, c, want;
  Matmul() : a(kDim * kDim), b(kDim * kDim), c(kDim * kDim), want(kDim * kDim) {
    std::mt19937 rng(1);
    std::uniform_int_distribution<int> d(-8, 8);  // small integers: every order of sums is exact
    for (auto& x : a) x = d(rng);
    for (auto& x : b) x = d(rng);
    for (std::size_t i = 0; i < kDim; ++i) row(i, want.data());
  }
  void row(std::size_t i, double* out) const {
    double* ci = out + i * kDim;
    std::fill(ci, ci + kDim, 0.0);
    for (std::size_t k = 0; k < kDim; ++k) {
      const double aik = a[i * kDim + k];
      const double* bk = b.data() + k * kDim;
      for (std::size_t j = 0; j < kDim; ++j) ci[j] += aik * bk[j];
    }
  }
};

Matmul& matmul_data() {
  static Matmul m;
  return m;
}

Workload matmul() {
  Workload w;
  w.name = "matmul";
  w.description = "1024x1024 double matrix product, naive triple loop, rows in parallel (parallel_for)";
  w.items = kDim;
  w.item = "row";
  w.systems = {
      {"lumen",
       [](Context&) {
         Matmul& m = matmul_data();
         lumen::parallel_for(0, kDim, [&m](std::size_t i) { m.row(i, m.c.data()); });
       }},
      {"tbb",
       [](Context& c) {
         Matmul& m = matmul_data();
         c.arena->execute([&m] {
           tbb::parallel_for(Range(0, kDim), [&m](const Range& r) {
             for (std::size_t i = r.begin(); i != r.end(); ++i) m.row(i, m.c.data());
           });
         });
       }},
      {"omp",
       [](Context&) {
         Matmul& m = matmul_data();
#pragma omp parallel for
         for (std::size_t i = 0; i < kDim; ++i) m.row(i, m.c.data());
       }},
  };
  w.verify = [](const System& s, Context&) {
    Matmul& m = matmul_data();
    check(m.c == m.want, "matmul/" + s.name + ": wrong product");
    std::fill(m.c.begin(), m.c.end(), -1.0);
  };
  return w;
}

// ---------------------------------------------------------------- sort
// 1e7 random 64-bit integers; verify restores the unsorted input after checking.

constexpr std::size_t kSortN = 10'000'000;

struct SortData {
  std::vector<std::int64_t> input, work, want;
  SortData() : input(kSortN) {
    std::mt19937_64 rng(42);
    for (auto& x : input) x = static_cast<std::int64_t>(rng());
    work = input;
    want = input;
    std::sort(want.begin(), want.end());
  }
};

SortData& sort_data() {
  static SortData d;
  return d;
}

Workload sort() {
  Workload w;
  w.name = "sort";
  w.description = "sort 1e7 random 64-bit integers (parallel_sort; serial: std::sort; pdqsort: 1 thread)";
  w.items = kSortN;
  w.item = "element";
  w.systems = {
      {"lumen",
       [](Context&) {
         auto& v = sort_data().work;
         lumen::parallel_sort(v.begin(), v.end());
       }},
      {"tbb",
       [](Context& c) {
         auto& v = sort_data().work;
         c.arena->execute([&v] { tbb::parallel_sort(v.begin(), v.end()); });
       }},
      {"boost-parallel",
       [](Context& c) {
         auto& v = sort_data().work;
         boost::sort::block_indirect_sort(v.begin(), v.end(), c.threads);
       }},
      {"pdqsort",
       [](Context&) {
         auto& v = sort_data().work;
         boost::sort::pdqsort(v.begin(), v.end());
       }},
      {"serial",
       [](Context&) {
         auto& v = sort_data().work;
         std::sort(v.begin(), v.end());
       }},
  };
  w.verify = [](const System& s, Context&) {
    SortData& d = sort_data();
    check(d.work == d.want, "sort/" + s.name + ": not sorted, or elements changed");
    d.work = d.input;
  };
  return w;
}

// ---------------------------------------------------------------- scan
// Inclusive prefix sums of 1e8 ints into 64-bit sums. The initial value changes every run, so
// verify sees that each run wrote all of out.

constexpr std::size_t kScanN = 100'000'000;

struct ScanData {
  std::vector<int> in;
  std::vector<std::int64_t> out;
  std::int64_t init = 0;
  ScanData() : in(kScanN), out(kScanN) {
    std::mt19937 rng(5);
    for (auto& x : in) x = static_cast<int>(rng() % 1000);
  }
};

ScanData& scan_data() {
  static ScanData d;
  return d;
}

Workload scan() {
  Workload w;
  w.name = "scan";
  w.description = "inclusive prefix sums of 1e8 ints into int64 (parallel_scan; serial: std::inclusive_scan)";
  w.items = kScanN;
  w.item = "element";
  w.systems = {
      {"lumen",
       [](Context&) {
         ScanData& d = scan_data();
         lumen::parallel_scan(d.in.begin(), d.in.end(), d.out.begin(), d.init, std::plus<>{});
       }},
      {"tbb",
       [](Context& c) {
         ScanData& d = scan_data();
         c.arena->execute([&d] {
           // tbb starts every piece from the identity; init is added where sums are written.
           tbb::parallel_scan(
               Range(0, kScanN), std::int64_t{0},
               [&d](const Range& r, std::int64_t sum, bool final) {
                 for (std::size_t i = r.begin(); i != r.end(); ++i) {
                   sum += d.in[i];
                   if (final) d.out[i] = d.init + sum;
                 }
                 return sum;
               },
               std::plus<>{});
         });
       }},
      {"omp",
       [](Context&) {
         ScanData& d = scan_data();
         const int* in = d.in.data();
         std::int64_t* out = d.out.data();
         std::int64_t sum = d.init;
#pragma omp parallel for reduction(inscan, + : sum)
         for (std::size_t i = 0; i < kScanN; ++i) {
           sum += in[i];
#pragma omp scan inclusive(sum)
           out[i] = sum;
         }
       }},
      {"serial",
       [](Context&) {
         ScanData& d = scan_data();
         std::inclusive_scan(d.in.begin(), d.in.end(), d.out.begin(), std::plus<>{}, d.init);
       }},
  };
  w.verify = [](const System& s, Context&) {
    ScanData& d = scan_data();
    std::int64_t sum = d.init;
    std::size_t bad = 0;
    for (std::size_t i = 0; i < kScanN; ++i) {
      sum += d.in[i];
      bad += d.out[i] != sum;
    }
    check(bad == 0, "scan/" + s.name + ": " + std::to_string(bad) + " sums wrong");
    d.init += 1;
  };
  return w;
}

// ---------------------------------------------------------------- nestfor
// 1000 outer iterations, each a parallel loop of 1000 tiny bodies (a few ns each).

constexpr std::size_t kOuter = 1000;
constexpr std::size_t kInner = 1000;

std::vector<std::uint32_t>& nest_out() {
  static std::vector<std::uint32_t> v(kOuter * kInner);
  return v;
}
std::uint32_t nest_value(std::size_t i, std::size_t j) { return static_cast<std::uint32_t>((i * 2654435761u) ^ (j * 40503u)); }

Workload nestfor() {
  Workload w;
  w.name = "nestfor";
  w.description = "1000 outer x 1000 inner parallel loop iterations, tiny bodies (omp: inner loop serial)";
  w.items = kOuter * kInner;
  w.item = "inner iteration";
  w.systems = {
      {"lumen",
       [](Context&) {
         std::uint32_t* out = nest_out().data();
         lumen::parallel_for(0, kOuter, [out](std::size_t i) {
           lumen::parallel_for(0, kInner, [out, i](std::size_t j) { out[i * kInner + j] = nest_value(i, j); });
         });
       }},
      {"tbb",
       [](Context& c) {
         std::uint32_t* out = nest_out().data();
         c.arena->execute([out] {
           tbb::parallel_for(Range(0, kOuter), [out](const Range& r) {
             for (std::size_t i = r.begin(); i != r.end(); ++i) {
               tbb::parallel_for(Range(0, kInner), [out, i](const Range& q) {
                 for (std::size_t j = q.begin(); j != q.end(); ++j) out[i * kInner + j] = nest_value(i, j);
               });
             }
           });
         });
       }},
      {"omp",
       [](Context&) {
         std::uint32_t* out = nest_out().data();
#pragma omp parallel for
         for (std::size_t i = 0; i < kOuter; ++i) {
#pragma omp parallel for
           for (std::size_t j = 0; j < kInner; ++j) out[i * kInner + j] = nest_value(i, j);
         }
       }},
  };
  w.verify = [](const System& s, Context&) {
    auto& v = nest_out();
    std::size_t bad = 0;
    for (std::size_t i = 0; i < kOuter; ++i)
      for (std::size_t j = 0; j < kInner; ++j) bad += v[i * kInner + j] != nest_value(i, j);
    check(bad == 0, "nestfor/" + s.name + ": " + std::to_string(bad) + " elements wrong");
    std::fill(v.begin(), v.end(), 0u);
  };
  return w;
}

}  // namespace

void add_loop_workloads(std::vector<Workload>& out) {
  out.push_back(reduce());
  out.push_back(triad());
  out.push_back(matmul());
  out.push_back(sort());
  out.push_back(scan());
  out.push_back(nestfor());
}

}  // namespace bench
