/// @file
/// Ray's C++ API in one process: code written against <ray/api.h> builds against lumen
/// unchanged (pkg-config lumen-ray puts <ray/api.h> on the include path) and runs its tasks and
/// actors on lumen's scheduler; linked against Ray, the same code runs on a cluster.
///
/// @code
///   #include <ray/api.h>      // or <lumen/ray.h>
/// @endcode
///
/// @code
///   int Plus(int a, int b) { return a + b; }
///   RAY_REMOTE(Plus);
/// @endcode
///
/// @code
///   int main() {
///     ray::Init();
///     auto sum = ray::Task(Plus).Remote(1, 2);
///     std::cout << *ray::Get(sum) << "\n";    // 3
///     ray::Shutdown();
///   }
/// @endcode
///
/// One concept per header:
/// @code
///   lumen/ray/config.h           Init, Shutdown, RayConfig, GetNamespace
///   lumen/ray/exception.h        RayException and the exceptions derived from it
///   lumen/ray/remote.h           RAY_REMOTE, RAY_FUNC, FunctionManager
///   lumen/ray/object_ref.h       ObjectRef, Put, Get, Wait, WaitResult, ids
///   lumen/ray/task_caller.h      Task(f).Remote(...)
///   lumen/ray/actor.h            Actor, ActorHandle, GetActor, ExitActor
///   lumen/ray/placement_group.h  placement groups
///   lumen/ray/runtime_env.h      RuntimeEnv
///   lumen/ray/logging.h          RAYLOG
///   lumen/ray/serializer.h       Serializer (msgpack, for programs that want Ray's format)
/// @endcode
/// docs/coming-from-ray.md lists every call and what differs from Ray.
///
/// Ray's <ray/api.h> brings more than its own names, and Ray programs rely on it (Ray's own
/// example prints with std::cout and includes nothing else): msgpack (MSGPACK_DEFINE, for the
/// types that cross task boundaries), nlohmann::json (as ::json), Boost's callable_traits and
/// optional, and the standard headers below. This header brings the same set.
#pragma once

#include <any>
#include <chrono>
#include <functional>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/callable_traits.hpp>
#include <boost/optional.hpp>
#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include "lumen/ray/actor.h"
#include "lumen/ray/config.h"
#include "lumen/ray/exception.h"
#include "lumen/ray/logging.h"
#include "lumen/ray/object_ref.h"
#include "lumen/ray/placement_group.h"
#include "lumen/ray/remote.h"
#include "lumen/ray/runtime_env.h"
#include "lumen/ray/serializer.h"
#include "lumen/ray/task_caller.h"

/// @namespace ray
/// Ray's C++ API (lumen-ray, `<ray/api.h>`), running in this process on lumen's scheduler.
/// ray::internal, Ray's implementation namespace, is left out of this reference; its
/// exceptions (RayException and those derived from it) are described in lumen/ray/exception.h.
