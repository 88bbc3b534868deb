/// @file
/// graph: a static graph of tasks, built once and run many times (as a Taskflow taskflow).
///
/// @code
///   lumen::graph g("build");
///   auto fetch = g.emplace([] { fetch_sources(); }).name("fetch");
///   auto lib   = g.emplace([] { compile_lib(); }).name("lib");
///   auto app   = g.emplace([] { compile_app(); }).name("app");
///   auto link  = g.emplace([] { link_all(); }).name("link");
///   fetch.precede(lib, app);   // lib and app run after fetch, maybe at the same time
///   link.succeed(lib, app);    // link runs after both
///   lumen::run(g).wait();      // or run_n(g, 10): ten runs, one after another
/// @endcode
///
/// Tasks: emplace(f) with f() -> void is a plain task. With f() -> int it is a condition task:
/// when it finishes, only its successor number f() (in the order precede() added them) runs,
/// whatever that successor's other predecessors did; an index out of range runs none. Edges
/// out of a condition are "weak", which makes loops possible:
///
/// @code
///   auto init = g.emplace([&] { i = 0; });
///   auto body = g.emplace([&] { ++i; });
///   auto more = g.emplace([&] { return i < 5 ? 0 : 1; });   // 0: body again, 1: done
///   auto done = g.emplace([] {});
///   init.precede(body);  body.precede(more);  more.precede(body, done);
/// @endcode
///
/// A task runs when all its predecessors that are not conditions have finished in this run
/// (its join counter reaches zero), or when a condition picks it. Tasks with no predecessor at
/// all start each run. Join counters are reset for every run. A cycle made only of plain edges
/// could never start; run() rejects it with a usage_error that names the tasks on it.
/// compose(other) adds a task that runs the whole graph `other` each time it runs.
///
/// Running: run(g) starts a run and returns a graph_run; its wait() returns when no task of
/// the run is left and rethrows the first exception a task threw (after one throws, no further
/// task starts). wait() runs the graph's tasks still queued on its own worker, then parks its
/// fiber, so it may be called inside tasks, task_group children and pipeline stages.
///
/// Cost: a task that becomes ready when a predecessor finishes runs next on the same worker
/// without a trip through the queue; further successors that become ready at once are
/// spawned for other workers to steal. A successor with one plain predecessor costs no atomic
/// operation; otherwise one atomic decrement per edge.
///
/// Thread safety: build a graph from one thread at a time, and not while it runs. A graph
/// runs once at a time: run() on a graph that is running throws usage_error (so a graph
/// composed into two tasks that run at the same time fails there). The graph must outlive
/// its runs, and a composed graph the graphs it is composed into.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace lumen {

namespace detail {
struct GraphNode;
struct GraphBody;
}  // namespace detail

class graph;

/// A task of a graph: a small handle, valid as long as the graph is.
class graph_task {
 public:
  graph_task() = default;

  /// This task runs before each of `others`.
  template <class... Tasks>
  graph_task& precede(const Tasks&... others) {
    (link(node_, others.node_), ...);
    return *this;
  }
  /// This task runs after each of `others`.
  template <class... Tasks>
  graph_task& succeed(const Tasks&... others) {
    (link(others.node_, node_), ...);
    return *this;
  }

  /// Shown by dump() and in errors; unnamed tasks appear as "#<index>".
  graph_task& name(std::string n);
  /// The name set by name(n); empty when unnamed.
  const std::string& name() const;

  /// True for a default-constructed handle, which names no task.
  bool empty() const noexcept { return node_ == nullptr; }

 private:
  friend class graph;
  explicit graph_task(detail::GraphNode* n) : node_(n) {}
  static void link(detail::GraphNode* from, detail::GraphNode* to);

  detail::GraphNode* node_ = nullptr;
};

/// Waits for a run started by run() or run_n(). The destructor waits if wait() was not
/// called, dropping the run's exception.
class [[nodiscard]] graph_run {
 public:
  graph_run() = default;
  /// Takes over o's run; o no longer waits for anything.
  graph_run(graph_run&& o) noexcept : body_(std::exchange(o.body_, nullptr)) {}
  /// Waits for the run this object held (as the destructor does), then takes over o's.
  graph_run& operator=(graph_run&& o) noexcept;
  ~graph_run();

  /// Returns once the run is over; rethrows the first exception a task threw.
  void wait();
  /// False once the run was waited for or moved away, and for a default-constructed one.
  bool valid() const noexcept { return body_ != nullptr; }

 private:
  friend struct detail::GraphBody;
  explicit graph_run(detail::GraphBody* b) : body_(b) {}
  detail::GraphBody* body_ = nullptr;
};

/// A task graph: tasks, the order between them, and graphs composed into it. Built once and run any
/// number of times by run() and run_n(); its structure must not change while a run is in progress.
class graph {
 public:
  /// `name` appears in dump() and in the errors of its tasks.
  explicit graph(std::string name = {});
  ~graph();
  /// Moving keeps tasks, graph_task handles and compositions valid (they refer to the
  /// graph's heap-held body); do not move a graph while it runs.
  graph(graph&&) noexcept;
  /// As the move constructor; the graph this one held must not be running.
  graph& operator=(graph&&) noexcept;

  /// A task running f: f() -> void (plain) or f() -> int (condition). f is copied into the
  /// graph and called once per time the task runs.
  template <class F>
  graph_task emplace(F&& f) {
    using R = std::invoke_result_t<std::decay_t<F>&>;
    if constexpr (std::is_same_v<R, int>) {
      return graph_task(add_condition(std::function<int()>(std::forward<F>(f))));
    } else {
      static_assert(std::is_void_v<R>, "lumen::graph: a task returns void, or int for a condition task");
      return graph_task(add_plain(std::function<void()>(std::forward<F>(f))));
    }
  }

  /// A task that runs all of `other` (to its end) each time it runs.
  graph_task compose(graph& other);

  /// The graph in Graphviz dot: conditions as diamonds with their weak edges dashed and
  /// numbered, composed graphs as clusters.
  std::string dump() const;

  /// The name given to the constructor.
  const std::string& name() const noexcept;
  /// Number of tasks.
  std::size_t size() const noexcept;
  /// True while the graph has no task.
  bool empty() const noexcept { return size() == 0; }

 private:
  friend graph_run run_n(graph& g, std::size_t runs);
  detail::GraphNode* add_plain(std::function<void()> f);
  detail::GraphNode* add_condition(std::function<int()> f);

  std::unique_ptr<detail::GraphBody> body_;
};

/// Runs g `runs` times, one run after another (stopping after a run that threw).
graph_run run_n(graph& g, std::size_t runs);
/// Runs g once.
inline graph_run run(graph& g) { return run_n(g, 1); }

}  // namespace lumen
