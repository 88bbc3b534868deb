/// @file
/// Cancellation: stopping tasks and actor calls whose results are no longer wanted.
///
/// @code
///   auto r = lumen::submit(crunch, data);
///   lumen::cancel(r);                          // get(r) throws lumen::cancelled_error
///   lumen::cancel(r, {.recursive = true});     // and what crunch submitted stops too
/// @endcode
///
/// @code
///   int crunch(Data d) {                       // a long task polls for the request
///     while (!lumen::stop_requested()) step(d);
///     ...
///   }
/// @endcode
///
/// What a cancel does, by where the task is:
///  - Not started (queued, waiting for its ObjectRef arguments, for resources or for a retry):
///    it never runs. Its result fails with cancelled_error when cancel() returns.
///  - Running: it is not interrupted (C++ has no safe way to stop a thread mid-call).
///    stop_requested() turns true inside it, its result fails with cancelled_error when
///    cancel() returns, and what it returns or throws later is dropped; it is not retried.
///  - Finished, or already cancelled: nothing happens and cancel() returns false. Exactly one
///    outcome is ever published, however cancel() races with the task's end.
/// With recursive, the tasks the cancelled task submitted (and, in turn, what they submitted)
/// are cancelled as they are reached: one that has not started fails with cancelled_error
/// without running; one that is running sees stop_requested() and its result fails with
/// cancelled_error when it ends. A task's timeout (TaskOptions::timeout) acts the same way,
/// with timeout_error.
///
/// An actor call can be cancelled until the actor starts it (a method that has started runs to
/// its end, as it changes the actor's state). Objects from put(), blocking() and parallel
/// algorithms have nothing to cancel: cancel() returns false.
///
/// task_group::cancel(), and a pipeline or graph that stops after an exception, ask their
/// running bodies to stop the same way: stop_requested() is true inside them.
///
/// Thread safety: any thread, any number of times. Cost: a cancel is one compare-and-swap on the
/// object and the allocation of its failure; stop_requested() reads two words.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "lumen/object_ref.h"

namespace lumen {

/// How far a cancel reaches.
struct CancelOptions {
  bool recursive = false;  ///< stop what the task submitted, too
};

namespace detail {
bool cancel_slot(ObjectSlot* s, bool recursive) noexcept;
std::size_t cancel_slots(ObjectSlot* const* slots, std::size_t n, bool recursive) noexcept;
}  // namespace detail

/// Cancels the task or actor call that produces ref's object. True when this call did: the
/// object has failed with cancelled_error. An empty ref is a usage_error.
template <class T>
bool cancel(const ObjectRef<T>& ref, CancelOptions options = {}) {
  if (!ref.valid()) throw usage_error("lumen: cancel of an empty ObjectRef");
  return detail::cancel_slot(ref.slot(), options.recursive);
}

/// Cancels each; returns how many this call cancelled. The unnamed tasks it cancels share one
/// failure (one allocation for the lot). An empty ref among them is a usage_error, before any
/// is cancelled.
template <class T>
std::size_t cancel(const std::vector<ObjectRef<T>>& refs, CancelOptions options = {}) {
  for (const auto& r : refs) {
    if (!r.valid()) throw usage_error("lumen: cancel of an empty ObjectRef");
  }
  std::size_t n = 0;
  constexpr std::size_t kBatch = 256;
  detail::ObjectSlot* batch[kBatch];
  for (std::size_t at = 0; at < refs.size(); at += kBatch) {
    const std::size_t k = std::min(kBatch, refs.size() - at);
    for (std::size_t j = 0; j < k; ++j) batch[j] = refs[at + j].slot();
    n += detail::cancel_slots(batch, k, options.recursive);
  }
  return n;
}

/// True inside a task that was cancelled or timed out (or whose submitter was cancelled
/// recursively), inside a child of a cancelled task_group, and inside the stages and nodes of
/// a pipeline or graph run that is stopping. False elsewhere, including outside lumen's threads.
bool stop_requested() noexcept;

}  // namespace lumen
