/// @file
/// ObjectRef<T>: a counted handle to an object in the object table, and the calls that read
/// objects: put, get, wait.
///
/// An object is a task's result or a put() value. It is immutable once ready and freed when its
/// last ObjectRef goes. Copying a ref is one atomic increment; reads are zero-copy.
///
/// @code
///   auto p = lumen::put(std::vector<double>(1 << 20, 1.0));
///   const std::vector<double>& x = lumen::get(p);   // valid while p (or a copy) lives
/// @endcode
///
/// Blocking: get and wait inside a task park the task's fiber and the worker runs other work;
/// any other thread looks at the object for about 20 us, then sleeps until it resolves.
/// Timeouts may be any duration: negative ones poll, ones too long to add to now() never expire.
/// Thread safety: an ObjectRef is as safe to share as a shared_ptr: distinct refs to one object
/// may be used from any threads; one ref object may not be assigned while another thread reads it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "lumen/detail/cpu_relax.h"
#include "lumen/detail/large_copy.h"
#include "lumen/detail/object_memory.h"
#include "lumen/detail/object_table.h"
#include "lumen/detail/slot_value.h"
#include "lumen/detail/scheduler_api.h"
#include "lumen/detail/timeline_hooks.h"
#include "lumen/error.h"

namespace lumen {

/// A stable object id: index in the table and generation. Ids are never reused while an object
/// lives, and a stale id never names a newer object.
struct ObjectId {
  std::uint64_t value = 0;  ///< the whole id: generation in the high 32 bits, index in the low ones
  /// The object's entry in the table.
  std::uint32_t index() const noexcept { return static_cast<std::uint32_t>(value); }
  /// Counts reuses of the entry: tells this object from earlier and later ones in it.
  std::uint32_t generation() const noexcept { return static_cast<std::uint32_t>(value >> 32); }
  /// Same object.
  friend bool operator==(ObjectId, ObjectId) = default;
};

/// A counted, immutable handle to an object in the object table: a task's result or a put() value.
/// The object lives while any ObjectRef to it does. See the top of this file for blocking and
/// thread safety.
template <class T>
class ObjectRef {
  static_assert(!std::is_reference_v<T> && !std::is_const_v<T>, "ObjectRef holds plain value types");

 public:
  /// The type of the object's value (void for a task that returns nothing).
  using value_type = T;

  ObjectRef() noexcept = default;
  /// Another reference to the same object: one atomic increment; the value is not copied.
  ObjectRef(const ObjectRef& o) noexcept : slot_(o.slot_) {
    if (slot_ != nullptr) detail::ObjectTable::add_ref(slot_);
  }
  /// Takes over o's reference; o is left empty.
  ObjectRef(ObjectRef&& o) noexcept : slot_(std::exchange(o.slot_, nullptr)) {}
  /// Refers to o's object, letting go of the one this ref held.
  ObjectRef& operator=(const ObjectRef& o) noexcept {
    ObjectRef(o).swap(*this);
    return *this;
  }
  /// Takes over o's reference, letting go of the one this ref held; o is left empty.
  ObjectRef& operator=(ObjectRef&& o) noexcept {
    ObjectRef(std::move(o)).swap(*this);
    return *this;
  }
  ~ObjectRef() { reset(); }

  /// Lets go of the object (freed if this was its last ref); the ref becomes empty.
  void reset() noexcept {
    if (slot_ != nullptr) detail::ObjectTable::instance().release(std::exchange(slot_, nullptr));
  }
  /// Exchanges the objects two refs refer to, without touching their counts.
  void swap(ObjectRef& o) noexcept { std::swap(slot_, o.slot_); }

  /// False for a default-constructed or moved-from ref.
  bool valid() const noexcept { return slot_ != nullptr; }
  /// valid().
  explicit operator bool() const noexcept { return valid(); }
  /// Resolved: get() will not block.
  bool ready() const noexcept { return slot_ != nullptr && slot_->resolved(); }
  /// The object's id, for logs and the state API; ObjectId{0} for an empty ref.
  ObjectId id() const noexcept { return ObjectId{slot_ != nullptr ? slot_->id() : 0}; }

  /// Same object (two empty refs are equal too).
  friend bool operator==(const ObjectRef& a, const ObjectRef& b) noexcept { return a.slot_ == b.slot_; }

