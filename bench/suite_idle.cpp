// lumen-bench --suite idle: what an idle scheduler costs and how fast it wakes.
//
//   idle CPU:   the process's CPU time (user + system) over a quiet stretch, as a share of one
//               core, after the workers have had time to go to sleep.
//   burst wake: from sleep, the time from submitting one task per worker (each spins 200 µs,
//               so that no thread can run two) until every one of them has started; median
//               and 90th percentile of 30 bursts.
//   waiting caller: the CPU time a thread that is not a worker spends in `get` on a task
//               that runs 20 ms (it looks for 20 µs, then sleeps): what the runtime's N
//               workers plus a waiting caller cost beside oneTBB's N threads, the caller
//               included.
// lumen beside oneTBB (a task_arena with the same number of threads, tasks enqueued from
// outside). Timing is wall clock; the machine's noise shows in the percentiles.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <lumen/lumen.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include "bench.h"

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;

double cpu_seconds(int who = RUSAGE_SELF) {
  rusage u{};
  getrusage(who, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

// Share of one core the process used over `seconds` of doing nothing itself.
double idle_share(double seconds) {
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let spinning threads sleep
  const double c0 = cpu_seconds();
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  return (cpu_seconds() - c0) / wall;
}

// One burst: `submit(task)` called `workers` times; returns the microseconds until the last
// task started on a thread no other task of the burst ran on.
struct Burst {
  unsigned workers;
  std::atomic<unsigned> started{0}, finished{0};
  std::atomic<long long> last_start_ns{0};
  Clock::time_point t0;
  std::mutex m;
  std::set<std::thread::id> threads;

  void task() {
    const auto now = Clock::now();
    {
      std::lock_guard lock(m);
      threads.insert(std::this_thread::get_id());
    }
    last_start_ns.store(std::chrono::duration_cast<std::chrono::nanoseconds>(now - t0).count());
    started.fetch_add(1);
    const auto until = now + std::chrono::microseconds(200);
    while (Clock::now() < until) {
    }
    finished.fetch_add(1);
  }
};

// submit(b, f) queues f; done(b) returns once every task of burst b has finished.
template <class Submit, class Drain>
std::vector<double> bursts(unsigned workers, int count, Submit submit, Drain drain, unsigned* distinct_min) {
  std::vector<double> us;
  *distinct_min = workers;
  for (int i = 0; i < count; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // every worker asleep again
    Burst b;
    b.workers = workers;
    b.t0 = Clock::now();
    for (unsigned w = 0; w < workers; ++w) submit([&b] { b.task(); });
    drain(b);
    us.push_back(static_cast<double>(b.last_start_ns.load()) / 1e3);
    *distinct_min = std::min(*distinct_min, static_cast<unsigned>(b.threads.size()));
  }
  std::sort(us.begin(), us.end());
  return us;
}

// Microseconds of this thread's CPU time while it waits in get() for a task of 20 ms, for
// each of `count` waits, sorted.
std::vector<double> caller_cpu_while_waiting(int count) {
  std::vector<double> us;
  for (int i = 0; i < count; ++i) {
    auto ref = lumen::submit([] {
      const auto until = Clock::now() + std::chrono::milliseconds(20);
      while (Clock::now() < until) {
      }
    });
    const double c0 = cpu_seconds(RUSAGE_THREAD);
    lumen::get(ref);
    us.push_back((cpu_seconds(RUSAGE_THREAD) - c0) * 1e6);
  }
  std::sort(us.begin(), us.end());
  return us;
}

void print_row(const char* system, unsigned workers, double idle, const std::vector<double>& us, unsigned distinct) {
  std::printf("%-8s %7u %14.3f %14.1f %14.1f %18u\n", system, workers, idle * 100, us[us.size() / 2],
              us[us.size() * 9 / 10], distinct);
}

}  // namespace

int run_idle_suite(unsigned max_workers, double idle_seconds) {
  std::printf("lumen-bench --suite idle: idle CPU over %.1f s, and 30 bursts of one 200 us task per worker from sleep\n",
              idle_seconds);
  std::printf("%-8s %7s %14s %14s %14s %18s\n", "system", "workers", "idle % of core", "burst med us",
              "burst p90 us", "threads (min) used");
  constexpr int kBursts = 30;
  for (unsigned w = 1;; w = std::min(w * 2, max_workers)) {
    {
      lumen::Runtime rt{lumen::Config{.workers = w}};
      const double idle = idle_share(idle_seconds);
      std::vector<lumen::ObjectRef<void>> refs;
      unsigned distinct = 0;
      auto us = bursts(
          w, kBursts, [&](std::function<void()> f) { refs.push_back(lumen::submit(std::move(f))); },
          [&](Burst&) {
            for (auto& r : refs) lumen::get(r);
            refs.clear();
          },
          &distinct);
      print_row("lumen", w, idle, us, distinct);
      const std::vector<double> waiting = caller_cpu_while_waiting(20);
      std::printf("%-8s %7u   waiting caller: %.0f us of CPU (median; p90 %.0f) in get() on a 20 ms task\n", "lumen", w,
                  waiting[waiting.size() / 2], waiting[waiting.size() * 9 / 10]);
    }
    {
      // The arena's threads are w workers beside the enqueuing thread, which takes no part.
      tbb::global_control limit(tbb::global_control::max_allowed_parallelism, w + 1);
      tbb::task_arena arena(static_cast<int>(w), 0);
      arena.initialize();
      const double idle = idle_share(idle_seconds);
      unsigned distinct = 0;
      auto us = bursts(
          w, kBursts, [&](std::function<void()> f) { arena.enqueue(std::move(f)); },
          [](Burst& b) {
            while (b.finished.load() < b.workers) std::this_thread::sleep_for(std::chrono::microseconds(100));
          },
          &distinct);
      print_row("tbb", w, idle, us, distinct);
    }
    std::fflush(stdout);
    if (w == max_workers) break;
  }
  std::printf("(idle: process CPU time over wall time; burst: submit of the first task to the start of the last)\n");
  return 0;
}

}  // namespace bench
