/// @file
/// on_resolved: run a callback when an object resolves, without a thread or a fiber waiting.
///
/// @code
///   lumen::on_resolved(ref, [ref]() noexcept { log(lumen::get(ref)); });
/// @endcode
///
/// This is how code that is not a task (an I/O loop, a GUI thread, a timer) learns that a
/// result is there: it never blocks. The callback runs exactly once, after the object is ready
/// or failed (get() on it no longer waits): on the thread that resolves it (a worker, usually,
/// at the end of the producing task), or at once on the calling thread when the object is
/// already resolved. Keep it short: it delays the resolving worker. It may submit tasks, call actors, put and post to other threads; it must
/// not block. It must be noexcept: an exception has nowhere to go from the resolving thread.
///
/// Cost: one allocation for the callback; nothing else until the object resolves.
/// Thread safety: any thread may call it, any number of times for one object; callbacks of one
/// object run in no set order.
#pragma once

#include <type_traits>
#include <utility>

#include "lumen/detail/alloc.h"
#include "lumen/detail/object_table.h"
#include "lumen/object_ref.h"

namespace lumen {

namespace detail {

template <class F>
struct ResolvedCallback final : Waiter {
  explicit ResolvedCallback(F&& f, ObjectSlot* s) : callback(std::move(f)), keep(s) {
    ObjectTable::add_ref(s);
    notify = [](Waiter* w) noexcept {
      auto* self = static_cast<ResolvedCallback*>(w);
      self->callback();
      destroy(self);
    };
  }
  ~ResolvedCallback() { ObjectTable::instance().release(keep); }
  F callback;
  ObjectSlot* keep;  // a waiter holds a reference, so the object outlives its waiter list
};

}  // namespace detail

/// Calls f() once ref is ready or failed (see the top of this file). Throws usage_error for an
/// empty ref, and std::bad_alloc (with f not called) when the callback cannot be stored.
template <class T, class F>
void on_resolved(const ObjectRef<T>& ref, F&& f) {
  using Fn = std::decay_t<F>;
  static_assert(std::is_nothrow_invocable_v<Fn&>,
                "on_resolved's callback must be noexcept: it runs on the thread that resolves the object");
  detail::ObjectSlot* s = detail::checked_slot(ref.slot());
  if (s->resolved()) {
    Fn local(std::forward<F>(f));
    local();
    return;
  }
  auto* w = detail::create<detail::ResolvedCallback<Fn>>(Fn(std::forward<F>(f)), s);
  if (!detail::ObjectTable::add_waiter(s, w)) w->notify(w);
}

}  // namespace lumen
