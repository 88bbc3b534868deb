/// @file
/// Tasks through Ray's API: ray::Task(f).Remote(args...).
///
/// @code
///   int Plus(int a, int b) { return a + b; }
///   RAY_REMOTE(Plus);
///   ray::ObjectRef<int> a = ray::Task(Plus).Remote(1, 2);
///   ray::ObjectRef<int> b = ray::Task(Plus).SetResources({{"CPU", 2}}).Remote(a, 10);  // 13
/// @endcode
///
/// Arguments are copied, converted to the parameter's type, and kept until the task runs. An
/// ObjectRef<T> argument makes the task wait for that object and passes its value. As on a Ray
/// cluster, an ObjectRef argument for a parameter declared ObjectRef<T> throws
/// std::invalid_argument at Remote (only Ray's local mode accepts it): pass refs inside a
/// container or a struct instead, or take the value. A task whose argument failed fails with the
/// same error without running. `T&` and `T&&` parameters get the task's own copy, as on a Ray
/// worker.
///
/// Resources: a task runs once it holds what SetResources asks for (checked as Ray checks it:
/// positive values, whole numbers above 1), and holds it while it runs, so SetResources({{"CPU",
/// 2}}) limits how many such tasks run at once to the runtime's CPUs / 2. Tasks that ask for
/// nothing claim nothing (Ray charges every task 1 CPU; here a task that asks for nothing needs
/// no bookkeeping, and the workers bound how many run). The node has "CPU" (its hardware
/// threads), "memory" and "object_store_memory" (bytes, sized from the machine as Ray sizes
/// them; see config.h). A task that asks for more than the node (or its placement group
/// bundle) has, or for a resource it lacks, is infeasible: as in Ray it stays pending, with a
/// warning in the log, so a Get with a timeout times out; ray::Shutdown fails it with
/// RayException.
///
/// Cost: the registered name is looked up once per thread and function type; without options
/// a task is a plain lumen task (one allocation, one object slot), with options one more
/// allocation for them.
#pragma once

#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lumen/ray/arguments.h"
#include "lumen/ray/object_ref.h"
#include "lumen/ray/placement_group.h"
#include "lumen/ray/remote.h"
#include "lumen/ray/runtime_env.h"
#include "lumen/task.h"

namespace ray {

namespace internal {

// lumen's resource claims for Ray's: validated as Ray validates them, in lumen's units, and,
// for a task placed in a group, drawn from the group's bundle. Throws RayException for values
// Ray refuses. A claim that the node (or the bundle) could never grant leaves `claims` empty
// and says why in `infeasible`, in Ray's units.
struct ResourceClaims {
  std::vector<std::pair<std::string, double>> claims;
  std::string infeasible;
};
ResourceClaims lumen_resources(const std::unordered_map<std::string, double>& resources, const PlacementGroup& group,
                               int bundle_index);
// The result of an infeasible task `name`: pending until ray::Shutdown fails it. Logs a warning.
lumen::detail::ObjectSlot* infeasible_result(const std::string& name, const std::string& why);
// Throws RayException when a value is not what Ray accepts.
void check_resources(const std::unordered_map<std::string, double>& resources);
// The same check under Ray's name.
inline void CheckTaskOptions(const std::unordered_map<std::string, double>& resources) { check_resources(resources); }

// The resources and placement group that tasks and actors may ask for, with Ray's setters.
template <class Derived>
class ResourceOptions {
 public:
  Derived& SetResources(std::unordered_map<std::string, double> resources) {
    resources_ = std::move(resources);
    has_options_ = true;
    return static_cast<Derived&>(*this);
  }
  Derived& SetResource(std::string name, double value) {
    resources_.emplace(std::move(name), value);
    has_options_ = true;
    return static_cast<Derived&>(*this);
  }
  Derived& SetPlacementGroup(PlacementGroup group, int bundle_index) {
    group_ = std::move(group);
    bundle_index_ = bundle_index;
    has_options_ = true;
    return static_cast<Derived&>(*this);
  }
  // Checked (RayRuntimeEnvException for bad "env_vars"), not applied: see runtime_env.h.
  Derived& SetRuntimeEnv(const RuntimeEnv& runtime_env) {
    check_runtime_env(runtime_env);
    return static_cast<Derived&>(*this);
  }

 protected:
  std::unordered_map<std::string, double> resources_;
  PlacementGroup group_;
  int bundle_index_ = -1;
  bool has_options_ = false;  // anything set: the task needs lumen's options
};

template <class F>
class TaskCaller : public ResourceOptions<TaskCaller<F>> {
 public:
  using Result = result_of<F>;

  TaskCaller(F f, const std::string* name) : f_(f), name_(name) {}

  TaskCaller& SetName(std::string name) {
    task_name_ = std::move(name);
    this->has_options_ = true;
    return *this;
  }

  // Throws RayException when Ray is not initialized or an option is not what Ray accepts.
  template <class... Args>
  ObjectRef<Result> Remote(Args&&... args) {
    check_arguments<F, Args...>();
    check_initialized();
    return submit(static_cast<typename signature<F>::params*>(nullptr), std::forward<Args>(args)...);
  }

 private:
  template <class... P, class... Args>
  ObjectRef<Result> submit(std::tuple<P...>*, Args&&... args) {
    TaskInvoker<F> invoker{f_, name_};
    if (!this->has_options_) {
      return ObjectRef<Result>(
          with_ray_exceptions([&] { return lumen::submit(invoker, stored_argument<P, true>(std::forward<Args>(args))...); }));
    }
    ResourceClaims resources = lumen_resources(this->resources_, this->group_, this->bundle_index_);
    if (!resources.infeasible.empty()) {
      (stored_argument<P, true>(std::forward<Args>(args)), ...);  // the arguments are checked all the same
      return ObjectRef<Result>(lumen::ObjectRef<Result>::adopt(
          infeasible_result(task_name_.empty() ? *name_ : task_name_, resources.infeasible)));
    }
    return ObjectRef<Result>(with_ray_exceptions([&] {
      return lumen::task(invoker)
          .name(task_name_)
          .resources(std::move(resources.claims))
          .submit(stored_argument<P, true>(std::forward<Args>(args))...);
    }));
  }

  F f_;
  const std::string* name_;
  std::string task_name_;
};

}  // namespace internal

/// A caller for the registered function f; Remote(args...) submits it. Throws RayException
/// when RAY_REMOTE did not register f.
template <class F>
internal::TaskCaller<F> Task(F func) {
  static_assert(!std::is_member_function_pointer_v<F>,
                "Incompatible type: member function cannot be called with ray::Task.");
  return internal::TaskCaller<F>(func, &internal::registered_name(func));
}

}  // namespace ray
