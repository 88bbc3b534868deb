// loops: lumen's parallel algorithms on a small numeric job, each timed beside the serial code.
//
//   build/examples/loops [n]
//
// Estimates pi by integration (parallel_reduce), normalizes a vector (parallel_for), sorts
// random numbers (parallel_sort) and computes running totals (parallel_scan), printing each
// answer with its time and the serial code's.
#include <lumen/lumen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

namespace {

// The best of three runs: the first run of a loop also wakes the workers from their sleep.
template <class F>
double millis(F&& f) {
  double best = 1e300;
  for (int run = 0; run < 3; ++run) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

void report(const char* what, double parallel_ms, double serial_ms) {
  std::printf("  %-34s lumen %8.2f ms   serial %8.2f ms   (%.2fx)\n", what, parallel_ms, serial_ms,
              serial_ms / parallel_ms);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20'000'000;
  lumen::Runtime rt;  // one worker per hardware thread
  std::printf("lumen loops on %u workers, n = %zu\n", rt.workers(), n);

  // pi = integral of 4 / (1 + x^2) over [0, 1], midpoint rule.
  const double h = 1.0 / static_cast<double>(n);
  auto f = [h](std::size_t i) {
    double x = (static_cast<double>(i) + 0.5) * h;
    return 4.0 / (1.0 + x * x);
  };
  double pi = 0, pi_serial = 0;
  double tp = millis([&] { pi = lumen::parallel_reduce(0, n, 0.0, f, std::plus<>{}) * h; });
  double ts = millis([&] {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += f(i);
    pi_serial = s * h;
  });
  std::printf("pi ~ %.12f (serial %.12f, error %.1e)\n", pi, pi_serial, std::abs(pi - M_PI));
  report("parallel_reduce (integrate)", tp, ts);

  // Deterministic reduction: the same bits every run, whatever the worker count.
  double a = lumen::parallel_reduce(0, n, 0.0, f, std::plus<>{}, lumen::deterministic{});
  double b = lumen::parallel_reduce(0, n, 0.0, f, std::plus<>{}, lumen::deterministic{});
  std::printf("deterministic reduce, twice: %s\n", a == b ? "identical" : "DIFFERENT");

  // Scale a vector to unit length.
  std::vector<double> u(n), v(n), w(n);
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (auto& x : u) x = dist(rng);
  double norm = std::sqrt(lumen::parallel_reduce(0, n, 0.0, [&](std::size_t i) { return u[i] * u[i]; }, std::plus<>{}));
  tp = millis([&] { lumen::parallel_for(0, n, [&](std::size_t i) { v[i] = u[i] / norm; }); });
  ts = millis([&] {
    for (std::size_t i = 0; i < n; ++i) w[i] = u[i] / norm;
  });
  std::printf("normalized: |v| was %.3f, now %.12f\n", norm,
              std::sqrt(lumen::parallel_reduce(0, n, 0.0, [&](std::size_t i) { return v[i] * v[i]; }, std::plus<>{})));
  report("parallel_for (scale)", tp, ts);

  // Sort random integers.
  std::vector<std::int64_t> keys(n);
  for (auto& k : keys) k = static_cast<std::int64_t>(rng() % 1'000'000'000);
  std::vector<std::int64_t> keys2 = keys;
  // Timed once each: a second run would sort sorted data.
  auto once = [](auto&& f) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  tp = once([&] { lumen::parallel_sort(keys.begin(), keys.end()); });
  ts = once([&] { std::sort(keys2.begin(), keys2.end()); });
  std::printf("sorted: smallest %lld, median %lld, largest %lld, same as std::sort: %s\n",
              static_cast<long long>(keys.front()), static_cast<long long>(keys[n / 2]),
              static_cast<long long>(keys.back()), keys == keys2 ? "yes" : "NO");
  report("parallel_sort", tp, ts);

  // Running totals of the sorted keys' last digits.
  std::vector<int> digits(n);
  lumen::parallel_for(0, n, [&](std::size_t i) { digits[i] = static_cast<int>(keys[i] % 10); });
  std::vector<std::int64_t> totals(n), totals2(n);
  tp = millis([&] { lumen::parallel_scan(digits.begin(), digits.end(), totals.begin(), std::int64_t{0}, std::plus<>{}); });
  ts = millis([&] { std::inclusive_scan(digits.begin(), digits.end(), totals2.begin(), std::plus<>{}, std::int64_t{0}); });
  std::printf("running total of last digits: %lld, same as std::inclusive_scan: %s\n",
              static_cast<long long>(totals.back()), totals == totals2 ? "yes" : "NO");
  report("parallel_scan", tp, ts);

  // Two independent jobs at once.
  std::int64_t evens = 0, odds = 0;
  lumen::parallel_invoke([&] { evens = std::count_if(keys.begin(), keys.end(), [](auto k) { return k % 2 == 0; }); },
                         [&] { odds = std::count_if(keys.begin(), keys.end(), [](auto k) { return k % 2 != 0; }); });
  std::printf("parallel_invoke: %lld even and %lld odd keys\n", static_cast<long long>(evens),
              static_cast<long long>(odds));
  return 0;
}
