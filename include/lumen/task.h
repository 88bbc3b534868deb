/// @file
/// Tasks: submit a callable, get an ObjectRef to its result.
///
/// @code
///   lumen::ObjectRef<int> a = lumen::submit(add, 1, 2);
///   lumen::ObjectRef<int> b = lumen::submit(add, a, 10);   // waits for a; add receives the int
///   auto r = lumen::task(load).name("load").retries(2).resources({{"gpu", 1}}).submit(path);
/// @endcode
///
/// Arguments are stored by value (decayed) in the task's frame. An ObjectRef<T> argument is a
/// dependency: the task runs once that object is ready and receives `const T&` to the value in
/// the table (a parameter declared as ObjectRef<T> receives the ref itself). If a dependency
/// failed, the task does not run and its result fails with the same exception.
///
/// Cost: one allocation for the frame (with waiter nodes for its dependencies) and one slot
/// in the object table; values over 16 bytes take one more allocation when the task returns.
/// Ordering: none between independent tasks. Tasks may submit tasks from inside.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <ratio>
#include <source_location>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "lumen/detail/submit_task.h"
#include "lumen/object_ref.h"

namespace lumen {

/// What a task may ask for beyond its callable.
struct TaskOptions {
  std::string name;      ///< reported with its errors
  int retries = 0;       ///< runs again after an exception, up to this many times
  std::vector<std::pair<std::string, double>> resources;  ///< units it holds while it runs
  int priority = 0;      ///< queued tasks with higher priority run first (0: the plain queues)
  /// The wait before each retry: retry_delay before the first, then retry_backoff times the
  /// previous wait, at most max_retry_delay; each wait is shortened by a random part of up to
  /// retry_jitter of itself, so that tasks that failed together do not retry together. The
  /// task holds no worker and no resources while it waits. retry_delay 0: retry at once.
  std::chrono::nanoseconds retry_delay{0};
  double retry_backoff = 2.0;  ///< at least 1
  std::chrono::nanoseconds max_retry_delay = std::chrono::seconds(60);  ///< the longest wait between retries
  double retry_jitter = 0.5;  ///< from 0 to 1
  /// The exceptions that are retried: null retries every one; otherwise an exception it
  /// returns false for fails the task at once (see TaskBuilder::retry_on).
  bool (*retry_if)(const std::exception_ptr&) = nullptr;
  /// From submit: once it passes, the result fails with timeout_error, the task's stop request
  /// is set and the tasks it submitted stop too, as with cancel(ref, {.recursive = true}) (see
  /// lumen/cancel.h). A task that has not started by then never runs. max: no timeout.
  std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max();
  /// The task computes the same value from the same arguments (no side effects that matter).
  /// Under Config::object_memory_limit its result may then be evicted and is computed again
  /// from a copy of the callable and arguments when next read, as Ray's lineage
  /// reconstruction does; the copy (and the objects its ref arguments name) lives as long as
  /// the result. A rebuild claims no resources (it runs for a reader, which may hold them) and
  /// has no timeout. Needs a copyable callable and arguments. Without a limit it changes nothing.
  bool deterministic = false;
  /// Where the task was made, for the state API (lumen/state.h): task(f) fills it in with the
  /// place it was called from.
  std::source_location where{};
};

namespace detail {

void check_retry_options(const TaskOptions& o);

// d in nanoseconds, clamped to what nanoseconds can hold; NaN is a usage_error.
template <class Rep, class Period>
std::chrono::nanoseconds saturated_nanoseconds(std::chrono::duration<Rep, Period> d) {
  using Seconds = std::chrono::duration<double>;
  check_timeout(d);
  const double s = Seconds(d).count();
  if (s >= Seconds(std::chrono::nanoseconds::max()).count()) return std::chrono::nanoseconds::max();
  if (s <= Seconds(std::chrono::nanoseconds::min()).count()) return std::chrono::nanoseconds::min();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d);
}

// True when e is one of E... (or derives from one).
template <class First, class... Rest>
bool exception_is_one_of(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const First&) {
    return true;
  } catch (...) {
  }
  if constexpr (sizeof...(Rest) > 0) {
    return exception_is_one_of<Rest...>(e);
  } else {
    return false;
  }
}

template <class F, class... Args>
auto submit_with(Scheduler& s, const TaskOptions* options, F&& f, Args&&... args)
    -> ObjectRef<typename SubmitTask<std::decay_t<F>, std::decay_t<Args>...>::R>;

