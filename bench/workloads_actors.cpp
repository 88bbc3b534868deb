// Actors: calls to one stateful object, through lumen's actors and through the actor people
// write by hand (a std::thread serving a std::deque of std::packaged_task under a std::mutex
// and a std::condition_variable, one std::future per call).
//
//   actor_async  1M calls from one thread to one actor, then a get of the last result
//   actor_sync   100k times: call, then get its result
//   actor_nn     4 callers x 250k calls spread over 4 actors, each caller then gets its last
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <lumen/lumen.h>

#include "bench.h"

namespace bench {
namespace {

constexpr long kAsyncCalls = 1'000'000;
constexpr long kSyncCalls = 100'000;
constexpr int kCallers = 4;
constexpr int kActors = 4;
constexpr long kCallsPerCaller = 250'000;

struct Counter {
  long n = 0;
  long add(long k) { return n += k; }
};

// The hand-written actor: one thread owns the state and serves calls in order.
class ThreadActor {
 public:
  ThreadActor() : thread_([this] { serve(); }) {}
  ~ThreadActor() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  ThreadActor(const ThreadActor&) = delete;
  ThreadActor& operator=(const ThreadActor&) = delete;

  std::future<long> add(long k) {
    std::packaged_task<long()> call([this, k] { return state_.add(k); });
    std::future<long> f = call.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(call));
    }
    cv_.notify_one();
    return f;
  }
  long value() { return add(0).get(); }

 private:
  void serve() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      std::packaged_task<long()> call = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      call();
      lock.lock();
    }
  }

  Counter state_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<long()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

long g_last = 0;

Workload actor_async() {
  Workload w;
  w.name = "actor_async";
  w.description = "1M calls from one thread to one actor, then get the last (Counter::add)";
  w.items = kAsyncCalls;
  w.item = "call";
  w.systems = {
      {"lumen",
       [](Context&) {
         auto c = lumen::actor<Counter>();
         lumen::ObjectRef<long> last;
         for (long i = 0; i < kAsyncCalls; ++i) last = c.call(&Counter::add, 1);
         g_last = lumen::get(last);
       }},
      {"thread-actor",
       [](Context&) {
         ThreadActor a;
         std::future<long> last;
         for (long i = 0; i < kAsyncCalls; ++i) last = a.add(1);
         g_last = last.get();
       }},
  };
  w.verify = [](const System& s, Context&) { check(g_last == kAsyncCalls, "actor_async/" + s.name + ": wrong count"); };
  return w;
}

Workload actor_sync() {
  Workload w;
  w.name = "actor_sync";
  w.description = "100k times: call an actor from one thread, then get the result";
  w.items = kSyncCalls;
  w.item = "call + get";
  w.systems = {
      {"lumen",
       [](Context&) {
         auto c = lumen::actor<Counter>();
         long v = 0;
         for (long i = 0; i < kSyncCalls; ++i) v = lumen::get(c.call(&Counter::add, 1));
         g_last = v;
       }},
      {"thread-actor",
       [](Context&) {
         ThreadActor a;
         long v = 0;
         for (long i = 0; i < kSyncCalls; ++i) v = a.add(1).get();
         g_last = v;
       }},
  };
  w.verify = [](const System& s, Context&) { check(g_last == kSyncCalls, "actor_sync/" + s.name + ": wrong count"); };
  return w;
}

Workload actor_nn() {
  Workload w;
  w.name = "actor_nn";
  w.description = "4 callers x 250k calls spread over 4 actors (lumen: callers are tasks; by hand: threads)";
  w.items = kCallers * kCallsPerCaller;
  w.item = "call";
  w.systems = {
      {"lumen",
       [](Context&) {
         std::vector<lumen::ActorHandle<Counter>> actors;
         for (int a = 0; a < kActors; ++a) actors.push_back(lumen::actor<Counter>());
         std::vector<lumen::ObjectRef<void>> callers;
         for (int c = 0; c < kCallers; ++c) {
           callers.push_back(lumen::submit([&actors, c] {
             std::vector<lumen::ObjectRef<long>> last(kActors);
             for (long i = 0; i < kCallsPerCaller; ++i) {
               std::size_t a = static_cast<std::size_t>((i + c) % kActors);
               last[a] = actors[a].call(&Counter::add, 1);
             }
             for (auto& r : last) lumen::get(r);
           }));
         }
         for (auto& r : callers) lumen::get(r);
         long total = 0;
         for (auto& a : actors) total += lumen::get(a.call(&Counter::add, 0));
         g_last = total;
       }},
      {"thread-actor",
       [](Context&) {
         std::vector<std::unique_ptr<ThreadActor>> actors;
         for (int a = 0; a < kActors; ++a) actors.push_back(std::make_unique<ThreadActor>());
         std::vector<std::thread> callers;
         for (int c = 0; c < kCallers; ++c) {
           callers.emplace_back([&actors, c] {
             std::vector<std::future<long>> last(kActors);
             for (long i = 0; i < kCallsPerCaller; ++i) {
               std::size_t a = static_cast<std::size_t>((i + c) % kActors);
               last[a] = actors[a]->add(1);
             }
             for (auto& f : last) f.get();
           });
         }
         for (auto& t : callers) t.join();
         long total = 0;
         for (auto& a : actors) total += a->value();
         g_last = total;
       }},
  };
  w.verify = [](const System& s, Context&) {
    check(g_last == kCallers * kCallsPerCaller, "actor_nn/" + s.name + ": wrong count");
  };
  return w;
}

}  // namespace

void add_actor_workloads(std::vector<Workload>& out) {
  out.push_back(actor_async());
  out.push_back(actor_sync());
  out.push_back(actor_nn());
}

}  // namespace bench
