/// @file
/// Starting and stopping the runtime behind Ray's API: ray::Init, ray::Shutdown, RayConfig.
///
/// @code
///   ray::RayConfig config;
///   config.ray_namespace = "shop";
///   ray::Init(config);
///   ...
///   ray::Shutdown();
/// @endcode
///
/// ray::Init starts a lumen::Runtime in this process; it is then the runtime in scope, so
/// lumen's own calls made from threads outside it use it as well. Its worker count is the
/// larger of 10 and the hardware threads: Ray code blocks its thread freely (a sleep, a
/// std::future, a lock), and Ray's local mode runs tasks on 10 threads, so a program may count
/// on that many blocking tasks running at once. Tasks that do not block pay nothing for the
/// extra workers: idle workers sleep. (lumen code marks blocking explicitly with
/// lumen::blocking and needs no extra workers.)
///
/// Each task runs on a fiber stack of 8 MiB, as large as a Linux thread's default, since Ray
/// code runs on its workers' thread stacks and passes large values (a std::array of 100,000
/// ints) by value; a stack takes memory only as it is touched.
///
/// The runtime is one node with Ray's default resources: "CPU" equal to the hardware threads,
/// "object_store_memory" 30% of the memory (of the machine, or of the cgroup's limit; at most
/// 200 GB) and "memory" the rest, in bytes; RayConfig::head_args change them. Tasks claim them
/// only when they say so (SetResources), see task_caller.h; actors hold them (actor.h).
///
/// A RayConfig (or the RAY_ADDRESS environment variable, or --ray_address) that names a
/// cluster makes Init throw RayException: a cluster needs Ray itself, linked instead of lumen.
///
/// As in Ray, every other call of the API (Task(f).Remote, Put, Get, Wait, actors, placement
/// groups, GetNamespace) needs a runtime: before Init or after Shutdown it throws RayException
/// instead of running on a runtime Ray did not start. While Shutdown waits, the tasks it waits
/// for may still call the API; other threads get RayException. Refs obtained before a Shutdown
/// keep their values for a later Init; actors end with Shutdown, so calls to them then throw
/// RayActorException.
#pragma once

#include <string>
#include <vector>

#include <boost/optional.hpp>

#include "lumen/ray/runtime_env.h"

namespace ray {

/// Whether an actor outlives the job that created it (DETACHED) or ends with it; one process ends
/// every actor at Shutdown.
enum class ActorLifetime {
  NON_DETACHED,
  DETACHED,
};

/// Init's settings: Ray's fields, of which one process uses the namespace, the resources in
/// head_args, the runtime_env and local_mode.
class RayConfig {
 public:
  /// The cluster to connect to. Empty (or "local") runs in this process; anything else is a
  /// cluster, which needs Ray.
  std::string address = "";
  /// Ray's debugging mode. Every program runs in this process here, whichever the value; it
  /// decides one rule where Ray's modes differ: an ObjectRef argument for a parameter declared
  /// ObjectRef<T> is passed as the ref in local mode and refused (std::invalid_argument) on a
  /// cluster, so by default.
  bool local_mode = false;
  /// Where Ray's workers look for the program's code; one process needs no search.
  std::vector<std::string> code_search_path;
  /// Arguments for `ray start` when Init starts a head node. None is started here, but the
  /// resource flags (--num-cpus, --num-gpus, --memory, --object-store-memory, --resources
  /// '{"name": n}') set the resources of this process's node; the others are ignored.
  std::vector<std::string> head_args = {};
  /// The lifetime of actors created without SetLifetime. In one process every actor ends
  /// with Shutdown, whichever it is.
  ActorLifetime default_actor_lifetime = ActorLifetime::NON_DETACHED;
  /// The redis user name and password of a cluster; unused here.
  /// @{
  boost::optional<std::string> redis_username_;
  boost::optional<std::string> redis_password_;
  /// @}
  /// Set by Ray's worker processes; unused here.
  bool is_worker_ = false;
  /// Named actors are looked up in this namespace. Empty: an anonymous namespace of this job.
  std::string ray_namespace = "";
  /// The job's environment: Init sets its "env_vars" in the process's environment (see
  /// runtime_env.h).
  boost::optional<RuntimeEnv> runtime_env;
};

/// Starts the runtime. No-op when it is running already. Throws RayException for a cluster
/// address, or while Shutdown is stopping the runtime; RayRuntimeEnvException for a
/// runtime_env whose "env_vars" are not strings.
/// @{
void Init();
void Init(RayConfig& config);
/// @}
/// As Init(config); --ray_address=... and --ray_namespace=... in argv take precedence over
/// the config. Other arguments are left alone.
void Init(RayConfig& config, int argc, char** argv);
/// True between Init and the end of Shutdown.
bool IsInitialized();
/// Waits for every task and actor call already submitted, then stops the runtime. Named
/// actors end and placement groups are removed; infeasible tasks (task_caller.h) fail with
/// RayException. Init may be called again afterwards. A no-op when Ray is not initialized;
/// throws RayException inside a task or actor method, which the shutdown would wait for.
///
/// The wait is bounded (a Ray cluster's driver does not wait at all): after
/// LUMEN_RAY_SHUTDOWN_TIMEOUT seconds (environment variable; 30 unless set; 0 waits for
/// nothing) the work still queued or running is abandoned, with a warning in the log that
/// counts it. It finishes in the background, on the old runtime's threads, and no Get sees
/// its results; Init may start a new runtime meanwhile.
void Shutdown();
/// The namespace of this job: RayConfig::ray_namespace, or the anonymous one made for it.
std::string GetNamespace();

namespace internal {
// Throws RayException unless Init has started the runtime and Shutdown has not finished
// stopping it.
void check_initialized();
}  // namespace internal

}  // namespace ray
