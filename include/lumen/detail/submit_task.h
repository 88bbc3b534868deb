// The frame of a submitted task: its callable, its arguments, the slot of its result and the
// waiter nodes that make it wait for ObjectRef arguments. One allocation per submit.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "lumen/detail/alloc.h"
#include "lumen/detail/callable_traits.h"
#include "lumen/detail/object_table.h"
#include "lumen/detail/scheduler_api.h"
#include "lumen/detail/slot_value.h"
#include "lumen/detail/task_state_hooks.h"
#include "lumen/detail/timeline_hooks.h"
#include "lumen/object_ref.h"

namespace lumen::detail {

// Options resolved at submit. Allocated only for tasks that have any.
struct TaskSettings {
  std::string name;
  int priority = 0;
  std::vector<ResourceDemand> demands;
  std::chrono::nanoseconds next_retry_delay{0};  // 0: retries run at once
  double retry_backoff = 2.0;
  std::chrono::nanoseconds max_retry_delay{0};
  double retry_jitter = 0.0;
  bool (*retry_if)(const std::exception_ptr&) = nullptr;  // null: every exception is retried
  // A deterministic task under a memory limit: how to compute its value again, handed to the
  // result's slot when the value is stored (see object_memory.h).
  Recipe* recipe = nullptr;

  TaskSettings() = default;
  TaskSettings(const TaskSettings&) = delete;
  TaskSettings& operator=(const TaskSettings&) = delete;
  ~TaskSettings() {
    if (recipe != nullptr) recipe->destroy(recipe);
  }
};

struct SubmitTaskBase : Task, Cancellable {
  Scheduler* sched = nullptr;
  ObjectSlot* result = nullptr;      // held through the writer bit until the task publishes it
  TaskSettings* settings = nullptr;  // null: default options
  // The result of the task that submitted this one, or null: a recursive cancel of that task
  // shows there (ObjectSlot::kStopsChildren) for as long as that object lives. Not held (a
  // reference would cost two atomic operations per nested submit): looked at only while its
  // generation is still parent_generation.
  const ObjectSlot* parent = nullptr;
  std::uint32_t parent_generation = 0;
  std::atomic<int> pending{1};       // dependencies not resolved yet, plus one for submit itself
  int attempts_left = 0;             // retries still allowed
  int attempts = 1;                  // runs begun, this one included
  bool resources_held = false;
  bool result_claimed = false;       // this task holds the claim on its result (ObjectTable::claim)
  TaskRecord* record = nullptr;      // its state API record, when the runtime tracks state
  std::atomic<Failure*> dep_failure{nullptr};

  SubmitTaskBase() noexcept { name_of = &task_name_of; }

  void schedule() noexcept;
  enum class Readiness { run, deferred, failed, cancelled };
  // Before running: `failed` when a dependency failed (the result carries its error);
  // `cancelled` when a cancel() published the result first (the task must not run);
  // `deferred` when the task waits for resources and will be spawned again once it has them.
  Readiness prepare() noexcept;
  // After an exception: true when the task was queued (or timed) to run again.
  bool retry_after_error(const std::exception_ptr& error) noexcept;
  // At the end of a run that returned: whether to publish the value.
  enum class Outcome { publish, lost, stopped_by_parent };
  Outcome end_of_run() noexcept {
    if (parent != nullptr && parent_stops_children()) return Outcome::stopped_by_parent;
    if (!ObjectTable::claim(result)) return Outcome::lost;
    result_claimed = true;
    return Outcome::publish;
  }
  // Publishes e as the result's failure (and lets go of the result), unless a cancel() did first.
  void fail(std::exception_ptr e) noexcept;
  // Publishes the value emplaced after end_of_run() said `publish`.
  void publish_value() noexcept { ObjectTable::instance().publish(result, ObjectState::ready, true); }
  // Fails the result with cancelled_error because a recursive cancel stopped the parent.
  void fail_with_parent() noexcept;
  void publish_failure(Failure* f) noexcept;  // takes one reference of f
  // Lets go of a result that a cancel() published.
  void drop_result() noexcept { ObjectTable::instance().release_writer(result); }
  // Releases resources and the runtime's count of this task.
  void finish() noexcept;
  // cancel() or the timeout stopped this task, or a recursive cancel stopped its parent.
  bool stop_requested() const noexcept {
    return stop.load(std::memory_order_relaxed) || (parent != nullptr && parent_stops_children());
  }
  // Slots are never unmapped, so reading one that was freed is safe. Flags are set only on
  // the parent's generation or a later one; the generation read after them tells which.
  bool parent_stops_children() const noexcept {
    if ((parent->flags.load(std::memory_order_acquire) & ObjectSlot::kStopsChildren) == 0) return false;
    return (parent->refgen.load(std::memory_order_acquire) >> 32) == parent_generation;
  }

