// The actor's drain task, its fault handling, and the directory of live actors.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "actors/actor_directory.h"
#include "lumen/actor.h"
#include "lumen/error.h"
#include "sched/scheduler.h"

namespace lumen {

void exit_actor(bool no_restart) {
  detail::ActorContext* ctx = detail::current_actor_context();
  if (ctx == nullptr) throw usage_error("lumen: exit_actor() called outside an actor's method");
  ctx->exit_requested = true;
  ctx->exit_for_good = ctx->exit_for_good || no_restart;
  throw detail::actor_exit_request{};
}

bool actor_restarted() noexcept {
  detail::ActorContext* ctx = detail::current_actor_context();
  return ctx != nullptr && ctx->restarted;
}

}  // namespace lumen

namespace lumen::detail {

namespace {

std::atomic<std::uint64_t> next_actor_id{1};

// Calls one drain task runs before it checks whether other work waits for the worker.
constexpr unsigned kDrainBatch = 256;
// How long an idle drain task waits for the next call before it lets go of its worker.
constexpr std::chrono::microseconds kLinger{5};

// Restart pacing after constructors that throw (see actor_core.h).
constexpr std::chrono::milliseconds kFirstRestartDelay{1};
constexpr std::chrono::milliseconds kMaxRestartDelay{1000};

// Sets the fiber's actor context for the length of one call (or construction).
class ContextScope {
 public:
  explicit ContextScope(ActorContext* ctx) : context_(task_context()), saved_(context_.actor) { context_.actor = ctx; }
  ~ContextScope() { context_.actor = saved_; }
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  TaskContext& context_;  // the fiber's own: still the right one after the call parks
  void* saved_;
};

}  // namespace

ActorContext* current_actor_context() noexcept { return static_cast<ActorContext*>(task_context().actor); }

void validate(const ActorSettings& s) {
  if (s.max_concurrency < 1) throw usage_error("lumen: ActorOptions::max_concurrency must be at least 1");
  if (s.max_restarts < -1) throw usage_error("lumen: ActorOptions::max_restarts must be -1 (no limit) or more");
  if (s.max_task_retries < -1) throw usage_error("lumen: ActorOptions::max_task_retries must be -1 (always) or more");
  if (s.checkpoint_interval < 1) throw usage_error("lumen: ActorOptions::checkpoint_interval must be at least 1");
}

void write_checkpoint_file(const std::string& path, const std::string& bytes) {
  const std::string temp = path + ".tmp";
  auto fail = [&](const char* what) {
    const int e = errno;
    throw resource_error("lumen: cannot " + std::string(what) + " checkpoint file '" + temp + "': " + std::strerror(e));
  };
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("create");
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      fail("write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("sync");
  }
  ::close(fd);
  if (std::rename(temp.c_str(), path.c_str()) != 0) fail("rename");
}

std::optional<std::string> read_checkpoint_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return std::nullopt;
  auto fail = [&](const char* what) {
    const int e = errno;
    if (fd >= 0) ::close(fd);
    throw resource_error("lumen: cannot " + std::string(what) + " checkpoint file '" + path + "': " + std::strerror(e));
  };
  if (fd < 0) fail("open");
  std::string bytes;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("read");
    if (n == 0) break;
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return bytes;
}

ActorCore* find_named_actor(Scheduler& s, const std::string& name, const std::type_info& type) {
  return ActorDirectory::instance().find(s, name, type);
}

ActorCore* find_actor_by_id(std::uint64_t id, const std::type_info& type) {
  return ActorDirectory::instance().find(id, type);
}

// ---- the core -----------------------------------------------------------------------------

ActorCore::ActorCore(Scheduler& s, const ActorSpec& spec, ActorSettings settings)
    : sched_(&s), home_id_(scheduler_id(s)), spec_(&spec), settings_(std::move(settings)), id_(next_actor_id.fetch_add(1)) {
  run = &run_drain;
}

void ActorCore::start() {
  begin_task(*sched_);  // the construction, counted until it has run
  try {
    ActorDirectory::instance().add(this);
  } catch (...) {
    end_task(*sched_);
    throw;
  }
  schedule();
}

// The actor outlives a cancellable call: the call is in its mailbox, and an actor that ends
// takes each call out (abandon) before it goes, waiting in claim() for a canceller.
std::string_view callee_name(const Cancellable* c) noexcept {
  return static_cast<const ActorCall*>(c)->callee->settings().name;
}

