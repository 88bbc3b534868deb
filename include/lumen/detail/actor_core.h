// The shared state of one actor: its mailbox, its instance and its fault state. Handles,
// the name directory and the actor's own drain task hold counted references to it.
//
// Scheduling: an actor with queued calls is one task on the scheduler (the core itself) that
// pops its mailbox and runs the calls in order. `scheduled` is true from the moment someone
// queues that task until the task has seen the mailbox empty; a caller that pushes a call and
// sees `scheduled` already set does nothing more. The drain task clears `scheduled` and then
// looks at the mailbox again, and a caller pushes and then looks at `scheduled` (all seq_cst),
// so a call is never left behind with no task to run it.
//
// Faults: the drain task alone constructs, destroys and restarts the instance, and only while
// no call runs. kill() pushes a marker into the mailbox; the calls ahead of the marker are the
// ones pending at the kill. A kill that ends the actor for good also marks it dead and frees
// its name at once, so what callers see changes when kill() returns; the instance is
// destroyed once the call running then (if any) has finished.
//
// Restarts after a constructor that throws are paced: the first is immediate, the next ones
// wait 1 ms, 2 ms, 4 ms, ... up to 1 s on a timer, without holding a worker. A runtime that
// is shutting down restarts no actor.
//
// The actor's runtime: callers announce themselves (Caller) before they look at the state and
// touch the scheduler; the runtime's end marks every actor dead and then waits for the callers
// it did not see, so a call never reaches a scheduler that is gone.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include "lumen/detail/mpsc_queue.h"
#include "lumen/detail/object_table.h"
#include "lumen/detail/scheduler_api.h"

namespace lumen::detail {

class ActorCore;

// The name of the actor a call (an ActorCall) is for.
std::string_view callee_name(const Cancellable* c) noexcept;

// One method call waiting in a mailbox. Allocated by the caller; freed by whoever resolves
// its result. An entry with no result is a kill marker.
struct ActorCall : Task, Cancellable {
  // failed: the method threw; cancelled: a cancel() published its result before it started
  enum class End { served, failed, actor_exit, cancelled };

  ActorCall() noexcept {
    is_actor_call = true;
    name_of = &callee_name;
  }
  // Before the call starts (or fails unrun): true when it may publish its result, which no
  // cancel() can take from it any more; false when a cancel() did (the call must not run; its
  // writer hold is given up here). A replay on a restarted instance finds it claimed already.
  bool claim_result() noexcept {
    ObjectState seen = ObjectState::cancellable;
    if (result->state.compare_exchange_strong(seen, ObjectState::pending, std::memory_order_acquire,
                                              std::memory_order_acquire) ||
        seen == ObjectState::pending)
      return true;
    ObjectTable::wait_published(result);
    ObjectTable::instance().release_writer(result);
    return false;
  }

  ObjectSlot* result = nullptr;  // held through the writer bit until the call resolves it
  int replays_left = 0;          // times it may run again on a restarted instance (-1: always)
  bool no_restart = false;       // for a kill marker: kill(no_restart)
  bool exit_marker = false;      // a marker for exit_actor() in a call that ran as a task
  ActorCore* actor = nullptr;    // set when the call runs as a task of its own
  const ActorCore* callee = nullptr;  // the actor called, for the wording of a cancellation
  // Runs the method on `instance`, resolves the result and frees the call. Reports whether
  // the method asked the actor to end (exit_actor()).
  End (*invoke)(ActorCall*, void* instance) noexcept = nullptr;
  // Fails the result with f (taking one reference of f) and frees the call, unrun.
  void (*abandon)(ActorCall*, Failure* f) noexcept = nullptr;
};

// What the actor's type knows how to do, behind plain function pointers so that the drain
// loop is compiled once, in the library.
struct ActorSpec {
  const std::type_info* type = nullptr;
  void* (*construct)(ActorCore*) = nullptr;  // from the stored arguments; throws what T's constructor throws
  void (*destroy_instance)(void*) noexcept = nullptr;
  void (*free_core)(ActorCore*) noexcept = nullptr;
  // Only for types with checkpoint() and restore(): saves the instance's state after a call,
  // and gives it back to a restarted instance.
  void (*save)(ActorCore*, void* instance) = nullptr;
  // restarted: from the last checkpoint; else from ActorSettings::checkpoint_file, if any.
  void (*restore)(ActorCore*, void* instance, bool restarted) = nullptr;
};

struct ActorSettings {
  std::string name;
  int max_concurrency = 1;
  int max_restarts = 0;
  int max_task_retries = 0;
  int checkpoint_interval = 1;
  std::string checkpoint_file;
  bool restart_failed_constructor = true;
};

// The actor a call runs for, per fiber (task_context().actor): what exit_actor() and
// actor_restarted() look at.
struct ActorContext {
  ActorCore* actor = nullptr;
  bool restarted = false;
  bool exit_requested = false;
  ObjectSlot* exit_result = nullptr;  // the result of a call that ended the actor, still pending
  bool exit_for_good = false;         // exit_actor(no_restart = true)
};
ActorContext* current_actor_context() noexcept;

// Thrown by exit_actor() to unwind the method; the call that catches it ends the actor.
// Not a std::exception, so that `catch (const std::exception&)` in the method lets it pass.
struct actor_exit_request {};

class ActorCore : public Task {
 public:
  // Takes the name (if any) before returning: throws usage_error when it is taken. Queues
  // the construction of the instance. The caller holds the one reference it returns with.
  void start();

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  // A reference unless the last one is already gone (the core is being destroyed).
  bool try_add_ref() noexcept {
    std::int64_t n = refs_.load(std::memory_order_relaxed);
    while (n != 0) {
      if (refs_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return true;
    }
    return false;
  }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }

