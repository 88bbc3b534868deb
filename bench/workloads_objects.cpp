// The object table and blocking: putget (put then get of an int) and park (a task that blocks on
// a ref, parks its fiber and is resumed when the ref's task has run).
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <lumen/lumen.h>

#include "bench.h"

namespace bench {
namespace {

// ---------------------------------------------------------------- putget

constexpr long kPutGet = 1000000;
constexpr long kPutGetSum = kPutGet * (kPutGet - 1) / 2;

long g_sum = -1;

struct alignas(64) Partial {
  long value = 0;
};

Workload putget() {
  Workload w;
  w.name = "putget";
  w.description = "lumen::put of an int then lumen::get of it, 1M times (no peer has an object store)";
  w.items = kPutGet;
  w.item = "put + get";
  w.systems = {
      // On the main thread, which is not a worker; independent of the thread count.
      {"lumen-main",
       [](Context&) {
         long s = 0;
         for (long i = 0; i < kPutGet; ++i) {
           auto r = lumen::put(static_cast<int>(i));
           s += lumen::get(r);
         }
         g_sum = s;
       }},
      // All workers: one task_group child per worker, each doing its share.
      {"lumen",
       [](Context& c) {
         const unsigned t = c.threads;
         std::vector<Partial> part(t);
         lumen::task_group g;
         for (unsigned k = 0; k < t; ++k) {
           g.run([&part, k, t] {
             long s = 0;
             for (long i = k; i < kPutGet; i += t) {
               auto r = lumen::put(static_cast<int>(i));
               s += lumen::get(r);
             }
             part[k].value = s;
           });
         }
         g.wait();
         long s = 0;
         for (const auto& p : part) s += p.value;
         g_sum = s;
       }},
      // The same on the main thread with std::make_shared<int> and a read.
      {"serial",
       [](Context&) {
         long s = 0;
         for (long i = 0; i < kPutGet; ++i) {
           auto p = std::make_shared<int>(static_cast<int>(i));
           do_not_optimize(p.get());
           s += *p;
         }
         g_sum = s;
       }},
  };
  w.verify = [](const System& s, Context&) {
    check(g_sum == kPutGetSum,
          "putget/" + s.name + ": got " + std::to_string(g_sum) + ", want " + std::to_string(kPutGetSum));
    g_sum = -1;
  };
  return w;
}

// ---------------------------------------------------------------- park
// One worker. A task submits a producer P (returns i) and then a no-op D, and gets P: P is not
// the newest task on the worker's deque, so get cannot run it inline and the task's fiber
// parks; the worker (on a pooled fiber) runs D, then P, which resolves the ref and resumes the
// parked fiber. Per round trip: 2 submits, 2 task runs, 1 park + resume.
// lumen-noblock does the same work but gets D first and P second, so both run inline and
// nothing parks: the difference between the two is the cost of park + resume.
// serial: a mutex + condition_variable ping-pong between two std::threads, for contrast.

constexpr long kRounds = 100000;
constexpr long kRoundsSum = kRounds * (kRounds - 1) / 2;
constexpr long kCvRounds = 20000;
constexpr long kCvSum = kCvRounds * (kCvRounds - 1) / 2;

long rounds(bool block) {
  long s = 0;
  for (long i = 0; i < kRounds; ++i) {
    auto p = lumen::submit([i] { return i; });
    auto d = lumen::submit([] {});
    if (block) {
      s += lumen::get(p);  // parks: d is on top of p
      lumen::get(d);
    } else {
      lumen::get(d);
      s += lumen::get(p);
    }
  }
  return s;
}

long cv_ping_pong() {
  std::mutex m;
  std::condition_variable cv;
  long turn = 0;  // even: ping's move, odd: pong's
  long sum = 0;
  std::thread pong([&] {
    for (long i = 0; i < kCvRounds; ++i) {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return turn == 2 * i + 1; });
      sum += i;
      ++turn;
      cv.notify_one();
    }
  });
  for (long i = 0; i < kCvRounds; ++i) {
    std::unique_lock<std::mutex> lock(m);
    ++turn;
    cv.notify_one();
    cv.wait(lock, [&] { return turn == 2 * i + 2; });
  }
  pong.join();
  return sum;
}

Workload park() {
  Workload w;
  w.name = "park";
  w.description = "fiber park/resume round trip with 1 worker: get on a ref whose task is queued behind another";
  w.items = kRounds;
  w.item = "round trip";
  w.single_thread_only = true;
  w.systems = {
      {"lumen", [](Context&) { g_sum = lumen::get(lumen::submit(rounds, true)); }},
      {"lumen-noblock", [](Context&) { g_sum = lumen::get(lumen::submit(rounds, false)); }},
      {"serial", [](Context&) { g_sum = cv_ping_pong(); }, static_cast<double>(kCvRounds)},
  };
  w.verify = [](const System& s, Context& c) {
    const long want = s.name == "serial" ? kCvSum : kRoundsSum;
    check(g_sum == want, "park/" + s.name + ": got " + std::to_string(g_sum) + ", want " + std::to_string(want));
    g_sum = -1;
    if (s.name == "lumen" && c.parks < static_cast<std::uint64_t>(kRounds)) {
      static bool warned = false;
      if (!warned)
        std::fprintf(stderr, "lumen-bench: park/lumen parked %llu times in %ld rounds (expected one park per round)\n",
                     static_cast<unsigned long long>(c.parks), kRounds);
      warned = true;
    }
  };
  return w;
}

}  // namespace

void add_object_workloads(std::vector<Workload>& out) {
  out.push_back(putget());
  out.push_back(park());
}

}  // namespace bench
