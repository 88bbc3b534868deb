// The scheduler: workers with Chase–Lev deques, an injection queue for other threads, idle
// workers parked under the one-spinner rule, and the services tasks lean on (resources,
// timers, threads for blocking calls). docs/internals.md describes the invariants.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "observe/task_registry.h"
#include "observe/timeline_data.h"
#include "sched/external_queue.h"
#include "sched/fiber.h"
#include "lumen/detail/chase_lev_deque.h"
#include "lumen/detail/cpu_relax.h"
#include "lumen/detail/mpsc_queue.h"
#include "lumen/detail/scheduler_api.h"
#include "lumen/runtime.h"

namespace lumen::detail {

class Scheduler;

// A counter written by one thread and read by any: plain loads and stores, no lock prefix.
struct OwnedCounter {
  std::atomic<std::uint64_t> value{0};
  void add(std::uint64_t n = 1) noexcept {
    value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }
  std::uint64_t read() const noexcept { return value.load(std::memory_order_acquire); }
};

class Worker {
 public:
  Worker(Scheduler& s, unsigned index);
  ~Worker();

  void start();
  void join();

  // Called on this worker's thread. When the deque cannot grow (out of memory) the task goes
  // to the shared injection queue instead, which needs no memory: a spawn never fails.
  inline void push(Task* t) noexcept;
  // Throws resource_error (before commit runs) when no fiber can be had to go on with.
  void park(void (*commit)(void*, Wakeup), void* arg);
  // Runs this worker's other work on the calling stack until done(arg): for a wait that
  // cannot park (no fiber left) and must not return before its children are done.
  void help_until(bool (*done)(const void*) noexcept, const void* arg);
  Task* pop_own_if(const void* group) noexcept;

  bool defer_completion(void* group, void (*flush)(void*, std::int64_t) noexcept) noexcept;

  // Any thread.
  void resume(Fiber* f) noexcept;
  Task* steal() noexcept { return deque_.steal(); }
  bool has_visible_work() const noexcept;
  std::size_t queued() const noexcept { return deque_.size_hint(); }

  Scheduler& scheduler() noexcept { return sched_; }
  unsigned index() const noexcept { return index_; }

  // Set while this worker may be writing to its runtime's timeline recording (timeline.cpp).
  std::atomic<bool> timeline_writing{false};
  // When its current idle span began, -1 while busy: in steady-clock ns for Stats::idle_ns,
  // and in timeline ticks while a timeline records (a trace written meanwhile shows the span
  // up to its own time).
  std::atomic<std::int64_t> idle_since_ns{-1};
  std::atomic<std::int64_t> idle_since_tick{-1};
  OwnedCounter idle_ns;  // idle spans that ended

  // Sleeping: 1 while parked in Scheduler::sleep.
  std::atomic<std::uint32_t> sleep_state{0};
  bool woken_spinning = false;  // woken to spin: already counted in Scheduler::spinning_

  OwnedCounter tasks_run, steals, parks, created, finished, fibers_created;
  std::int64_t external_seen[64] = {};  // per external queue: its bottom when last looked at
  std::atomic<std::size_t> pooled_fibers{0};

 private:
  void thread_main();
  void loop();
  // eager: take a short external queue even while its producer is still adding to it.
  Task* find_task(bool eager = false) noexcept;
  void run_task(Task* t) noexcept;
  // Runs t inline on the current stack from a wait (help_until): its own timeline slice.
  void run_nested(Task* t) noexcept;
  // The timeline around a fiber switch: the running slice pauses while its fiber is parked.
  void timeline_park() noexcept;
  void timeline_resume() noexcept;
  void flush_deferred() noexcept;
  Task* steal_from_others() noexcept;
  void idle();
  void give_back_table_memory_now_and_then() noexcept;
  void switch_to(Fiber* to, void (*on_arrival)(Worker*, Fiber* from, void*), void* arg);
  void resume_parked(Fiber* f);
  Fiber* take_idle_fiber();
  void add_idle_fiber(Fiber* f) noexcept;
  Fiber* new_fiber(bool reserved);
  void trim_idle_fibers(std::size_t keep);
  void quit_fiber(Fiber* f);

  Scheduler& sched_;
  const unsigned index_;
  ChaseLevDeque<Task*> deque_;
  MpscQueue resumed_;  // parked fibers made runnable again
  std::thread thread_;
  Fiber native_;                 // the thread's own stack: starts the loop, and ends it
  Fiber* first_ = nullptr;       // the loop's first fiber, made before the thread starts
  Fiber* current_ = nullptr;
  Fiber* idle_head_ = nullptr;   // suspended at the top of the loop, ready to reuse
  std::size_t idle_count_ = 0;
  std::size_t parked_ = 0;          // fibers of this worker parked on something
  std::uint64_t rng_;
  std::uint32_t local_streak_ = 0;  // tasks run since the injection queue was last checked
  Fiber* quit_requester_ = nullptr;  // the fiber a trimmed fiber returns to
  // Completions of one task_group's children, not yet added to the group (defer_completion).
  void* deferred_group_ = nullptr;
  void (*deferred_flush_)(void*, std::int64_t) noexcept = nullptr;
  std::int64_t deferred_count_ = 0;
  unsigned depth_ = 0;  // tasks running on the current fiber: 1 when the loop runs one
};

class Scheduler {
 public:
  // Throws usage_error for a Config field out of range, resource_error when the worker
  // threads cannot be started (the ones that did start are stopped first).
  explicit Scheduler(const Config& config);
  ~Scheduler();  // drain() if not done yet, ends the runtime's actors, stops the threads

