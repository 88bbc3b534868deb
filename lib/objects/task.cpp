// The parts of a submitted task that do not depend on its types.
#include "lumen/detail/submit_task.h"

namespace lumen::detail {

void SubmitTaskBase::schedule() noexcept {
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
  if (Failure* f = dep_failure.exchange(nullptr, std::memory_order_acquire)) {
    ObjectTable::instance().fail(result, f, true);  // the reference dependency_resolved took moves to the result
    return Readiness::failed;
  }
  if (settings != nullptr && !settings->demands.empty() && !resources_held) {
    // Set first: a grant may spawn and run this task before acquire_resources returns.
    resources_held = true;
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

bool SubmitTaskBase::retry_after_error() noexcept {
  if (attempts_left <= 0) return false;
  --attempts_left;
  if (resources_held) {
    release_resources(*sched, settings->demands.data(), settings->demands.size());
    resources_held = false;
  }
  schedule();
  return true;
}

void SubmitTaskBase::fail(std::exception_ptr e) noexcept {
  static const std::string unnamed;
  Failure* f = make_failure(std::move(e), settings != nullptr ? settings->name : unnamed);
  ObjectTable::instance().fail(result, f, true);
}

void SubmitTaskBase::finish() noexcept {
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
