// What the header-only parts of lumen (submit, get, task_group) call in the compiled library.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "lumen/detail/mpsc_queue.h"
#include "lumen/error.h"
#include "lumen/detail/object_table.h"

// Which sanitizer this code is built with: GCC names them with macros, Clang with
// __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define LUMEN_DETAIL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LUMEN_DETAIL_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define LUMEN_DETAIL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LUMEN_DETAIL_TSAN 1
#endif
#endif

namespace lumen::detail {

class Scheduler;

// A unit of work on the scheduler. run() executes the task and frees it.
struct Task : MpscNode {
  void (*run)(Task*) noexcept = nullptr;
  // Who may run it inline while waiting: its task_group, or the slot of its result.
  const void* group = nullptr;
};

using Clock = std::chrono::steady_clock;

// The deadline `timeout` from now. Saturates: a timeout too long to add to now() (hours::max())
// gives Clock::time_point::max(), which means "no deadline"; a negative one gives now(). A
// NaN timeout (a floating-point duration) means neither and throws usage_error.
template <class Rep, class Period>
void check_timeout(std::chrono::duration<Rep, Period> timeout) {
  if constexpr (std::is_floating_point_v<Rep>) {
    if (timeout.count() != timeout.count()) throw usage_error("lumen: the timeout is NaN");
  }
}
template <class Rep, class Period>
Clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout) {
  check_timeout(timeout);
  const Clock::time_point now = Clock::now();
  if (timeout <= timeout.zero()) return now;
  // Compared as floating-point seconds, which neither side can overflow whatever the timeout's
  // representation; a second of slack absorbs the rounding.
  using Seconds = std::chrono::duration<double>;
  if (Seconds(timeout).count() >= Seconds(Clock::time_point::max() - now).count() - 1.0) return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

// The runtime in scope, held for the length of one call into lumen (submit, actor(), ...).
// On a worker it is the worker's own runtime and holding it costs nothing. On any other thread
// it is the newest Runtime that has not finished shutting down (else the default runtime), and
// the hold keeps that runtime from finishing its shutdown until the call returns: a Runtime
// destroyed on another thread meanwhile never frees what the call is using.
class RuntimeEntry {
 public:
  RuntimeEntry();
  ~RuntimeEntry();
  RuntimeEntry(const RuntimeEntry&) = delete;
  RuntimeEntry& operator=(const RuntimeEntry&) = delete;
  Scheduler& scheduler() const noexcept { return *sched_; }

 private:
  Scheduler* sched_;
  bool pinned_ = false;
};

// The scheduler whose worker is the calling thread, or null.
Scheduler* worker_scheduler() noexcept;
// Unique among the runtimes of the process's lifetime (never reused).
std::uint64_t scheduler_id(const Scheduler& s) noexcept;
// scheduler_id() of the scheduler whose worker is the calling thread, or 0.
std::uint64_t worker_scheduler_id() noexcept;
// Counts one piece of work a thread that is not a worker started on the runtime with this id
// (a task_group's children, a pipeline run, a graph run), so that the runtime's shutdown waits
// for it. Throws shutdown_error when that runtime is gone or shutting down. End it with end_task.
Scheduler& begin_outside_work(Scheduler* s, std::uint64_t id);

class Worker;

// Queues a task that is ready to run: on the calling worker's deque, else the queue of the
// calling thread (see Scheduler::submit_external).
void spawn(Scheduler& s, Task* t) noexcept;
// The worker of s that runs the calling fiber, or null (not a worker of s).
Worker* worker_of(Scheduler& s) noexcept;
// spawn() and pop_group_child() for a caller that knows it runs on worker w.
void spawn_on(Worker& w, Task* t) noexcept;
Task* pop_own_if(Worker& w, const void* group) noexcept;
// True when w's deque holds no task (a relaxed snapshot; call on w's own thread). Parallel
// loops split a range only then: a queued half means a thief already has something to take,
// so the owner keeps its range whole and splits again once that half was stolen (lazy
// binary splitting, Tzannes et al. 2010). No tuning, and nested loops do not oversubscribe.
bool own_queue_empty(Worker& w) noexcept;
// The number of workers of s, for algorithms that start one helper per worker.
unsigned worker_count(Scheduler& s) noexcept;
// Queues a task ahead of tasks with lower priority.
void spawn_with_priority(Scheduler& s, Task* t, int priority);
// Runs t on one of the runtime's threads for blocking calls.
void spawn_blocking(Scheduler& s, Task* t);

// Submitted tasks are counted so that shutdown can wait for all of them. begin throws
// shutdown_error when a thread that is not a worker submits to a stopping runtime.
void begin_task(Scheduler& s);
void end_task(Scheduler& s) noexcept;
// Counts a task started on behalf of one that is already counted and not finished (so the
// runtime cannot be past its shutdown wait): never throws.
void begin_nested_task(Scheduler& s) noexcept;
// True when the calling worker has something else to run: tasks in its deque, fibers to
// resume, or tasks in the runtime's shared queues. A task that could keep its worker busy
// for long (an actor draining its mailbox) asks this before it holds on to the worker.
bool work_waiting(Scheduler& s) noexcept;
// Queues t behind the work already waiting in the runtime's shared queue: for a task that
// yields after a long turn, so that it does not run again before older work.
void spawn_yield(Scheduler& s, Task* t) noexcept;

// Resources: named counts declared in Config::resources.
struct ResourceDemand {
  std::uint32_t resource;
  std::uint32_t count;
};
ResourceDemand resource_demand(Scheduler& s, std::string_view name, double count);  // validates
// True when granted; false when the task was queued, to be spawned again once granted.
bool acquire_resources(Scheduler& s, Task* t, const ResourceDemand* d, std::size_t n);
// Adds a resource with this capacity to a running runtime (for reservations made after it
// started: Ray's placement group bundles). Throws usage_error if the name is taken.
void add_resource(Scheduler& s, std::string_view name, std::uint64_t capacity);
void release_resources(Scheduler& s, const ResourceDemand* d, std::size_t n) noexcept;

// Parking. A Wakeup names one parked context (a fiber on a worker, or a thread); unpark must
// be called exactly once for each Wakeup that park hands to its commit function.
struct Wakeup {
  void* worker = nullptr;
  void* fiber = nullptr;
  void* thread = nullptr;
};
// Suspends the caller. commit(arg, w) runs once the caller is suspended (for a fiber: on
// another stack, so it may hand w to a thread that unparks at once). Returns after unpark(w).
// Throws resource_error, without calling commit, when a fiber cannot park because no fiber is
// left to go on with (Config::max_fibers, or the system's limit on mappings).
void park(void (*commit)(void*, Wakeup), void* arg);
// For a wait that cannot park (park threw resource_error) and must not return before done(arg)
// (its children point into its stack): runs the worker's other work on this stack meanwhile,
// as far as the stack allows, and returns once done(arg) is true.
void help_until(bool (*done)(const void*) noexcept, const void* arg);
void unpark(Wakeup w) noexcept;
// What the running task leaves for the code it calls, per stack: on a worker one per fiber (it
// follows a task that parks), on any other thread one per thread. Whoever sets a field
// restores it before it returns.
struct TaskContext {
  void* actor = nullptr;         // the ActorContext of the actor method running here, or null
  const void* task = nullptr;    // the SubmitTaskBase running here, or null
  // Children run inline on this stack (get on a task still queued here, task_group::wait) only
  // above this address; below it they are left for a fresh fiber. Null: no bound (a thread's
  // own stack).
  const char* inline_floor = nullptr;
  // Tasks that a wait with no fiber to park on runs on this stack, nested: each of them acts
  // for itself, not for the frames below it (a task_group there is not theirs).
  std::uint32_t helped_depth = 0;
  // The stop request of the task_group, pipeline or graph run whose body runs here, or null:
  // what stop_requested() reads besides the running task's own.
  const std::atomic<bool>* group_stop = nullptr;
  // The timeline slice open on this stack (timeline.h), while a recording runs: when it began
  // (ns, steady clock), its label, and whether one is open: kSliceFresh when the worker loop
  // opened it for the task it runs and that task has not named it yet.
  static constexpr std::uint8_t kSliceNone = 0, kSliceFresh = 1, kSliceOpen = 2;
  std::uint8_t slice_state = kSliceNone;
  std::uint32_t slice_label = 0;
  std::int64_t slice_begin = 0;
};
// The running fiber's context on a worker thread; null on other threads. Fibers never change
// thread, so reading it through a cached thread-local address stays right after a switch.
// constinit: no dynamic initialization, so reads need no thread-local init check.
extern __attribute__((tls_model("initial-exec"))) constinit thread_local TaskContext* tls_context;
extern __attribute__((tls_model("initial-exec"))) constinit thread_local TaskContext tls_thread_context;
inline TaskContext& task_context() noexcept {
  TaskContext* c = tls_context;
  return c != nullptr ? *c : tls_thread_context;
}
// Makes `stop` the stop request that stop_requested() reads in the bodies run in its scope (a
// task_group child, a pipeline stage, a graph node); restores the one before on exit.
class GroupStopScope {
 public:
  explicit GroupStopScope(const std::atomic<bool>* stop) noexcept : context_(task_context()), saved_(context_.group_stop) {
    context_.group_stop = stop;
  }
  ~GroupStopScope() { context_.group_stop = saved_; }
  GroupStopScope(const GroupStopScope&) = delete;
  GroupStopScope& operator=(const GroupStopScope&) = delete;

 private:
  TaskContext& context_;  // the fiber's own: still the right one after a body parks
  const std::atomic<bool>* saved_;
};
// Identifies the running fiber, or the thread when it is not a worker.
inline const void* current_context() noexcept { return &task_context(); }
// False when the stack is too deep to run another task inline on it. (A local's address
// stands for the stack pointer: __builtin_frame_address would make every caller keep a frame
// pointer, and these checks sit in the fork/join fast path. Under AddressSanitizer a local
// may live on its fake stack, elsewhere in memory, so the frame's address is used there.)
inline bool room_to_run_inline(const TaskContext& c) noexcept {
#if defined(LUMEN_DETAIL_ASAN)
  const void* here = __builtin_frame_address(0);
#else
  const char local = 0;
  const void* here = &local;
#endif
  return c.inline_floor == nullptr ||
         reinterpret_cast<std::uintptr_t>(here) > reinterpret_cast<std::uintptr_t>(c.inline_floor);
}
inline bool room_to_run_inline() noexcept { return room_to_run_inline(task_context()); }
// Runs run() on this stack outside the caller's actor, as the worker loop would: a child run
// inline by an actor's method is not that method (exit_actor() there is a usage_error), just
// as it is not when another worker runs it. (A submitted task sets its own context when it
// runs; it keeps the caller's `task`, whose result it is part of.)
template <class F>
void run_without_actor(TaskContext& c, F&& run) {
  if (c.actor == nullptr) return run();
  struct Restore {
    TaskContext& c;
    void* actor;
    ~Restore() { c.actor = actor; }
  } restore{c, c.actor};
  c.actor = nullptr;
  run();
}
// Counts one finished task_group child run by the worker loop. The worker adds up
// consecutive completions for one group and calls flush(group, n) once, before it runs
// anything else, parks or sleeps. Returns false (count it yourself) when not run by the loop.
bool defer_completion(void* group, void (*flush)(void*, std::int64_t) noexcept) noexcept;
// The calling context's next own task if it is a child of `group`; else null. On a worker:
// the newest task of its deque. On another thread: the oldest task of the queue it submits
// to (Scheduler::submit_external), so a thread waiting for its task_group runs the group's
// children instead of idling, as oneTBB's external threads do.
Task* pop_group_child(Scheduler& s, const void* group) noexcept;

// At `deadline`, fails the object with timeout_error if its producer has not published by then
// (ObjectTable::cancel). Holds no reference: an object that is gone by then is left alone.
void add_timeout(Scheduler& s, const ObjectSlot* slot, Clock::time_point deadline);

// Waits for objects to resolve, parking a fiber or blocking a thread.
void wait_resolved(ObjectSlot* s);
bool wait_resolved_until(ObjectSlot* s, Clock::time_point deadline);
// Waits until `need` of the n slots are resolved or the deadline (if any) passes.
void wait_slots(ObjectSlot* const* slots, std::size_t n, std::size_t need, const Clock::time_point* deadline);

}  // namespace lumen::detail