  bool dead() const noexcept { return state_.load(std::memory_order_acquire) == State::dead; }

  // A thread about to call the actor (or kill it). While it lives, the actor's scheduler stays
  // valid if `alive()` said so.
  //
  // A task or actor method running on a worker of the actor's own runtime needs no
  // announcement: that runtime cannot end before the task does. It skips the two locked
  // instructions on the callers' line that every other caller pays.
  class Caller {
   public:
    explicit Caller(ActorCore& a) noexcept : a_(a) {
      const TaskContext& c = task_context();
      counted_ = (c.task == nullptr && c.actor == nullptr) || worker_scheduler_id() != a.home_id_;
      if (counted_) a_.callers_.fetch_add(1, std::memory_order_seq_cst);
      alive_ = a_.state_.load(std::memory_order_seq_cst) != State::dead;
    }
    ~Caller() {
      if (counted_) a_.callers_.fetch_sub(1, std::memory_order_release);
    }
    Caller(const Caller&) = delete;
    Caller& operator=(const Caller&) = delete;
    bool alive() const noexcept { return alive_; }

   private:
    ActorCore& a_;
    bool counted_;
    bool alive_;
  };
  // The failure every call to a dead actor resolves to (one new reference).
  Failure* death() const noexcept;
  Scheduler& scheduler() const noexcept { return *sched_; }
  const ActorSettings& settings() const noexcept { return settings_; }
  // The actor's name on the timeline: its registered name, else its type.
  std::uint32_t timeline_label() const noexcept;
  std::uint64_t id() const noexcept { return id_; }
  const ActorSpec& spec() const noexcept { return *spec_; }

  // A counted call (begin_task done) into the mailbox; schedules the drain task if needed.
  void enqueue(ActorCall* c) noexcept {
    c->replays_left = settings_.max_task_retries;
    mailbox_.count_push();
    mailbox_.push(c);
    if (!scheduled_.load(std::memory_order_seq_cst)) schedule();
  }
  void kill(bool no_restart);
  // A failure saying that this actor died, and why (one reference). Never fails.
  Failure* death_notice(std::string_view why) const noexcept;

  // For stats.
  std::uint64_t calls_queued() const noexcept;
  std::uint64_t calls_executed() const noexcept { return executed_.load(std::memory_order_relaxed); }
  // Before a call publishes its result, so that whoever sees the result sees it counted.
  void count_executed() noexcept { executed_.fetch_add(1, std::memory_order_relaxed); }
  // A call that a cancel() took out before it started.
  void count_cancelled() noexcept { failed_unrun_.fetch_add(1, std::memory_order_relaxed); }
  // Marks the actor dead because its runtime ends, and destroys the instance. The runtime
  // has no running task then.
  void end_with_runtime() noexcept;

 protected:
  ActorCore(Scheduler& s, const ActorSpec& spec, ActorSettings settings);
  ~ActorCore() = default;

