/// @file
/// Actors: a stateful object that lives on the scheduler and takes method calls as tasks.
///
/// @code
///   struct Counter {
///     explicit Counter(int start) : n(start) {}
///     int add(int k) { return n += k; }
///     int n;
///   };
///   lumen::ActorHandle<Counter> c = lumen::actor<Counter>(5);
///   lumen::ObjectRef<int> r = c.call(&Counter::add, 1);            // 6, once it has run
///   auto hits = lumen::actor<Counter>(lumen::ActorOptions{.name = "hits", .max_restarts = 2}, 0);
///   std::optional<lumen::ActorHandle<Counter>> h = lumen::get_actor<Counter>("hits");
///   c.kill();
/// @endcode
///
/// Ordering: with max_concurrency 1 (the default) calls run one at a time, in the order they
/// entered the actor's mailbox, and each sees the effects of the ones before. Calls made by one
/// thread or one task are never reordered. A call whose ObjectRef arguments are not ready yet
/// waits for them in its turn: later calls wait behind it. With max_concurrency n > 1 up to n
/// calls run at once, in no set order; the actor guards its own state.
///
/// Blocking: a method that blocks (get, wait, a call to another actor) parks its fiber. With
/// max_concurrency 1 the actor's next call waits for it; with more, others may run. An actor
/// that waits on a call to itself needs max_concurrency > 1.
///
/// Lifetime: an actor lives while a handle to it exists (calls already queued still run), or
/// until it is killed; a named actor lives until it is killed or its runtime ends. The
/// instance's destructor runs on the thread that lets go of it: the last handle's, or a worker.
///
/// Faults, as Ray has them in one process: a constructor that throws, kill(), or exit_actor()
/// inside a method ends the actor; calls still pending then, and every later call, resolve to
/// lumen::actor_died saying why. A method that throws anything else fails only its own call.
/// With max_restarts n the actor is built again from its original constructor arguments (up to
/// n times; -1: always), except after kill(no_restart = true). Calls pending when it ended run
/// on the new instance if max_task_retries allows (each call at most that many times; -1:
/// always), else they fail with actor_died. A type with `C checkpoint() const` and
/// `void restore(const C&)` gets its state back: checkpoint() is taken after every
/// checkpoint_interval calls that succeed, and a restarted instance is given the last one.
/// With ActorOptions::checkpoint_file (C must be std::string: the type's own serialized
/// state) each checkpoint is also written to that file, replacing the previous one atomically
/// (a new file, fsync, rename), and an actor created with a file that exists starts from it:
/// a process that was killed restores the state of its last checkpoint. A file that cannot be
/// read ends the actor with actor_died naming the file; a checkpoint that cannot be written
/// leaves the previous file in place. Each one written costs a write and an fsync on the
/// actor's worker (about a millisecond on a disk): raise checkpoint_interval for busy actors.
///
/// Cost: a call is one allocation (its frame) and an object slot; the caller pushes it onto a
/// lock-free mailbox. An actor with queued calls is one task that runs them in batches and
/// yields to other work after a bounded number.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "lumen/detail/actor_core.h"
#include "lumen/detail/submit_task.h"
#include "lumen/error.h"
#include "lumen/object_ref.h"
#include "lumen/task.h"

