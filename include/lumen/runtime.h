/// @file
/// Runtime: the workers, their fibers and the services tasks use.
///
/// A Runtime starts its workers when constructed. Its destructor waits until every task that
/// was submitted to it has finished (value or error), then stops its threads.
///
/// The runtime in scope. Free functions (submit, put, get, actor, task_group, ...) use, on a
/// worker thread, that worker's runtime; on any other thread, the most recently constructed
/// Runtime that has not finished shutting down, else a default runtime with one worker per
/// hardware thread that starts on first use and stops at exit. Runtimes may be destroyed in any
/// order. While a Runtime's destructor waits for its tasks it stays in scope and refuses work
/// from threads that are not its own (shutdown_error); its own tasks may still submit. Once it
/// has drained, the next newest live runtime is in scope again.
///
/// A Runtime destroyed by one of its own tasks (or a lumen::blocking call of one) cannot wait
/// for that task: it stops taking outside work at once, and its shutdown finishes on a thread
/// of its own after the task returns.
///
/// Thread safety: every member may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lumen {

namespace detail {
class Scheduler;
struct RuntimeLife;
}

/// What a put() does when its value would pass Config::object_memory_limit and nothing more
/// can be evicted or spilled.
enum class PutAtLimit {
  wait,  ///< until objects are freed (or evicted) and there is room
  fail,  ///< throw resource_error at once
};

/// Every field is checked when the Runtime is constructed; a value out of range throws
/// usage_error naming the field.
struct Config {
  /// Worker threads; 0 means one per hardware thread. At most 4096: starting a thread costs
  /// about a millisecond, and workers beyond the cores only take turns on them.
  unsigned workers = 0;
  /// The stack every task runs on, from 16 KiB to 1 GiB (rounded up to whole pages). The worker
  /// loop runs tasks on fibers of this size only, never on the thread's own stack, so a task's
  /// stack does not depend on what ran before it. Memory is committed only as it is touched.
  /// Below each stack lie 64 KiB that are never mapped (a guard): a task that overflows its
  /// stack stops the process with a message naming the task and this size.
  std::size_t fiber_stack_size = 256 * 1024;
  /// Fibers (stacks) the runtime may have at once; 0: as many as the system allows (each takes
  /// two of the process's memory mappings, vm.max_map_count). A task that blocks when none is
  /// left fails its get/wait with resource_error; task_group, pipeline and graph waits instead
  /// run other work on the waiting stack until their children are done.
  std::size_t max_fibers = 0;
  /// Idle fibers each worker keeps for reuse; more are freed when the worker goes idle.
  std::size_t max_idle_fibers = 16;
  /// lumen::blocking calls that may run at once, from 1 to 32768, not counting calls that are
  /// waiting on an object (get, wait): calls that wait on each other's tasks never use them up.
  /// Their threads start on demand.
  std::size_t max_blocking_threads = 64;
  /// Named counts that tasks may claim (task(f).resources({{"gpu", 1}})), whole numbers from 0
  /// to 4294967295. At most that many units are held by running tasks at once. "CPU" is always
  /// there, equal to the workers.
  std::vector<std::pair<std::string, double>> resources{};
  /// How long an idle worker keeps looking for work before it sleeps (0 to 1 s).
  std::chrono::microseconds idle_spin{50};
  /// Bytes the values of objects may take in memory; 0: no limit. Counts values over 16 bytes
  /// (smaller ones live in the table's own entries), each as sizeof plus the elements of a
  /// contiguous container. Past it, objects least recently read leave memory if they can come
  /// back: the results of deterministic tasks are evicted and computed again when next read
  /// (TaskOptions::deterministic), and values of trivially copyable types (or vectors and
  /// strings of them) are spilled to spill_directory and read back. Other objects always stay.
  /// Task results are stored even past the limit (then others leave if they can); puts wait or
  /// fail (put_at_limit). A value being read, and one read through get(const ref&), stays. The
  /// object table is shared by the whole process, so only one live Runtime may set a limit.
  std::size_t object_memory_limit = 0;
  /// A folder for spilled values (created if missing; one file per value, deleted when it is
  /// read back or its object is freed). Empty: nothing is spilled. Needs object_memory_limit.
  std::string spill_directory{};
  PutAtLimit put_at_limit = PutAtLimit::wait;  ///< what a put does at the limit when nothing more can leave memory
  /// Records the runtime's timeline (lumen/timeline.h) from its start to its end and writes it
  /// to this file, as Chrome trace JSON, when the runtime ends. The file is opened (created or
  /// truncated) when the Runtime is constructed: one that cannot be throws usage_error. Empty:
  /// the environment variable LUMEN_TIMELINE names the file, if set (a file that cannot be
  /// opened then only gets a warning on standard error; every runtime of the process that
  /// leaves this field empty writes that file, so the one that ends last is what it holds).
  std::string timeline_path{};
  /// Events each thread keeps in a timeline recording, from 1 to 2^30 (about 24 bytes each,
  /// allocated as they come); later ones are counted as dropped.
  std::size_t timeline_events_per_thread = std::size_t{1} << 20;
  /// Keeps a record of every submitted task for the state API (lumen/state.h): list_tasks and
  /// summarize_tasks need it. Off: the environment variable LUMEN_TRACK_STATE=1 turns it on.
  /// Costs a few stores per task and a lock per submit and per end (docs/observing.md).
  bool track_state = false;
  /// Ended tasks that list_tasks can still show, from 0 to 2^24.
  std::size_t state_history = 1000;
};