 private:
  enum class State : std::uint32_t { starting, alive, dead };

  static void run_drain(Task* t) noexcept;
  static void run_call(Task* t) noexcept;
  void schedule() noexcept;
  enum class Step { progress, idle, backoff };
  Step step(unsigned& budget) noexcept;
  void wait_for_restart() noexcept;
  // Marks the actor dead for its callers with `reason` (taking one reference of it), unless it
  // is dead already; true when this call did it.
  bool mark_dead(Failure* reason) noexcept;
  bool can_progress() const noexcept;
  bool linger() const noexcept;
  void construct() noexcept;
  void serve(ActorCall* c) noexcept;
  void dispatch(ActorCall* c) noexcept;
  void request_exit(ObjectSlot* exit_result, bool no_restart) noexcept;
  bool abandoned() const noexcept;
  void after_success() noexcept;
  ActorCall* next_call() noexcept;
  void push_replay_front(MpscNode* first, MpscNode* last) noexcept;
  enum class Pending { none, until_marker, all_visible };
  // markers_taken: kill markers the caller took off the mailbox and has not counted yet.
  void end_instance(Failure* reason, bool no_restart, Pending pending, ObjectSlot* exit_result = nullptr,
                    bool constructor_failed = false, std::uint64_t markers_taken = 0) noexcept;
  void destroy() noexcept;
  // The drain task's own copy follows s; what callers see never leaves `dead` (a kill for
  // good marks it from the caller's thread while the drain task may be restarting).
  void set_state(State s) noexcept {
    drain_state_ = s;
    State seen = state_.load(std::memory_order_relaxed);
    while (seen != State::dead && !state_.compare_exchange_weak(seen, s, std::memory_order_acq_rel)) {
    }
  }

  // What callers touch.
  MpscQueue mailbox_;
  alignas(64) std::atomic<bool> scheduled_{false};
  std::atomic<State> state_{State::starting};
  std::atomic<std::int64_t> refs_{1};
  std::atomic<std::int64_t> callers_{0};  // Caller objects alive

  // What the drain task and the calls it runs touch.
  alignas(64) State drain_state_ = State::starting;  // the drain task's copy: state_ sits on the callers' line
  std::atomic<int> running_{0};                  // calls running as tasks (max_concurrency > 1)
  std::atomic<std::uint64_t> kills_requested_{0};  // markers pushed
  std::atomic<bool> end_requested_{false};        // exit_actor() in a call that ran as a task
  std::atomic<bool> end_for_good_{false};         // ... with no_restart
                                                  // and found no memory for an exit marker
  bool constructed_once_ = false;
  std::atomic<std::uint64_t> executed_{0};
  std::atomic<std::uint64_t> failed_unrun_{0};
  MpscNode* replay_head_ = nullptr;               // calls to run again after a restart, in order
  std::atomic<bool> has_replays_{false};
  void* instance_ = nullptr;
  // Restarts used (high 32 bits) and kill markers handled (low 32), in one word written by the
  // drain task: a marker and the restart it used are counted in one step, so that kill(),
  // which reads both, never sees one without the other.
  std::atomic<std::uint64_t> ends_{0};
  static constexpr std::uint64_t kRestart = std::uint64_t{1} << 32;
  int restarts_used() const noexcept { return static_cast<int>(ends_.load(std::memory_order_acquire) >> 32); }
  std::uint64_t kills_handled() const noexcept { return ends_.load(std::memory_order_acquire) & (kRestart - 1); }
  int constructor_failures_ = 0;                  // in a row: paces the next restart
  Clock::time_point restart_at_{};                // no construction before then
  int calls_since_save_ = 0;
  std::atomic<Failure*> death_{nullptr};

  Scheduler* sched_;
  // scheduler_id() of the runtime it was made on, for the directory's bookkeeping: never
  // changes, so the directory may compare it while the runtime's end clears sched_, and a
  // later runtime at the same address is not taken for it.
  const std::uint64_t home_id_;
  const ActorSpec* spec_;
  ActorSettings settings_;
  mutable std::atomic<std::uint32_t> timeline_label_{0};  // 0 until first asked
  std::uint64_t id_;
  bool named_ = false;

  friend class ActorDirectory;
};

}  // namespace lumen::detail