 private:
  static std::string_view task_name_of(const Cancellable* c) noexcept {
    const auto* t = static_cast<const SubmitTaskBase*>(c);
    return t->settings != nullptr ? std::string_view(t->settings->name) : std::string_view();
  }
};

// Marks `task` as the one running on this stack (task_context().task) while it lives: what a
// wait looks at to refuse waiting on the task's own result, and what an overflow report names.
// A task is no actor's method, even when an actor's method runs it inline (get on it), and no
// body of a task_group, pipeline or graph whose wait runs it.
class RunningTask {
 public:
  explicit RunningTask(const SubmitTaskBase* task) noexcept
      : context_(task_context()),
        saved_task_(context_.task),
        saved_actor_(context_.actor),
        saved_group_stop_(context_.group_stop) {
    context_.task = task;
    context_.actor = nullptr;
    context_.group_stop = nullptr;
  }
  ~RunningTask() {
    context_.task = saved_task_;
    context_.actor = saved_actor_;
    context_.group_stop = saved_group_stop_;
  }
  RunningTask(const RunningTask&) = delete;
  RunningTask& operator=(const RunningTask&) = delete;

 private:
  TaskContext& context_;  // the fiber's own: still the right one after the task parks
  const void* saved_task_;
  void* saved_actor_;
  const std::atomic<bool>* saved_group_stop_;
};

struct Dependency : Waiter {
  SubmitTaskBase* task;
  ObjectSlot* slot;
};
void dependency_resolved(Waiter* w) noexcept;

// How argument I reaches the callable: an ObjectRef<T> becomes `const T&` unless the
// parameter is itself declared as an ObjectRef; other arguments are moved on the last
// attempt and passed as lvalues when the task may run again.
template <class F, std::size_t I, bool Move, class Arg>
decltype(auto) pass_arg(Arg& a) {
  if constexpr (is_object_ref<Arg>::value) {
    using P = std::remove_cvref_t<typename param_at<F, I>::type>;
    if constexpr (is_object_ref<P>::value) {
      return static_cast<const Arg&>(a);
    } else {
      using V = typename Arg::value_type;
      static_assert(!std::is_void_v<V>, "an ObjectRef<void> argument needs a parameter of type ObjectRef<void>");
      return static_cast<const V&>(*SlotValue<V>::get(a.slot()));
    }
  } else if constexpr (Move) {
    return std::move(a);
  } else {
    return static_cast<Arg&>(a);
  }
}

template <bool Move, class F, class Tuple, std::size_t... I>
auto invoke_with(F& f, Tuple& args, std::index_sequence<I...>)
    -> decltype(std::invoke(f, pass_arg<F, I, Move>(std::get<I>(args))...)) {
  return std::invoke(f, pass_arg<F, I, Move>(std::get<I>(args))...);
}

template <class F, class Tuple>
using task_result_t = std::decay_t<decltype(invoke_with<true>(std::declval<F&>(), std::declval<Tuple&>(),
                                                              std::make_index_sequence<std::tuple_size_v<Tuple>>{}))>;

template <class F, class Tuple>
inline constexpr bool can_rerun = requires(F& f, Tuple& t) {
  invoke_with<false>(f, t, std::make_index_sequence<std::tuple_size_v<Tuple>>{});
};

template <class... Args>
inline constexpr std::size_t ref_count = (std::size_t{0} + ... + (is_object_ref<Args>::value ? 1 : 0));

template <class A>
inline constexpr bool may_leave_memory = false;
template <class V>
inline constexpr bool may_leave_memory<ObjectRef<V>> = [] {
  if constexpr (std::is_void_v<V>) {
    return false;
  } else {
    return !SlotValue<V>::kInline;
  }
}();

// Pins the values of a task's ObjectRef arguments while it runs: under a memory limit they
// are brought back if they left, and stay until the run ends (see object_memory.h). Only
// arguments that reach F as values (parameter I + Offset of F, as pass_arg reads them): a
// parameter declared as an ObjectRef gets the ref, which may not even be ready.
template <class F, std::size_t Offset, class Tuple>
class ArgPins;
template <class F, std::size_t Offset, class... Args>
class ArgPins<F, Offset, std::tuple<Args...>> {
  template <std::size_t I>
  static constexpr bool pinned_arg() {
    using A = std::tuple_element_t<I, std::tuple<Args...>>;
    if constexpr (!may_leave_memory<A>) {
      return false;
    } else {
      return !is_object_ref<std::remove_cvref_t<typename param_at<F, I + Offset>::type>>::value;
    }
  }
  template <std::size_t... I>
  static constexpr std::size_t count(std::index_sequence<I...>) {
    return (std::size_t{0} + ... + (pinned_arg<I>() ? 1 : 0));
  }
  static constexpr std::size_t kMax = count(std::index_sequence_for<Args...>{});

 public:
  explicit ArgPins(std::tuple<Args...>& args) {
    if constexpr (kMax > 0) {
      try {
        pin_all(args, std::index_sequence_for<Args...>{});
      } catch (...) {
        unpin_all();
        throw;
      }
    }
  }
  ~ArgPins() { unpin_all(); }
  ArgPins(const ArgPins&) = delete;
  ArgPins& operator=(const ArgPins&) = delete;

