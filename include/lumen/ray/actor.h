/// @file
/// Actors through Ray's API: ray::Actor(factory).Remote(args...), handle.Task(&C::m).Remote(...).
///
/// @code
///   class Counter {
///    public:
///     explicit Counter(int start) : n_(start) {}
///     static Counter* FactoryCreate(int start) { return new Counter(start); }
///     int Add(int k) { return n_ += k; }
///    private:
///     int n_;
///   };
///   RAY_REMOTE(Counter::FactoryCreate, &Counter::Add);
/// @endcode
///
/// @code
///   ray::ActorHandle<Counter> c = ray::Actor(Counter::FactoryCreate).SetName("c").Remote(5);
///   ray::ObjectRef<int> r = c.Task(&Counter::Add).Remote(1);          // 6
///   boost::optional<ray::ActorHandle<Counter>> same = ray::GetActor<Counter>("c");
///   c.Kill();
/// @endcode
///
/// A Ray actor is a lumen actor (lumen/actor.h) of an ActorInstance<C> that owns the C its
/// factory made, so it has lumen's guarantees: with max concurrency 1 (the default) calls run
/// one at a time in the order they were made; the factory runs on a worker after Remote
/// returns; a factory that throws ends the actor and its calls throw RayActorException.
/// SetMaxRestarts(n) rebuilds the actor by calling the factory again with the same arguments
/// after Kill(false), up to n times (-1: always); calls pending then fail, as with Ray's default
/// max_task_retries of 0. As in Ray, ExitActor() and a factory that throws end the actor for
/// good, whatever its restarts: restarts stand in for a crashed worker process.
///
/// Resources, as in Ray: an actor created with SetResources holds them (from the node, or from
/// its placement group bundle) from before its factory runs until it ends, so tasks that claim
/// the same resources wait for them meanwhile; one that asks for nothing holds nothing. When
/// they are taken, the factory waits; when the node (or bundle) could never grant them, the
/// actor is infeasible: a warning is logged and it stays pending, its calls queued, until
/// ray::Shutdown fails it (RayActorException). Shutdown first lets go of what actors hold, so
/// the tasks it waits for get their resources. An actor's calls claim nothing more.
///
/// What differs from Ray, and why:
/// - An actor lives while a handle to it exists; a named actor until it is killed or Shutdown,
///   whatever its lifetime (a detached actor in Ray outlives its job, which cannot happen in one
///   process; a named non-detached one ends with its last handle in Ray).
/// - Names are unique per namespace; lumen::get_actor sees a Ray actor's name with its
///   namespace in front, so use ray::GetActor for Ray actors.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>

#include <boost/optional.hpp>
#include <msgpack.hpp>

#include "lumen/actor.h"
#include "lumen/ray/arguments.h"
#include "lumen/ray/config.h"
#include "lumen/ray/object_ref.h"
#include "lumen/ray/placement_group.h"
#include "lumen/ray/remote.h"
#include "lumen/ray/task_caller.h"

namespace ray {

namespace internal {

// The resources a Ray actor holds while its object lives (SetResources), as in Ray. Opaque:
// lib/ray/ray.cpp keeps them.
struct ActorResources;
// What an actor made by `factory_name` with these options will hold: null when it asks for
// nothing. Throws RayException for values Ray refuses or a group it cannot use. An actor
// that asks for more than the node (or its bundle) has is infeasible: a warning is logged, and
// it waits, as in Ray, until Shutdown fails it.
std::shared_ptr<ActorResources> actor_resources(const std::unordered_map<std::string, double>& resources,
                                                const PlacementGroup& group, int bundle_index,
                                                const std::string& factory_name);
// Waits (parking the constructing task) until the resources are granted. Throws
// RayActorException when ray::Shutdown comes first.
void hold(ActorResources& resources);
void let_go(ActorResources& resources) noexcept;

// The lumen actor behind a Ray actor: it owns the object the factory made, and the resources
// the actor holds from before the factory runs until after the object is destroyed.
template <class C>
class ActorInstance {
 public:
  template <class F, class... A>
  ActorInstance(std::shared_ptr<ActorResources> resources, const std::string* factory_name, F factory, A&&... args)
      : held_(std::move(resources)), object_(run_remote(*factory_name, [&] {
          return invoke_bound(static_cast<typename signature<F>::params*>(nullptr), factory, std::forward<A>(args)...);
        })) {
    if (object_ == nullptr) throw RayException("The factory " + *factory_name + " returned a null actor");
  }