namespace lumen {

/// How an actor runs and what happens when it fails. See the top of this file.
struct ActorOptions {
  std::string name = {};       ///< empty: anonymous; else unique among the runtime's live actors
  int max_concurrency = 1;      ///< calls that may run at once (>= 1)
  int max_restarts = 0;         ///< times it is rebuilt after ending (-1: without limit)
  int max_task_retries = 0;     ///< times a pending call is replayed on a rebuilt actor (-1: always)
  int checkpoint_interval = 1;  ///< successful calls between checkpoints, for types that have them
  std::string checkpoint_file = {};  ///< also keep checkpoints in this file (see above); empty: none
  /// Whether a constructor that throws counts as a failure that max_restarts rebuilds from
  /// (true), or ends the actor for good, as Ray treats an exception in an actor's constructor.
  bool restart_failed_constructor = true;
};

/// Ends the actor whose method calls it, once the method unwinds (it throws a value that is not
/// a std::exception; do not swallow it). The call resolves to actor_died; max_restarts decides
/// whether the actor is rebuilt, unless no_restart (then it ends for good, as Ray's intended
/// exits do). A caller that sees that call fail and calls again reaches the rebuilt instance.
/// With max_concurrency > 1 the instance ends once the calls running beside the exiting one
/// have finished; they may wait on its result, which fails as soon as it returns. Outside an
/// actor's method it throws usage_error.
[[noreturn]] void exit_actor(bool no_restart = false);

/// True inside a method of an actor instance that was rebuilt after a failure.
bool actor_restarted() noexcept;

namespace detail {

template <class R>
struct flatten_ref {
  using type = R;
  static constexpr bool nested = false;
};
template <class U>
struct flatten_ref<ObjectRef<U>> {
  using type = U;
  static constexpr bool nested = true;
};

template <bool Move, class M, class T, class Tuple, std::size_t... I>
decltype(auto) invoke_method(M& m, T& obj, Tuple& args, std::index_sequence<I...>) {
  // Parameter 0 of a member function (or of a callable taking T&) is the object itself.
  return std::invoke(m, obj, pass_arg<M, I + 1, Move>(std::get<I>(args))...);
}

// Copies (or, from its last holder, moves) the value of `inner` into `outer` once it is ready:
// a method returning ObjectRef<U> gives its caller an ObjectRef<U>, not a ref to a ref.
template <class U>
struct ForwardResult : Waiter {
  ObjectRef<U> inner;
  ObjectSlot* outer;

  // may_wait: this thread may wait for `in` to be rebuilt (it was evicted under a memory
  // limit); a waiter's notify may not, and hands the wait to a task.
  static void publish(ObjectSlot* in, ObjectSlot* out, bool may_wait) noexcept {
    if (in->state.load(std::memory_order_acquire) == ObjectState::failed) {
      Failure* f = in->failure();
      retain(f);
      ObjectTable::instance().fail(out, f, true);
      return;
    }
    if constexpr (!std::is_void_v<U>) {
      std::exception_ptr error;
      ObjectSlot* pinned = nullptr;
      try {
        U* v = SlotValue<U>::get(in);
        if constexpr (!SlotValue<U>::kInline) {
          if (ObjectMemory::has_residency(in)) {
            void* p = may_wait ? ObjectMemory::pin(in, false) : ObjectMemory::try_pin(in);
            if (p == nullptr) return publish_in_task(in, out);
            v = static_cast<U*>(p);
            pinned = in;
          }
        }
        std::uint64_t word = in->refgen.load(std::memory_order_acquire);
        if constexpr (std::is_copy_constructible_v<U>) {
          if ((word & (ObjectSlot::kRefMask | ObjectSlot::kWriter)) == 1) {
            SlotValue<U>::emplace(out, std::move(*v));
          } else {
            SlotValue<U>::emplace(out, *v);
          }
        } else {
          if ((word & (ObjectSlot::kRefMask | ObjectSlot::kWriter)) != 1)
            throw usage_error("lumen: an actor method returned a ref to a move-only value that other refs share");
          SlotValue<U>::emplace(out, std::move(*v));
        }
      } catch (...) {
        error = std::current_exception();
      }
      if (pinned != nullptr) ObjectMemory::unpin(pinned);
      if (error != nullptr) {
        Failure* f = make_failure(std::move(error), "actor method result");
        ObjectTable::instance().fail(out, f, true);
        return;
      }
    }
    ObjectTable::instance().resolve(out, ObjectState::ready, true);
  }

  static void publish_in_task(ObjectSlot* in, ObjectSlot* out) noexcept {
    try {
      ObjectTable::add_ref(in);
      auto inner = ObjectRef<U>::adopt(in);
      RuntimeEntry entry;
      submit_with(entry.scheduler(), nullptr, [inner, out]() noexcept { publish(inner.slot(), out, true); });
    } catch (...) {
      ObjectTable::instance().fail(out, make_failure(std::current_exception(), "actor method result"), true);
    }
  }