Failure* ActorCore::death() const noexcept {
  Failure* f = death_.load(std::memory_order_acquire);
  retain(f);
  return f;
}

Failure* ActorCore::death_notice(std::string_view why) const noexcept {
  std::exception_ptr error;
  try {
    error = std::make_exception_ptr(actor_died(id_, settings_.name, std::string(why)));
  } catch (...) {
    error = std::current_exception();  // std::bad_alloc: the call still fails, with that
  }
  return make_failure(std::move(error), settings_.name);
}

bool ActorCore::mark_dead(Failure* reason) noexcept {
  Failure* none = nullptr;
  const bool first = death_.compare_exchange_strong(none, reason, std::memory_order_acq_rel);
  if (!first) detail::release(reason);
  // Also when another thread set the reason first: the state may not show it yet, and this
  // caller must return with the actor dead.
  state_.store(State::dead, std::memory_order_seq_cst);
  ActorDirectory::instance().unbind(this);
  return first;
}

std::uint64_t ActorCore::calls_queued() const noexcept {
  std::uint64_t in = mailbox_.pushes_counted();
  std::uint64_t out = executed_.load(std::memory_order_relaxed) + failed_unrun_.load(std::memory_order_relaxed);
  return in > out ? in - out : 0;
}

void ActorCore::schedule() noexcept {
  bool expected = false;
  if (!scheduled_.compare_exchange_strong(expected, true, std::memory_order_seq_cst)) return;
  add_ref();
  begin_nested_task(*sched_);  // whoever schedules holds a counted call, marker or construction
  spawn(*sched_, this);
}

void ActorCore::kill(bool no_restart) {
  Caller caller(*this);
  if (!caller.alive()) return;
  // Kills and exits still queued each use up a restart when the drain task takes them: one
  // that finds none left after them is final now, and shows as such when it returns.
  const std::uint64_t requested = kills_requested_.load(std::memory_order_acquire);
  const std::uint64_t ends = ends_.load(std::memory_order_acquire);  // both counts at one instant
  const std::uint64_t handled = ends & (kRestart - 1);               // may run ahead of `requested`
  const std::uint64_t queued_ends = requested > handled ? requested - handled : 0;
  const std::int64_t restarts = static_cast<std::int64_t>(ends >> 32) + static_cast<std::int64_t>(queued_ends);
  const bool final = no_restart || (settings_.max_restarts >= 0 && restarts >= settings_.max_restarts);
  try {
    begin_task(*sched_);
  } catch (const shutdown_error&) {
    // The runtime is shutting down, which restarts nothing: the kill is final. Marked dead,
    // the actor fails what is queued (its drain task sees the mark) and its instance ends with
    // the runtime; no marker, which the runtime would no longer take from this thread.
    mark_dead(death_notice("it was killed"));
    return;
  }
  ActorCall* marker = nullptr;
  try {
    marker = create<ActorCall>();
  } catch (...) {
    end_task(*sched_);
    throw;
  }
  marker->no_restart = final;
  // An end for good shows at once: later calls fail, dead() is true and the name is free.
  // The drain task fails the calls that were pending and destroys the instance.
  if (final) mark_dead(death_notice("it was killed"));
  mailbox_.push(marker);
  kills_requested_.fetch_add(1, std::memory_order_seq_cst);
  schedule();
}

bool ActorCore::can_progress() const noexcept {
  bool ending = kills_requested_.load(std::memory_order_seq_cst) > kills_handled() ||
                end_requested_.load(std::memory_order_seq_cst);
  int running = running_.load(std::memory_order_seq_cst);
  if (ending) return running == 0;
  if (state_.load(std::memory_order_relaxed) == State::starting) return true;
  return (mailbox_.nonempty_hint() || has_replays_.load(std::memory_order_relaxed)) &&
         running < settings_.max_concurrency;
}

