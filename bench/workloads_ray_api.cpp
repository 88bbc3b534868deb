// Ray's C++ API (lumen/ray.h) beside the same work through lumen's own calls, on the same
// runtime (the one ray::Init starts, set up outside the timed runs): what the compatibility
// layer costs.
//
//   ray_task   100k times from one thread: ray::Task(f).Remote(x) then ray::Get,
//              beside lumen::get(lumen::submit(f, x))
//   ray_actor  100k times from one thread: handle.Task(&C::m).Remote(x) then ray::Get,
//              beside lumen::get(handle.call(&C::m, x))
//   ray_actor_async  1M actor calls from one thread, then a get of the last
#include <lumen/lumen.h>
#include <lumen/ray.h>

#include <functional>
#include <string>
#include <utility>

#include "bench.h"

namespace bench {
namespace {

constexpr long kSyncCalls = 100'000;
constexpr long kAsyncCalls = 1'000'000;

long Increment(long x) { return x + 1; }

class Counter {
 public:
  static Counter* FactoryCreate() { return new Counter(); }
  long Add(long k) { return n_ += k; }

 private:
  long n_ = 0;
};

RAY_REMOTE(Increment, Counter::FactoryCreate, &Counter::Add);

long g_result = 0;

// A workload whose two systems, "ray-api" and "lumen", leave `expected` in g_result. Both run
// on the runtime ray::Init starts (set up untimed): it is the newest, so lumen's free functions
// called from the harness's thread use it too.
Workload ray_workload(std::string name, std::string description, long items, std::string item,
                      std::function<void(Context&)> through_ray, std::function<void(Context&)> through_lumen) {
  Workload w;
  w.name = std::move(name);
  w.description = std::move(description);
  w.items = static_cast<double>(items);
  w.item = std::move(item);
  w.single_thread_only = true;  // ray::Init picks its own worker count
  w.setup = [](Context&) { ray::Init(); };
  w.teardown = [](Context&) { ray::Shutdown(); };
  w.systems = {{"ray-api", std::move(through_ray)}, {"lumen", std::move(through_lumen)}};
  w.verify = [items, n = w.name](const System& s, Context&) { check(g_result == items, n + "/" + s.name + ": wrong count"); };
  return w;
}

Workload ray_task() {
  return ray_workload(
      "ray_task", "100k times from one thread: submit a task, then get its result (ray:: vs lumen::)", kSyncCalls,
      "submit + get",
      [](Context&) {
        long v = 0;
        for (long i = 0; i < kSyncCalls; ++i) v = *ray::Get(ray::Task(Increment).Remote(v));
        g_result = v;
      },
      [](Context&) {
        long v = 0;
        for (long i = 0; i < kSyncCalls; ++i) v = lumen::get(lumen::submit(Increment, v));
        g_result = v;
      });
}

Workload ray_actor() {
  return ray_workload(
      "ray_actor", "100k times from one thread: call an actor, then get the result (ray:: vs lumen::)", kSyncCalls,
      "call + get",
      [](Context&) {
        auto c = ray::Actor(Counter::FactoryCreate).Remote();
        long v = 0;
        for (long i = 0; i < kSyncCalls; ++i) v = *ray::Get(c.Task(&Counter::Add).Remote(1));
        g_result = v;
      },
      [](Context&) {
        auto c = lumen::actor<Counter>();
        long v = 0;
        for (long i = 0; i < kSyncCalls; ++i) v = lumen::get(c.call(&Counter::Add, 1));
        g_result = v;
      });
}

Workload ray_actor_async() {
  return ray_workload(
      "ray_actor_async", "1M actor calls from one thread, then get the last (ray:: vs lumen::)", kAsyncCalls, "call",
      [](Context&) {
        auto c = ray::Actor(Counter::FactoryCreate).Remote();
        ray::ObjectRef<long> last;
        for (long i = 0; i < kAsyncCalls; ++i) last = c.Task(&Counter::Add).Remote(1);
        g_result = *ray::Get(last);
      },
      [](Context&) {
        auto c = lumen::actor<Counter>();
        lumen::ObjectRef<long> last;
        for (long i = 0; i < kAsyncCalls; ++i) last = c.call(&Counter::Add, 1);
        g_result = lumen::get(last);
      });
}

}  // namespace

void add_ray_api_workloads(std::vector<Workload>& out) {
  out.push_back(ray_task());
  out.push_back(ray_actor());
  out.push_back(ray_actor_async());
}

}  // namespace bench