// A deterministic task's recipe: copies of its callable, arguments and options, from which it
// is submitted again (on the runtime in scope) to rebuild an evicted result.
template <class F, class... Args>
struct RecipeFor final : Recipe {
  F f;
  std::tuple<Args...> args;
  TaskOptions options;

  template <class FF, class... AA>
  RecipeFor(const TaskOptions& o, FF&& fn, AA&&... a)
      : Recipe{&rebuild_task, &destroy_recipe}, f(std::forward<FF>(fn)), args(std::forward<AA>(a)...), options(o) {
    options.deterministic = false;  // the rebuild's own result is a temporary
    options.timeout = std::chrono::nanoseconds::max();
    // A rebuild runs for a reader, which may hold the very units the task would claim.
    options.resources.clear();
  }
  static ObjectSlot* rebuild_task(Recipe* r) {
    auto* self = static_cast<RecipeFor*>(r);
    // Not a child of the reader that starts it: other readers share the rebuild, so one
    // reader's cancel or timeout must not stop it.
    struct NoParent {
      TaskContext& context = task_context();
      const void* saved = std::exchange(context.task, nullptr);
      ~NoParent() { context.task = saved; }
    } no_parent;
    RuntimeEntry entry;
    auto ref = std::apply(
        [&](const Args&... a) { return submit_with(entry.scheduler(), &self->options, F(self->f), Args(a)...); },
        self->args);
    ObjectSlot* slot = ref.slot();
    ref.disown();
    return slot;
  }
  static void destroy_recipe(Recipe* r) noexcept { detail::destroy(static_cast<RecipeFor*>(r)); }
};

template <class F, class... Args>
auto submit_with(Scheduler& s, const TaskOptions* options, F&& f, Args&&... args)
    -> ObjectRef<typename SubmitTask<std::decay_t<F>, std::decay_t<Args>...>::R> {
  using Frame = SubmitTask<std::decay_t<F>, std::decay_t<Args>...>;
  using R = typename Frame::R;
  [[maybe_unused]] auto check_ref = [](const auto& a) {
    if constexpr (is_object_ref_v<decltype(a)>) {
      if (!a.valid()) throw usage_error("lumen: submit with an empty ObjectRef argument");
    }
  };
  (check_ref(args), ...);

  TaskSettings* settings = nullptr;
  int retries = 0;
  if (options != nullptr) {
    if (options->retries < 0) throw usage_error("lumen: retries must not be negative");
    if constexpr (!can_rerun<typename Frame::F_type, typename Frame::Tuple>) {
      if (options->retries > 0)
        throw usage_error("lumen: a task with retries needs arguments it can pass again (copyable)");
    }
    retries = options->retries;
    check_retry_options(*options);
    if (options->timeout.count() <= 0) throw usage_error("lumen: a task's timeout must be positive");
    constexpr bool kCopyable = std::is_copy_constructible_v<std::decay_t<F>> &&
                               (std::is_copy_constructible_v<std::decay_t<Args>> && ...);
    if constexpr (!kCopyable) {
      if (options->deterministic)
        throw usage_error("lumen: a deterministic task needs a copyable callable and arguments (to run it again)");
    }
    const bool backoff = retries > 0 && options->retry_delay.count() > 0;
    const bool filtered = retries > 0 && options->retry_if != nullptr;
    bool lineage = false;
    if constexpr (kCopyable && !std::is_void_v<R>) {
      lineage = options->deterministic && !SlotValue<R>::kInline && ObjectMemory::limited();
    }
    if (!options->name.empty() || options->priority != 0 || !options->resources.empty() || backoff || filtered ||
        lineage) {
      auto owned = std::make_unique<TaskSettings>();
      owned->name = options->name;
      owned->priority = options->priority;
      if (backoff) {
        owned->next_retry_delay = options->retry_delay;
        owned->retry_backoff = options->retry_backoff;
        owned->max_retry_delay = options->max_retry_delay;
        owned->retry_jitter = options->retry_jitter;
      }
      if (filtered) owned->retry_if = options->retry_if;
      if constexpr (kCopyable && !std::is_void_v<R>) {
        if (lineage) owned->recipe = create<RecipeFor<std::decay_t<F>, std::decay_t<Args>...>>(*options, f, args...);
      }
      for (const auto& [name, count] : options->resources) owned->demands.push_back(resource_demand(s, name, count));
      settings = owned.release();
    }
  }
  try {
    begin_task(s);
  } catch (...) {
    delete settings;
    throw;
  }
  ObjectSlot* slot = nullptr;
  Frame* frame = nullptr;
  try {
    slot = ObjectTable::instance().allocate(1, true);  // the caller's ref, and the task's hold
    frame = create<Frame>(std::forward<F>(f), std::forward<Args>(args)...);
    frame->sched = &s;
    frame->result = slot;
    frame->group = slot;  // lets get(ref) on this worker run the task inline
    frame->settings = settings;
    frame->attempts_left = retries;
    ObjectTable::set_producer(slot, frame);  // before the timer: a timeout may cancel at once
    if (options != nullptr && options->timeout != std::chrono::nanoseconds::max())
      add_timeout(s, slot, deadline_after(options->timeout));
  } catch (...) {
    if (frame != nullptr) detail::destroy(frame);
    if (slot != nullptr) ObjectTable::instance().discard(slot);
    delete settings;
    end_task(s);
    throw;
  }
  if (const void* submitter = task_context().task) {
    const ObjectSlot* parent = static_cast<const SubmitTaskBase*>(submitter)->result;
    frame->parent = parent;
    frame->parent_generation = static_cast<std::uint32_t>(parent->refgen.load(std::memory_order_relaxed) >> 32);
  }
  auto ref = ObjectRef<R>::adopt(slot);
  if (state_tracking()) {
    const std::string_view name = settings != nullptr ? std::string_view(settings->name) : std::string_view();
    frame->record = track_task(s, slot->id(), name, name.empty() ? frame->timeline_label() : 0,
                               options != nullptr ? &options->where : nullptr);
  }
  frame->start();
  return ref;
}

}  // namespace detail

