// The engine behind lumen::graph.
//
// Every node is its own task object (a graph runs once at a time, so a node is queued at
// most once). A run counts the chains of work in flight: each task that runs a node carries
// on with one successor that became ready and spawns the others, adding one to the count per
// spawn; the task whose chain ends last finishes the run, then starts the next round of
// run_n or completes the wait.
#include "lumen/graph.h"

#include <atomic>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "lumen/detail/completion.h"
#include "lumen/error.h"
#include "sched/scheduler.h"

namespace lumen::detail {

enum class NodeKind : unsigned char { plain, condition, composed };

struct GraphNode : Task {
  GraphBody* owner = nullptr;
  // Plain predecessors that have not finished in this run (reset to strong_in when it hits 0).
  std::atomic<std::uint32_t> pending{0};
  std::uint32_t strong_in = 0;  // predecessors that are not conditions
  std::uint32_t weak_in = 0;    // condition predecessors
  NodeKind kind = NodeKind::plain;
  std::size_t index = 0;
  std::function<void()> work;
  std::function<int()> choose;
  GraphBody* module = nullptr;  // composed: the graph it runs
  std::vector<GraphNode*> successors;
  std::string name;

  std::string label() const {
    if (!name.empty()) return name;
    std::string out = std::to_string(index);
    out.insert(out.begin(), '#');
    return out;
  }
};

struct GraphBody {
  explicit GraphBody(std::string n) : name(std::move(n)) {}

  std::string name;
  std::deque<GraphNode> nodes;  // a deque: node addresses stay valid as the graph grows

  // Derived from the shape, recomputed on the first run after a change.
  bool shape_changed = true;
  bool has_conditions = false;
  std::vector<GraphNode*> sources;

  // Join counters left off their initial values (a condition skipped a branch, or a run
  // stopped after an exception): reset them all before the next round.
  bool counters_dirty = false;

  // The run in progress.
  std::atomic<bool> running{false};
  Scheduler* sched = nullptr;
  bool holds_runtime = false;  // started by a thread that is not a worker: counted as its work
  std::size_t rounds_left = 0;  // touched by whoever starts a round, one after another
  alignas(64) std::atomic<std::int64_t> in_flight{0};
  alignas(64) std::atomic<bool> failed{false};
  std::exception_ptr error;
  Completion done;

  void require_idle(const char* what) const {
    if (running.load(std::memory_order_acquire))
      throw usage_error("lumen::graph '" + name + "': cannot " + what + " while the graph runs");
  }

  GraphNode* add(NodeKind kind) {
    require_idle("add a task");
    GraphNode& n = nodes.emplace_back();
    n.owner = this;
    n.kind = kind;
    n.index = nodes.size() - 1;
    n.run = &run_chain;
    n.group = this;
    if (kind == NodeKind::condition) has_conditions = true;
    shape_changed = true;
    return &n;
  }

  // Sources, and the check that every cycle passes through a condition.
  void prepare() {
    if (!shape_changed) return;
    sources.clear();
    for (GraphNode& n : nodes) {
      n.pending.store(n.strong_in, std::memory_order_relaxed);
      if (n.strong_in == 0 && n.weak_in == 0) sources.push_back(&n);
    }
    reject_plain_cycles();
    shape_changed = false;
    counters_dirty = false;
  }

  // Depth-first search over plain edges; a node found on the current path closes a cycle.
  void reject_plain_cycles() const {
    enum : unsigned char { unseen, on_path, finished };
    std::vector<unsigned char> state(nodes.size(), unseen);
    std::vector<std::pair<const GraphNode*, std::size_t>> path;
    for (const GraphNode& root : nodes) {
      if (state[root.index] != unseen) continue;
      state[root.index] = on_path;
      path.emplace_back(&root, 0);
      while (!path.empty()) {
        auto& [v, next] = path.back();
        if (v->kind == NodeKind::condition || next == v->successors.size()) {
          state[v->index] = finished;
          path.pop_back();
          continue;
        }
        const GraphNode* w = v->successors[next++];
        if (state[w->index] == on_path) {
          std::string cycle;
          bool in_cycle = false;
          for (const auto& step : path) {
            in_cycle = in_cycle || step.first == w;
            if (in_cycle) cycle += step.first->label() + " -> ";
          }
          throw usage_error("lumen::graph '" + name + "': a cycle without a condition task can never run: " + cycle +
                            w->label());
        }
        if (state[w->index] == unseen) {
          state[w->index] = on_path;
          path.emplace_back(w, 0);
        }
      }
    }
  }

