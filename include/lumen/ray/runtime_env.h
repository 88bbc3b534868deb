/// @file
/// ray::RuntimeEnv: the environment Ray sets up for a job, an actor or a task.
///
/// @code
///   ray::RuntimeEnv env;
///   env.Set("env_vars", std::map<std::string, std::string>{{"MODE", "fast"}});
///   env.Set("config", nlohmann::json{{"setup_timeout_seconds", 60}});
///   auto vars = env.Get<std::map<std::string, std::string>>("env_vars");
///   ray::RayConfig config;
///   config.runtime_env = env;                               // the job's
///   ray::Task(Work).SetRuntimeEnv(env).Remote();           // one task's
/// @endcode
///
/// Fields are JSON values (nlohmann::json, as in Ray), set and read typed (Set<T>, Get<T>) or
/// as JSON text (SetJsonStr, GetJsonStr); a field that cannot be converted throws
/// RayRuntimeEnvException naming it. Not thread-safe: one thread builds an environment, then
/// any number may read it.
///
/// What applies in one process: the job's "env_vars" (RayConfig::runtime_env) are set in the
/// process's environment by ray::Init, before any task runs. A task's or an actor's
/// environment is checked ("env_vars" must map strings to strings) but not applied: the environment of a process is shared by every task running in it at once, and
/// setenv while other threads read it is undefined behaviour in C. Fields that install
/// software or pick a working folder ("pip", "conda", "working_dir", "py_modules",
/// "container") mean nothing to a C++ program in one process and are recorded as they are.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "lumen/ray/exception.h"

/// Ray's <ray/api.h> makes nlohmann::json available as ::json; programs rely on it.
using json = nlohmann::json;

namespace ray {

/// The environment of a job, an actor or a task: named JSON fields, as Ray's. See the top of this
/// file for what applies in one process.
class RuntimeEnv {
 public:
  /// Sets field `name` to `value`, any type nlohmann::json converts.
  template <class T>
  void Set(const std::string& name, const T& value) {
    try {
      fields_[name] = nlohmann::json(value);
    } catch (const std::exception& e) {
      throw internal::RayRuntimeEnvException("Failed to set the field " + name + ": " + e.what());
    }
  }
  /// The value of field `name` as a T. Throws RayRuntimeEnvException when there is no such
  /// field or it does not convert to T.
  template <class T>
  T Get(const std::string& name) const {
    if (!Contains(name)) throw internal::RayRuntimeEnvException("The field " + name + " not found.");
    try {
      return fields_.at(name).get<T>();
    } catch (const std::exception& e) {
      throw internal::RayRuntimeEnvException("Failed to get the field " + name + ": " + e.what());
    }
  }
  /// Field `name` from JSON text; throws RayRuntimeEnvException when it does not parse.
  void SetJsonStr(const std::string& name, const std::string& json_str);
  /// Field `name` as JSON text; throws RayRuntimeEnvException when there is no such field.
  std::string GetJsonStr(const std::string& name) const;
  /// Whether field `name` is set.
  bool Contains(const std::string& name) const { return fields_.contains(name); }
  /// True when the field was there.
  bool Remove(const std::string& name) { return fields_.erase(name) > 0; }
  /// True when no field is set.
  bool Empty() const { return fields_.empty(); }
  /// All fields as one JSON object, and back.
  std::string Serialize() const { return fields_.dump(); }
  /// The fields wrapped as Ray's RuntimeEnvInfo JSON: {"serialized_runtime_env": Serialize()}.
  std::string SerializeToRuntimeEnvInfo() const;
  /// The environment Serialize() wrote; throws RayRuntimeEnvException for text that is not a JSON
  /// object.
  static RuntimeEnv Deserialize(const std::string& serialized_runtime_env);

 private:
  nlohmann::json fields_ = nlohmann::json::object();
};

namespace internal {
// Throws RayRuntimeEnvException unless the "env_vars" field, if any, maps strings to strings.
void check_runtime_env(const RuntimeEnv& env);
// Sets the "env_vars" of `env` in the process's environment.
void apply_env_vars(const RuntimeEnv& env);
}  // namespace internal

}  // namespace ray