/// Runs f(args...) on the runtime in scope; the ref resolves to its result (or its exception).
template <class F, class... Args>
auto submit(F&& f, Args&&... args) {
  detail::RuntimeEntry entry;
  return detail::submit_with(entry.scheduler(), nullptr, std::forward<F>(f), std::forward<Args>(args)...);
}

/// A task with options, built fluently: task(f).name("x").retries(2).submit(args...).
template <class F>
class TaskBuilder {
 public:
  /// The builder of a task running f; `where` (the call site) is what the state API shows.
  explicit TaskBuilder(F f, std::source_location where = std::source_location::current()) : f_(std::move(f)) {
    options_.where = where;
  }

  /// The name reported with the task's errors and in the state API (TaskOptions::name).
  /// @{
  TaskBuilder& name(std::string n) & {
    options_.name = std::move(n);
    return *this;
  }
  TaskBuilder&& name(std::string n) && { return std::move(name(std::move(n))); }
  /// @}
  /// Runs the task again after an exception, up to n times (TaskOptions::retries).
  /// @{
  TaskBuilder& retries(int n) & {
    options_.retries = n;
    return *this;
  }
  TaskBuilder&& retries(int n) && { return std::move(retries(n)); }
  /// @}
  /// Fails the task with timeout_error once d has passed since submit (see TaskOptions::timeout).
  /// Any duration type; one too long for nanoseconds saturates to no timeout.
  /// @{
  template <class Rep, class Period>
  TaskBuilder& timeout(std::chrono::duration<Rep, Period> d) & {
    options_.timeout = detail::saturated_nanoseconds(d);
    return *this;
  }
  template <class Rep, class Period>
  TaskBuilder&& timeout(std::chrono::duration<Rep, Period> d) && {
    return std::move(timeout(d));
  }
  /// @}
  /// Waits between retries, growing exponentially with jitter (see TaskOptions::retry_delay).
  /// Durations of any type; ones too long for nanoseconds (hours::max()) saturate.
  /// @{
  template <class R1, class P1, class R2 = std::int64_t, class P2 = std::ratio<1>>
  TaskBuilder& retry_backoff(std::chrono::duration<R1, P1> first,
                             std::chrono::duration<R2, P2> max = std::chrono::duration<R2, P2>(60),
                             double multiplier = 2.0, double jitter = 0.5) & {
    options_.retry_delay = detail::saturated_nanoseconds(first);
    options_.max_retry_delay = detail::saturated_nanoseconds(max);
    options_.retry_backoff = multiplier;
    options_.retry_jitter = jitter;
    return *this;
  }
  template <class R1, class P1, class R2 = std::int64_t, class P2 = std::ratio<1>>
  TaskBuilder&& retry_backoff(std::chrono::duration<R1, P1> first,
                              std::chrono::duration<R2, P2> max = std::chrono::duration<R2, P2>(60),
                              double multiplier = 2.0, double jitter = 0.5) && {
    return std::move(retry_backoff(first, max, multiplier, jitter));
  }
  /// @}
  /// Retries only exceptions of these types (or types derived from them), as Ray's
  /// retry_exceptions list: any other exception fails the task at its first throw.
  /// @{
  template <class... E>
    requires(sizeof...(E) > 0)
  TaskBuilder& retry_on() & {
    options_.retry_if = &detail::exception_is_one_of<E...>;
    return *this;
  }
  template <class... E>
    requires(sizeof...(E) > 0)
  TaskBuilder&& retry_on() && {
    return std::move(retry_on<E...>());
  }
  /// @}
  /// Units of named resources the task holds while it runs (TaskOptions::resources).
  /// @{
  TaskBuilder& resources(std::vector<std::pair<std::string, double>> r) & {
    options_.resources = std::move(r);
    return *this;
  }
  TaskBuilder&& resources(std::vector<std::pair<std::string, double>> r) && {
    return std::move(resources(std::move(r)));
  }
  /// @}
  /// Queued tasks with higher priority run first (TaskOptions::priority).
  /// @{
  TaskBuilder& priority(int p) & {
    options_.priority = p;
    return *this;
  }
  TaskBuilder&& priority(int p) && { return std::move(priority(p)); }
  /// @}
  /// Marks the task as computing the same value from the same arguments: under a memory limit
  /// its result may be evicted and computed again (see TaskOptions::deterministic).
  /// @{
  TaskBuilder& deterministic(bool d = true) & {
    options_.deterministic = d;
    return *this;
  }
  TaskBuilder&& deterministic(bool d = true) && { return std::move(deterministic(d)); }
  /// @}