void ActorCore::run_drain(Task* t) noexcept {
  auto* a = static_cast<ActorCore*>(t);
  // Read while scheduled: once scheduled_ is clear, the runtime's end may forget it.
  Scheduler& s = *a->sched_;
  unsigned budget = kDrainBatch;
  for (;;) {
    Step done = a->step(budget);
    if (done == Step::progress) {
      if (budget == 0) {
        if (work_waiting(s)) return spawn_yield(s, a);  // still scheduled, still counted
        budget = kDrainBatch;
      }
      continue;
    }
    if (done == Step::backoff) return a->wait_for_restart();  // still scheduled, still counted
    if (a->linger()) continue;
    a->scheduled_.store(false, std::memory_order_seq_cst);
    if (a->can_progress()) {
      bool expected = false;
      if (a->scheduled_.compare_exchange_strong(expected, true, std::memory_order_seq_cst)) continue;
    }
    a->release();
    end_task(s);
    return;
  }
}

// With nothing to do, the drain task looks again for a few microseconds before it lets go,
// unless other work waits: a caller that waits for each result calls again well within that,
// and finds the actor still running instead of paying to schedule it again.
// True when no handle to the actor is left and none can appear: the drain task holds the only
// reference, no call waits, and no name lets get_actor() find it.
bool ActorCore::abandoned() const noexcept {
  return settings_.name.empty() && refs_.load(std::memory_order_acquire) == 1 && !mailbox_.nonempty_hint() &&
         !has_replays_.load(std::memory_order_relaxed);
}

// Only a serial actor lingers: a concurrent one may have nothing to do because its calls
// are running, and those may be queued on this very worker.
bool ActorCore::linger() const noexcept {
  if (settings_.max_concurrency != 1) return false;
  auto until = Clock::now() + kLinger;
  for (unsigned k = 1;; ++k) {
    // The mailbox's consumer side only: polling the producers' line would slow every caller.
    if (mailbox_.consumer_sees_items() ||
        kills_requested_.load(std::memory_order_relaxed) > kills_handled())
      return true;
    if ((k & 7) == 0) {
      if (work_waiting(*sched_) || Clock::now() >= until) return false;
    }
    for (int i = 0; i < 8; ++i) cpu_relax();
  }
}

// The next construction must wait for restart_at_: the drain task lets go of its worker and a
// timer queues it again (at once when the runtime starts shutting down).
void ActorCore::wait_for_restart() noexcept {
  auto requeue = [](void* p) noexcept {
    auto* a = static_cast<ActorCore*>(p);
    spawn(*a->sched_, a);
  };
  try {
    sched_->add_timer(restart_at_, requeue, this, true);
  } catch (...) {
    restart_at_ = Clock::time_point{};  // no timer to be had: restart without waiting
    spawn_yield(*sched_, this);
  }
}

// One unit of progress: a kill, an end, a construction, or one call. `idle` when there is
// nothing to do now; `backoff` when the next construction has to wait.
ActorCore::Step ActorCore::step(unsigned& budget) noexcept {
  State state = drain_state_;
  if (state == State::dead) {  // what is left fails, or is a kill that has nothing to kill
    ActorCall* c = next_call();
    if (c == nullptr) return Step::idle;
    --budget;
    if (c->invoke == nullptr) {
      ends_.fetch_add(1, std::memory_order_release);
      detail::destroy(c);
    } else {
      c->abandon(c, death());
      failed_unrun_.fetch_add(1, std::memory_order_relaxed);
    }
    end_task(*sched_);
    return Step::progress;
  }
  bool kill_pending = kills_requested_.load(std::memory_order_acquire) > kills_handled();
  if (kill_pending || end_requested_.load(std::memory_order_acquire)) {
    if (running_.load(std::memory_order_seq_cst) != 0) return Step::idle;  // the last call to finish reschedules
    end_requested_.store(false, std::memory_order_relaxed);  // a kill covers an exit
    const bool for_good = end_for_good_.exchange(false, std::memory_order_relaxed);
    if (kill_pending) {
      end_instance(death_notice("it was killed"), for_good, Pending::until_marker);
    } else {
      end_instance(death_notice("exit_actor() was called"), for_good, Pending::all_visible);
    }
    return Step::progress;
  }
  // Dead for callers, but no marker taken yet: a kill for good whose marker is on its way, or a
  // kill that pushed none (its runtime was shutting down). What is queued now was pending at
  // the kill: it fails, and the instance ends (a marker that comes later finds nothing to do).
  if (state_.load(std::memory_order_acquire) == State::dead) {
    if (running_.load(std::memory_order_seq_cst) != 0) return Step::idle;
    end_instance(death(), true, Pending::all_visible);
    return Step::progress;
  }
  if (state == State::starting) {
    if (constructor_failures_ > 0 && abandoned()) {
      // Nobody can call it again: rebuilding it forever would keep it, and its runtime's
      // timer, busy for nothing.
      end_instance(death_notice("its constructor failed and no handle to it is left"), true, Pending::all_visible);
      return Step::progress;
    }
    if (constructor_failures_ > 0 && !sched_->stopping() && Clock::now() < restart_at_) return Step::backoff;
    construct();
    return Step::progress;
  }
  if (settings_.max_concurrency > 1 && running_.load(std::memory_order_seq_cst) >= settings_.max_concurrency)
    return Step::idle;
  ActorCall* c = next_call();
  if (c == nullptr) return Step::idle;
  --budget;
  if (c->invoke == nullptr) {  // a kill or exit marker taken before its request was counted
    if (running_.load(std::memory_order_seq_cst) != 0) {
      // Calls still run on the instance: back to the front, for when the last one is done
      // (by then the request is counted and the ending path waits for them).
      c->next.store(nullptr, std::memory_order_relaxed);
      push_replay_front(c, c);
      return Step::idle;
    }
    bool no_restart = c->no_restart;
    bool exit = c->exit_marker;
    detail::destroy(c);
    end_task(*sched_);
    end_instance(death_notice(exit ? "exit_actor() was called" : "it was killed"), no_restart, Pending::none, nullptr,
                 false, 1);
  } else if (settings_.max_concurrency == 1) {
    serve(c);
  } else {
    dispatch(c);
  }
  return Step::progress;
}