  static void forward(ObjectRef<U> in, ObjectSlot* out) noexcept {
    if (!in.valid()) {
      ObjectTable::instance().fail(
          out, make_failure(std::make_exception_ptr(usage_error("lumen: an actor method returned an empty ObjectRef")),
                            "actor method result"),
          true);
      return;
    }
    if (in.ready()) return publish(in.slot(), out, true);
    auto* f = create<ForwardResult>();
    f->inner = std::move(in);
    f->outer = out;
    f->notify = [](Waiter* w) noexcept {
      auto* self = static_cast<ForwardResult*>(w);
      publish(self->inner.slot(), self->outer, false);
      destroy(self);
    };
    if (!ObjectTable::add_waiter(f->inner.slot(), f)) f->notify(f);
  }
};

// The frame of one call of `method` with `args` on an actor of type T.
template <class T, class M, class... Args>
struct ActorCallFrame final : ActorCall {
  using Tuple = std::tuple<Args...>;
  static constexpr auto kSeq = std::make_index_sequence<sizeof...(Args)>{};
  using Raw = std::decay_t<decltype(invoke_method<true>(std::declval<M&>(), std::declval<T&>(), std::declval<Tuple&>(),
                                                        std::make_index_sequence<sizeof...(Args)>{}))>;
  using Value = typename flatten_ref<Raw>::type;

  template <class MM, class... AA>
  explicit ActorCallFrame(MM&& m, AA&&... a) : method(std::forward<MM>(m)), args(std::forward<AA>(a)...) {
    invoke = &run_on;
    abandon = &fail_unrun;
  }

  static End run_on(ActorCall* c, void* instance) noexcept {
    auto* self = static_cast<ActorCallFrame*>(c);
    ObjectSlot* out = self->result;
    if (!self->claim_result()) {
      current_actor_context()->actor->count_cancelled();
      destroy(self);
      return End::cancelled;
    }
    Failure* unmet = nullptr;
    try {
      unmet = self->await_arguments();
    } catch (...) {  // the wait itself failed (no fiber left to park on)
      std::exception_ptr why = std::current_exception();
      unmet = make_failure(std::move(why), current_actor_context()->actor->settings().name);
    }
    if (unmet != nullptr) {
      ObjectTable::instance().fail(out, unmet, true);
      destroy(self);
      return End::served;
    }
    std::exception_ptr error;
    bool exit = false;
    try {
      T& obj = *static_cast<T*>(instance);
      ArgPins<M, 1, Tuple> pins(self->args);
      if constexpr (flatten_ref<Raw>::nested) {
        ForwardResult<Value>::forward(invoke_method<true>(self->method, obj, self->args, kSeq), out);
        out = nullptr;
      } else if constexpr (std::is_void_v<Raw>) {
        invoke_method<true>(self->method, obj, self->args, kSeq);
      } else {
        SlotValue<Raw>::emplace(out, invoke_method<true>(self->method, obj, self->args, kSeq));
      }
    } catch (const actor_exit_request&) {
      exit = true;
    } catch (...) {
      error = std::current_exception();
    }
    // Published after the handler has ended (see SubmitTask::execute). The result of a call
    // that ends the actor is failed by the actor once it has decided on the calls behind it
    // (a serial actor) or has marked where they begin (a concurrent one), so that a caller
    // who sees it fail and calls again reaches the restarted instance.
    ActorContext* ctx = current_actor_context();
    exit = exit || ctx->exit_requested;
    const End end = exit ? End::actor_exit : error != nullptr ? End::failed : End::served;
    ctx->actor->count_executed();
    if (exit) {
      // A method that caught its own exit_actor() and returned a value: its result fails, so
      // the value goes now (a failed object never destroys one).
      if (out != nullptr && out->destroy_value != nullptr) {
        out->destroy_value(out);
        out->destroy_value = nullptr;
        out->flags.fetch_and(static_cast<std::uint16_t>(~ObjectSlot::kHasResidency), std::memory_order_relaxed);
      }
      ctx->exit_result = out;
    } else if (out != nullptr) {
      if (error != nullptr) {
        Failure* f = make_failure(std::move(error), ctx->actor->settings().name);
        ObjectTable::instance().fail(out, f, true);
      } else {
        ObjectTable::instance().resolve(out, ObjectState::ready, true);
      }
    }
    destroy(self);
    return end;
  }