/// A snapshot of the runtime's counters. Counters are totals since the runtime started.
struct Stats {
  unsigned workers = 0;  ///< worker threads
  std::uint64_t tasks_run = 0;       ///< tasks workers took from a queue (children a task_group
                                     ///< wait runs inline are not counted)
  std::uint64_t tasks_pending = 0;   ///< submitted tasks not finished yet
  std::uint64_t task_retries = 0;    ///< runs of tasks after an exception (TaskOptions::retries)
  std::uint64_t steals = 0;  ///< tasks taken from another worker's queue
  std::uint64_t parks = 0;           ///< times a task blocked and its fiber was parked
  std::uint64_t fibers_created = 0;  ///< fiber stacks made since the start (reused ones are not counted again)
  std::uint64_t fibers_pooled = 0;   ///< idle fibers kept for reuse now
  std::uint64_t objects_live = 0;    ///< objects in the table (all runtimes share it)
  std::uint64_t object_bytes = 0;    ///< bytes of their values
  std::uint64_t object_table_bytes = 0;  ///< memory of the table's entries, live and free (given-back
                                         ///< free memory not counted)
  std::vector<std::size_t> queue_lengths;  ///< tasks queued on each worker
  /// Per worker: nanoseconds spent looking for work or asleep since the runtime started (the
  /// span in progress included). Differences over an interval give each worker's utilization.
  std::vector<std::uint64_t> idle_ns;
  bool injection_queued = false;           ///< tasks from other threads not yet taken
  std::size_t outside_queues = 0;          ///< queues of threads that are not workers (one per thread
                                           ///< that submits; a thread's queue passes on when it exits)
  std::size_t blocking_threads = 0;        ///< threads started for lumen::blocking
  std::uint64_t actors_alive = 0;          ///< actors not ended (restarting ones count)
  std::uint64_t actor_calls_queued = 0;    ///< calls queued or running
  std::uint64_t actor_calls_executed = 0;  ///< calls whose method ran
  /// @name Under Config::object_memory_limit (process-wide, like the table)
  /// @{
  std::size_t object_memory_limit = 0;  ///< the limit in force, 0 for none
  std::size_t object_memory_used = 0;   ///< bytes counted against it, in memory now
  std::uint64_t objects_evicted = 0;    ///< values of deterministic tasks dropped
  std::uint64_t objects_rebuilt = 0;    ///< ... and computed again when read
  std::uint64_t objects_spilled = 0;    ///< values written to spill files
  std::uint64_t objects_restored = 0;   ///< ... and read back
  std::uint64_t spill_failures = 0;     ///< spills that could not be written (the value stayed)
  std::uint64_t puts_waited = 0;        ///< puts that waited for room
  /// @}
};

/// A set of workers and the services their tasks use. See the top of this file for which runtime
/// the free functions use, and how it shuts down.
class Runtime {
 public:
  /// Starts the workers; throws usage_error for a Config field out of range.
  explicit Runtime(Config config = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// The number of worker threads.
  unsigned workers() const noexcept;
  /// The counters now, as a Stats snapshot.
  Stats stats() const;

  /// For lumen's own code: the scheduler.
  detail::Scheduler& scheduler() noexcept { return *sched_; }
  /// For lumen's own code: the scheduler.
  const detail::Scheduler& scheduler() const noexcept { return *sched_; }

 private:
  friend class RuntimeObserver;
  std::unique_ptr<detail::Scheduler> sched_;
  bool sets_memory_limit_ = false;
  std::shared_ptr<detail::RuntimeLife> life_;
};

/// A hold on a runtime for code that may outlive it, such as a dashboard or an exporter that
/// samples stats() from a thread of its own: the runtime may be destroyed first, in any order.
/// Thread safety: any thread; copies share the hold.
class RuntimeObserver {
 public:
  /// A hold on rt: use() then calls f while rt lives.
  explicit RuntimeObserver(Runtime& rt) : life_(rt.life_) {}
  /// Runs f with the runtime and returns true while the runtime lives; returns false without
  /// calling f once its destructor has begun. The destructor waits for a call in progress, so
  /// f must not wait for the runtime to end (or destroy it).
  bool use(const std::function<void(Runtime&)>& f) const;

 private:
  std::shared_ptr<detail::RuntimeLife> life_;
};

}  // namespace lumen