ActorCall* ActorCore::next_call() noexcept {
  if (replay_head_ != nullptr) {
    MpscNode* n = replay_head_;
    replay_head_ = n->next.load(std::memory_order_relaxed);
    if (replay_head_ == nullptr) has_replays_.store(false, std::memory_order_relaxed);
    return static_cast<ActorCall*>(static_cast<Task*>(n));
  }
  MpscNode* n = mailbox_.pop();
  return n != nullptr ? static_cast<ActorCall*>(static_cast<Task*>(n)) : nullptr;
}

void ActorCore::push_replay_front(MpscNode* first, MpscNode* last) noexcept {
  if (first == nullptr) return;
  last->next.store(replay_head_, std::memory_order_relaxed);
  replay_head_ = first;
  has_replays_.store(true, std::memory_order_relaxed);
}

void ActorCore::construct() noexcept {
  bool restarted = restarts_used() > 0;
  ActorContext ctx{this, restarted, false};
  void* instance = nullptr;
  std::exception_ptr error;
  {
    ContextScope scope(&ctx);
    try {
      instance = spec_->construct(this);
      if (spec_->restore != nullptr && (restarted || !constructed_once_)) spec_->restore(this, instance, restarted);
    } catch (...) {
      error = std::current_exception();
    }
  }
  if (error != nullptr && instance != nullptr) {  // restore() threw
    spec_->destroy_instance(instance);
    instance = nullptr;
  }
  bool first = !constructed_once_;
  constructed_once_ = true;
  if (error == nullptr) {
    instance_ = instance;
    constructor_failures_ = 0;
    // A kill for good may have come first: callers already see the actor dead, and the kill
    // marker, next in the mailbox, ends this instance.
    set_state(State::alive);
  } else {
    std::string why;
    try {
      why = "its constructor threw " + describe_exception(error);
    } catch (...) {
    }
    end_instance(death_notice(why), !settings_.restart_failed_constructor, Pending::all_visible, nullptr, true);
  }
  if (first) end_task(*sched_);
}

void ActorCore::serve(ActorCall* c) noexcept {
  ActorContext ctx{this, restarts_used() > 0, false};
  ActorCall::End end;
  {
    TimelineSlice slice;
    if (timeline_active()) slice.open(timeline_label());
    ContextScope scope(&ctx);
    end = c->invoke(c, instance_);
  }
  if (end == ActorCall::End::actor_exit) {
    end_instance(death_notice("exit_actor() was called"), ctx.exit_for_good, Pending::all_visible, ctx.exit_result);
  } else if (end == ActorCall::End::served) {
    after_success();
  }
  end_task(*sched_);
}