  /// The options set so far.
  const TaskOptions& options() const noexcept { return options_; }

  /// May be called several times; each call submits one task with a copy of the callable.
  template <class... Args>
  auto submit(Args&&... args) const {
    detail::RuntimeEntry entry;
    return detail::submit_with(entry.scheduler(), &options_, f_, std::forward<Args>(args)...);
  }

 private:
  F f_;
  TaskOptions options_;
};

/// The place it is called from is the task's place in the state API (lumen/state.h).
template <class F>
TaskBuilder<std::decay_t<F>> task(F&& f, std::source_location where = std::source_location::current()) {
  return TaskBuilder<std::decay_t<F>>(std::forward<F>(f), where);
}

/// Runs f where blocking its thread is harmless. Call it inside a task around anything that
/// blocks the OS thread where lumen cannot see it (sleep, file or socket I/O, a std::future):
/// f runs on one of the runtime's threads for blocking calls (Config::max_blocking_threads)
/// while the task's fiber is parked and its worker runs other tasks. Outside a worker, f just
/// runs. Returns f's result by value; rethrows its exception.
template <class F>
auto blocking(F&& f) -> std::decay_t<std::invoke_result_t<F&>> {
  using R = std::decay_t<std::invoke_result_t<F&>>;
  detail::Scheduler* s = detail::worker_scheduler();
  if (s == nullptr) return std::invoke(f);

  struct BlockingCall : detail::Task {
    std::remove_reference_t<F>* fn;
    detail::ObjectSlot* slot;
    static void execute(detail::Task* t) noexcept {
      auto* self = static_cast<BlockingCall*>(t);
      detail::ObjectSlot* slot = self->slot;
      std::exception_ptr error;
      try {
        if constexpr (std::is_void_v<R>) {
          std::invoke(*self->fn);
        } else {
          detail::SlotValue<R>::emplace(slot, std::invoke(*self->fn));
        }
      } catch (...) {
        error = std::current_exception();
      }
      if (error == nullptr) {
        detail::ObjectTable::instance().resolve(slot, detail::ObjectState::ready);
      } else {
        detail::Failure* f = detail::make_failure(std::move(error), "blocking");
        detail::ObjectTable::instance().fail(slot, f);
      }
    }
  };
  // The caller's ref keeps the slot alive; the call lives on the parked fiber's stack.
  auto ref = ObjectRef<R>::adopt(detail::ObjectTable::instance().allocate(1));
  BlockingCall call;
  call.run = &BlockingCall::execute;
  call.fn = &f;
  call.slot = ref.slot();
  detail::spawn_blocking(*s, &call);
  try {
    detail::wait_resolved(ref.slot());
  } catch (...) {
    // No fiber to park on; `call` lives on this stack, so wait here for it to finish.
    detail::help_until([](const void* slot) noexcept { return static_cast<const detail::ObjectSlot*>(slot)->resolved(); },
                       ref.slot());
  }
  if constexpr (std::is_void_v<R>) {
    get(ref);
  } else {
    return get(std::move(ref));
  }
}

}  // namespace lumen
