/// @file
/// ray::ObjectRef<T> and the calls that read objects: ray::Put, ray::Get, ray::Wait.
///
/// @code
///   ray::ObjectRef<int> ref = ray::Put(100);
///   std::shared_ptr<int> v = ray::Get(ref);                      // 100
///   std::shared_ptr<int> w = ref.Get(50);                        // or RayTimeoutException
///   ray::WaitResult<int> r = ray::Wait(refs, 2, 1000);           // r.ready, r.unready
///   const std::string& id = ref.ID();                            // an id, as in Ray
///   ray::ObjectRef<int> same(id);                                // the same object again
///   std::vector<std::shared_ptr<int>> all = ray::Get<int>(ids);  // by ids
/// @endcode
///
/// A ray::ObjectRef<T> holds a lumen::ObjectRef<T> (native() gives it) and its id, written the
/// first time ID() is called: copying one is an atomic increment (and a 15-byte copy once the
/// id is written), and an object lives while a ref to it does, as in Ray. A ref made from an id
/// (ObjectRef(id), Get<T>(ids), msgpack) finds the object while some other ref keeps it alive;
/// an id whose object is gone gives a ref that Get rejects with RayException.
///
/// What differs from Ray, and why:
/// - Get returns a std::shared_ptr to a copy of the value: Ray deserializes a fresh copy for
///   each Get, and code may change what it got without touching the object. The copy is the one
///   cost Ray code pays over lumen's zero-copy lumen::get(ref.native()), which returns a
///   reference to the value in place. Values are copied as C++ objects, never serialized: see
///   docs/coming-from-ray.md ("Serialization").
/// - ID() is 15 characters: lumen's 64-bit object id and a tag of the value's type (Ray's are
///   28 bytes of binary). `ObjectRef<U>(id)` of an object of another type throws RayException
///   at once (Ray would fail to deserialize it at Get).
/// - Blocking: Get and Wait inside a task park the task's fiber and its worker runs other work.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <msgpack.hpp>

#include "lumen/object_ref.h"
#include "lumen/ray/config.h"
#include "lumen/ray/exception.h"

namespace ray {

namespace internal {

// Rethrows the exception being handled as Ray's: lumen::timeout_error as RayTimeoutException,
// lumen::actor_died as RayActorException, other lumen errors as RayException, Ray's own as
// they are, anything else as RayTaskException. lumen's texts are reworded in Ray's terms:
// actors by the names their users gave them, Ray's calls instead of lumen's. Call it only
// inside a catch block.
[[noreturn]] void rethrow_as_ray_exception();

// Runs f; lumen's errors leave it as Ray's exceptions.
template <class F>
decltype(auto) with_ray_exceptions(F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (...) {
    rethrow_as_ray_exception();
  }
}

std::string object_id_text(std::uint64_t id);

// A 10-bit tag of a type, and the text of an object's id: lumen's id in 13 base-32 digits,
// then 2 of the tag of its value's type.
std::uint32_t type_tag(const std::type_info& type) noexcept;
std::string object_ref_id(std::uint64_t id, std::uint32_t tag);

// The tag of T, worked out once (hashing a type's name is most of an id's cost).
template <class T>
std::uint32_t type_tag_of() noexcept {
  static const std::uint32_t tag = type_tag(typeid(T));
  return tag;
}
// The slot of the live object named by `id`, with one more reference, or null when no object
// with that id lives. Throws RayException when the id is malformed or names an object of
// another type than `type`.
lumen::detail::ObjectSlot* find_object(const std::string& id, const std::type_info& type);

// `call` ("ray::Get", "ray::Wait") was given a default-constructed or moved-from ref, or one
// made from the id `id` of an object that no longer lives.
[[noreturn]] void throw_empty_ref(const char* call, const std::string& id);

// The lumen ref behind a ray::ObjectRef that `call` reads: Ray must be initialized and the ref
// must name an object. `id()` gives the ref's id for the error.
template <class T, class Id>
const lumen::ObjectRef<T>& readable(const lumen::ObjectRef<T>& ref, Id&& id, const char* call) {
  check_initialized();
  if (!ref.valid()) throw_empty_ref(call, id());
  return ref;
}

template <class T>
std::string id_of(const lumen::ObjectRef<T>& ref) {
  return ref.valid() ? object_ref_id(ref.id().value, type_tag_of<T>()) : std::string();
}

// A ref's id text, written the first time someone asks for it: most programs never do, and
// writing it costs more than the rest of making a ref. Safe to ask from several threads at once
// (the first writes, the others wait for it); copies and moves carry a written id along.
class LazyId {
 public:
  LazyId() = default;
  explicit LazyId(std::string text) : text_(std::move(text)), state_(kWritten) {}
  LazyId(const LazyId& o) {
    if (o.state_.load(std::memory_order_acquire) == kWritten) {
      text_ = o.text_;
      state_.store(kWritten, std::memory_order_relaxed);
    }
  }
  LazyId(LazyId&& o) noexcept {
    if (o.state_.load(std::memory_order_acquire) == kWritten) {
      text_ = std::move(o.text_);
      state_.store(kWritten, std::memory_order_relaxed);
      o.state_.store(kEmpty, std::memory_order_relaxed);
    }
  }
  LazyId& operator=(const LazyId& o) {
    if (this != &o) *this = LazyId(o);
    return *this;
  }
  LazyId& operator=(LazyId&& o) noexcept {
    if (o.state_.load(std::memory_order_acquire) == kWritten) {
      text_ = std::move(o.text_);
      state_.store(kWritten, std::memory_order_relaxed);
      o.state_.store(kEmpty, std::memory_order_relaxed);
    } else {
      state_.store(kEmpty, std::memory_order_relaxed);
    }
    return *this;
  }