std::uint32_t ActorCore::timeline_label() const noexcept {
  std::uint32_t label = timeline_label_.load(std::memory_order_relaxed);
  if (label != 0) return label;
  try {
    label = settings_.name.empty() ? timeline_type_label(*spec_->type) : detail::timeline_label(settings_.name);
  } catch (...) {
    return 0;
  }
  timeline_label_.store(label, std::memory_order_relaxed);
  return label;
}

// A call that ended without asking the actor to end: time for a checkpoint, perhaps.
void ActorCore::after_success() noexcept {
  if (spec_->save == nullptr || ++calls_since_save_ < settings_.checkpoint_interval) return;
  calls_since_save_ = 0;
  try {
    spec_->save(this, instance_);
  } catch (...) {  // a checkpoint() that throws leaves the previous checkpoint in place
  }
}

void ActorCore::dispatch(ActorCall* c) noexcept {
  c->actor = this;
  c->run = &run_call;
  c->group = nullptr;
  add_ref();
  running_.fetch_add(1, std::memory_order_seq_cst);
  spawn(*sched_, c);
}

void ActorCore::run_call(Task* t) noexcept {
  auto* c = static_cast<ActorCall*>(t);
  ActorCore* a = c->actor;
  ActorContext ctx{a, a->restarts_used() > 0, false};
  ActorCall::End end;
  {
    TimelineSlice slice;
    if (timeline_active()) slice.open(a->timeline_label());
    ContextScope scope(&ctx);
    end = c->invoke(c, a->instance_);
  }
  if (end == ActorCall::End::actor_exit) a->request_exit(ctx.exit_result, ctx.exit_for_good);
  // Read while counted as running: once none runs, the runtime's end may forget it.
  Scheduler& s = *a->sched_;
  a->running_.fetch_sub(1, std::memory_order_seq_cst);
  if (a->can_progress()) a->schedule();
  a->release();
  end_task(s);  // the call's count, held until the drain task is rescheduled
}

// exit_actor() in a call that ran as a task, while other calls may still be running. Those may
// be waiting on this call's result, and the instance ends only after they finish, so the
// result fails now; a marker in the mailbox, as kill(false) pushes, splits the calls that were
// pending at the exit (replayed or failed) from those made after its caller saw it fail (they
// reach the restarted instance). Without memory for the marker, every call queued when the
// instance ends counts as pending.
void ActorCore::request_exit(ObjectSlot* exit_result, bool no_restart) noexcept {
  ActorCall* marker = nullptr;
  try {
    marker = create<ActorCall>();
  } catch (...) {
  }
  if (marker != nullptr) {
    marker->exit_marker = true;
    marker->no_restart = no_restart;
    begin_nested_task(*sched_);  // the marker's count, as a kill's
    mailbox_.push(marker);
    kills_requested_.fetch_add(1, std::memory_order_seq_cst);
  } else {
    if (no_restart) end_for_good_.store(true, std::memory_order_relaxed);
    end_requested_.store(true, std::memory_order_seq_cst);
  }
  if (exit_result != nullptr) ObjectTable::instance().fail(exit_result, death_notice("exit_actor() was called"), true);
}

