/// @file
/// parallel_invoke: run a few callables in parallel and return when all have finished.
///
/// @code
///   lumen::parallel_invoke([&] { left = build(a); }, [&] { right = build(b); });
/// @endcode
///
/// The last callable runs on the calling worker; the others are queued for idle workers (and
/// run by the caller itself if none takes them). Nests like parallel_for. The first exception
/// reaches the caller with its type; callables that had not started are skipped.
#pragma once

#include <concepts>
#include <cstddef>
#include <utility>

#include "lumen/detail/on_worker.h"
#include "lumen/task_group.h"

namespace lumen {

/// Runs every callable, in parallel where workers are idle, and returns when all have finished; see
/// the top of this file.
template <std::invocable... F>
void parallel_invoke(F&&... fs) {
  static_assert(sizeof...(F) > 0, "parallel_invoke needs at least one callable");
  detail::on_worker([&] {
    task_group g;
    auto start = [&](auto& f, bool last) {
      if (!last) return g.run([&f] { f(); });
      try {
        f();
      } catch (...) {
        g.cancel();
        throw;  // g's destructor waits for the others
      }
    };
    std::size_t i = 0;
    (start(fs, ++i == sizeof...(F)), ...);
    g.wait();
  });
}

}  // namespace lumen