  void start_round() {
    if (counters_dirty) {
      for (GraphNode& n : nodes) n.pending.store(n.strong_in, std::memory_order_relaxed);
    }
    // Conditions may leave a branch untaken, and its join counters half counted down.
    counters_dirty = has_conditions;
    in_flight.store(static_cast<std::int64_t>(sources.size()), std::memory_order_relaxed);
    for (GraphNode* s : sources) spawn(*sched, s);
  }

  // The last chain of a round ended.
  void round_over() {
    const bool stop = failed.load(std::memory_order_acquire);
    if (stop) counters_dirty = true;
    if (--rounds_left > 0 && !stop && !sources.empty()) return start_round();
    done.finish();
  }

  void record(std::exception_ptr e) noexcept {
    if (!failed.exchange(true, std::memory_order_acq_rel)) error = std::move(e);
  }

  // Runs n, then returns the successor to run next on this task, if any.
  GraphNode* execute(GraphNode* n) noexcept {
    int choice = -1;
    if (!failed.load(std::memory_order_relaxed)) {
      GroupStopScope stop(&failed);
      try {
        switch (n->kind) {
          case NodeKind::plain:
            n->work();
            break;
          case NodeKind::condition:
            choice = n->choose();
            break;
          case NodeKind::composed:
            start(*n->module, 1).wait();
            break;
        }
      } catch (...) {
        record(std::current_exception());
      }
    }
    if (failed.load(std::memory_order_relaxed)) return nullptr;
    if (n->kind == NodeKind::condition) {
      if (choice < 0 || static_cast<std::size_t>(choice) >= n->successors.size()) return nullptr;
      return n->successors[static_cast<std::size_t>(choice)];
    }
    GraphNode* next = nullptr;
    for (GraphNode* s : n->successors) {
      // With one plain predecessor (this node), the successor is ready and its counter untouched.
      if (s->strong_in != 1) {
        if (s->pending.fetch_sub(1, std::memory_order_acq_rel) != 1) continue;
        s->pending.store(s->strong_in, std::memory_order_relaxed);  // armed for a loop or the next run
      }
      if (next == nullptr) {
        next = s;
      } else {
        in_flight.fetch_add(1, std::memory_order_relaxed);
        spawn(*sched, s);
      }
    }
    return next;
  }

  static graph_run start(GraphBody& b, std::size_t runs) {
    if (b.running.exchange(true, std::memory_order_acq_rel))
      throw usage_error("lumen::graph '" + b.name + "': already running (a graph runs once at a time)");
    try {
      b.prepare();
    } catch (...) {
      b.running.store(false, std::memory_order_release);
      throw;
    }
    b.sched = worker_scheduler();
    if (b.sched == nullptr) {
      try {
        RuntimeEntry entry;
        entry.scheduler().begin_external_task();  // the runtime's shutdown waits for the run
        b.sched = &entry.scheduler();
        b.holds_runtime = true;
      } catch (...) {
        b.running.store(false, std::memory_order_release);
        throw;
      }
    }
    b.rounds_left = runs;
    if (runs == 0 || b.sources.empty()) {
      b.done.finish();
    } else {
      b.start_round();
    }
    return graph_run(&b);
  }

  static void run_chain(Task* t) noexcept {
    auto* n = static_cast<GraphNode*>(t);
    GraphBody* body = n->owner;
    while (n != nullptr) n = body->execute(n);
    if (body->in_flight.fetch_sub(1, std::memory_order_acq_rel) == 1) body->round_over();
  }
};

}  // namespace lumen::detail