// Ends the current instance (if any) and decides between a restart and death. The calls that
// were pending (per `pending`) run again on the new instance as max_task_retries allows, or
// fail with `reason`.
void ActorCore::end_instance(Failure* reason, bool no_restart, Pending pending, ObjectSlot* exit_result,
                             bool constructor_failed, std::uint64_t markers_taken) noexcept {
  if (instance_ != nullptr) {
    spec_->destroy_instance(instance_);
    instance_ = nullptr;
  }
  // Intrusive lists through the calls' own links: nothing here may allocate.
  struct CallList {
    MpscNode* head = nullptr;
    MpscNode* tail = nullptr;
    void append(MpscNode* n) noexcept {
      n->next.store(nullptr, std::memory_order_relaxed);
      if (tail != nullptr) {
        tail->next.store(n, std::memory_order_relaxed);
      } else {
        head = n;
      }
      tail = n;
    }
  };
  // The pending calls, in order; the decision to restart needs the kill marker's no_restart.
  CallList calls;
  CallList replay;  // calls (and a later kill) to run on the restarted instance, in order
  ActorCall* later_marker = nullptr;  // a kill that came after an exit: handled next
  if (pending != Pending::none) {
    for (;;) {
      ActorCall* c = next_call();
      if (c == nullptr) {
        if (pending == Pending::all_visible) break;
        std::this_thread::yield();  // the marker is pushed; a push ahead of it is linking up
        continue;
      }
      if (c->invoke == nullptr) {
        if (pending == Pending::until_marker) {
          ++markers_taken;
          no_restart = no_restart || c->no_restart;
          if (c->exit_marker) {  // the pending calls fail with the exit's reason
            detail::release(reason);
            reason = death_notice("exit_actor() was called");
          }
          detail::destroy(c);
          end_task(*sched_);
          break;
        }
        later_marker = c;
        break;
      }
      calls.append(c);
    }
  }
  const int used = restarts_used();
  bool restart = !no_restart && (settings_.max_restarts < 0 || used < settings_.max_restarts) &&
                 state_.load(std::memory_order_acquire) != State::dead && !sched_->stopping();
  // The new state first: whoever sees a pending call fail sees the actor dead (or restarting).
  // The markers taken and the restart they used, counted together.
  ends_.fetch_add((restart ? kRestart : 0) + markers_taken, std::memory_order_release);
  if (restart) {
    if (constructor_failed) {
      auto delay = kFirstRestartDelay * (1 << std::min(constructor_failures_, 10));
      restart_at_ = Clock::now() + std::min<std::chrono::milliseconds>(delay, kMaxRestartDelay);
      ++constructor_failures_;
    }
    set_state(State::starting);
  } else {
    // Dead already (a kill for good): the calls fail with the reason callers were given.
    retain(reason);
    mark_dead(reason);
    detail::release(reason);
    reason = death();
    drain_state_ = State::dead;
    if (!constructed_once_) {  // killed before it was built: the construction is settled too
      constructed_once_ = true;
      end_task(*sched_);
    }
  }
  for (MpscNode* n = calls.head; n != nullptr;) {
    auto* c = static_cast<ActorCall*>(static_cast<Task*>(n));
    n = n->next.load(std::memory_order_relaxed);
    if (restart && c->replays_left != 0) {
      if (c->replays_left > 0) --c->replays_left;
      c->next.store(nullptr, std::memory_order_relaxed);
      replay.append(c);
    } else {
      retain(reason);
      c->abandon(c, reason);
      failed_unrun_.fetch_add(1, std::memory_order_relaxed);
      end_task(*sched_);
    }
  }
  if (later_marker != nullptr) replay.append(later_marker);
  push_replay_front(replay.head, replay.tail);
  if (exit_result != nullptr) {
    retain(reason);
    ObjectTable::instance().fail(exit_result, reason, true);
  }
  detail::release(reason);
}

void ActorCore::end_with_runtime() noexcept {
  mark_dead(death_notice("its runtime shut down"));
  // A caller that looked before the mark may still be using the scheduler: from another
  // thread it is being refused with shutdown_error; on one of the runtime's workers outside
  // any task (a finished task's captures being destroyed) it may queue its call and schedule
  // the drain task, which then fails the call on a worker. Wait for the callers, then for
  // that drain task, before the instance and the scheduler go.
  // (With max_concurrency above one, the calls run as tasks of their own and the last one to
  // finish may schedule the drain task again.)
  while (callers_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
  while (scheduled_.load(std::memory_order_seq_cst) || running_.load(std::memory_order_seq_cst) != 0 ||
         mailbox_.nonempty_hint() || has_replays_.load(std::memory_order_seq_cst)) {
    std::this_thread::yield();
  }
  if (instance_ != nullptr) {
    spec_->destroy_instance(instance_);
    instance_ = nullptr;
  }
  drain_state_ = State::dead;
  sched_ = nullptr;  // calls to a dead actor never reach its scheduler
}

void ActorCore::destroy() noexcept {
  if (instance_ != nullptr) spec_->destroy_instance(instance_);
  if (Failure* f = death_.load(std::memory_order_relaxed)) detail::release(f);
  ActorDirectory::instance().remove(this);
  spec_->free_core(this);
}

// ---- the directory ------------------------------------------------------------------------

ActorDirectory& ActorDirectory::instance() {
  static auto* directory = new ActorDirectory;
  return *directory;
}

void ActorDirectory::add(ActorCore* a) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!a->settings_.name.empty()) {
    auto [it, inserted] = names_.try_emplace({a->sched_, a->settings_.name}, a);
    if (!inserted) throw usage_error("lumen: an actor named '" + a->settings_.name + "' already exists");
    a->named_ = true;
    a->add_ref();
  }
  live_.emplace(a->id_, a);
}

