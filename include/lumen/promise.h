/// @file
/// Promise: an object that code outside any task resolves, to hand a result into lumen.
///
/// @code
///   lumen::Promise<std::string> p;
///   lumen::ObjectRef<std::string> r = p.ref();      // pass it to tasks, wait on it, ...
///   io.on_reply([p = std::move(p)](std::string body) mutable { p.set_value(std::move(body)); });
/// @endcode
///
/// The other half of on_resolved(): where that turns an object into a callback, this turns a
/// callback (an I/O completion, a message from another system, a queue that admits work
/// later) into an ObjectRef that tasks take as an argument and get() waits on, like any task
/// result. The object resolves once: set_value or set_exception; a second call throws
/// usage_error. A Promise destroyed before either fails its object with cancelled_error, so a
/// waiter never hangs on a promise that was dropped.
///
/// Thread safety: ref() and the setters may be called from any thread; the Promise itself is
/// move-only, owned by one place at a time. Cost: one object slot, as a put().
#pragma once

#include <atomic>
#include <exception>
#include <string_view>
#include <type_traits>
#include <utility>

#include "lumen/detail/object_table.h"
#include "lumen/detail/slot_value.h"
#include "lumen/error.h"
#include "lumen/object_ref.h"

namespace lumen {

/// An object that the program resolves itself rather than a task: hand out ref(), then resolve the
/// object once, from any thread. A Promise destroyed without resolving it fails the object with
/// cancelled_error, so readers never wait forever.
template <class T>
class Promise {
  static_assert(!std::is_reference_v<T> && !std::is_const_v<T> && !is_object_ref_v<T>,
                "Promise holds a plain value type");

 public:
  /// A pending object. Throws std::bad_alloc when the object table cannot grow.
  Promise() : ref_(ObjectRef<T>::adopt(detail::ObjectTable::instance().allocate(1, true))) {}
  /// Takes over o's object; o is left moved-from.
  Promise(Promise&& o) noexcept : ref_(std::move(o.ref_)), done_(o.done_.load(std::memory_order_relaxed)) {}
  /// Fails this promise's pending object as the destructor would, then takes over o's.
  Promise& operator=(Promise&& o) noexcept {
    if (this != &o) {
      abandon();
      ref_ = std::move(o.ref_);
      done_.store(o.done_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    }
    return *this;
  }
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;
  ~Promise() { abandon(); }

  /// The object this promise resolves; throws usage_error on a moved-from Promise.
  ObjectRef<T> ref() const {
    if (!ref_.valid()) throw usage_error("lumen: ref() of a moved-from Promise");
    return ref_;
  }

  /// Resolves the object with a value built from args (nothing for Promise<void>). If building
  /// it throws, the object fails with that exception instead, and so does this call.
  template <class... A>
  void set_value(A&&... args) {
    detail::ObjectSlot* s = take("set_value");
    if constexpr (std::is_void_v<T>) {
      static_assert(sizeof...(A) == 0, "Promise<void>::set_value takes no arguments");
      detail::ObjectTable::instance().publish(s, detail::ObjectState::ready, true);
    } else {
      try {
        detail::SlotValue<T>::emplace(s, std::forward<A>(args)...);
      } catch (...) {
        detail::ObjectTable::instance().publish_failure(s, detail::make_failure(std::current_exception(), "promise"), true);
        throw;
      }
      detail::ObjectTable::instance().publish(s, detail::ObjectState::ready, true);
    }
  }

  /// Fails the object: get() on it rethrows e, with its own type.
  void set_exception(std::exception_ptr e) {
    if (e == nullptr) throw usage_error("lumen: Promise::set_exception with an empty exception_ptr");
    detail::ObjectSlot* s = take("set_exception");
    detail::ObjectTable::instance().publish_failure(s, detail::make_failure(std::move(e), "promise"), true);
  }

  /// True once set_value or set_exception has been called.
  bool resolved() const noexcept { return done_.load(std::memory_order_acquire); }

 private:
  detail::ObjectSlot* take(std::string_view what) {
    if (!ref_.valid()) throw usage_error("lumen: " + std::string(what) + " on a moved-from Promise");
    if (done_.exchange(true, std::memory_order_acq_rel))
      throw usage_error("lumen: " + std::string(what) + " on a Promise that is already resolved");
    detail::ObjectSlot* s = ref_.slot();
    // A promise's object has no producer that cancel() can reach, so the claim always succeeds.
    detail::ObjectTable::claim(s);
    return s;
  }

  void abandon() noexcept {
    if (!ref_.valid() || done_.exchange(true, std::memory_order_acq_rel)) return;
    detail::ObjectSlot* s = ref_.slot();
    detail::ObjectTable::claim(s);
    detail::ObjectTable::instance().publish_failure(
        s,
        detail::make_failure(std::make_exception_ptr(cancelled_error("lumen: a Promise was destroyed before it was resolved")),
                             "promise"),
        true);
  }

  ObjectRef<T> ref_;
  std::atomic<bool> done_{false};
};

}  // namespace lumen
