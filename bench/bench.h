// lumen-bench: the harness's view of a workload.
//
// A workload is one problem (fib32, skynet, ...) solved by several systems (lumen, tbb, omp,
// serial, ...). The harness times System::run only; everything a run needs that is not part of
// the measured work (the lumen Runtime, the tbb arena, the OpenMP thread count, buffers) is set
// up outside the timed region. Workload::verify runs after every timed run, untimed, and aborts
// when the run computed the wrong answer.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <oneapi/tbb/task_arena.h>

namespace lumen {
class Runtime;
}

namespace bench {

// What a run may use: all of it lives for one thread count.
struct Context {
  unsigned threads = 1;               // workers for lumen, arena slots for tbb, OpenMP threads
  lumen::Runtime* runtime = nullptr;  // Config{.workers = threads}; free functions use it
  tbb::task_arena* arena = nullptr;   // concurrency = threads (the caller takes one slot)
  // What the lumen runtime counted during the last run (set before verify; 0 for other systems
  // unless lumen did something meanwhile).
  std::uint64_t parks = 0, steals = 0, fibers_created = 0;
};

struct System {
  std::string name;                    // "lumen", "lumen-futures", "tbb", "omp", "serial", ...
  std::function<void(Context&)> run;   // the timed work
  double items = 0;                    // for per-item ns; 0: the workload's count
};

struct Workload {
  std::string name;
  std::string description;
  double items = 1;                    // what per-item ns divides by
  std::string item;                    // what an item is, for --list
  bool single_thread_only = false;     // runs only at threads = 1
  std::vector<System> systems;
  // Checks the result of the run just timed (untimed); aborts with a message if it is wrong.
  std::function<void(const System&, Context&)> verify;
  // Untimed, before the first and after the last run at each thread count; may be empty.
  std::function<void(Context&)> setup, teardown;
};

// Aborts the process with a message naming the workload and system.
[[noreturn]] void fail(const std::string& what);
inline void check(bool ok, const std::string& what) {
  if (!ok) fail(what);
}

// Keeps the compiler from discarding a value or the memory behind a pointer.
template <class T>
inline void do_not_optimize(const T& v) {
  asm volatile("" : : "r,m"(v) : "memory");
}

// Each workloads_*.cpp adds its workloads.
void add_recursive_workloads(std::vector<Workload>& out);  // fib32, skynet
void add_spawn_workloads(std::vector<Workload>& out);      // spawn1m, nested, cancel1m
void add_object_workloads(std::vector<Workload>& out);     // putget, park, stream1m
void add_actor_workloads(std::vector<Workload>& out);      // actor_async, actor_sync, actor_nn
void add_flow_workloads(std::vector<Workload>& out);       // pipeline, wavefront, chain
void add_loop_workloads(std::vector<Workload>& out);       // reduce, triad, matmul, sort, scan, nestfor
void add_ray_api_workloads(std::vector<Workload>& out);    // ray_task, ray_actor, ray_actor_async

// --suite ray: Ray's microbenchmark rows through lumen's API (suite_ray.cpp).
struct RaySuiteOptions {
  unsigned workers = 0;        // 0: one per hardware thread, as ray.init() takes every CPU
  unsigned repeat = 5;         // trials per row
  double trial_seconds = 0.5;  // each trial repeats the row's operation this long
  std::string filter;          // rows whose name matches
  std::string json;            // also write results here, when not empty
};
int run_ray_suite(const RaySuiteOptions& options);

// --suite idle: idle CPU use and wake-up latency of a burst, 1, 2, 4, ... max_workers workers,
// lumen beside oneTBB (suite_idle.cpp).
int run_idle_suite(unsigned max_workers, double idle_seconds);

}  // namespace bench