  /// For lumen's own code: takes over one reference to s.
  static ObjectRef adopt(detail::ObjectSlot* s) noexcept {
    ObjectRef r;
    r.slot_ = s;
    return r;
  }
  /// For lumen's own code: empties the ref without letting go of its reference, which the
  /// caller has taken over.
  void disown() noexcept { slot_ = nullptr; }
  /// For lumen's own code: the table entry this ref holds, or null.
  detail::ObjectSlot* slot() const noexcept { return slot_; }

 private:
  detail::ObjectSlot* slot_ = nullptr;
};

template <class T>
struct is_object_ref : std::false_type {};
template <class T>
struct is_object_ref<ObjectRef<T>> : std::true_type {};
/// True when T, without references and cv-qualifiers, is an ObjectRef: how task arguments tell a
/// ref (waited for and passed as a value) from a plain value.
template <class T>
inline constexpr bool is_object_ref_v = is_object_ref<std::remove_cvref_t<T>>::value;

namespace detail {

inline ObjectSlot* checked_slot(ObjectSlot* s) {
  if (s == nullptr) throw usage_error("lumen: get or wait on an empty ObjectRef (default-constructed or moved from)");
  return s;
}

[[noreturn]] inline void rethrow_failure(ObjectSlot* s) { std::rethrow_exception(s->failure()->error); }

inline void await(ObjectSlot* s) {
  if (!s->resolved()) wait_resolved(s);
  if (s->state.load(std::memory_order_acquire) == ObjectState::failed) rethrow_failure(s);
}

template <class Rep, class Period>
void await_for(ObjectSlot* s, std::chrono::duration<Rep, Period> timeout) {
  check_timeout(timeout);  // also when the object is ready: a bad argument is an error either way
  if (!s->resolved() && !wait_resolved_until(s, deadline_after(timeout)))
    throw timeout_error("lumen: get timed out before the object was ready");
  if (s->state.load(std::memory_order_acquire) == ObjectState::failed) rethrow_failure(s);
}

// An rvalue ref that is the object's only handle gives its value away, and is emptied: a
// moved-from value must not be readable through any ref. The last reference becomes a
// hold that an id lookup cannot take (ObjectTable::acquire needs a reference), so no
// other ref can appear while the value moves out.
template <class T>
T take_or_copy(ObjectRef<T>& ref) {
  ObjectSlot* s = ref.slot();
  PinnedValue<T> v(s);
  std::uint64_t word;
  // The producing task lets go of the slot right after it publishes the value: a few
  // instructions away, so pause before giving the core away.
  for (int spins = 0; ((word = s->refgen.load(std::memory_order_acquire)) & ObjectSlot::kWriter) != 0; ++spins) {
    if (spins < 256) {
      detail::cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  if ((word & ObjectSlot::kRefMask) == 1 &&
      s->refgen.compare_exchange_strong(word, (word - 1) | ObjectSlot::kWriter, std::memory_order_acq_rel)) {
    ref.disown();
    try {
      T out(std::move(*v));
      v.unpin();
      ObjectTable::instance().release_writer(s);
      return out;
    } catch (...) {
      s->refgen.fetch_sub(ObjectSlot::kWriter - 1, std::memory_order_acq_rel);  // the hold is a reference again
      ref = ObjectRef<T>::adopt(s);
      throw;
    }
  }
  if constexpr (std::is_copy_constructible_v<T>) {
    return T(*v);
  } else {
    throw usage_error(
        "lumen: get on a temporary ref to a move-only value that other refs still share; "
        "read it through a ref you keep");
  }
}

}  // namespace detail

/// Moves value into a new, ready object. Under Config::object_memory_limit, a value over 16
/// bytes that would pass the limit first makes room by evicting or spilling other objects, then
/// waits for room or throws resource_error (Config::put_at_limit); one larger than the limit
/// always throws.
template <class V>
ObjectRef<std::decay_t<V>> put(V&& value) {
  using T = std::decay_t<V>;
  static_assert(!is_object_ref_v<T>, "put() of an ObjectRef: pass the ref itself instead");
  if constexpr (!detail::SlotValue<T>::kInline) {
    if (detail::ObjectMemory::limited()) detail::ObjectMemory::instance().admit(detail::SlotValue<T>::value_bytes(value));
  }
  detail::ObjectSlot* s = detail::ObjectTable::instance().allocate(1);
  try {
    if constexpr (detail::kCopiedInHugePages<T> &&
                  (std::is_lvalue_reference_v<V> || std::is_const_v<std::remove_reference_t<V>>)) {
      detail::SlotValue<T>::emplace(s, detail::copy_in_huge_pages(value));
    } else {
      detail::SlotValue<T>::emplace(s, std::forward<V>(value));
    }
  } catch (...) {
    detail::ObjectTable::instance().release(s);
    throw;
  }
  if (detail::timeline_active()) detail::timeline_put(s->bytes.load(std::memory_order_relaxed));
  detail::ObjectTable::instance().resolve(s, detail::ObjectState::ready);
  return ObjectRef<T>::adopt(s);
}

/// The value, without copying; valid while `ref` or a copy of it lives. Waits until the object
/// is ready; rethrows the task's exception, with its own type, if it failed. Under a memory
/// limit, a value that was evicted or spilled is brought back first, and stays in memory from
/// then on (the reference must stay valid): read through read(), a task, or get(std::move(ref))
/// to leave it free to go again.
template <class T>
  requires(!std::is_void_v<T>)
const T& get(const ObjectRef<T>& ref) {
  detail::ObjectSlot* s = detail::checked_slot(ref.slot());
  detail::await(s);
  return detail::SlotValue<T>::read_kept(s);
}

/// A temporary ref cannot keep the object alive past the call, so its value is returned by
/// value: moved out when this was the object's last ref (the ref is left empty, and the object
/// is freed), copied otherwise (the ref stays valid).
template <class T>
  requires(!std::is_void_v<T>)
T get(ObjectRef<T>&& ref) {
  detail::ObjectSlot* s = detail::checked_slot(ref.slot());
  detail::await(s);
  return detail::take_or_copy<T>(ref);
}

/// Waits for a task that returns nothing; rethrows its exception.
inline void get(const ObjectRef<void>& ref) { detail::await(detail::checked_slot(ref.slot())); }

/// As get(ref), but throws lumen::timeout_error when the object is not ready in time. A zero or
/// negative timeout polls; one too long to represent waits forever; NaN throws usage_error.
template <class T, class Rep, class Period>
  requires(!std::is_void_v<T>)
const T& get(const ObjectRef<T>& ref, std::chrono::duration<Rep, Period> timeout) {
  detail::ObjectSlot* s = detail::checked_slot(ref.slot());
  detail::await_for(s, timeout);
  return detail::SlotValue<T>::read_kept(s);
}

/// As get(ObjectRef&&), with a timeout as in get(const ObjectRef&, timeout).
template <class T, class Rep, class Period>
  requires(!std::is_void_v<T>)
T get(ObjectRef<T>&& ref, std::chrono::duration<Rep, Period> timeout) {
  detail::ObjectSlot* s = detail::checked_slot(ref.slot());
  detail::await_for(s, timeout);
  return detail::take_or_copy<T>(ref);
}

/// Waits for a task that returns nothing, with a timeout as in get(const ObjectRef&, timeout);
/// rethrows its exception.
template <class Rep, class Period>
void get(const ObjectRef<void>& ref, std::chrono::duration<Rep, Period> timeout) {
  detail::await_for(detail::checked_slot(ref.slot()), timeout);
}

/// Calls f(value) and returns what it returns. The value stays in memory during the call only:
/// under a memory limit it may be evicted or spilled again afterwards (get(const ref&) keeps
/// it for good). Waits and rethrows as get does.
template <class T, class F>
  requires(!std::is_void_v<T>)
decltype(auto) read(const ObjectRef<T>& ref, F&& f) {
  detail::ObjectSlot* s = detail::checked_slot(ref.slot());
  detail::await(s);
  detail::PinnedValue<T> value(s);
  return std::forward<F>(f)(static_cast<const T&>(*value));
}

/// All values, in order (copies). The first failed object's exception is rethrown.
template <class T>
  requires(!std::is_void_v<T>)
std::vector<T> get(const std::vector<ObjectRef<T>>& refs) {
  std::vector<T> out;
  out.reserve(refs.size());
  for (const auto& r : refs) out.push_back(read(r, [](const T& v) { return v; }));
  return out;
}

/// Waits for every task in turn; rethrows the first failed object's exception.
inline void get(const std::vector<ObjectRef<void>>& refs) {
  for (const auto& r : refs) get(r);
}

/// Describes why an object failed: the failing task's name and its exception. Empty when the
/// object is pending or ready.
template <class T>
std::optional<task_error> error_of(const ObjectRef<T>& ref) {
  detail::ObjectSlot* s = ref.slot();
  if (s == nullptr || s->state.load(std::memory_order_acquire) != detail::ObjectState::failed) return std::nullopt;
  const detail::Failure* f = s->failure();
  return task_error(f->description, f->task_name, f->error, f->attempts);
}

/// What wait() returns: the refs split by whether they resolved.
template <class T>
struct WaitResult {
  std::vector<ObjectRef<T>> ready;      ///< in the order of the input
  std::vector<ObjectRef<T>> not_ready;  ///< in the order of the input
};

namespace detail {
// Returns once num_ready of refs are resolved or the deadline passed. Refs already resolved
// are counted first: a wait that needs nothing more costs one look at each ref.
template <class T>
void wait_for(const std::vector<ObjectRef<T>>& refs, std::size_t num_ready, const Clock::time_point* deadline) {
  if (num_ready > refs.size())
    throw usage_error("lumen: wait for " + std::to_string(num_ready) + " objects among only " +
                      std::to_string(refs.size()));
  std::size_t ready = 0;
  for (const auto& r : refs) {
    ObjectSlot* s = checked_slot(r.slot());
    if (ready < num_ready && s->resolved()) ++ready;
  }
  if (ready >= num_ready) return;
  std::vector<ObjectSlot*> slots;
  slots.reserve(refs.size());
  for (const auto& r : refs) slots.push_back(r.slot());
  wait_slots(slots.data(), slots.size(), num_ready, deadline);
}

// Splits refs as wait() returns them: at most num_ready resolved refs go to `ready`, as
// ray.wait returns them, the rest to `not_ready`, both in input order. Copies each ref (an
// atomic increment), or, from an rvalue, moves them and keeps the vector's storage as
// `not_ready` (no count changes, no allocation but `ready`'s).
template <class T>
WaitResult<T> split_ready(const std::vector<ObjectRef<T>>& refs, std::size_t num_ready) {
  WaitResult<T> out;
  out.ready.reserve(std::min(num_ready, refs.size()));
  out.not_ready.reserve(refs.size() - std::min(num_ready, refs.size()));
  for (const auto& r : refs) (out.ready.size() < num_ready && r.ready() ? out.ready : out.not_ready).push_back(r);
  return out;
}
template <class T>
WaitResult<T> split_ready(std::vector<ObjectRef<T>>&& refs, std::size_t num_ready) {
  WaitResult<T> out;
  out.ready.reserve(std::min(num_ready, refs.size()));
  std::size_t kept = 0;
  for (auto& r : refs) {
    if (out.ready.size() < num_ready && r.ready()) {
      out.ready.push_back(std::move(r));
    } else {
      if (&refs[kept] != &r) refs[kept] = std::move(r);
      ++kept;
    }
  }
  refs.resize(kept);
  out.not_ready = std::move(refs);
  return out;
}
}  // namespace detail

/// Splits refs into ready and not ready, as ray.wait does: returns once num_ready of them are
/// resolved (ready or failed). `ready` holds at most num_ready refs. Pass the vector as an
/// rvalue (`refs = wait(std::move(refs)).not_ready`) to move the refs instead of copying them.
template <class T>
WaitResult<T> wait(const std::vector<ObjectRef<T>>& refs, std::size_t num_ready = 1) {
  detail::wait_for(refs, num_ready, nullptr);
  return detail::split_ready<T>(refs, num_ready);
}
/// As above, moving the refs into the result.
template <class T>
WaitResult<T> wait(std::vector<ObjectRef<T>>&& refs, std::size_t num_ready = 1) {
  detail::wait_for(refs, num_ready, nullptr);
  return detail::split_ready<T>(std::move(refs), num_ready);
}

/// As above, but returns when the timeout passes even if fewer are ready (timeouts read as
/// for get).
template <class T, class Rep, class Period>
WaitResult<T> wait(const std::vector<ObjectRef<T>>& refs, std::size_t num_ready,
                   std::chrono::duration<Rep, Period> timeout) {
  auto deadline = detail::deadline_after(timeout);
  detail::wait_for(refs, num_ready, &deadline);
  return detail::split_ready<T>(refs, num_ready);
}
/// As above, moving the refs into the result.
template <class T, class Rep, class Period>
WaitResult<T> wait(std::vector<ObjectRef<T>>&& refs, std::size_t num_ready, std::chrono::duration<Rep, Period> timeout) {
  auto deadline = detail::deadline_after(timeout);
  detail::wait_for(refs, num_ready, &deadline);
  return detail::split_ready<T>(std::move(refs), num_ready);
}

}  // namespace lumen
