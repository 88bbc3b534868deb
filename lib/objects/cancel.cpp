// Cancellation of pending objects: the canceller's side of the claim on an object.
#include <cstdint>
#include <exception>
#include <memory>
#include <string>

#include "lumen/cancel.h"
#include "lumen/detail/object_table.h"
#include "lumen/detail/submit_task.h"
#include "lumen/error.h"
#include "sched/scheduler.h"

namespace lumen::detail {

Failure* cancellation_failure(const Cancellable& c, StopReason why) noexcept {
  try {
    const std::string_view name = c.name_of != nullptr ? c.name_of(&c) : std::string_view();
    std::string who = c.is_actor_call ? (name.empty() ? "a call to an unnamed actor" : "a call to actor '" + std::string(name) + "'")
                                      : (name.empty() ? "an unnamed task" : "task '" + std::string(name) + "'");
    std::string message = "lumen: " + who;
    std::string type;
    switch (why) {
      case StopReason::cancelled:
      case StopReason::cancelled_recursively:
        message += " was cancelled";
        type = "lumen::cancelled_error";
        break;
      case StopReason::parent_cancelled:
        message += " was cancelled with the task that submitted it";
        type = "lumen::cancelled_error";
        break;
      case StopReason::timed_out:
        message += " passed its timeout";
        type = "lumen::timeout_error";
        break;
    }
    auto f = std::make_unique<Failure>();
    f->task_name = name;
    // As make_failure words it, without rethrowing the exception to find its type.
    f->description = "task '" + (name.empty() ? std::string("<unnamed>") : std::string(name)) + "' failed: " + type + ": " + message;
    f->error = why == StopReason::timed_out ? std::make_exception_ptr(timeout_error(message))
                                            : std::make_exception_ptr(cancelled_error(message));
    f->stops_children = why != StopReason::cancelled;
    return f.release();
  } catch (...) {
    return make_failure(std::current_exception(), "");
  }
}

bool ObjectTable::cancel(ObjectSlot* s, StopReason why, Failure** unnamed) noexcept {
  if (s->state.load(std::memory_order_acquire) != ObjectState::cancellable) return false;
  if (!claim(s)) return false;
  // The claim keeps a task from publishing; an actor call that starts takes the object out of
  // `cancellable` without it, so the state decides.
  ObjectState seen = ObjectState::cancellable;
  if (!s->state.compare_exchange_strong(seen, ObjectState::claimed, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
    s->waiters.fetch_and(~ObjectSlot::kWaitersLocked, std::memory_order_release);
    return false;
  }
  Cancellable* producer = s->producer();
  producer->stop.store(true, std::memory_order_relaxed);
  Failure* f;
  if (unnamed != nullptr && !producer->is_actor_call && producer->name_of(producer).empty()) {
    if (*unnamed == nullptr) *unnamed = cancellation_failure(*producer, why);
    f = *unnamed;
    retain(f);
  } else {
    f = cancellation_failure(*producer, why);
  }
  publish_failure(s, f, false);
  return true;
}

bool cancel_slot(ObjectSlot* s, bool recursive) noexcept {
  return ObjectTable::instance().cancel(s, recursive ? StopReason::cancelled_recursively : StopReason::cancelled);
}

std::size_t cancel_slots(ObjectSlot* const* slots, std::size_t n, bool recursive) noexcept {
  const StopReason why = recursive ? StopReason::cancelled_recursively : StopReason::cancelled;
  Failure* unnamed = nullptr;
  std::size_t cancelled = 0;
  for (std::size_t i = 0; i < n; ++i) cancelled += ObjectTable::instance().cancel(slots[i], why, &unnamed) ? 1 : 0;
  if (unnamed != nullptr) release(unnamed);
  return cancelled;
}

namespace {
// The timer's argument is the object's id: a timer outliving the object finds nothing.
void time_out(void* id) noexcept {
  ObjectTable& table = ObjectTable::instance();
  ObjectSlot* s = table.acquire(reinterpret_cast<std::uintptr_t>(id));
  if (s == nullptr) return;
  table.cancel(s, StopReason::timed_out);
  table.release(s);
}
}  // namespace

void add_timeout(Scheduler& s, const ObjectSlot* slot, Clock::time_point deadline) {
  static_assert(sizeof(void*) >= sizeof(std::uint64_t), "an object's id travels as the timer's argument");
  s.add_timer(deadline, &time_out, reinterpret_cast<void*>(static_cast<std::uintptr_t>(slot->id())));
}

}  // namespace lumen::detail

namespace lumen {

bool stop_requested() noexcept {
  const detail::TaskContext& c = detail::task_context();
  if (c.group_stop != nullptr && c.group_stop->load(std::memory_order_relaxed)) return true;
  return c.task != nullptr && static_cast<const detail::SubmitTaskBase*>(c.task)->stop_requested();
}

}  // namespace lumen