  C& object() noexcept { return *object_; }

 private:
  class Held {
   public:
    explicit Held(std::shared_ptr<ActorResources> r) : r_(std::move(r)) {
      if (r_ != nullptr) hold(*r_);
    }
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    ~Held() {
      if (r_ != nullptr) let_go(*r_);
    }

   private:
    std::shared_ptr<ActorResources> r_;
  };

  Held held_;
  std::unique_ptr<C> object_;
};

// "<namespace size>:<namespace><name>": one lumen name per (namespace, name) pair. Errors
// that reach Ray's users name the actor as they did (rethrow_as_ray_exception).
std::string qualified_actor_name(const std::string& ray_namespace, const std::string& name);

// `call` was made on a default-constructed ActorHandle.
[[noreturn]] void throw_empty_handle(const char* call);
// Throws RayException, in the words of Ray's setters, for options lumen would refuse.
void check_actor_options(const lumen::ActorOptions& options);

// The callable an actor call runs: the method on the actor's object, with Ray's arguments.
template <class C, class M>
struct MethodInvoker {
  M method;
  const std::string* name;

  template <class... A>
  typename signature<M>::result operator()(ActorInstance<C>& instance, A&&... a) {
    return run_remote(*name, [&]() -> decltype(auto) {
      return invoke_method_bound(static_cast<typename signature<M>::params*>(nullptr), method, instance.object(),
                                 std::forward<A>(a)...);
    });
  }
};

// A call to an actor that is not in this process (a handle made from an unknown id): its
// result fails with RayActorException naming the id.
lumen::detail::ObjectSlot* missing_actor_result(const std::string& actor_id);

template <class C, class M>
class ActorTaskCaller {
 public:
  using Result = result_of<M>;

  ActorTaskCaller(lumen::ActorHandle<ActorInstance<C>> actor, const std::string* actor_id, M method,
                  const std::string* name)
      : actor_(std::move(actor)), actor_id_(actor_id), method_(method), name_(name) {}

  // Accepted as Ray accepts it; nothing in one process shows an actor call's name.
  ActorTaskCaller& SetName(const std::string&) { return *this; }
  // Checked as Ray checks them (RayException at Remote for bad values). The call runs on what
  // its actor holds, so it claims nothing more.
  ActorTaskCaller& SetResources(std::unordered_map<std::string, double> resources) {
    resources_ = std::move(resources);
    return *this;
  }
  ActorTaskCaller& SetResource(std::string name, double value) {
    resources_[std::move(name)] = value;
    return *this;
  }

  template <class... Args>
  ObjectRef<Result> Remote(Args&&... args) {
    check_arguments<M, Args...>();
    check_initialized();
    if (!resources_.empty()) check_resources(resources_);
    if (!actor_.valid()) {
      if (actor_id_->empty()) throw_empty_handle("Task(...).Remote()");
      return ObjectRef<Result>(lumen::ObjectRef<Result>::adopt(missing_actor_result(*actor_id_)));
    }
    return call(static_cast<typename signature<M>::params*>(nullptr), std::forward<Args>(args)...);
  }

 private:
  template <class... P, class... Args>
  ObjectRef<Result> call(std::tuple<P...>*, Args&&... args) {
    return ObjectRef<Result>(with_ray_exceptions([&] {
      return actor_.call(MethodInvoker<C, M>{method_, name_}, stored_argument<P, true>(std::forward<Args>(args))...);
    }));
  }