  // The text; `write()` makes it when it is not written yet.
  template <class Write>
  const std::string& get(Write&& write) const {
    if (state_.load(std::memory_order_acquire) == kWritten) return text_;
    std::uint8_t expected = kEmpty;
    if (state_.compare_exchange_strong(expected, kWriting, std::memory_order_acquire)) {
      try {
        text_ = write();
      } catch (...) {
        state_.store(kEmpty, std::memory_order_release);
        throw;
      }
      state_.store(kWritten, std::memory_order_release);
      return text_;
    }
    while (state_.load(std::memory_order_acquire) != kWritten) std::this_thread::yield();
    return text_;
  }

 private:
  static constexpr std::uint8_t kEmpty = 0, kWriting = 1, kWritten = 2;
  mutable std::string text_;
  mutable std::atomic<std::uint8_t> state_{kEmpty};
};

template <class T>
lumen::ObjectRef<T> ref_from_id(const std::string& id) {
  if (id.empty()) return {};
  return lumen::ObjectRef<T>::adopt(find_object(id, typeid(T)));
}

// A negative timeout waits without limit, as in Ray.
inline std::chrono::milliseconds timeout_of(int timeout_ms) { return std::chrono::milliseconds(timeout_ms); }

}  // namespace internal

/// A reference to an object, as Ray's: Get() returns a copy in a shared_ptr. Wraps a
/// lumen::ObjectRef (native()), so it costs what lumen's refs cost and may be passed to tasks.
template <class T>
class ObjectRef {
 public:
  ObjectRef() = default;
  /// Wraps lumen's ref to the object.
  explicit ObjectRef(lumen::ObjectRef<T> ref) noexcept : ref_(std::move(ref)) {}
  /// The object whose ID() is `id`, while another ref keeps it alive.
  ObjectRef(const std::string& id) : ref_(internal::ref_from_id<T>(id)), id_(id) {}

  /// Used by Ray to tell refs from other argument types.
  static bool IsObjectRef() { return true; }

  /// Same object: compares the refs, or the ids when neither ref is set.
  bool operator==(const ObjectRef& other) const {
    return ref_.valid() || other.ref_.valid() ? ref_ == other.ref_ : ID() == other.ID();
  }

  /// The object's id; empty for a default-constructed ref.
  const std::string& ID() const {
    return id_.get([this] { return internal::id_of(ref_); });
  }

  /// A copy of the value, once it is ready (made from a temporary ref, so that under a memory
  /// limit the object stays free to leave memory afterwards). Throws RayTaskException when the
  /// task that produces it threw, RayActorException when its actor had ended.
  std::shared_ptr<T> Get() const {
    const auto& ref = internal::readable(ref_, [this] { return ID(); }, "ray::Get");
    return internal::with_ray_exceptions([&] { return std::make_shared<T>(lumen::get(lumen::ObjectRef<T>(ref))); });
  }
  /// As Get(), but throws RayTimeoutException when the object is not ready within timeout_ms
  /// milliseconds (a negative timeout waits without limit).
  std::shared_ptr<T> Get(const int& timeout_ms) const {
    if (timeout_ms < 0) return Get();
    const auto& ref = internal::readable(ref_, [this] { return ID(); }, "ray::Get");
    return internal::with_ray_exceptions(
        [&] { return std::make_shared<T>(lumen::get(lumen::ObjectRef<T>(ref), internal::timeout_of(timeout_ms))); });
  }