  // Refuses tasks from threads that are not workers from now on (shutdown_error).
  void stop_taking_outside_work() noexcept;
  // Stops taking outside work and waits until every submitted task has finished.
  void drain();
  std::uint64_t id() const noexcept { return id_; }

  const Config& config() const noexcept { return config_; }
  unsigned worker_count() const noexcept { return static_cast<unsigned>(workers_.size()); }
  Worker& worker(unsigned i) noexcept { return *workers_[i]; }
  StackPool& stacks() noexcept { return stacks_; }

  // A task from a thread that is not one of this runtime's workers: on that thread's own
  // queue (ExternalQueue), or on the shared injection queue once too many threads have one.
  void submit_external(Task* t) noexcept;
  void inject(Task* t) noexcept;
  Task* take_injected(Worker& w) noexcept;
  Task* take_external(Worker& w, unsigned start, bool eager = false) noexcept;
  // The oldest task of the calling thread's own queue, if it belongs to `group`.
  Task* take_own_external_if(const void* group) noexcept;
  bool external_nonempty() const noexcept;
  void push_priority(Task* t, int priority);
  Task* take_priority() noexcept;
  // Sequentially consistent: a worker's last look before it sleeps must not miss a push (a
  // plain load on x86, so the hot path pays nothing for it).
  bool priority_nonempty() const noexcept { return priority_count_.load(std::memory_order_seq_cst) != 0; }

  // Idle workers.
  // `backlog` tasks are queued where any worker can take them: wakes a sleeping worker unless
  // that many are already looking (spinning, or woken to spin). A burst of n tasks from a
  // thread that is not a worker thus wakes n sleepers at once, not one after another.
  void wake_for_work(std::int64_t backlog = 1) noexcept;
  void wake_worker(Worker& w) noexcept;  // w has a resumed fiber
  // Held by a thread that is not one of this runtime's workers while it queues work for the
  // runtime (a task, a fiber to resume) and wakes a worker for it: once queued, the work may
  // run and finish, and the runtime end, before the thread is done waking. The runtime's end
  // waits until no ForeignWake is held. (The count is taken before the work is queued, so
  // an end that saw the work finish sees the count.)
  class ForeignWake {
   public:
    explicit ForeignWake(Scheduler& s) noexcept : s_(s) { s_.foreign_wakers_.fetch_add(1, std::memory_order_relaxed); }
    ~ForeignWake() { s_.foreign_wakers_.fetch_sub(1, std::memory_order_release); }
    ForeignWake(const ForeignWake&) = delete;
    ForeignWake& operator=(const ForeignWake&) = delete;

   private:
    Scheduler& s_;
  };
  bool try_begin_spinning() noexcept;
  void end_spinning(bool found_work) noexcept;
  enum class SleepEnd { woken, work_seen };
  // Registers w as idle, looks for work once more, and sleeps unless it saw some.
  SleepEnd sleep(Worker& w);
  bool exiting() const noexcept { return exiting_.load(std::memory_order_acquire); }
  bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }
  int idle_count() const noexcept { return idle_count_.load(std::memory_order_relaxed); }

  // Task accounting.
  void begin_external_task();
  void begin_nested_external_task() noexcept { external_created_.fetch_add(1, std::memory_order_seq_cst); }
  void end_external_task() noexcept { external_finished_.fetch_add(1, std::memory_order_release); }
  bool quiescent() const noexcept;
  // Tasks in the injection, priority or external queues.
  bool work_queued_outside_workers() const noexcept {
    return injection_.nonempty_hint() || priority_nonempty() || external_nonempty();
  }

  // Resources.
  ResourceDemand demand(std::string_view name, double count);
  void add_resource(std::string_view name, std::uint64_t capacity);
  bool acquire(Task* t, const ResourceDemand* d, std::size_t n);
  void release(const ResourceDemand* d, std::size_t n) noexcept;

  // Timers fire a callback on the timer thread at a deadline; with `early_at_shutdown`, as soon
  // as the runtime starts shutting down (for delays that only pace work, such as restart backoff).
  struct TimerId {
    Clock::time_point when;
    std::uint64_t seq;
  };
  TimerId add_timer(Clock::time_point when, void (*fire)(void*) noexcept, void* arg, bool early_at_shutdown = false);
  void count_retry() noexcept { task_retries_.fetch_add(1, std::memory_order_relaxed); }
  // True when the timer had not fired yet and never will; false when it fired or is firing.
  bool cancel_timer(TimerId id) noexcept;
  // Threads for blocking calls. At most Config::max_blocking_threads calls run at once, not
  // counting calls that are waiting on an object (get, wait): calls that wait on each other's
  // tasks never use up the threads. Throws resource_error when no thread can be started and
  // none exists to run t (t was not queued).
  void run_blocking(Task* t);
  // A thread for blocking calls starts or stops waiting on an object.
  void blocking_call_waits() noexcept;
  void blocking_call_resumes() noexcept;