  lumen::ActorHandle<ActorInstance<C>> actor_;
  const std::string* actor_id_;
  M method_;
  const std::string* name_;
  std::unordered_map<std::string, double> resources_;
};

// The text of an actor's id (ActorHandle::ID()): lumen's 64-bit id in 13 base-32 digits.
std::string actor_id_text(std::uint64_t id);
// The live actor of type `type` (typeid of its ActorInstance) named by `id`, with one more
// reference, or null. Throws RayException for a malformed id or an actor of another type.
lumen::detail::ActorCore* find_actor(const std::string& id, const std::type_info& type);

}  // namespace internal

/// A reference to an actor; cheap to copy, usable from any thread, and an argument tasks may
/// take.
template <class ActorType, bool IsXlang = false>
class ActorHandle {
  static_assert(!IsXlang, "actors of other languages need Ray itself");
  using Native = lumen::ActorHandle<internal::ActorInstance<ActorType>>;

 public:
  ActorHandle() = default;
  /// Wraps lumen's handle to the actor.
  explicit ActorHandle(Native native) : native_(std::move(native)), id_(internal::actor_id_text(native_.id())) {}
  /// The actor whose ID() is `id`, while it lives. A handle to an actor that has ended (or an id
  /// no actor of this process had) makes calls that fail with RayActorException. Throws
  /// RayException for a malformed id or an actor of another class.
  ActorHandle(const std::string& id)
      : native_(Native::adopt(internal::find_actor(id, typeid(internal::ActorInstance<ActorType>)))), id_(id) {}

  /// Used by Ray to tell handles from other argument types.
  static bool IsActorHandle() { return true; }

  /// The actor's id; unique among the process's actors.
  const std::string& ID() const { return id_; }

  /// A handle from what ID() gave (Ray's serialized handle is its id here).
  static ActorHandle FromBytes(const std::string& serialized_actor_handle) { return ActorHandle(serialized_actor_handle); }

  /// A caller for a registered method of ActorType (or of a base class of it). Throws
  /// RayException when RAY_REMOTE did not register it.
  template <class F>
  internal::ActorTaskCaller<ActorType, F> Task(F actor_func) const {
    static_assert(std::is_member_function_pointer_v<F>, "Actor method is not a member function of actor class.");
    using Self = typename internal::signature<F>::object;
    static_assert(std::is_same_v<ActorType, Self> || std::is_base_of_v<Self, ActorType>, "Class types must be same.");
    const std::string& name = internal::registered_name(actor_func);
    return internal::ActorTaskCaller<ActorType, F>(native_, &id_, actor_func, &name);
  }

  /// Ends the actor; it is not restarted.
  void Kill() const { Kill(true); }
  /// Ends the actor; with no_restart false it is rebuilt if it has restarts left. Killing an
  /// actor that has ended already does nothing.
  void Kill(bool no_restart) const {
    internal::check_initialized();
    if (!native_.valid()) {
      if (id_.empty()) internal::throw_empty_handle("Kill()");
      return;
    }
    internal::with_ray_exceptions([&] { native_.kill(no_restart); });
  }

  /// The lumen actor behind this handle.
  const Native& native() const noexcept { return native_; }

 private:
  Native native_;
  std::string id_;
};

namespace internal {

template <class F>
using actor_type_of = std::remove_pointer_t<typename signature<F>::result>;

template <class F>
class ActorCreator : public ResourceOptions<ActorCreator<F>> {
  using C = actor_type_of<F>;

 public:
  ActorCreator(F factory, const std::string* name) : factory_(factory), factory_name_(name) {}