  static void fail_unrun(ActorCall* c, Failure* f) noexcept {
    auto* self = static_cast<ActorCallFrame*>(c);
    if (self->claim_result()) {
      ObjectTable::instance().fail(self->result, f, true);
    } else {
      detail::release(f);
    }
    destroy(self);
  }

  // Waits, in the actor's turn, for ObjectRef arguments; returns the failure of one that
  // failed (one new reference), or null.
  Failure* await_arguments() {
    Failure* failed = nullptr;
    [&]<std::size_t... I>(std::index_sequence<I...>) { (await_argument<I>(std::get<I>(args), failed), ...); }(kSeq);
    return failed;
  }

  // An ObjectRef argument is waited for unless its parameter takes the ref itself.
  template <std::size_t I, class A>
  static void await_argument(A& arg, Failure*& failed) {
    if constexpr (is_object_ref<A>::value &&
                  !is_object_ref<std::remove_cvref_t<typename param_at<M, I + 1>::type>>::value) {
      ObjectSlot* s = arg.slot();
      if (failed != nullptr) return;
      if (!s->resolved()) wait_resolved(s);
      if (s->state.load(std::memory_order_acquire) == ObjectState::failed) {
        failed = s->failure();
        retain(failed);
      }
    }
  }

  M method;
  Tuple args;
};

// Replaces `path` with `bytes` (a new file beside it, fsync, rename). Throws resource_error.
void write_checkpoint_file(const std::string& path, const std::string& bytes);
// The file's bytes; nullopt when there is no such file. Throws resource_error when it cannot be read.
std::optional<std::string> read_checkpoint_file(const std::string& path);

// The actor's core with what its type needs: the constructor's arguments (kept for restarts)
// and the last checkpoint.
template <class T>
concept has_checkpoints = requires(const T& t, T& u) {
  t.checkpoint();
  u.restore(t.checkpoint());
};

template <class T>
struct saved_checkpoint {
  using type = char;  // nothing to keep
};
template <has_checkpoints T>
struct saved_checkpoint<T> {
  using type = std::optional<std::decay_t<decltype(std::declval<const T&>().checkpoint())>>;
};

// The actor's core with what its type needs: the constructor's arguments (kept for restarts)
// and the last checkpoint.
template <class T, class... CtorArgs>
class TypedActorCore final : public ActorCore {
  static constexpr bool kCheckpoints = has_checkpoints<T>;

 public:
  // Checkpoints that can go to a file: the type serializes its state itself.
  static constexpr bool kPersistable = [] {
    if constexpr (kCheckpoints) {
      return std::is_same_v<std::decay_t<decltype(std::declval<const T&>().checkpoint())>, std::string>;
    } else {
      return false;
    }
  }();

 private:

 public:
  template <class... A>
  TypedActorCore(Scheduler& s, ActorSettings settings, A&&... a)
      : ActorCore(s, spec_, std::move(settings)), ctor_args_(std::forward<A>(a)...) {}

 private:
  static void* construct(ActorCore* c) {
    auto* self = static_cast<TypedActorCore*>(c);
    // The arguments are kept for restarts; without any, the one construction may move them.
    if constexpr ((std::is_copy_constructible_v<CtorArgs> && ...)) {
      if (self->settings().max_restarts != 0) {
        return std::apply([](const auto&... a) { return static_cast<void*>(create<T>(a...)); }, self->ctor_args_);
      }
    }
    return std::apply([](auto&... a) { return static_cast<void*>(create<T>(std::move(a)...)); }, self->ctor_args_);
  }
  static void destroy_instance(void* p) noexcept { detail::destroy(static_cast<T*>(p)); }
  static void free_core(ActorCore* c) noexcept { detail::destroy(static_cast<TypedActorCore*>(c)); }
  static void save(ActorCore* c, void* instance) {
    if constexpr (kCheckpoints) {
      auto* self = static_cast<TypedActorCore*>(c);
      self->saved_.emplace(static_cast<const T*>(instance)->checkpoint());
      if constexpr (kPersistable) {
        if (!self->settings().checkpoint_file.empty()) write_checkpoint_file(self->settings().checkpoint_file, *self->saved_);
      }
    }
  }
  // On a restart: the last checkpoint. On the first construction: the checkpoint file's.
  static void restore(ActorCore* c, void* instance, bool restarted) {
    if constexpr (kCheckpoints) {
      auto* self = static_cast<TypedActorCore*>(c);
      if constexpr (kPersistable) {
        if (!restarted && !self->settings().checkpoint_file.empty()) {
          if (std::optional<std::string> bytes = read_checkpoint_file(self->settings().checkpoint_file))
            self->saved_.emplace(std::move(*bytes));
        }
      }
      if (self->saved_) static_cast<T*>(instance)->restore(*self->saved_);
    }
  }