  Stats stats() const;

  // The state API's task records (task_registry.h), when Config::track_state is on.
  std::unique_ptr<TaskRegistry> task_registry;

  // The timeline recording in progress (timeline_data.h): workers read `timeline` for each
  // event; timeline_current owns it, under timeline_mutex.
  std::atomic<TimelineData*> timeline{nullptr};
  std::mutex timeline_mutex;
  std::shared_ptr<TimelineData> timeline_current;

 private:
  // The recording of the runtime's whole life (Config::timeline_path or LUMEN_TIMELINE), and
  // the file it is written to when the runtime ends.
  std::shared_ptr<TimelineData> timeline_for_life_;
  std::FILE* timeline_file_ = nullptr;
  std::string timeline_path_;
  void start_timeline_for_life();
  void end_timeline_for_life() noexcept;

  void stop_threads() noexcept;
  void timer_main();
  void blocking_main();

  Config config_;
  StackPool stacks_;
  std::vector<std::unique_ptr<Worker>> workers_;

  MpscQueue injection_;
  std::atomic<bool> injection_busy_{false};  // one consumer at a time

  ExternalQueue* queue_of_this_thread();
  void wake_after_external_push(const ExternalQueue& q) noexcept;
  void inject_from_outside(Task* t) noexcept;  // under a ForeignWake
  ExternalQueue* bound_queue() const noexcept;  // this thread's queue here, if it has one
  static constexpr unsigned kMaxExternalQueues = 64;  // Worker::external_seen has as many
  const std::uint64_t id_;  // unique for the process's lifetime: threads key their queue on it
  std::mutex external_mutex_;
  std::atomic<ExternalQueue*> external_[kMaxExternalQueues]{};
  std::atomic<unsigned> external_count_{0};

  std::mutex priority_mutex_;
  struct Prioritized {
    int priority;
    std::uint64_t seq;
    Task* task;
    bool operator<(const Prioritized& o) const noexcept {
      return priority != o.priority ? priority < o.priority : seq > o.seq;
    }
  };
  std::priority_queue<Prioritized> priority_queue_;
  std::uint64_t priority_seq_ = 0;
  std::atomic<std::size_t> priority_count_{0};

  alignas(64) std::atomic<int> spinning_{0};
  alignas(64) std::atomic<int> idle_count_{0};
  std::mutex idle_mutex_;
  std::vector<Worker*> idle_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> exiting_{false};
  bool drained_ = false;

  std::atomic<std::uint64_t> task_retries_{0};
  alignas(64) std::atomic<std::uint64_t> external_created_{0};
  alignas(64) std::atomic<std::uint64_t> external_finished_{0};
  // Threads that are not this runtime's workers, between queueing work for it and the end of
  // their wake-up of a worker (see ForeignWake).
  alignas(64) std::atomic<std::int64_t> foreign_wakers_{0};

  struct Resource {
    std::string name;
    std::uint64_t capacity;
    std::uint64_t in_use = 0;
  };
  std::mutex resource_mutex_;
  std::vector<Resource> resources_;
  struct Waiting {
    Task* task;
    const ResourceDemand* demand;
    std::size_t n;
  };
  std::deque<Waiting> resource_waiting_;

  std::mutex timer_mutex_;
  std::condition_variable timer_cv_;
  struct Timer {
    void (*fire)(void*) noexcept;
    void* arg;
    bool early_at_shutdown;
    std::uint64_t seq;
  };
  std::uint64_t timer_seq_ = 0;
  std::multimap<Clock::time_point, Timer> timers_;
  std::thread timer_thread_;
  bool timer_stop_ = false;
  bool timer_stopping_ = false;  // the runtime is shutting down: early_at_shutdown timers are due

  mutable std::mutex blocking_mutex_;
  std::condition_variable blocking_cv_;
  std::deque<Task*> blocking_queue_;
  std::vector<std::thread> blocking_threads_;
  std::size_t blocking_idle_ = 0;
  std::size_t blocking_running_ = 0;   // threads running a call that is not waiting on an object
  std::size_t blocking_starting_ = 0;  // threads started that have not yet taken a call
  void start_blocking_thread_if_needed();
  bool blocking_stop_ = false;
};

inline void Worker::push(Task* t) noexcept {
  try {
    deque_.push(t);
  } catch (...) {
    sched_.inject(t);
  }
}

// On a thread that runs lumen::blocking calls: the scheduler it works for, else null.
extern thread_local Scheduler* tls_blocking_scheduler;

// The worker running on this thread, or null. initial-exec: a plain %fs-relative load rather
// than a call to __tls_get_addr on every spawn and wait (the library is linked at startup,
// not dlopen()ed late).
extern __attribute__((tls_model("initial-exec"))) constinit thread_local Worker* tls_worker;
inline Worker* this_worker() noexcept { return tls_worker; }

}  // namespace lumen::detail