 private:
  template <std::size_t... I>
  void pin_all(std::tuple<Args...>& args, std::index_sequence<I...>) {
    (pin<I>(std::get<I>(args)), ...);
  }
  template <std::size_t I, class A>
  void pin(A& a) {
    if constexpr (pinned_arg<I>()) {
      if (ObjectMemory::has_residency(a.slot())) {
        ObjectMemory::pin(a.slot(), false);
        pinned_[n_++] = a.slot();
      }
    }
  }
  void unpin_all() noexcept {
    if constexpr (kMax > 0) {
      for (std::size_t i = 0; i < n_; ++i) ObjectMemory::unpin(pinned_[i]);
      n_ = 0;
    }
  }

  [[no_unique_address]] std::array<ObjectSlot*, kMax> pinned_{};
  std::size_t n_ = 0;
};

template <class F, class... Args>
struct SubmitTask final : SubmitTaskBase {
  using F_type = F;
  using Tuple = std::tuple<Args...>;
  using R = task_result_t<F, Tuple>;
  static constexpr std::size_t kDeps = ref_count<Args...>;
  static constexpr auto kSeq = std::make_index_sequence<sizeof...(Args)>{};

  template <class FF, class... AA>
  explicit SubmitTask(FF&& fn, AA&&... a) : f(std::forward<FF>(fn)), args(std::forward<AA>(a)...) {
    run = &execute;
  }

  // Registers with every ObjectRef argument's object, then schedules once all are resolved.
  void start() noexcept {
    if constexpr (kDeps == 0) {
      // Nothing to wait for: no count to take down (a locked instruction on every submit).
      schedule();
      return;
    }
    pending.store(static_cast<int>(kDeps) + 1, std::memory_order_relaxed);
    std::size_t k = 0;
    std::apply([&](auto&... a) { (watch(a, k), ...); }, args);
    if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) schedule();
  }

  template <class A>
  void watch(A& a, std::size_t& k) noexcept {
    if constexpr (is_object_ref<A>::value) {
      Dependency& d = deps[k++];
      d.task = this;
      d.slot = a.slot();
      d.notify = &dependency_resolved;
      if (!ObjectTable::add_waiter(d.slot, &d)) dependency_resolved(&d);
    }
  }

  static void execute(Task* t) noexcept {
    auto* self = static_cast<SubmitTask*>(t);
    switch (self->prepare()) {
      case Readiness::deferred:
        return;
      case Readiness::failed:
      case Readiness::cancelled:
        self->finish();
        detail::destroy(self);
        return;
      case Readiness::run:
        break;
    }
    if (self->record != nullptr) task_running(self->record);
    std::exception_ptr error;
    Outcome outcome = Outcome::lost;
    {
      TimelineSlice slice;
      if (timeline_active()) slice.open(self->timeline_label());
      RunningTask running(self);
      try {
        ArgPins<F, 0, Tuple> pins(self->args);
        if constexpr (std::is_void_v<R>) {
          self->call();
          outcome = self->end_of_run();
        } else {
          // The value is written only once this task holds the claim: a cancel() that came
          // first owns the slot's storage.
          decltype(auto) value = self->call();
          outcome = self->end_of_run();
          if (outcome == Outcome::publish) {
            Recipe* recipe = self->settings != nullptr ? std::exchange(self->settings->recipe, nullptr) : nullptr;
            SlotValue<R>::emplace_with(self->result, recipe, std::forward<decltype(value)>(value));
          }
        }
      } catch (...) {
        error = std::current_exception();
      }
    }
    // Published after the handler has ended, so this thread is done with the exception
    // before a waiter can see it.
    if (error != nullptr) {
      if (!self->result_claimed && self->retry_after_error(error)) return;
      self->fail(std::move(error));
    } else if (outcome == Outcome::publish) {
      if (self->record != nullptr) task_succeeded(self->record);
      self->publish_value();
    } else if (outcome == Outcome::lost) {
      self->drop_result();
    } else {
      self->fail_with_parent();
    }
    self->finish();
    detail::destroy(self);
  }

  // Its name on the timeline: the name it was given, else its callable's type.
  std::uint32_t timeline_label() const {
    if (settings != nullptr && !settings->name.empty()) return detail::timeline_label(settings->name);
    static const std::uint32_t by_type = timeline_type_label(typeid(F));
    return by_type;
  }

  decltype(auto) call() {
    if constexpr (can_rerun<F, Tuple>) {
      if (attempts_left > 0) return invoke_with<false>(f, args, kSeq);
    }
    return invoke_with<true>(f, args, kSeq);
  }

  [[no_unique_address]] std::array<Dependency, kDeps> deps;
  F f;
  Tuple args;
};

}  // namespace lumen::detail