  // Names the actor in the job's namespace (ray::GetNamespace()).
  ActorCreator& SetName(std::string name) {
    name_ = std::move(name);
    namespace_ = GetNamespace();
    return *this;
  }
  ActorCreator& SetName(std::string name, std::string ray_namespace) {
    name_ = std::move(name);
    namespace_ = std::move(ray_namespace);
    return *this;
  }
  ActorCreator& SetMaxRestarts(int max_restarts) {
    options_.max_restarts = max_restarts;
    return *this;
  }
  ActorCreator& SetMaxConcurrency(int max_concurrency) {
    options_.max_concurrency = max_concurrency;
    return *this;
  }
  // Creates the actor; the factory runs on a worker with these arguments. Throws
  // RayException when Ray is not initialized, for bad options, or for a name that a live actor
  // of the namespace has.
  template <class... Args>
  ActorHandle<C> Remote(Args&&... args) {
    check_arguments<F, Args...>();
    check_initialized();
    check_actor_options(options_);
    return create(static_cast<typename signature<F>::params*>(nullptr),
                  actor_resources(this->resources_, this->group_, this->bundle_index_, *factory_name_),
                  std::forward<Args>(args)...);
  }

 private:
  template <class... P, class... Args>
  ActorHandle<C> create(std::tuple<P...>*, std::shared_ptr<ActorResources> resources, Args&&... args) {
    if constexpr (!(std::is_copy_constructible_v<decltype(stored_argument<P, false>(std::declval<Args>()))> && ...)) {
      if (options_.max_restarts != 0)
        throw RayException("SetMaxRestarts needs factory arguments that can be copied: a restart calls the factory "
                           "again with the same arguments");
    }
    lumen::ActorOptions options = options_;
    if (!name_.empty()) options.name = qualified_actor_name(namespace_, name_);
    return ActorHandle<C>(with_ray_exceptions([&] {
      return lumen::actor<ActorInstance<C>>(std::move(options), std::move(resources), factory_name_, factory_,
                                            stored_argument<P, false>(std::forward<Args>(args))...);
    }));
  }

  F factory_;
  const std::string* factory_name_;
  std::string name_;
  std::string namespace_;
  lumen::ActorOptions options_{.restart_failed_constructor = false};
};

}  // namespace internal

/// A creator for actors made by the registered factory create_func (returning C*). Throws
/// RayException when RAY_REMOTE did not register it.
template <class F>
internal::ActorCreator<F> Actor(F create_func) {
  static_assert(std::is_pointer_v<internal::result_of<F>>, "An actor factory returns a pointer to the actor");
  return internal::ActorCreator<F>(create_func, &internal::registered_name(create_func));
}

/// The live actor named actor_name in ray_namespace (or in the job's namespace), or none.
template <class T>
boost::optional<ActorHandle<T>> GetActor(const std::string& actor_name, const std::string& ray_namespace) {
  internal::check_initialized();
  if (actor_name.empty()) return {};
  auto found = internal::with_ray_exceptions([&] {
    return lumen::get_actor<internal::ActorInstance<T>>(internal::qualified_actor_name(ray_namespace, actor_name));
  });
  if (!found) return {};
  return ActorHandle<T>(std::move(*found));
}

/// The live actor named `actor_name` in this job's namespace (GetNamespace()), or none.
template <class T>
boost::optional<ActorHandle<T>> GetActor(const std::string& actor_name) {
  return GetActor<T>(actor_name, GetNamespace());
}

/// Ends the actor whose method calls it for good (no restart), once the method returns to it
/// (do not catch what it throws). Outside an actor's method it throws std::logic_error, as Ray
/// does.
[[noreturn]] void ExitActor();

/// True inside a method of an actor that was rebuilt after it ended.
inline bool WasCurrentActorRestarted() { return lumen::actor_restarted(); }

}  // namespace ray

namespace ray::internal {
template <class T>
struct travels_as_id<ActorHandle<T>> : std::true_type {};  // msgpack: see object_ref.h
}  // namespace ray::internal