  /// lumen's ref to the same object: for lumen::get without a copy, or lumen::wait.
  const lumen::ObjectRef<T>& native() const noexcept { return ref_; }

 private:
  lumen::ObjectRef<T> ref_;
  internal::LazyId id_;
};

/// The result of a task that returns nothing: Get() waits for it and rethrows its error.
template <>
class ObjectRef<void> {
 public:
  ObjectRef() = default;
  /// Wraps lumen's ref to the object.
  explicit ObjectRef(lumen::ObjectRef<void> ref) noexcept : ref_(std::move(ref)) {}
  /// The object whose ID() is `id`, while another ref keeps it alive.
  ObjectRef(const std::string& id) : ref_(internal::ref_from_id<void>(id)), id_(id) {}

  /// Used by Ray to tell refs from other argument types.
  static bool IsObjectRef() { return true; }
  /// Same object: compares the refs, or the ids when neither ref is set.
  bool operator==(const ObjectRef& other) const {
    return ref_.valid() || other.ref_.valid() ? ref_ == other.ref_ : ID() == other.ID();
  }
  /// The object's id; empty for a default-constructed ref.
  const std::string& ID() const {
    return id_.get([this] { return internal::id_of(ref_); });
  }

  /// Waits for the task; throws RayTaskException when it threw, RayActorException when its actor
  /// had ended.
  void Get() const {
    const auto& ref = internal::readable(ref_, [this] { return ID(); }, "ray::Get");
    internal::with_ray_exceptions([&] { lumen::get(ref); });
  }
  /// As Get(), but throws RayTimeoutException when the task has not finished within timeout_ms
  /// milliseconds (a negative timeout waits without limit).
  void Get(const int& timeout_ms) const {
    if (timeout_ms < 0) return Get();
    const auto& ref = internal::readable(ref_, [this] { return ID(); }, "ray::Get");
    internal::with_ray_exceptions([&] { lumen::get(ref, internal::timeout_of(timeout_ms)); });
  }

  /// lumen's ref to the same object: for lumen::get or lumen::wait.
  const lumen::ObjectRef<void>& native() const noexcept { return ref_; }

 private:
  lumen::ObjectRef<void> ref_;
  internal::LazyId id_;
};

namespace internal {
template <class T>
struct is_object_ref : std::false_type {};
template <class T>
struct is_object_ref<ObjectRef<T>> : std::true_type {};
template <class T>
inline constexpr bool is_object_ref_v = is_object_ref<std::remove_cvref_t<T>>::value;
}  // namespace internal

/// Stores a copy of obj as a new object, ready at once.
template <class T>
ObjectRef<T> Put(const T& obj) {
  internal::check_initialized();
  return ObjectRef<T>(internal::with_ray_exceptions([&] { return lumen::put(obj); }));
}

/// A copy of the object's value (ObjectRef::Get()).
template <class T>
std::shared_ptr<T> Get(const ObjectRef<T>& object) {
  return object.Get();
}

/// As Get(object), with a timeout in milliseconds (ObjectRef::Get(timeout_ms)).
template <class T>
std::shared_ptr<T> Get(const ObjectRef<T>& object, const int& timeout_ms) {
  return object.Get(timeout_ms);
}

/// Waits for a task that returns nothing; rethrows its error.
inline void Get(const ObjectRef<void>& object) { object.Get(); }
/// As Get(object), with a timeout in milliseconds.
inline void Get(const ObjectRef<void>& object, const int& timeout_ms) { object.Get(timeout_ms); }

/// Every value, in order; the first failed object's error is thrown.
template <class T>
std::vector<std::shared_ptr<T>> Get(const std::vector<ObjectRef<T>>& objects) {
  internal::check_initialized();
  std::vector<std::shared_ptr<T>> out;
  out.reserve(objects.size());
  for (const auto& r : objects) out.push_back(r.Get());
  return out;
}

/// As above, with one timeout for all of them together.
template <class T>
std::vector<std::shared_ptr<T>> Get(const std::vector<ObjectRef<T>>& objects, const int& timeout_ms) {
  if (timeout_ms < 0) return Get(objects);
  internal::check_initialized();
  auto deadline = std::chrono::steady_clock::now() + internal::timeout_of(timeout_ms);
  std::vector<std::shared_ptr<T>> out;
  out.reserve(objects.size());
  for (const auto& r : objects) {
    const auto& ref = internal::readable(r.native(), [&] { return r.ID(); }, "ray::Get");
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    out.push_back(internal::with_ray_exceptions(
        [&] { return std::make_shared<T>(lumen::get(lumen::ObjectRef<T>(ref), std::max(left, std::chrono::milliseconds(0)))); }));
  }
  return out;
}

/// The values of the objects with these ids (ObjectRef::ID()), in order: ray::Get<int>(ids),
/// and with one timeout for all of them.
/// @{
template <class T>
std::vector<std::shared_ptr<T>> Get(const std::vector<std::string>& ids) {
  internal::check_initialized();
  std::vector<ObjectRef<T>> refs(ids.begin(), ids.end());
  return Get(refs);
}
template <class T>
std::vector<std::shared_ptr<T>> Get(const std::vector<std::string>& ids, const int& timeout_ms) {
  internal::check_initialized();
  std::vector<ObjectRef<T>> refs(ids.begin(), ids.end());
  return Get(refs, timeout_ms);
}
/// @}

/// The ids of the refs, in order: what Get<T>(ids) takes. Ray declares it in namespace ray and
/// its tests call it from ray::internal; both names work.
template <class T>
std::vector<std::string> ObjectRefsToObjectIDs(const std::vector<ObjectRef<T>>& object_refs) {
  std::vector<std::string> ids;
  ids.reserve(object_refs.size());
  for (const auto& r : object_refs) ids.push_back(r.ID());
  return ids;
}
namespace internal {
using ray::ObjectRefsToObjectIDs;
}  // namespace internal

/// What Wait() returns: the refs split by readiness, each list in the order of the input.
template <class T>
class WaitResult {
 public:
  std::list<ObjectRef<T>> ready;  ///< the refs that resolved (at most num_objects of them)
  std::list<ObjectRef<T>> unready;  ///< the others