  static constexpr ActorSpec spec_{&typeid(T), &construct, &destroy_instance, &free_core,
                                   kCheckpoints ? &save : nullptr, kCheckpoints ? &restore : nullptr};

  std::tuple<CtorArgs...> ctor_args_;
  [[no_unique_address]] typename saved_checkpoint<T>::type saved_{};
};

ActorCore* find_named_actor(Scheduler& s, const std::string& name, const std::type_info& type);
ActorCore* find_actor_by_id(std::uint64_t id, const std::type_info& type);
void validate(const ActorSettings& settings);

}  // namespace detail

/// A reference to an actor: cheap to copy (one atomic increment), safe to pass to tasks and to
/// other actors, and usable from any thread. The actor lives while a handle to it exists.
template <class T>
class ActorHandle {
 public:
  ActorHandle() noexcept = default;
  /// Another handle to the same actor (one atomic increment); the actor lives while any handle
  /// does.
  ActorHandle(const ActorHandle& o) noexcept : core_(o.core_) {
    if (core_ != nullptr) core_->add_ref();
  }
  /// Takes over o's reference; o is left empty.
  ActorHandle(ActorHandle&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  /// Rebinds this handle to o's actor, letting go of the one it held.
  ActorHandle& operator=(ActorHandle o) noexcept {
    std::swap(core_, o.core_);
    return *this;
  }
  ~ActorHandle() {
    if (core_ != nullptr) core_->release();
  }

  /// Queues method(instance, args...) and returns a ref to its result. `method` is a member
  /// function pointer (cast it to pick an overload) or any callable taking T& first. ObjectRef
  /// arguments are waited for and passed as values, unless the parameter is an ObjectRef. A
  /// method returning `ObjectRef<U>` gives `ObjectRef<U>`. Calls to an actor that has ended
  /// resolve to actor_died; a thread that is not a worker gets shutdown_error once the runtime
  /// shuts down.
  template <class M, class... Args>
  auto call(M&& method, Args&&... args) const {
    using Frame = detail::ActorCallFrame<T, std::decay_t<M>, std::decay_t<Args>...>;
    using Value = typename Frame::Value;
    detail::ActorCore& a = checked();
    [[maybe_unused]] auto check_ref = [](const auto& r) {
      if constexpr (is_object_ref_v<decltype(r)>) {
        if (!r.valid()) throw usage_error("lumen: actor call with an empty ObjectRef argument");
      }
    };
    (check_ref(args), ...);
    auto& table = detail::ObjectTable::instance();
    detail::ActorCore::Caller caller(a);  // keeps the actor's runtime from ending under this call
    if (!caller.alive()) {
      detail::ObjectSlot* s = table.allocate(1);
      table.fail(s, a.death());
      return ObjectRef<Value>::adopt(s);
    }
    detail::begin_task(a.scheduler());
    detail::ObjectSlot* s = nullptr;
    Frame* frame = nullptr;
    try {
      s = table.allocate(1, true);
      frame = detail::create<Frame>(std::forward<M>(method), std::forward<Args>(args)...);
    } catch (...) {
      if (s != nullptr) table.discard(s);
      detail::end_task(a.scheduler());
      throw;
    }
    frame->result = s;
    frame->callee = &a;
    detail::ObjectTable::set_producer(s, frame);
    auto ref = ObjectRef<Value>::adopt(s);
    a.enqueue(frame);
    return ref;
  }

  /// Ends the actor. Calls that have not started resolve to actor_died (or, with
  /// no_restart = false and restarts left, run on the rebuilt actor as max_task_retries
  /// allows); a call already running finishes first, and the instance is destroyed after it.
  /// An end for good (no restarts left) shows when kill() returns: dead() is true, get_actor
  /// no longer finds the actor, its name may be reused, and later calls fail at once. While the
  /// actor's runtime shuts down a kill is always for good (nothing restarts then).
  void kill(bool no_restart = true) const { checked().kill(no_restart); }

  /// False for a default-constructed or moved-from handle.
  bool valid() const noexcept { return core_ != nullptr; }
  /// valid().
  explicit operator bool() const noexcept { return valid(); }
  /// True once the actor has ended for good.
  bool dead() const noexcept { return core_ != nullptr && core_->dead(); }
  /// Unique among the process's actors; 0 for an empty handle.
  std::uint64_t id() const noexcept { return core_ != nullptr ? core_->id() : 0; }
  /// The name given in ActorOptions::name (empty for an unnamed actor). An empty handle is a
  /// usage_error.
  const std::string& name() const { return checked().settings().name; }

  /// Same actor: handles are equal when they refer to one actor, whichever copies they are.
  friend bool operator==(const ActorHandle& a, const ActorHandle& b) noexcept { return a.core_ == b.core_; }

  /// For lumen's own code: takes over one reference to c.
  static ActorHandle adopt(detail::ActorCore* c) noexcept {
    ActorHandle h;
    h.core_ = c;
    return h;
  }

 private:
  detail::ActorCore& checked() const {
    if (core_ == nullptr) throw usage_error("lumen: use of an empty ActorHandle");
    return *core_;
  }

  detail::ActorCore* core_ = nullptr;
};

/// Creates an actor from T's constructor arguments (stored by value; copied for each restart)
/// on the runtime in scope. The constructor runs on a worker, after this returns; if it throws,
/// the actor's calls fail with actor_died. Throws usage_error for bad options or a name that a
/// live actor of this runtime already has.
template <class T, class... Args>
ActorHandle<T> actor(ActorOptions options, Args&&... args) {
  using Core = detail::TypedActorCore<T, std::decay_t<Args>...>;
  if (!options.checkpoint_file.empty() && !Core::kPersistable)
    throw usage_error("lumen: ActorOptions::checkpoint_file needs checkpoint() to return std::string (the serialized state)");
  detail::ActorSettings settings{std::move(options.name),          options.max_concurrency,
                                 options.max_restarts,             options.max_task_retries,
                                 options.checkpoint_interval,      std::move(options.checkpoint_file),
                                 options.restart_failed_constructor};
  detail::validate(settings);
  if constexpr (!(std::is_copy_constructible_v<std::decay_t<Args>> && ...)) {
    if (settings.max_restarts != 0)
      throw usage_error("lumen: an actor with max_restarts needs constructor arguments it can copy");
  }
  detail::RuntimeEntry entry;
  auto* core = detail::create<Core>(entry.scheduler(), std::move(settings), std::forward<Args>(args)...);
  auto handle = ActorHandle<T>::adopt(core);
  core->start();
  return handle;
}

/// As actor(ActorOptions, args...) with default options: an unnamed actor that is not restarted.
template <class T, class... Args>
  requires(!std::is_same_v<std::decay_t<std::tuple_element_t<0, std::tuple<Args..., void>>>, ActorOptions>)
ActorHandle<T> actor(Args&&... args) {
  return actor<T>(ActorOptions{}, std::forward<Args>(args)...);
}

/// The live actor with this name in the runtime in scope, or nullopt. Throws usage_error when
/// the actor exists but is not a T.
template <class T>
std::optional<ActorHandle<T>> get_actor(const std::string& name) {
  detail::RuntimeEntry entry;
  detail::ActorCore* c = detail::find_named_actor(entry.scheduler(), name, typeid(T));
  if (c == nullptr) return std::nullopt;
  return ActorHandle<T>::adopt(c);
}

/// The live actor whose ActorHandle::id() is `id` (of any runtime), or nullopt once it has been
/// destroyed. Throws usage_error when the actor is not a T.
template <class T>
std::optional<ActorHandle<T>> get_actor(std::uint64_t id) {
  detail::ActorCore* c = detail::find_actor_by_id(id, typeid(T));
  if (c == nullptr) return std::nullopt;
  return ActorHandle<T>::adopt(c);
}

}  // namespace lumen