namespace lumen {

using detail::GraphBody;
using detail::GraphNode;
using detail::NodeKind;

graph_task& graph_task::name(std::string n) {
  if (node_ == nullptr) throw usage_error("lumen::graph: name() on an empty graph_task");
  node_->name = std::move(n);
  return *this;
}

const std::string& graph_task::name() const {
  if (node_ == nullptr) throw usage_error("lumen::graph: name() on an empty graph_task");
  return node_->name;
}

void graph_task::link(GraphNode* from, GraphNode* to) {
  if (from == nullptr || to == nullptr) throw usage_error("lumen::graph: precede/succeed with an empty graph_task");
  if (from->owner != to->owner) throw usage_error("lumen::graph: tasks of two different graphs cannot be linked");
  GraphBody& b = *from->owner;
  b.require_idle("add an edge");
  from->successors.push_back(to);
  if (from->kind == NodeKind::condition) {
    ++to->weak_in;
  } else {
    ++to->strong_in;
  }
  b.shape_changed = true;
}

graph_run& graph_run::operator=(graph_run&& o) noexcept {
  if (this != &o) {
    graph_run old(std::move(*this));
    body_ = std::exchange(o.body_, nullptr);
  }
  return *this;
}

graph_run::~graph_run() {
  if (body_ == nullptr) return;
  try {
    wait();
  } catch (...) {  // a destructor cannot throw; call wait() to see the run's exception
  }
}

void graph_run::wait() {
  if (body_ == nullptr) throw usage_error("lumen::graph_run: wait() on a run already waited for");
  GraphBody& b = *std::exchange(body_, nullptr);
  b.done.wait(*b.sched, &b);
  if (b.holds_runtime) {
    b.holds_runtime = false;
    b.sched->end_external_task();
  }
  std::exception_ptr e = std::exchange(b.error, nullptr);
  b.failed.store(false, std::memory_order_relaxed);
  b.running.store(false, std::memory_order_release);
  if (e != nullptr) std::rethrow_exception(e);
}

graph::graph(std::string name) : body_(std::make_unique<GraphBody>(std::move(name))) {}

graph::~graph() = default;
graph::graph(graph&&) noexcept = default;
graph& graph::operator=(graph&&) noexcept = default;

GraphNode* graph::add_plain(std::function<void()> f) {
  GraphNode* n = body_->add(NodeKind::plain);
  n->work = std::move(f);
  return n;
}

GraphNode* graph::add_condition(std::function<int()> f) {
  GraphNode* n = body_->add(NodeKind::condition);
  n->choose = std::move(f);
  return n;
}

graph_task graph::compose(graph& other) {
  if (&other == this) throw usage_error("lumen::graph '" + body_->name + "': a graph cannot contain itself");
  GraphNode* n = body_->add(NodeKind::composed);
  n->module = other.body_.get();
  return graph_task(n);
}

const std::string& graph::name() const noexcept { return body_->name; }

std::size_t graph::size() const noexcept { return body_->nodes.size(); }

namespace {

// A dot string literal.
struct Quoted {
  const std::string& text;
};
std::ostream& operator<<(std::ostream& out, Quoted q) {
  out << '"';
  for (char c : q.text) {
    if (c == '"' || c == '\\') out << '\\';
    out << c;
  }
  return out << '"';
}

// Writes the nodes and edges of b, node ids prefixed by its number in `numbers`; then the
// graphs it composes, each once, as clusters.
void dump_body(const GraphBody& b, std::map<const GraphBody*, std::size_t>& numbers, std::ostream& out,
               const std::string& indent) {
  const std::size_t number = numbers.at(&b);
  auto id = [&out, number](const GraphNode& n) -> std::ostream& { return out << 'g' << number << '_' << n.index; };
  std::vector<const GraphBody*> composed;
  for (const GraphNode& n : b.nodes) {
    out << indent;
    id(n) << " [label=" << Quoted{n.label()};
    if (n.kind == NodeKind::condition) out << ", shape=diamond";
    if (n.kind == NodeKind::composed) {
      out << ", shape=box3d, tooltip=" << Quoted{"runs graph " + n.module->name};
      if (numbers.emplace(n.module, numbers.size()).second) composed.push_back(n.module);
    }
    out << "];\n";
  }
  for (const GraphNode& n : b.nodes) {
    for (std::size_t i = 0; i < n.successors.size(); ++i) {
      out << indent;
      id(n) << " -> ";
      id(*n.successors[i]);
      if (n.kind == NodeKind::condition) out << " [style=dashed, label=\"" << i << "\"]";
      out << ";\n";
    }
  }
  for (const GraphBody* m : composed) {
    out << indent << "subgraph cluster_" << numbers.at(m) << " {\n" << indent << "  label=" << Quoted{m->name} << ";\n";
    dump_body(*m, numbers, out, indent + "  ");
    out << indent << "}\n";
  }
}

}  // namespace

std::string graph::dump() const {
  std::map<const GraphBody*, std::size_t> numbers{{body_.get(), 0}};
  std::ostringstream out;
  out << "digraph " << Quoted{body_->name} << " {\n";
  dump_body(*body_, numbers, out, "  ");
  out << "}\n";
  return out.str();
}

graph_run run_n(graph& g, std::size_t runs) { return GraphBody::start(*g.body_, runs); }

}  // namespace lumen
