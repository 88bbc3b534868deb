// Parallel algorithms run on workers: their splitting asks the worker's deque whether a
// thief could use more work, and their waits park fibers instead of threads.
#pragma once

#include <type_traits>
#include <utility>

#include "lumen/detail/scheduler_api.h"
#include "lumen/task.h"

namespace lumen::detail {

// Runs f() on a worker of the runtime in scope: right here on a worker thread (whose runtime is
// the one in scope for it); elsewhere (the main thread, a lumen::blocking call) as a task whose
// result the caller waits for. Returns f's result; rethrows f's exception with its type. Inside
// f, *worker_scheduler() is the runtime to use.
template <class F>
auto on_worker(F&& f) -> std::invoke_result_t<F&> {
  using R = std::invoke_result_t<F&>;
  if (worker_scheduler() != nullptr) return f();
  auto ref = submit([&f]() -> R { return f(); });
  if constexpr (std::is_void_v<R>) {
    get(ref);
  } else {
    return get(std::move(ref));
  }
}

}  // namespace lumen::detail