void ActorDirectory::unbind(ActorCore* a) noexcept {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!a->named_) return;
    a->named_ = false;
    names_.erase({a->sched_, a->settings_.name});
  }
  a->release();
}

void ActorDirectory::remove(ActorCore* a) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  live_.erase(a->id_);
  if (a->sched_ == nullptr) return;
  try {
    retired_calls_[a->sched_] += a->executed_.load(std::memory_order_relaxed);
  } catch (...) {  // no memory for the entry: the runtime's count of calls run comes out low
  }
}

ActorCore* ActorDirectory::find(std::uint64_t id, const std::type_info& type) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(id);
  if (it == live_.end()) return nullptr;
  ActorCore* a = it->second;
  if (*a->spec_->type != type) throw usage_error("lumen: actor " + std::to_string(id) + " has another type than the one asked for");
  return a->try_add_ref() ? a : nullptr;
}

ActorCore* ActorDirectory::find(const Scheduler& s, const std::string& name, const std::type_info& type) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = names_.find({&s, name});
  if (it == names_.end()) return nullptr;
  ActorCore* a = it->second;
  if (*a->spec_->type != type) throw usage_error("lumen: actor '" + name + "' has another type than the one asked for");
  a->add_ref();
  return a;
}

void ActorDirectory::end_runtime(const Scheduler& s) noexcept {
  std::vector<ActorCore*> ending;
  std::vector<ActorCore*> named;
  // A core whose last reference is going (another thread is destroying it) cannot be taken:
  // wait until it has left the list, so that none of s's actors outlives it unmarked.
  for (;;) {
    bool dying = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& [id, a] : live_) {
        if (a->home_id_ != scheduler_id(s)) continue;
        if (a->try_add_ref()) {
          ending.push_back(a);
        } else {
          dying = true;
        }
      }
      if (!dying) {
        for (ActorCore* a : ending) {
          if (a->named_) {
            a->named_ = false;
            named.push_back(a);
          }
        }
        for (auto it = names_.begin(); it != names_.end();) {
          it = it->first.first == &s ? names_.erase(it) : std::next(it);
        }
        retired_calls_.erase(&s);
        break;
      }
    }
    for (ActorCore* a : ending) a->release();  // outside the lock: a release may destroy the core
    ending.clear();
    std::this_thread::yield();
  }
  // Destructors run outside the lock: they may let go of handles to other actors.
  for (ActorCore* a : ending) a->end_with_runtime();
  for (ActorCore* a : named) a->release();
  for (ActorCore* a : ending) a->release();
}

void ActorDirectory::add_stats(const Scheduler& s, Stats& out) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = retired_calls_.find(&s);
  out.actor_calls_executed = it != retired_calls_.end() ? it->second : 0;
  for (const auto& [id, a] : live_) {
    if (a->home_id_ != scheduler_id(s)) continue;
    if (!a->dead()) ++out.actors_alive;
    out.actor_calls_queued += a->calls_queued();
    out.actor_calls_executed += a->calls_executed();
  }
}

std::vector<ActorInfo> ActorDirectory::list(const Scheduler& s) {
  std::vector<ActorInfo> out;
  std::vector<std::uint32_t> types;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [id, a] : live_) {
      if (a->home_id_ != scheduler_id(s)) continue;
      ActorInfo info;
      info.id = id;
      info.name = a->settings_.name;
      info.alive = !a->dead();
      info.calls_queued = a->calls_queued();
      info.calls_executed = a->calls_executed();
      out.push_back(std::move(info));
      types.push_back(timeline_type_label(*a->spec_->type));
    }
  }
  const std::vector<std::string> names = timeline_label_names();
  for (std::size_t i = 0; i < out.size(); ++i)
    if (types[i] < names.size()) out[i].type = names[types[i]];
  std::sort(out.begin(), out.end(), [](const ActorInfo& a, const ActorInfo& b) { return a.id < b.id; });
  return out;
}

}  // namespace lumen::detail