  WaitResult() {}
  /// Takes the two lists as they are.
  WaitResult(std::list<ObjectRef<T>>&& ready_objects, std::list<ObjectRef<T>>&& unready_objects)
      : ready(std::move(ready_objects)), unready(std::move(unready_objects)) {}
};

namespace internal {
void check_wait_count(int num_objects, std::size_t size);
}

/// Returns once num_objects of the objects are ready (or failed), or timeout_ms milliseconds
/// have passed (a negative timeout waits without limit); it does not throw on timeout. `ready`
/// holds at most num_objects refs; both lists keep the order of `objects`.
template <class T>
WaitResult<T> Wait(const std::vector<ObjectRef<T>>& objects, int num_objects, int timeout_ms) {
  internal::check_initialized();
  internal::check_wait_count(num_objects, objects.size());
  std::vector<lumen::ObjectRef<T>> natives;
  natives.reserve(objects.size());
  for (const auto& r : objects) natives.push_back(internal::readable(r.native(), [&] { return r.ID(); }, "ray::Wait"));
  auto count = static_cast<std::size_t>(num_objects);
  lumen::WaitResult<T> split = internal::with_ray_exceptions([&] {
    return timeout_ms < 0 ? lumen::wait(natives, count) : lumen::wait(natives, count, internal::timeout_of(timeout_ms));
  });
  std::list<ObjectRef<T>> ready, unready;
  for (auto& r : split.ready) ready.emplace_back(std::move(r));
  for (auto& r : split.not_ready) unready.emplace_back(std::move(r));
  return WaitResult<T>(std::move(ready), std::move(unready));
}

}  // namespace ray

namespace ray::internal {
// Types that travel through msgpack as their id (ID(), and a constructor from it), as Ray's refs
// and actor handles do: a struct holding one can have MSGPACK_DEFINE.
template <class T>
struct travels_as_id : std::false_type {};
template <class T>
struct travels_as_id<ObjectRef<T>> : std::true_type {};
}  // namespace ray::internal

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
namespace adaptor {
template <class T>
struct pack<T, std::enable_if_t<ray::internal::travels_as_id<T>::value>> {
  template <class Stream>
  packer<Stream>& operator()(packer<Stream>& out, const T& value) const {
    return out.pack(value.ID());
  }
};
template <class T>
struct convert<T, std::enable_if_t<ray::internal::travels_as_id<T>::value>> {
  const msgpack::object& operator()(const msgpack::object& in, T& value) const {
    value = T(in.as<std::string>());
    return in;
  }
};
}  // namespace adaptor
}
}  // namespace msgpack
