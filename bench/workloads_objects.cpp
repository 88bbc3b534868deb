// The object table and blocking: putget (put then get of an int), park (a task that blocks on
// a ref, parks its fiber and is resumed when the ref's task has run) and stream1m (1M items
// through a stream).
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <lumen/lumen.h>
#include <oneapi/tbb/concurrent_queue.h>

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

// ---------------------------------------------------------------- stream1m
// 1M ints from a producer to a consumer, at most 16 ahead: a lumen stream (each item an
// object; producer and consumer are tasks) beside a bounded queue written by hand (a mutex and
// two condition variables; the producer a thread of its own, the consumer the main thread)
// and oneTBB's concurrent_bounded_queue (the same threads). A lumen consumer on the main
// thread is left out: with every core a worker, workers spinning for work starve it (see
// docs/internals.md).

constexpr long kStreamItems = 1000000;
constexpr std::size_t kStreamAhead = 16;
long g_stream_sum = -1;

// The queue a program would write without a library: bounded, blocking on both ends.
class HandChannel {
 public:
  void push(long v) {
    std::unique_lock<std::mutex> lock(m_);
    not_full_.wait(lock, [&] { return items_.size() < kStreamAhead; });
    items_.push_back(v);
    not_empty_.notify_one();
  }
  void close() {
    std::lock_guard<std::mutex> lock(m_);
    closed_ = true;
    not_empty_.notify_one();
  }
  bool pop(long& v) {
    std::unique_lock<std::mutex> lock(m_);
    not_empty_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return false;
    v = items_.front();
    items_.pop_front();
    not_full_.notify_one();
    return true;
  }

 private:
  std::mutex m_;
  std::condition_variable not_full_, not_empty_;
  std::deque<long> items_;
  bool closed_ = false;
};

Workload stream1m() {
  Workload w;
  w.name = "stream1m";
  w.description = "1M ints streamed from a producer to a consumer, at most 16 ahead";
  w.items = kStreamItems;
  w.item = "item";
  w.systems = {
      {"lumen",
       [](Context&) {
         g_stream_sum = lumen::get(lumen::submit([] {
           auto s = lumen::stream<long>(lumen::StreamOptions{.max_ahead = kStreamAhead}, [](lumen::Emitter<long>& out) {
             for (long i = 0; i < kStreamItems; ++i) out.emit(i);
           });
           long sum = 0;
           while (auto r = s.next()) sum += lumen::get(std::move(*r));
           return sum;
         }));
       }},
      {"hand-channel",
       [](Context&) {
         HandChannel ch;
         std::thread producer([&ch] {
           for (long i = 0; i < kStreamItems; ++i) ch.push(i);
           ch.close();
         });
         long sum = 0;
         long v;
         while (ch.pop(v)) sum += v;
         producer.join();
         g_stream_sum = sum;
       }},
      {"tbb-queue",
       [](Context&) {
         tbb::concurrent_bounded_queue<long> q;
         q.set_capacity(kStreamAhead);
         std::thread producer([&q] {
           for (long i = 0; i < kStreamItems; ++i) q.push(i);
           q.push(-1);
         });
         long sum = 0;
         for (long v = 0; q.pop(v), v >= 0;) sum += v;
         producer.join();
         g_stream_sum = sum;
       }},
  };
  w.verify = [](const System& s, Context&) {
    constexpr long want = kStreamItems * (kStreamItems - 1) / 2;
    check(g_stream_sum == want, "stream1m/" + s.name + ": sum " + std::to_string(g_stream_sum));
    g_stream_sum = -1;
  };
  return w;
}

}  // namespace

void add_object_workloads(std::vector<Workload>& out) {
  out.push_back(putget());
  out.push_back(park());
  out.push_back(stream1m());
}

}  // namespace bench
