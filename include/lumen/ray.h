// Ray's C++ API in one process: code written against <ray/api.h> builds against lumen
// unchanged (pkg-config lumen-ray puts <ray/api.h> on the include path) and runs its tasks and
// actors on lumen's scheduler; linked against Ray, the same code runs on a cluster.
//
//   #include <ray/api.h>      // or <lumen/ray.h>
//
//   int Plus(int a, int b) { return a + b; }
//   RAY_REMOTE(Plus);
//
//   int main() {
//     ray::Init();
//     auto sum = ray::Task(Plus).Remote(1, 2);
//     std::cout << *ray::Get(sum) << "\n";    // 3
//     ray::Shutdown();
//   }
//
// One concept per header:
//   lumen/ray/config.h           Init, Shutdown, RayConfig, GetNamespace
//   lumen/ray/exception.h        RayException and the exceptions derived from it
//   lumen/ray/remote.h           RAY_REMOTE, RAY_FUNC
//   lumen/ray/object_ref.h       ObjectRef, Put, Get, Wait, WaitResult
//   lumen/ray/task_caller.h      Task(f).Remote(...)
//   lumen/ray/actor.h            Actor, ActorHandle, GetActor, ExitActor
//   lumen/ray/placement_group.h  placement groups
// docs/coming-from-ray.md lists every call and what differs from Ray.
#pragma once

#include "lumen/ray/actor.h"
#include "lumen/ray/config.h"
#include "lumen/ray/exception.h"
#include "lumen/ray/object_ref.h"
#include "lumen/ray/placement_group.h"
#include "lumen/ray/remote.h"
#include "lumen/ray/task_caller.h"
