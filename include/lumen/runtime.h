// Runtime: the workers, their fibers and the services tasks use.
//
// A Runtime starts its workers when constructed. Its destructor waits until every task that
// was submitted to it has finished (value or error), then stops its threads; a thread that
// submits while it is shutting down gets lumen::shutdown_error. Free functions (submit, put,
// get, task_group, ...) use the runtime in scope: on a worker thread its own, elsewhere the
// most recently constructed Runtime that is still alive, else a default runtime with one
// worker per hardware thread that starts on first use and stops at exit.
//
// Thread safety: every member may be called from any thread. Do not destroy a Runtime from
// one of its own tasks.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lumen {

namespace detail {
class Scheduler;
}

struct Config {
  // Worker threads; 0 means one per hardware thread.
  unsigned workers = 0;
  // Stack of each fiber. A fiber is only created when a task blocks.
  std::size_t fiber_stack_size = 256 * 1024;
  // Idle fibers each worker keeps for reuse; more are freed when the worker goes idle.
  std::size_t max_idle_fibers = 16;
  // Threads that run lumen::blocking calls; they start on demand.
  std::size_t max_blocking_threads = 64;
  // Named counts that tasks may claim (task(f).resources({{"gpu", 1}})). At most that many
  // units are held by running tasks at once. "CPU" is always there, equal to the workers.
  std::vector<std::pair<std::string, double>> resources{};
  // How long an idle worker keeps looking for work before it sleeps.
  std::chrono::microseconds idle_spin{50};
};

// A snapshot of the runtime's counters. Counters are totals since the runtime started.
struct Stats {
  unsigned workers = 0;
  std::uint64_t tasks_run = 0;       // tasks workers took from a queue (children a task_group
                                     // wait runs inline are not counted)
  std::uint64_t tasks_pending = 0;   // submitted tasks not finished yet
  std::uint64_t steals = 0;
  std::uint64_t parks = 0;           // times a task blocked and its fiber was parked
  std::uint64_t fibers_created = 0;
  std::uint64_t fibers_pooled = 0;   // idle fibers kept for reuse now
  std::uint64_t objects_live = 0;    // objects in the table (all runtimes share it)
  std::uint64_t object_bytes = 0;    // bytes of their values
  std::vector<std::size_t> queue_lengths;  // tasks queued on each worker
  bool injection_queued = false;           // tasks from other threads not yet taken
  std::size_t blocking_threads = 0;        // threads started for lumen::blocking
  std::uint64_t actors_alive = 0;          // actors not ended (restarting ones count)
  std::uint64_t actor_calls_queued = 0;    // calls queued or running
  std::uint64_t actor_calls_executed = 0;  // calls whose method ran
};

class Runtime {
 public:
  explicit Runtime(Config config = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  unsigned workers() const noexcept;
  Stats stats() const;

  detail::Scheduler& scheduler() noexcept { return *sched_; }

 private:
  std::unique_ptr<detail::Scheduler> sched_;
  Runtime* previous_;
};

}  // namespace lumen
