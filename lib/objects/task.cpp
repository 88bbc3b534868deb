// The parts of a submitted task that do not depend on its types.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <utility>

#include "lumen/detail/submit_task.h"
#include "lumen/task.h"
#include "sched/scheduler.h"

namespace lumen::detail {

void SubmitTaskBase::schedule() noexcept {
  if (record != nullptr) task_queued(record);
  if (settings != nullptr && settings->priority != 0) {
    try {
      spawn_with_priority(*sched, this, settings->priority);
      return;
    } catch (...) {
      // No memory for the priority queue: run it without priority rather than lose it.
    }
  }
  spawn(*sched, this);
}

SubmitTaskBase::Readiness SubmitTaskBase::prepare() noexcept {
  if (result->state.load(std::memory_order_acquire) != ObjectState::cancellable) {
    // A cancel() claimed the result while the task was queued, waiting for its arguments,
    // for resources or for a retry.
    ObjectTable::wait_published(result);
    if (Failure* f = dep_failure.exchange(nullptr, std::memory_order_acquire)) detail::release(f);
    drop_result();
    return Readiness::cancelled;
  }
  if (Failure* f = dep_failure.exchange(nullptr, std::memory_order_acquire)) {
    publish_failure(f);  // the reference dependency_resolved took moves to the result
    return Readiness::failed;
  }
  if (parent != nullptr && parent_stops_children()) {
    fail_with_parent();
    return Readiness::failed;
  }
  if (settings != nullptr && !settings->demands.empty() && !resources_held) {
    // Set first: a grant may spawn and run this task before acquire_resources returns.
    resources_held = true;
    if (record != nullptr) task_pending(record);
    bool granted = false;
    try {
      granted = acquire_resources(*sched, this, settings->demands.data(), settings->demands.size());
    } catch (...) {
      resources_held = false;
      fail(std::current_exception());
      return Readiness::failed;
    }
    if (!granted) return Readiness::deferred;  // spawned again by the release that grants it
  }
  return Readiness::run;
}

void check_retry_options(const TaskOptions& o) {
  if (o.retry_delay.count() < 0) throw usage_error("lumen: retry_delay must not be negative");
  if (!(o.retry_backoff >= 1.0) || o.retry_backoff > 1e6)
    throw usage_error("lumen: retry_backoff must be from 1 to 1e6");
  if (!(o.retry_jitter >= 0.0 && o.retry_jitter <= 1.0)) throw usage_error("lumen: retry_jitter must be from 0 to 1");
  if (o.retry_delay.count() > 0 && o.max_retry_delay < o.retry_delay)
    throw usage_error("lumen: max_retry_delay must not be shorter than retry_delay");
}

namespace {

// A fraction in [0, 1) for the jitter: per thread, no locks, not for anything but spreading.
double jitter_fraction() noexcept {
  thread_local std::uint64_t state = 0x9e3779b97f4a7c15ULL ^ reinterpret_cast<std::uintptr_t>(&state);
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return static_cast<double>(state >> 11) * 0x1.0p-53;
}

void retry_when_due(void* task) noexcept { static_cast<SubmitTaskBase*>(task)->schedule(); }

}  // namespace

bool SubmitTaskBase::retry_after_error(const std::exception_ptr& error) noexcept {
  if (attempts_left <= 0 || stop_requested()) return false;
  if (settings != nullptr && settings->retry_if != nullptr && !settings->retry_if(error)) return false;
  --attempts_left;
  ++attempts;
  sched->count_retry();
  if (resources_held) {
    release_resources(*sched, settings->demands.data(), settings->demands.size());
    resources_held = false;
  }
  if (settings != nullptr && settings->next_retry_delay.count() > 0) {
    using Seconds = std::chrono::duration<double>;
    const double planned = Seconds(settings->next_retry_delay).count();
    const double wait = planned * (1.0 - settings->retry_jitter * jitter_fraction());
    const double next = std::min(planned * settings->retry_backoff, Seconds(settings->max_retry_delay).count());
    settings->next_retry_delay = saturated_nanoseconds(Seconds(next));
    if (record != nullptr) task_pending(record);  // before the timer, which may run it at once
    try {
      // Early at shutdown: a runtime that is ending runs the retry now rather than wait.
      sched->add_timer(deadline_after(Seconds(wait)), &retry_when_due, this, true);
      return true;
    } catch (...) {  // no memory for a timer: retry at once rather than lose the task
    }
  }
  schedule();
  return true;
}

void SubmitTaskBase::fail(std::exception_ptr e) noexcept {
  // Described before the claim: describing calls the exception's what(), which should not run
  // while waits on the result spin on the claim.
  Failure* f = make_failure(std::move(e), task_name_of(this));
  if (attempts > 1) note_attempts(f, attempts);
  publish_failure(f);
}

void SubmitTaskBase::publish_failure(Failure* f) noexcept {
  if (!result_claimed) {
    if (!ObjectTable::claim(result)) {
      detail::release(f);
      drop_result();
      return;
    }
    result_claimed = true;
  }
  ObjectTable::instance().publish_failure(result, f, true);
}

void SubmitTaskBase::fail_with_parent() noexcept {
  publish_failure(cancellation_failure(*this, StopReason::parent_cancelled));
}

void SubmitTaskBase::finish() noexcept {
  if (record != nullptr) untrack_task(std::exchange(record, nullptr));
  if (resources_held) {
    release_resources(*sched, settings->demands.data(), settings->demands.size());
    resources_held = false;
  }
  delete settings;
  settings = nullptr;
  end_task(*sched);
}

void dependency_resolved(Waiter* w) noexcept {
  auto* d = static_cast<Dependency*>(w);
  SubmitTaskBase* task = d->task;
  if (d->slot->state.load(std::memory_order_acquire) == ObjectState::failed) {
    Failure* f = d->slot->failure();
    retain(f);
    Failure* none = nullptr;
    if (!task->dep_failure.compare_exchange_strong(none, f, std::memory_order_acq_rel)) release(f);
  }
  if (task->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) task->schedule();
}

}  // namespace lumen::detail
