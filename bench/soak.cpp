// lumen-soak: a long, randomized run of lumen's public API, checked against a serial model.
//
// Outside threads keep building random task graphs (dependencies, nested submit + get,
// retries against injected faults, task_groups with cancel, parallel loops and sorts inside
// tasks, actor calls inside tasks and from outside, cancels and timeouts, streams, and large
// values under the long-lived runtime's memory limit, evicted and rebuilt or spilled and read
// back) and running actor sessions (restarts, replayed calls, checkpoints, kills with and
// without restart, exit_actor, calls from several threads), while the main thread keeps
// destroying and creating a Runtime under them. Every
// graph is evaluated again serially from the same seed: a value must equal the serial one, an
// injected fault must surface where the model puts it (with its type, origin and task name),
// and every node must resolve. A watchdog prints what is in flight and aborts when nothing
// progresses for --hang-seconds.
//
//   lumen-soak --seconds 60 --threads 4 --workers 2 --seed 7
//
// Exit status 0 only when no result was wrong, none was lost and nothing hung.
#include <lumen/lumen.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cxxopts.hpp>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using u64 = std::uint64_t;
using Clock = std::chrono::steady_clock;
using lumen::ObjectRef;

// ---- deterministic randomness and values --------------------------------------------------

constexpr u64 splitmix(u64 x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Every value in a graph is built from this, so a lost or repeated input changes the result.
constexpr u64 mix(u64 a, u64 b) { return splitmix(a ^ splitmix(b)); }

// Our own generator and range reduction: <random>'s distributions differ between standard
// libraries, and a seed must name the same run everywhere.
class Rng {
 public:
  explicit Rng(u64 seed) : state_(seed) {}
  u64 next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return splitmix(state_);
  }
  u64 below(u64 n) { return next() % n; }
  int range(int lo, int hi) { return lo + static_cast<int>(below(static_cast<u64>(hi - lo + 1))); }
  bool chance(double p) { return static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }
  template <class T, std::size_t N>
  T pick(const std::array<T, N>& from) {
    return from[below(N)];
  }
  // An index drawn with the given weights.
  template <std::size_t N>
  std::size_t weighted(const std::array<int, N>& weights) {
    int total = 0;
    for (int w : weights) total += w;
    int r = static_cast<int>(below(static_cast<u64>(total)));
    for (std::size_t i = 0; i < N; ++i) {
      if (r < weights[i]) return i;
      r -= weights[i];
    }
    return N - 1;
  }

 private:
  u64 state_;
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double rss_mib() {
  std::ifstream statm("/proc/self/statm");
  u64 size = 0, resident = 0;
  statm >> size >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// ---- injected faults and what a result turned out to be -----------------------------------

// Three unrelated types, one not derived from std::exception: lumen must hand each back with
// its own type. `origin` names the node (or actor call) that threw it.
enum class Fault : std::uint8_t { a, b, c };

struct FaultA : std::runtime_error {
  explicit FaultA(u64 o) : std::runtime_error("injected fault A"), origin(o) {}
  u64 origin;
};
struct FaultB : std::logic_error {
  explicit FaultB(u64 o) : std::logic_error("injected fault B"), origin(o) {}
  u64 origin;
};
struct FaultC {
  u64 origin;
};

[[noreturn]] void throw_fault(Fault f, u64 origin) {
  switch (f) {
    case Fault::a:
      throw FaultA(origin);
    case Fault::b:
      throw FaultB(origin);
    case Fault::c:
      break;
  }
  throw FaultC{origin};
}

// Something the soak itself saw go wrong inside a task (a child that ran twice, ...).
struct Violation : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Kind : std::uint8_t { value, fault_a, fault_b, fault_c, actor_died, shutdown, cancelled, timed_out, lost, other };

Kind kind_of(Fault f) {
  switch (f) {
    case Fault::a:
      return Kind::fault_a;
    case Fault::b:
      return Kind::fault_b;
    case Fault::c:
      break;
  }
  return Kind::fault_c;
}

struct Outcome {
  Kind kind = Kind::lost;
  u64 value = 0;          // the value, or the origin of an injected fault
  std::string task_name;  // of a failed object: the task lumen says failed
  std::string what;       // of any other error
};

Outcome classify(std::exception_ptr e) {
  Outcome o;
  try {
    std::rethrow_exception(e);
  } catch (const FaultA& f) {
    o.kind = Kind::fault_a;
    o.value = f.origin;
  } catch (const FaultB& f) {
    o.kind = Kind::fault_b;
    o.value = f.origin;
  } catch (const FaultC& f) {
    o.kind = Kind::fault_c;
    o.value = f.origin;
  } catch (const lumen::actor_died& x) {
    o.kind = Kind::actor_died;
    o.what = x.what();
  } catch (const lumen::shutdown_error& x) {
    o.kind = Kind::shutdown;
    o.what = x.what();
  } catch (const lumen::cancelled_error& x) {
    o.kind = Kind::cancelled;
    o.what = x.what();
  } catch (const lumen::timeout_error& x) {
    o.kind = Kind::timed_out;
    o.what = x.what();
  } catch (const std::exception& x) {
    o.kind = Kind::other;
    o.what = x.what();
  } catch (...) {
    o.kind = Kind::other;
    o.what = "an exception of unknown type";
  }
  return o;
}

// Waits up to `timeout` for ref; a ref still pending then is lost.
Outcome observe(ObjectRef<u64>& ref, Clock::duration timeout, bool take) {
  Outcome o;
  try {
    o.value = take ? lumen::get(std::move(ref), timeout) : lumen::get(ref, timeout);
    o.kind = Kind::value;
    return o;
  } catch (const lumen::timeout_error&) {
    if (!ref.ready()) return o;  // Kind::lost
    o = classify(std::current_exception());
  } catch (...) {
    o = classify(std::current_exception());
  }
  if (std::optional<lumen::task_error> e = lumen::error_of(ref)) o.task_name = e->task_name();
  return o;
}

std::string hex(u64 v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%#" PRIx64, v);
  return buf;
}

std::string describe(const Outcome& o) {
  switch (o.kind) {
    case Kind::value:
      return "value " + hex(o.value);
    case Kind::fault_a:
    case Kind::fault_b:
    case Kind::fault_c: {
      const char* type = o.kind == Kind::fault_a ? "FaultA" : o.kind == Kind::fault_b ? "FaultB" : "FaultC";
      return std::string(type) + " from " + std::to_string(o.value) + " (task '" + o.task_name + "')";
    }
    case Kind::actor_died:
      return "actor_died: " + o.what;
    case Kind::shutdown:
      return "shutdown_error: " + o.what;
    case Kind::cancelled:
      return "cancelled_error: " + o.what;
    case Kind::timed_out:
      return "timeout_error: " + o.what;
    case Kind::lost:
      return "nothing (still pending)";
    case Kind::other:
      break;
  }
  return "unexpected error: " + o.what;
}

bool same_failure(const Outcome& a, const Outcome& b) {
  return a.kind == b.kind && a.value == b.value && a.task_name == b.task_name;
}

// ---- actors --------------------------------------------------------------------------------

constexpr u64 kOracleSalt = 0x6f7261636c65;
constexpr u64 kEchoSalt = 0x6563686f;

// A pure method, called from inside tasks; killed (and restarted) under its callers. `served`
// is never read: two calls running at once would race on it, for ThreadSanitizer to report.
struct Oracle {
  u64 apply(u64 h) {
    ++served;
    return mix(h, kOracleSalt);
  }
  u64 served = 0;
};

// Called with ObjectRef arguments straight from the graph: each call waits for them in turn.
struct Echo {
  u64 apply0(u64 salt) { return mix(salt, kEchoSalt); }
  u64 apply1(u64 salt, u64 a) { return mix(mix(salt, a), kEchoSalt); }
  u64 apply2(u64 salt, u64 a, u64 b) { return mix(mix(mix(salt, a), b), kEchoSalt); }
  u64 apply3(u64 salt, u64 a, u64 b, u64 c) { return mix(mix(mix(mix(salt, a), b), c), kEchoSalt); }
};

// Hands out tickets 1, 2, 3, ... With a checkpoint after every call, unlimited restarts and
// replays, a kill must neither lose nor repeat a ticket.
struct Ledger {
  u64 take() { return ++issued; }
  u64 count() const { return issued; }
  u64 checkpoint() const { return issued; }
  void restore(u64 saved) { issued = saved; }
  u64 issued = 0;
};

// max_concurrency > 1: calls overlap (some park mid-call), tickets stay unique.
constexpr int kTallyConcurrency = 4;
struct Tally {
  u64 bump(u64 salt) {
    int now = running.fetch_add(1, std::memory_order_relaxed) + 1;
    int seen = peak.load(std::memory_order_relaxed);
    while (now > seen && !peak.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
    }
    u64 ticket = issued.fetch_add(1, std::memory_order_relaxed) + 1;
    if (salt % 4 == 0) lumen::get(lumen::submit([salt] { return mix(salt, 1); }));
    running.fetch_sub(1, std::memory_order_relaxed);
    return ticket;
  }
  u64 count() const { return issued.load(); }
  u64 most_at_once() const { return static_cast<u64>(peak.load()); }
  std::atomic<u64> issued{0};
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
};

// Killed without restart while other threads call it, then replaced.
struct Turnstile {
  u64 pass() { return ++passed; }
  u64 passed = 0;
};

// A private actor of one session: faults, exit_actor, restarts; served counts per instance.
constexpr u64 kRestartedBit = u64{1} << 62;
enum PhoenixOp : u64 { step_op = 0, fault_op = 1, exit_op = 2 };
struct Phoenix {
  u64 step(u64 op) {
    if ((op & 3) == fault_op) throw FaultB(op);
    if ((op & 3) == exit_op) lumen::exit_actor();
    ++served;
    return served | (lumen::actor_restarted() ? kRestartedBit : 0);
  }
  u64 served = 0;
};

// Observed tickets of an actor that hands out 1, 2, 3, ...: count, sum and sum of squares
// match those of {1..n} only when no ticket was lost or given twice (short of a coincidence
// the soak does not need to rule out).
struct TicketSums {
  std::atomic<u64> count{0}, sum{0}, squares{0};
  void add(u64 t) {
    count.fetch_add(1, std::memory_order_relaxed);
    sum.fetch_add(t, std::memory_order_relaxed);
    squares.fetch_add(t * t, std::memory_order_relaxed);
  }
  // Empty when the tickets are exactly 1..n.
  std::string mismatch(u64 n) const {
    u64 sum_n = n % 2 == 0 ? (n / 2) * (n + 1) : n * ((n + 1) / 2);
    u64 squares_n = 0;
    for (u64 k = 1; k <= n; ++k) squares_n += k * k;
    if (count == n && sum == sum_n && squares == squares_n) return {};
    return "saw " + std::to_string(count.load()) + " tickets (sum " + std::to_string(sum.load()) + ") for " +
           std::to_string(n) + " calls served (sum " + std::to_string(sum_n) + ")";
  }
};

struct TurnstileRecord {
  std::mutex m;
  lumen::ActorHandle<Turnstile> handle;  // empty once retired
  u64 most = 0;                          // the highest ticket seen
  TicketSums tickets;
};

// ---- what each thread is doing, for the watchdog -------------------------------------------

enum class Step : int {
  idle,
  submitting,
  waiting,
  session,
  batch,
  outside,
  creating_runtime,
  destroying_runtime,
  done
};
const char* const kStepNames[] = {"idle",
                                  "submitting",
                                  "waiting for",
                                  "running an actor session",
                                  "calling a shared actor",
                                  "running fork-join from outside",
                                  "creating a runtime",
                                  "destroying a runtime",
                                  "done"};

struct Activity {
  std::atomic<Step> step{Step::idle};
  std::atomic<u64> dag_seed{0};
  std::atomic<int> node{-1};
  std::atomic<int> node_kind{-1};
  std::atomic<bool> timed{false};  // the step has a timeout of its own
  std::atomic<Clock::rep> since{0};

  void set(Step s, bool has_timeout, int n = -1, int kind = -1) {
    node.store(n, std::memory_order_relaxed);
    node_kind.store(kind, std::memory_order_relaxed);
    timed.store(has_timeout, std::memory_order_relaxed);
    step.store(s, std::memory_order_relaxed);
    since.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  }
  double seconds() const {
    return std::chrono::duration<double>(Clock::now().time_since_epoch() - Clock::duration(since.load())).count();
  }
};

// ---- the random graphs ---------------------------------------------------------------------

enum class NodeKind : int {
  put,       // lumen::put
  plain,     // submit(f, deps...)
  faulty,    // always throws its fault
  retry,     // throws for its first attempts; retries(n) may or may not absorb them
  nested,    // submits children (some with grandchildren) and gets them; may catch a child's fault
  group,     // task_group children; cancel half-way, then runs the skipped ones
  loop,      // parallel_for / parallel_reduce / nested loops / parallel_sort inside the task
  refs,      // receives the refs themselves (in a vector), waits and gets them inside
  oracle,    // calls the Oracle actor from inside the task and gets the result
  echo,      // an actor call on Echo with the dependencies as ObjectRef arguments
  blocking,  // lumen::blocking around a sleep
  limited,   // a resource slot and a priority
  block,     // a deterministic task's vector, read by a task; checks an older block in BlockPool
  stream,    // consumes a lumen::stream whose producer may throw mid-stream
};
const char* const kNodeKindNames[] = {"put",  "plain",  "faulty", "retry",    "nested",  "group", "loop",
                                      "refs", "oracle", "echo",   "blocking", "limited", "block", "stream"};

enum class LoopMode : int { for_each, reduce, deterministic_reduce, nested, chunks, sort };

struct NodeSpec {
  NodeKind kind = NodeKind::plain;
  int index = 0;
  u64 salt = 0;
  std::vector<int> deps;     // earlier nodes, in argument order
  std::string name;          // task(f).name(...), or empty
  int retries = 0;           // task(f).retries(...)
  int timeout_us = 0;        // task(f).timeout(...) in microseconds, or 0
  int priority = 0;          // limited: task(f).priority(...)
  Fault fault = Fault::a;    // what faulty/retry nodes, or a failing child or loop body, throw
  int fail_attempts = 0;     // retry: attempts that throw before one returns
  int width = 0;             // children of nested/group, iterations of loop
  int fail_at = -1;          // nested/group: the child that throws; loop: the index; -1: none
  bool catch_child = false;  // nested: the parent catches the failing child's fault
  bool wait_first = false;   // nested/refs: lumen::wait before the gets
  bool cancel = false;       // group: cancel after half the children are spawned
  bool inner_loops = false;  // group: each child runs a parallel_reduce
  LoopMode loop_mode = LoopMode::for_each;
  std::size_t grain = 0;  // loop: 0 for the adaptive chunks
};

constexpr u64 kCaught = 0xca11ed;

u64 fold_inputs(u64 salt, const std::vector<u64>& inputs) {
  for (u64 v : inputs) salt = mix(salt, v);
  return salt;
}

u64 child_value(u64 h, int j) {
  if (j % 2 == 1) return mix(mix(h, static_cast<u64>(j) + 1000), static_cast<u64>(j));
  return mix(h, static_cast<u64>(j));
}

// The value of one group child: with inner loops, a reduction of 64 terms.
u64 group_child_value(u64 h, int j, bool inner_loops) {
  u64 base = mix(h, static_cast<u64>(j));
  if (!inner_loops) return base;
  u64 sum = 0;
  for (u64 i = 0; i < 64; ++i) sum += mix(base, i);
  return sum;
}

// What parallel code inside a node must compute, evaluated one step at a time.
u64 serial_node_value(const NodeSpec& s, u64 h) {
  switch (s.kind) {
    case NodeKind::nested: {
      u64 acc = h;
      for (int j = 0; j < s.width; ++j) acc = mix(acc, j == s.fail_at ? kCaught : child_value(h, j));
      return acc;
    }
    case NodeKind::group: {
      u64 acc = h;
      for (int j = 0; j < s.width; ++j) acc = mix(acc, group_child_value(h, j, s.inner_loops));
      return acc;
    }
    case NodeKind::loop: {
      auto n = static_cast<u64>(s.width);
      if (s.loop_mode == LoopMode::sort) {
        std::vector<u64> v(n);
        for (u64 i = 0; i < n; ++i) v[i] = mix(h, i);
        std::sort(v.begin(), v.end());
        u64 acc = h;
        for (u64 x : v) acc = mix(acc, x);
        return acc;
      }
      u64 sum = 0;
      for (u64 i = 0; i < n; ++i) sum += mix(h, i);
      return mix(h, sum);
    }
    case NodeKind::oracle:
      return mix(h, kOracleSalt);
    case NodeKind::echo:
      return mix(h, kEchoSalt);
    case NodeKind::blocking:
      return mix(h, 1);
    case NodeKind::block: {
      u64 sum = 0;
      for (u64 i = 0; i < static_cast<u64>(s.width); ++i) sum += mix(h, i);
      return mix(h, sum);
    }
    case NodeKind::stream: {
      u64 acc = h;
      for (u64 i = 0; i < static_cast<u64>(s.width); ++i) acc = mix(acc, mix(h, i));
      return acc;
    }
    default:
      return h;
  }
}

// Rethrows unless e is the fault the node's failing child was told to throw.
void rethrow_unless_injected(std::exception_ptr e, const NodeSpec& s) {
  Outcome o = classify(e);
  if (o.kind != kind_of(s.fault) || o.value != static_cast<u64>(s.index)) std::rethrow_exception(e);
}

u64 run_nested(const NodeSpec& s, u64 h) {
  std::vector<ObjectRef<u64>> kids;
  kids.reserve(static_cast<std::size_t>(s.width));
  for (int j = 0; j < s.width; ++j) {
    bool fails = j == s.fail_at;
    kids.push_back(lumen::submit([h, j, fails, fault = s.fault, origin = static_cast<u64>(s.index)] {
      if (fails) throw_fault(fault, origin);
      if (j % 2 == 1) {
        u64 grandchild = lumen::get(lumen::submit([h, j] { return mix(h, static_cast<u64>(j) + 1000); }));
        return mix(grandchild, static_cast<u64>(j));
      }
      return mix(h, static_cast<u64>(j));
    }));
  }
  if (s.wait_first) {
    lumen::WaitResult<u64> w = lumen::wait(kids, kids.size());
    if (w.ready.size() != kids.size()) throw Violation("wait for every child returned before all were ready");
  }
  u64 acc = h;
  for (int j = 0; j < s.width; ++j) {
    u64 v = 0;
    try {
      v = lumen::get(kids[static_cast<std::size_t>(j)]);
    } catch (...) {
      if (!s.catch_child || j != s.fail_at) throw;
      rethrow_unless_injected(std::current_exception(), s);
      v = kCaught;
    }
    acc = mix(acc, v);
  }
  return acc;
}

u64 run_group(const NodeSpec& s, u64 h) {
  auto width = static_cast<std::size_t>(s.width);
  std::vector<u64> out(width, 0);
  std::vector<std::atomic<int>> runs(width);
  lumen::task_group g;
  auto spawn = [&](std::size_t j) {
    g.run([&, j] {
      runs[j].fetch_add(1, std::memory_order_relaxed);
      if (static_cast<int>(j) == s.fail_at) throw_fault(s.fault, static_cast<u64>(s.index));
      u64 base = mix(h, static_cast<u64>(j));
      out[j] = s.inner_loops ? lumen::parallel_reduce(
                                   u64{0}, u64{64}, u64{0}, [base](u64 i) { return mix(base, i); }, std::plus<>{})
                             : base;
    });
  };
  if (s.cancel) {
    // Children spawned after cancel() are skipped as well; wait() makes the group usable
    // again, and the second round runs every child the first one skipped.
    for (std::size_t j = 0; j < width / 2; ++j) spawn(j);
    g.cancel();
    for (std::size_t j = width / 2; j < width; ++j) spawn(j);
    g.wait();
    for (std::size_t j = 0; j < width; ++j) {
      if (runs[j].load(std::memory_order_relaxed) == 0) spawn(j);
    }
  } else {
    for (std::size_t j = 0; j < width; ++j) spawn(j);
  }
  g.wait();
  u64 acc = h;
  for (std::size_t j = 0; j < width; ++j) {
    int n = runs[j].load(std::memory_order_relaxed);
    if (n != 1) throw Violation("task_group child " + std::to_string(j) + " ran " + std::to_string(n) + " times");
    acc = mix(acc, out[j]);
  }
  return acc;
}

u64 run_loop(const NodeSpec& s, u64 h) {
  auto n = static_cast<u64>(s.width);
  auto fail_at = static_cast<u64>(s.fail_at);  // -1 becomes an index no loop reaches
  Fault fault = s.fault;
  auto origin = static_cast<u64>(s.index);
  auto term = [=](u64 i) {
    if (i == fail_at) throw_fault(fault, origin);
    return mix(h, i);
  };
  u64 sum = 0;
  switch (s.loop_mode) {
    case LoopMode::for_each: {
      std::vector<u64> out(n);
      lumen::parallel_for(u64{0}, n, [&](u64 i) { out[i] = term(i); });
      for (u64 v : out) sum += v;
      break;
    }
    case LoopMode::reduce:
      sum = lumen::parallel_reduce(u64{0}, n, u64{0}, term, std::plus<>{});
      break;
    case LoopMode::deterministic_reduce:
      sum = lumen::parallel_reduce(u64{0}, n, u64{0}, term, std::plus<>{}, lumen::deterministic{s.grain});
      break;
    case LoopMode::nested: {
      // width is a multiple of 64: rows of 64, each reduced by an inner loop.
      std::vector<u64> rows(n / 64);
      lumen::parallel_for(u64{0}, n / 64, [&](u64 r) {
        rows[r] = lumen::parallel_reduce(
            u64{0}, u64{64}, u64{0}, [&](u64 k) { return term(r * 64 + k); }, std::plus<>{});
      });
      for (u64 v : rows) sum += v;
      break;
    }
    case LoopMode::chunks: {
      std::vector<u64> out(n);
      lumen::parallel_for(u64{0}, n, lumen::grain(s.grain), [&](u64 lo, u64 hi) {
        if (hi - lo > s.grain) throw Violation("parallel_for gave a chunk larger than its grain");
        for (u64 i = lo; i < hi; ++i) out[i] = term(i);
      });
      for (u64 v : out) sum += v;
      break;
    }
    case LoopMode::sort: {
      std::vector<u64> v(n);
      lumen::parallel_for(u64{0}, n, [&](u64 i) { v[i] = mix(h, i); });
      lumen::parallel_sort(v.begin(), v.end());
      u64 acc = h;
      for (u64 x : v) acc = mix(acc, x);
      return acc;
    }
  }
  return mix(h, sum);
}

// Blocks made by block nodes, kept for a while so that the long-lived runtime's memory limit
// has more of them than it holds: each block node reads one of them again (a rebuild or a
// restore when it left memory) and checks it element by element.
using Block = std::vector<u64>;

Block make_block(u64 h, u64 n) {
  Block b(n);
  for (u64 i = 0; i < n; ++i) b[i] = mix(h, i);
  return b;
}

class BlockPool {
 public:
  static BlockPool& instance() {
    static BlockPool pool;
    return pool;
  }
  // Checks the block in the slot `pick` names (if any), then leaves `block` there.
  void check_and_keep(u64 pick, ObjectRef<Block> block, u64 h, u64 n) {
    Entry old;
    {
      std::lock_guard<std::mutex> lock(m_);
      Entry& e = entries_[pick % entries_.size()];
      old = std::exchange(e, Entry{std::move(block), h, n});
    }
    if (!old.ref.valid()) return;
    std::string wrong;
    try {
      wrong = lumen::read(old.ref, [&](const Block& b) -> std::string {
        if (b.size() != old.n) return "size " + std::to_string(b.size()) + ", want " + std::to_string(old.n);
        for (u64 i = 0; i < old.n; ++i)
          if (b[i] != mix(old.h, i)) return "element " + std::to_string(i) + " differs";
        return {};
      });
    } catch (const lumen::shutdown_error&) {
      return;  // rebuilt on a runtime that is going away: nothing to check
    } catch (const lumen::cancelled_error&) {
      return;  // the node reading it was stopped meanwhile
    } catch (const lumen::timeout_error&) {
      return;
    }
    if (!wrong.empty()) throw Violation("a block read again after a memory limit could take it: " + wrong);
  }
  void clear() {
    std::lock_guard<std::mutex> lock(m_);
    for (Entry& e : entries_) e = Entry{};
  }

 private:
  struct Entry {
    ObjectRef<Block> ref;
    u64 h = 0;
    u64 n = 0;
  };
  std::mutex m_;
  std::array<Entry, 48> entries_;
};

u64 run_block(const NodeSpec& s, u64 h) {
  const auto n = static_cast<u64>(s.width);
  // Half are deterministic results (evicted and rebuilt), half are puts (spilled and restored).
  auto block = (s.salt & 1) != 0 ? lumen::put(make_block(h, n)) : lumen::task(make_block).deterministic().submit(h, n);
  const u64 sum = lumen::get(lumen::submit(
      [](const Block& b) {
        u64 total = 0;
        for (u64 x : b) total += x;
        return total;
      },
      block));
  BlockPool::instance().check_and_keep(s.salt, std::move(block), h, n);
  return mix(h, sum);
}

// A producer task emits width items (throwing its fault at fail_at), at most `grain` ahead of
// this node, which folds them in order; the fault reaches it through get at that item.
u64 run_stream(const NodeSpec& s, u64 h) {
  const auto n = static_cast<u64>(s.width);
  const auto fail_at = static_cast<u64>(s.fail_at);
  auto items = lumen::stream<u64>(
      lumen::StreamOptions{.max_ahead = s.grain},
      [h, n, fail_at, fault = s.fault, origin = static_cast<u64>(s.index)](lumen::Emitter<u64>& out) {
        for (u64 i = 0; i < n; ++i) {
          if (i == fail_at) throw_fault(fault, origin);
          out.emit(mix(h, i));
        }
      });
  u64 acc = h;
  u64 taken = 0;
  while (auto item = items.next()) {
    acc = mix(acc, lumen::get(*item));
    ++taken;
  }
  if (taken != n) throw Violation("a stream ended after " + std::to_string(taken) + " of " + std::to_string(n) + " items");
  lumen::get(items.task());
  return acc;
}

// The body of a task node. Inputs arrive as values (ObjectRef arguments are dependencies).
struct NodeBody {
  std::shared_ptr<const NodeSpec> spec;
  std::shared_ptr<std::atomic<int>> attempts;  // how often the task ran, for the retry check
  lumen::ActorHandle<Oracle> oracle;

  template <class... V>
  u64 operator()(const V&... inputs) const {
    u64 h = spec->salt;
    ((h = mix(h, inputs)), ...);
    int attempt = attempts->fetch_add(1, std::memory_order_relaxed);
    const NodeSpec& s = *spec;
    switch (s.kind) {
      case NodeKind::faulty:
        throw_fault(s.fault, static_cast<u64>(s.index));
      case NodeKind::retry:
        if (attempt < s.fail_attempts) throw_fault(s.fault, static_cast<u64>(s.index));
        return h;
      case NodeKind::nested:
        return run_nested(s, h);
      case NodeKind::group:
        return run_group(s, h);
      case NodeKind::loop:
        return run_loop(s, h);
      case NodeKind::oracle:
        return lumen::get(oracle.call(&Oracle::apply, h));
      case NodeKind::block:
        return run_block(s, h);
      case NodeKind::stream:
        return run_stream(s, h);
      case NodeKind::blocking:
        return lumen::blocking([h] {
          std::this_thread::sleep_for(std::chrono::microseconds(50));
          return mix(h, 1);
        });
      default:
        return h;
    }
  }
};

// The refs node's body: its dependencies reach it as refs inside a vector, which lumen does
// not wait for, so it runs at once and waits inside; a failed dependency fails it through get.
struct RefsBody {
  std::shared_ptr<const NodeSpec> spec;
  u64 operator()(const std::vector<ObjectRef<u64>>& refs) const {
    if (spec->wait_first && !refs.empty()) {
      lumen::WaitResult<u64> w = lumen::wait(refs, refs.size());
      if (w.ready.size() != refs.size()) throw Violation("wait for every ref returned before all were ready");
    }
    u64 h = spec->salt;
    for (const auto& r : refs) h = mix(h, lumen::get(r));
    return h;
  }
};

std::vector<NodeSpec> make_dag(u64 seed) {
  Rng rng(seed);
  int n = rng.range(3, 32);
  std::vector<NodeSpec> dag(static_cast<std::size_t>(n));
  //                          put plain faulty retry nested group loop refs oracle echo blocking limited block stream
  const std::array<int, 14> weights{8, 18, 4, 12, 10, 9, 10, 7, 7, 7, 2, 6, 6, 6};
  for (int i = 0; i < n; ++i) {
    NodeSpec& s = dag[static_cast<std::size_t>(i)];
    s.index = i;
    s.salt = rng.next();
    s.kind = static_cast<NodeKind>(rng.weighted(weights));
    s.fault = static_cast<Fault>(rng.below(3));
    if (s.kind != NodeKind::put && i > 0) {
      int max_deps = std::min(i, 3);
      int k = rng.range(0, max_deps);
      while (static_cast<int>(s.deps.size()) < k) {
        // Mostly recent nodes, so that chains form and nodes wait on pending work.
        int d = rng.chance(0.7) ? std::max(0, i - 1 - static_cast<int>(rng.below(4)))
                                : static_cast<int>(rng.below(static_cast<u64>(i)));
        if (std::find(s.deps.begin(), s.deps.end(), d) == s.deps.end()) s.deps.push_back(d);
      }
    }
    bool task_node = s.kind != NodeKind::put && s.kind != NodeKind::echo;
    if (task_node && rng.chance(0.3)) s.name = "soak-node-" + std::to_string(i);
    if (task_node && rng.chance(0.1)) s.retries = rng.range(1, 2);
    if (task_node && rng.chance(0.05)) s.timeout_us = rng.range(20, 5000);
    switch (s.kind) {
      case NodeKind::retry:
        s.retries = rng.range(0, 3);
        s.fail_attempts = rng.range(0, 4);
        break;
      case NodeKind::nested:
        s.width = rng.range(1, 6);
        if (rng.chance(0.25)) s.fail_at = rng.range(0, s.width - 1);
        s.catch_child = rng.chance(0.5);
        s.wait_first = rng.chance(0.3);
        break;
      case NodeKind::group:
        s.width = rng.range(1, 12);
        s.cancel = rng.chance(0.4);
        if (!s.cancel && rng.chance(0.2)) s.fail_at = rng.range(0, s.width - 1);
        s.inner_loops = rng.chance(0.3);
        break;
      case NodeKind::loop:
        s.loop_mode = static_cast<LoopMode>(rng.below(6));
        s.width = s.loop_mode == LoopMode::nested ? 64 * rng.range(1, 40) : rng.range(1, 5000);
        s.grain = rng.chance(0.5) ? static_cast<std::size_t>(rng.range(1, 300)) : 0;
        if (s.loop_mode == LoopMode::chunks && s.grain == 0) s.grain = 16;
        if (s.loop_mode != LoopMode::sort && rng.chance(0.15)) s.fail_at = rng.range(0, s.width - 1);
        break;
      case NodeKind::refs:
        s.wait_first = rng.chance(0.5);
        break;
      case NodeKind::limited:
        s.priority = rng.chance(0.5) ? rng.range(1, 5) : 0;
        break;
      case NodeKind::block:
        s.width = rng.range(1000, 8000);  // 8 to 64 KiB
        break;
      case NodeKind::stream:
        s.width = rng.range(0, 300);
        s.grain = static_cast<std::size_t>(rng.range(1, 16));  // max_ahead
        if (s.width > 0 && rng.chance(0.2)) s.fail_at = rng.range(0, s.width - 1);
        break;
      default:
        break;
    }
  }
  return dag;
}

// What the serial model says about one node.
struct Expected {
  enum class Via { value, own_fault, any_failed_dep, first_failed_dep } via = Via::value;
  u64 value = 0;
  Fault fault = Fault::a;
  std::string name;              // own_fault, first_failed_dep: the task name lumen reports
  std::vector<int> failed_deps;  // any_failed_dep: the failure of one of these passes through
  int attempts = -1;             // retry nodes: how often the task must have run
  bool fails() const { return via != Via::value; }
};

std::vector<Expected> evaluate_serially(const std::vector<NodeSpec>& dag) {
  std::vector<Expected> out(dag.size());
  for (const NodeSpec& s : dag) {
    Expected& e = out[static_cast<std::size_t>(s.index)];
    std::vector<int> failed;
    std::vector<u64> inputs;
    for (int d : s.deps) {
      if (out[static_cast<std::size_t>(d)].fails()) {
        failed.push_back(d);
      } else {
        inputs.push_back(out[static_cast<std::size_t>(d)].value);
      }
    }
    if (s.kind == NodeKind::put) {
      e.value = s.salt;
      continue;
    }
    if (!failed.empty()) {
      if (s.kind == NodeKind::refs) {
        // It runs, gets its refs in order and fails with the first failure, under its own name.
        e.via = Expected::Via::first_failed_dep;
        e.failed_deps = {failed.front()};
        e.name = s.name;
      } else {
        // A dependency failed: the node does not run and takes over that failure.
        e.via = Expected::Via::any_failed_dep;
        e.failed_deps = failed;
      }
      if (s.kind == NodeKind::retry) e.attempts = 0;
      continue;
    }
    u64 h = fold_inputs(s.salt, inputs);
    bool own_fault = false;
    switch (s.kind) {
      case NodeKind::faulty:
        own_fault = true;
        break;
      case NodeKind::retry:
        own_fault = s.fail_attempts > s.retries;
        e.attempts = std::min(s.fail_attempts, s.retries) + 1;
        break;
      case NodeKind::nested:
        own_fault = s.fail_at >= 0 && !s.catch_child;
        break;
      case NodeKind::group:
      case NodeKind::loop:
      case NodeKind::stream:
        own_fault = s.fail_at >= 0;
        break;
      default:
        break;
    }
    if (own_fault) {
      e.via = Expected::Via::own_fault;
      e.fault = s.fault;
      e.name = s.name;
    } else {
      e.value = serial_node_value(s, h);
    }
  }
  return out;
}

// ---- the soak ------------------------------------------------------------------------------

struct Options {
  double seconds = 60;
  unsigned threads = 4;
  unsigned workers = 0;
  u64 seed = 1;
  double hang_seconds = 30;
  double report_seconds = 5;
  std::size_t memory_limit = 1u << 20;  // of the long-lived runtime; 0: none
  std::string spill_directory;
};

lumen::Config runtime_config(unsigned workers) {
  lumen::Config c;
  c.workers = workers;
  c.resources = {{"soak_slots", 2}};
  return c;
}

// The long-lived runtime also sets the object memory limit (one runtime may), spilling put
// blocks that cannot be rebuilt.
lumen::Config base_config(const Options& o, unsigned workers) {
  lumen::Config c = runtime_config(workers);
  c.object_memory_limit = o.memory_limit;
  if (o.memory_limit != 0) c.spill_directory = o.spill_directory;
  return c;
}

class Soak {
 public:
  explicit Soak(const Options& o)
      : opt(o),
        workers(o.workers != 0 ? o.workers : std::max(2u, std::thread::hardware_concurrency())),
        base(std::make_unique<lumen::Runtime>(base_config(o, workers))),
        activities(o.threads + 1) {}

  const Options opt;
  const unsigned workers;
  const Clock::time_point start = Clock::now();

  // Created first and destroyed last: in scope whenever no churned runtime is, so submitters
  // always have somewhere to go. Guarded by churn_mutex (for the watchdog) only at its end.
  std::unique_ptr<lumen::Runtime> base;

  // Shared actors, all on `base`, so that they live through the churn.
  lumen::ActorHandle<Oracle> oracle;
  lumen::ActorHandle<Echo> echo;
  lumen::ActorHandle<Ledger> ledger;
  lumen::ActorHandle<Tally> tally;
  TicketSums ledger_tickets, tally_tickets;
  std::mutex turnstile_mutex;
  std::shared_ptr<TurnstileRecord> turnstile;                // the one callers use now
  std::vector<std::shared_ptr<TurnstileRecord>> turnstiles;  // every one, for the final check

  // The runtime the main thread replaces; guarded so that the watchdog can read its stats.
  std::mutex churn_mutex;
  std::unique_ptr<lumen::Runtime> churned;
  u64 churned_number = 0;
  std::atomic<Clock::rep> teardown_since{0};  // 0: no runtime is being destroyed
  std::atomic<u64> teardown_number{0};
  // Odd while the runtime in scope may be changing (a runtime is being created or destroyed):
  // a check that needs the scope steady reads it before and after, and wants the same even value.
  std::atomic<u64> scope_changes{0};

  std::atomic<bool> stop{false};      // submitters finish their current action and return
  std::atomic<bool> finished{false};  // the watchdog's last round

  std::atomic<u64> dags{0}, nodes{0}, actor_calls{0}, fork_joins{0}, sessions{0};
  std::atomic<u64> cancels_won{0}, cancels_lost{0}, timeouts{0};
  std::atomic<u64> wrong{0}, lost{0}, refused{0};
  std::atomic<u64> runtimes{0}, slowest_teardown_us{0};
  std::atomic<u64> progress{0};
  std::atomic<double> rss_warm{0}, rss_end{0};

  std::vector<Activity> activities;  // one per submitter, then the main thread

  Clock::duration result_timeout() const {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.hang_seconds));
  }

  // Waits for a result as observe() does, telling the watchdog what it waits for.
  Outcome await(Activity& activity, ObjectRef<u64>& ref, bool take, int node = -1, int kind = -1) {
    activity.set(Step::waiting, true, node, kind);
    Outcome o = observe(ref, result_timeout(), take);
    if (o.kind != Kind::lost) progress.fetch_add(1, std::memory_order_relaxed);
    return o;
  }

  void report_wrong(const std::string& what) { note(wrong, "WRONG", what); }
  void report_lost(const std::string& what) { note(lost, "LOST", what); }

  void print_line(const std::string& line) {
    std::lock_guard<std::mutex> lock(print_mutex_);
    std::fprintf(stderr, "%s\n", line.c_str());
  }

 private:
  void note(std::atomic<u64>& counter, const char* tag, const std::string& what) {
    // The first few tell what broke; thousands more would only bury them.
    if (counter.fetch_add(1) < 20) print_line(std::string("lumen-soak: ") + tag + ": " + what);
  }
  std::mutex print_mutex_;
};

// Calls submit until the runtime in scope takes it: a runtime that is shutting down refuses
// work from outside with shutdown_error, and the next one in scope will take it.
template <class F>
auto until_accepted(Soak& soak, F&& submit) {
  for (;;) {
    try {
      return submit();
    } catch (const lumen::shutdown_error&) {
      soak.refused.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
}

template <class F>
ObjectRef<u64> with_deps(const std::vector<ObjectRef<u64>>& d, F&& submit) {
  switch (d.size()) {
    case 0:
      return submit();
    case 1:
      return submit(d[0]);
    case 2:
      return submit(d[0], d[1]);
    default:
      return submit(d[0], d[1], d[2]);
  }
}

ObjectRef<u64> submit_node(Soak& soak, const std::shared_ptr<const NodeSpec>& spec,
                           const std::shared_ptr<std::atomic<int>>& attempts, const std::vector<ObjectRef<u64>>& deps,
                           bool plain_submit) {
  const NodeSpec& s = *spec;
  switch (s.kind) {
    case NodeKind::put:
      return lumen::put(u64{s.salt});
    case NodeKind::echo:
      return with_deps(deps, [&](const auto&... d) {
        constexpr std::size_t n = sizeof...(d);
        if constexpr (n == 0) {
          return soak.echo.call(&Echo::apply0, s.salt);
        } else if constexpr (n == 1) {
          return soak.echo.call(&Echo::apply1, s.salt, d...);
        } else if constexpr (n == 2) {
          return soak.echo.call(&Echo::apply2, s.salt, d...);
        } else {
          return soak.echo.call(&Echo::apply3, s.salt, d...);
        }
      });
    case NodeKind::refs: {
      auto builder = lumen::task(RefsBody{spec});
      if (!s.name.empty()) builder.name(s.name);
      builder.retries(s.retries);
      return builder.submit(deps);
    }
    default:
      break;
  }
  NodeBody body{spec, attempts, soak.oracle};
  if (plain_submit && s.name.empty() && s.retries == 0 && s.kind != NodeKind::limited)
    return with_deps(deps, [&](const auto&... d) { return lumen::submit(body, d...); });
  auto builder = lumen::task(std::move(body));
  if (!s.name.empty()) builder.name(s.name);
  builder.retries(s.retries);
  if (s.timeout_us > 0) builder.timeout(std::chrono::microseconds(s.timeout_us));
  if (s.kind == NodeKind::limited) builder.resources({{"soak_slots", 1}}).priority(s.priority);
  return with_deps(deps, [&](const auto&... d) { return builder.submit(d...); });
}

// Whether node i's outcome is one the model allows, given what its dependencies turned out to be.
bool matches(const Outcome& o, const Expected& e, const std::vector<Outcome>& seen, std::size_t i) {
  switch (e.via) {
    case Expected::Via::value:
      return o.kind == Kind::value && o.value == e.value;
    case Expected::Via::own_fault:
      return o.kind == kind_of(e.fault) && o.value == i && o.task_name == e.name;
    case Expected::Via::first_failed_dep: {
      Outcome dep = seen[static_cast<std::size_t>(e.failed_deps.front())];
      dep.task_name = e.name;
      return same_failure(o, dep);
    }
    case Expected::Via::any_failed_dep:
      break;
  }
  for (int d : e.failed_deps) {
    if (same_failure(o, seen[static_cast<std::size_t>(d)])) return true;
  }
  return false;
}

std::string describe(const Expected& e, const std::vector<Outcome>& seen, std::size_t i) {
  switch (e.via) {
    case Expected::Via::value:
      return "value " + hex(e.value);
    case Expected::Via::own_fault:
      return describe(Outcome{kind_of(e.fault), i, e.name, {}});
    case Expected::Via::first_failed_dep: {
      Outcome dep = seen[static_cast<std::size_t>(e.failed_deps.front())];
      dep.task_name = e.name;
      return "the failure of node " + std::to_string(e.failed_deps.front()) + " under its own name, " + describe(dep);
    }
    case Expected::Via::any_failed_dep:
      break;
  }
  std::string want = "the failure of one of nodes";
  for (int d : e.failed_deps) {
    want += ' ';
    want += std::to_string(d) + " (" + describe(seen[static_cast<std::size_t>(d)]) + ")";
  }
  return want;
}

void run_dag(Soak& soak, Activity& activity, u64 seed) {
  activity.dag_seed.store(seed, std::memory_order_relaxed);
  std::vector<NodeSpec> dag = make_dag(seed);
  std::vector<Expected> expected = evaluate_serially(dag);
  Rng rng(mix(seed, 0xc4ec));
  std::size_t n = dag.size();

  std::vector<ObjectRef<u64>> refs(n);
  std::vector<std::shared_ptr<std::atomic<int>>> attempts(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto spec = std::make_shared<const NodeSpec>(dag[i]);
    attempts[i] = std::make_shared<std::atomic<int>>(0);
    std::vector<ObjectRef<u64>> deps;
    for (int d : spec->deps) deps.push_back(refs[static_cast<std::size_t>(d)]);
    bool plain = rng.chance(0.5);
    activity.set(Step::submitting, false, static_cast<int>(i), static_cast<int>(spec->kind));
    refs[i] = until_accepted(soak, [&] { return submit_node(soak, spec, attempts[i], deps, plain); });
  }

  // Sometimes cancel a node, or one chain of work: the node fails with cancelled_error unless
  // it had finished, and what depends on it may fail with that.
  std::vector<char> cancelled(n, 0);
  if (n > 0 && rng.chance(0.15)) {
    const std::size_t c = rng.below(n);
    activity.set(Step::submitting, false, static_cast<int>(c), static_cast<int>(dag[c].kind));
    if (lumen::cancel(refs[c], {.recursive = rng.chance(0.5)})) {
      cancelled[c] = 1;
      soak.cancels_won.fetch_add(1, std::memory_order_relaxed);
    } else {
      soak.cancels_lost.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // Sometimes look at what is ready first, as ray.wait users do.
  if (rng.chance(0.3)) {
    lumen::WaitResult<u64> w = lumen::wait(refs, (n + 1) / 2, std::chrono::milliseconds(1));
    if (w.ready.size() > (n + 1) / 2) soak.report_wrong("wait returned more ready refs than asked for");
    for (const auto& r : w.ready) {
      if (!r.ready()) soak.report_wrong("wait put a pending ref among the ready ones");
    }
  }

  // Observe in a random order, letting go of each ref right after: objects are freed while
  // tasks that depend on them may still be queued.
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  std::vector<Outcome> seen(n);
  for (std::size_t i : order) {
    seen[i] = soak.await(activity, refs[i], rng.chance(0.3), static_cast<int>(i), static_cast<int>(dag[i].kind));
    refs[i].reset();
  }

  auto where = [&](std::size_t i) {
    return "dag " + hex(seed) + " node " + std::to_string(i) + " (" + kNodeKindNames[static_cast<int>(dag[i].kind)] +
           ")";
  };
  // Nodes downstream of a cancelled one, or of one that timed out, may fail with its error.
  std::vector<char> tainted(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    tainted[i] = cancelled[i] != 0 || (dag[i].timeout_us > 0 && seen[i].kind == Kind::timed_out);
    for (int d : dag[i].deps) tainted[i] = tainted[i] || tainted[static_cast<std::size_t>(d)];
  }
  for (std::size_t i = 0; i < n; ++i) {
    const Outcome& o = seen[i];
    const Expected& e = expected[i];
    soak.nodes.fetch_add(1, std::memory_order_relaxed);
    if (o.kind == Kind::lost) {
      soak.report_lost(where(i) + " never resolved");
      continue;
    }
    if (o.kind == Kind::timed_out) soak.timeouts.fetch_add(1, std::memory_order_relaxed);
    if (cancelled[i] != 0) {
      if (o.kind != Kind::cancelled) soak.report_wrong(where(i) + ": cancelled, but got " + describe(o));
      continue;
    }
    if (tainted[i] != 0) {
      if (o.kind != Kind::cancelled && o.kind != Kind::timed_out && !matches(o, e, seen, i))
        soak.report_wrong(where(i) + ": got " + describe(o) + ", want " + describe(e, seen, i) +
                          " or the error of what it depends on");
      continue;
    }
    if (!matches(o, e, seen, i))
      soak.report_wrong(where(i) + ": got " + describe(o) + ", want " + describe(e, seen, i));
    if (e.attempts >= 0) {
      int ran = attempts[i]->load(std::memory_order_relaxed);
      if (ran != e.attempts)
        soak.report_wrong(where(i) + ": ran " + std::to_string(ran) + " times, want " + std::to_string(e.attempts));
    }
  }
  soak.dags.fetch_add(1, std::memory_order_relaxed);
}

// ---- actor workloads -----------------------------------------------------------------------

// One private actor, driven by a script of calls (plain, faulting, exit_actor) and kills; its
// results are checked against what any order of its restarts allows.
void run_phoenix_session(Soak& soak, Activity& activity, int thread, u64 seed, u64 number) {
  Rng rng(seed);
  activity.set(Step::session, false);
  lumen::ActorOptions options;
  options.max_restarts = rng.pick(std::array<int, 4>{0, 1, 3, -1});
  options.max_task_retries = rng.pick(std::array<int, 3>{0, 1, -1});
  if (rng.chance(0.3)) options.name = "soak-phoenix-" + std::to_string(thread) + "-" + std::to_string(number);
  std::string where = "phoenix session " + hex(seed);

  u64 scope_before = soak.scope_changes.load();
  u64 teardowns_before = soak.teardown_number.load();
  auto torn_down_since = [&] {
    return soak.teardown_number.load() != teardowns_before || soak.teardown_since.load() != 0;
  };

  lumen::ActorHandle<Phoenix> actor;
  try {
    actor = lumen::actor<Phoenix>(options);
  } catch (const lumen::shutdown_error&) {
    soak.refused.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (!options.name.empty()) {
    try {
      std::optional<lumen::ActorHandle<Phoenix>> found = lumen::get_actor<Phoenix>(options.name);
      bool scope_steady = scope_before % 2 == 0 && soak.scope_changes.load() == scope_before;
      if (found && !(*found == actor)) soak.report_wrong(where + ": get_actor found another actor by its name");
      if (!found && scope_steady) soak.report_wrong(where + ": get_actor did not find the actor just created");
      if (found && rng.chance(0.5)) actor = *found;
    } catch (const lumen::shutdown_error&) {
      soak.refused.fetch_add(1, std::memory_order_relaxed);
    }
  }

  struct Call {
    u64 op;
    ObjectRef<u64> ref;
    bool after_kill;  // issued after kill(no_restart = true)
    Outcome outcome;
    bool observed = false;
  };
  std::vector<Call> calls;
  int ends = 0;
  bool killed = false;
  int length = rng.range(4, 40);
  for (int k = 0; k < length; ++k) {
    std::size_t event = rng.weighted(std::array<int, 5>{70, 8, 5, 8, 3});
    if (event == 3 || event == 4) {
      // kill() too is refused while the actor's runtime drains (only call() documents it).
      try {
        actor.kill(event == 4);
      } catch (const lumen::shutdown_error&) {
        soak.refused.fetch_add(1, std::memory_order_relaxed);
        if (!torn_down_since()) soak.report_wrong(where + ": kill() was refused though no runtime shut down");
        break;
      }
      if (event == 3) ++ends;
      if (event == 4) {
        killed = true;
        if (!actor.dead()) soak.report_wrong(where + ": not dead() right after kill()");
      }
      continue;
    }
    u64 op = (static_cast<u64>(k) << 2) | (event == 1 ? fault_op : event == 2 ? exit_op : step_op);
    try {
      calls.push_back(Call{op, actor.call(&Phoenix::step, op), killed, {}});
    } catch (const lumen::shutdown_error&) {
      soak.refused.fetch_add(1, std::memory_order_relaxed);
      if (!torn_down_since()) soak.report_wrong(where + ": a call was refused though no runtime shut down");
      break;
    }
    if (event == 2) ++ends;
    if (rng.chance(0.3)) {
      Call& c = calls.back();
      c.outcome = soak.await(activity, c.ref, false);
      c.observed = true;
    }
    activity.set(Step::session, false);
  }
  for (Call& c : calls) {
    if (!c.observed) c.outcome = soak.await(activity, c.ref, rng.chance(0.3));
  }

  // In the order of the calls: values count up within an instance; a rebuilt instance starts
  // again from 1 with actor_restarted() true. A call may run on an instance rebuilt after a
  // kill issued later (it was still pending and got replayed), so rebuilds are bounded only
  // by the session's kills and exits, and by max_restarts.
  bool may_die = ends > 0 || killed || torn_down_since();
  bool current_rebuilt = false;
  u64 last = 0;
  int rebuilds = 0;
  for (const Call& c : calls) {
    const Outcome& o = c.outcome;
    std::string at = where + " call " + std::to_string(c.op >> 2);
    soak.actor_calls.fetch_add(1, std::memory_order_relaxed);
    if (o.kind == Kind::lost) {
      soak.report_lost(at + " never resolved");
      continue;
    }
    u64 kind = c.op & 3;
    if (c.after_kill && o.kind != Kind::actor_died) {
      soak.report_wrong(at + ": issued after kill() but got " + describe(o));
      continue;
    }
    switch (o.kind) {
      case Kind::value: {
        u64 served = o.value & ~kRestartedBit;
        bool rebuilt = (o.value & kRestartedBit) != 0;
        if (kind != step_op) {
          soak.report_wrong(at + ": a faulting or exiting call returned " + describe(o));
        } else if (served == last + 1 && rebuilt == current_rebuilt) {
          last = served;
        } else if (served == 1 && rebuilt) {
          ++rebuilds;
          current_rebuilt = true;
          last = 1;
          if (rebuilds > ends || (options.max_restarts >= 0 && rebuilds > options.max_restarts))
            soak.report_wrong(at + ": rebuilt instance " + std::to_string(rebuilds) + " with " + std::to_string(ends) +
                              " kills/exits in the session, max_restarts " + std::to_string(options.max_restarts));
        } else {
          soak.report_wrong(at + ": served " + std::to_string(served) + (rebuilt ? " (rebuilt)" : "") + " after " +
                            std::to_string(last) + (current_rebuilt ? " (rebuilt)" : ""));
          last = served;  // one slip, one report
          current_rebuilt = rebuilt;
        }
        break;
      }
      case Kind::fault_b:
        if (kind != fault_op || o.value != c.op) soak.report_wrong(at + ": got " + describe(o));
        break;
      case Kind::actor_died:
        if (kind != exit_op && !may_die)
          soak.report_wrong(at + ": actor_died though nothing ended the actor: " + o.what);
        break;
      default:
        soak.report_wrong(at + ": got " + describe(o));
        break;
    }
  }
  // A named actor lives until it is killed or its runtime ends, as in Ray: the session is
  // done with it, so it goes (else the long-lived runtime would collect them by the thousand).
  if (!options.name.empty() && !killed) {
    try {
      actor.kill();
    } catch (const lumen::shutdown_error&) {
      soak.refused.fetch_add(1, std::memory_order_relaxed);
    }
  }
  soak.sessions.fetch_add(1, std::memory_order_relaxed);
}

// Calls from this thread to the ledger are served in order, so its tickets count up.
void run_ledger_batch(Soak& soak, Activity& activity, Rng& rng, u64& last_ticket) {
  activity.set(Step::batch, true);
  std::vector<ObjectRef<u64>> refs;
  int n = rng.range(1, 32);
  for (int i = 0; i < n; ++i) refs.push_back(soak.ledger.call(&Ledger::take));
  for (auto& r : refs) {
    Outcome o = soak.await(activity, r, rng.chance(0.3));
    soak.actor_calls.fetch_add(1, std::memory_order_relaxed);
    if (o.kind == Kind::lost) {
      soak.report_lost("a ledger call never resolved");
      continue;
    }
    if (o.kind != Kind::value) {
      soak.report_wrong("a ledger call (unlimited restarts and replays) got " + describe(o));
      continue;
    }
    if (o.value <= last_ticket)
      soak.report_wrong("ledger ticket " + std::to_string(o.value) + " after " + std::to_string(last_ticket) +
                        " from the same thread");
    last_ticket = o.value;
    soak.ledger_tickets.add(o.value);
  }
}

void run_tally_batch(Soak& soak, Activity& activity, Rng& rng) {
  activity.set(Step::batch, true);
  std::vector<ObjectRef<u64>> refs;
  int n = rng.range(1, 32);
  for (int i = 0; i < n; ++i) refs.push_back(soak.tally.call(&Tally::bump, rng.next()));
  for (auto& r : refs) {
    Outcome o = soak.await(activity, r, false);
    soak.actor_calls.fetch_add(1, std::memory_order_relaxed);
    if (o.kind == Kind::lost) {
      soak.report_lost("a tally call never resolved");
      continue;
    }
    if (o.kind != Kind::value) {
      soak.report_wrong("a tally call got " + describe(o));
      continue;
    }
    soak.tally_tickets.add(o.value);
  }
}

// The turnstile may be killed (for good) or lose its runtime at any moment: each call either
// passes with a ticket that counts up, or fails with actor_died, and never passes after a
// call of the same thread failed.
void run_turnstile_batch(Soak& soak, Activity& activity, Rng& rng) {
  activity.set(Step::batch, true);
  std::shared_ptr<TurnstileRecord> record;
  lumen::ActorHandle<Turnstile> handle;
  {
    std::lock_guard<std::mutex> lock(soak.turnstile_mutex);
    record = soak.turnstile;
  }
  if (!record) return;
  {
    std::lock_guard<std::mutex> lock(record->m);
    handle = record->handle;
  }
  if (!handle) return;
  std::vector<ObjectRef<u64>> refs;
  int n = rng.range(1, 32);
  try {
    for (int i = 0; i < n; ++i) refs.push_back(handle.call(&Turnstile::pass));
  } catch (const lumen::shutdown_error&) {
    soak.refused.fetch_add(1, std::memory_order_relaxed);
  }
  u64 last = 0;
  bool died = false;
  for (auto& r : refs) {
    Outcome o = soak.await(activity, r, false);
    soak.actor_calls.fetch_add(1, std::memory_order_relaxed);
    if (o.kind == Kind::lost) {
      soak.report_lost("a turnstile call never resolved");
      continue;
    }
    if (o.kind == Kind::actor_died) {
      died = true;
    } else if (o.kind != Kind::value) {
      soak.report_wrong("a turnstile call got " + describe(o));
    } else if (died) {
      soak.report_wrong("a turnstile call passed after an earlier call of the same thread failed with actor_died");
    } else if (o.value <= last) {
      soak.report_wrong("turnstile ticket " + std::to_string(o.value) + " after " + std::to_string(last));
    } else {
      last = o.value;
      record->tickets.add(o.value);
      std::lock_guard<std::mutex> lock(record->m);
      record->most = std::max(record->most, o.value);
    }
  }
}

// ---- fork-join from a thread that is not a worker -----------------------------------------

void run_outside_fork_join(Soak& soak, Activity& activity, u64 seed) {
  activity.set(Step::outside, false);
  Rng rng(seed);
  NodeSpec s;
  s.index = 1000 + static_cast<int>(rng.below(1000));
  s.fault = static_cast<Fault>(rng.below(3));
  u64 h = rng.next();
  switch (rng.below(3)) {
    case 0:
      s.kind = NodeKind::nested;
      s.width = rng.range(1, 8);
      if (rng.chance(0.2)) s.fail_at = rng.range(0, s.width - 1);
      s.catch_child = rng.chance(0.5);
      s.wait_first = rng.chance(0.3);
      break;
    case 1:
      s.kind = NodeKind::group;
      s.width = rng.range(1, 16);
      s.cancel = rng.chance(0.5);
      if (!s.cancel && rng.chance(0.2)) s.fail_at = rng.range(0, s.width - 1);
      s.inner_loops = rng.chance(0.3);
      break;
    default:
      s.kind = NodeKind::loop;
      s.loop_mode = static_cast<LoopMode>(rng.below(6));
      s.width = s.loop_mode == LoopMode::nested ? 64 * rng.range(1, 40) : rng.range(1, 20000);
      s.grain = rng.chance(0.5) ? static_cast<std::size_t>(rng.range(1, 500)) : 0;
      if (s.loop_mode == LoopMode::chunks && s.grain == 0) s.grain = 64;
      if (s.loop_mode != LoopMode::sort && rng.chance(0.15)) s.fail_at = rng.range(0, s.width - 1);
      break;
  }
  bool fails = s.fail_at >= 0 && !(s.kind == NodeKind::nested && s.catch_child);
  Outcome o;
  try {
    switch (s.kind) {
      case NodeKind::nested:
        o.value = run_nested(s, h);
        break;
      case NodeKind::group:
        o.value = run_group(s, h);
        break;
      default:
        o.value = run_loop(s, h);
        break;
    }
    o.kind = Kind::value;
  } catch (...) {
    o = classify(std::current_exception());
  }
  soak.progress.fetch_add(1, std::memory_order_relaxed);
  if (o.kind == Kind::shutdown) {
    soak.refused.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  soak.fork_joins.fetch_add(1, std::memory_order_relaxed);
  Outcome want = fails ? Outcome{kind_of(s.fault), static_cast<u64>(s.index), {}, {}}
                       : Outcome{Kind::value, serial_node_value(s, h), {}, {}};
  if (o.kind != want.kind || o.value != want.value)
    soak.report_wrong("fork-join from outside " + hex(seed) + " (" + kNodeKindNames[static_cast<int>(s.kind)] +
                      "): got " + describe(o) + ", want " + describe(want));
}

// ---- threads -------------------------------------------------------------------------------

void submit_until_stopped(Soak& soak, int thread) {
  Activity& activity = soak.activities[static_cast<std::size_t>(thread)];
  Rng rng(mix(soak.opt.seed, 0x5eed0000 + static_cast<u64>(thread)));
  u64 last_ledger_ticket = 0;
  for (u64 k = 0; !soak.stop.load(std::memory_order_relaxed); ++k) {
    u64 seed = rng.next();
    //                                          dag phoenix ledger tally turnstile outside
    switch (rng.weighted(std::array<int, 6>{56, 12, 10, 6, 8, 8})) {
      case 0:
        run_dag(soak, activity, seed);
        break;
      case 1:
        run_phoenix_session(soak, activity, thread, seed, k);
        break;
      case 2:
        run_ledger_batch(soak, activity, rng, last_ledger_ticket);
        break;
      case 3:
        run_tally_batch(soak, activity, rng);
        break;
      case 4:
        run_turnstile_batch(soak, activity, rng);
        break;
      default:
        run_outside_fork_join(soak, activity, seed);
        break;
    }
  }
  activity.set(Step::done, false);
}

// Checks and lets go of retired turnstiles that no thread uses any more, so that the soak's
// own records do not grow its memory over hours (the end checks the rest). Holds
// soak.turnstile_mutex.
void check_retired_turnstiles(Soak& soak) {
  auto& all = soak.turnstiles;
  for (auto it = all.begin(); it != all.end();) {
    TurnstileRecord& record = **it;
    bool unused = it->use_count() == 1 && it->get() != soak.turnstile.get();
    if (unused) {
      std::lock_guard<std::mutex> lock(record.m);  // orders the last user's updates before the check
      unused = !record.handle;
      if (unused) {
        if (std::string m = record.tickets.mismatch(record.most); !m.empty()) soak.report_wrong("turnstile: " + m);
      }
    }
    it = unused ? all.erase(it) : std::next(it);
  }
}

// Kills the shared actors under their callers (they restart) and replaces the turnstile
// (killed for good) on whatever runtime is in scope.
void make_chaos(Soak& soak) {
  Rng rng(mix(soak.opt.seed, 0xc4a05));
  while (!soak.stop.load(std::memory_order_relaxed)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(rng.range(2, 30)));
    if (rng.chance(0.3)) soak.oracle.kill(false);
    if (rng.chance(0.2)) soak.echo.kill(false);
    if (rng.chance(0.2)) soak.ledger.kill(false);
    if (rng.chance(0.1)) {
      auto next = std::make_shared<TurnstileRecord>();
      try {
        next->handle = lumen::actor<Turnstile>();
      } catch (const lumen::shutdown_error&) {
        soak.refused.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      std::shared_ptr<TurnstileRecord> old;
      {
        std::lock_guard<std::mutex> lock(soak.turnstile_mutex);
        old = std::exchange(soak.turnstile, next);
        check_retired_turnstiles(soak);
        soak.turnstiles.push_back(next);
      }
      if (old) {
        std::lock_guard<std::mutex> lock(old->m);
        try {
          old->handle.kill();
        } catch (const lumen::shutdown_error&) {
          soak.refused.fetch_add(1, std::memory_order_relaxed);  // its runtime is draining
        }
        old->handle = {};
      }
    }
  }
}

std::string describe(const lumen::Stats& s) {
  std::string queues;
  for (std::size_t q : s.queue_lengths) {
    if (!queues.empty()) queues += ',';
    queues += std::to_string(q);
  }
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "workers %u, tasks run %" PRIu64 ", pending %" PRIu64 ", steals %" PRIu64 ", parks %" PRIu64
                ", fibers %" PRIu64 " (pooled %" PRIu64 "), objects %" PRIu64 " (%" PRIu64
                " bytes), queues [%s], injection %s, blocking threads %zu, actors %" PRIu64 ", calls queued %" PRIu64
                ", calls run %" PRIu64,
                s.workers, s.tasks_run, s.tasks_pending, s.steals, s.parks, s.fibers_created, s.fibers_pooled,
                s.objects_live, s.object_bytes, queues.c_str(), s.injection_queued ? "queued" : "empty",
                s.blocking_threads, s.actors_alive, s.actor_calls_queued, s.actor_calls_executed);
  return buf;
}

std::string summary(Soak& soak, int hangs) {
  double rss_end = soak.rss_end.load();
  char buf[768];
  std::snprintf(buf, sizeof buf,
                "lumen-soak summary: seconds %.0f, seed %" PRIu64 ", threads %u, workers %u: dags %" PRIu64
                ", nodes checked %" PRIu64 ", actor calls checked %" PRIu64 ", fork-joins %" PRIu64
                ", actor sessions %" PRIu64 ", cancels %" PRIu64 " (%" PRIu64 " too late), timeouts %" PRIu64
                ", wrong %" PRIu64 ", lost %" PRIu64 ", hangs %d, submits refused %" PRIu64
                ", runtimes torn down %" PRIu64 " (slowest %.1f ms), RSS %.1f MiB after warm-up, %.1f MiB at the end",
                seconds_since(soak.start), soak.opt.seed, soak.opt.threads, soak.workers, soak.dags.load(),
                soak.nodes.load(), soak.actor_calls.load(), soak.fork_joins.load(), soak.sessions.load(),
                soak.cancels_won.load() + soak.cancels_lost.load(), soak.cancels_lost.load(), soak.timeouts.load(),
                soak.wrong.load(), soak.lost.load(), hangs, soak.refused.load(), soak.runtimes.load(),
                static_cast<double>(soak.slowest_teardown_us.load()) / 1000.0, soak.rss_warm.load(),
                rss_end != 0 ? rss_end : rss_mib());
  return buf;
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

double seconds_since_rep(Clock::rep since) {
  return std::chrono::duration<double>(Clock::now().time_since_epoch() - Clock::duration(since)).count();
}

[[noreturn]] void report_hang(Soak& soak, const std::string& why) {
  std::string out = "lumen-soak: HANG: " + why + "\nin flight:\n";
  for (std::size_t t = 0; t < soak.activities.size(); ++t) {
    const Activity& a = soak.activities[t];
    std::string who = t + 1 == soak.activities.size() ? "main" : "thread " + std::to_string(t);
    out += "  " + who + ": " + kStepNames[static_cast<int>(a.step.load())];
    if (int node = a.node.load(); node >= 0)
      out += " node " + std::to_string(node) + " (" + kNodeKindNames[a.node_kind.load()] + ") of dag " +
             hex(a.dag_seed.load());
    out += ", for " + seconds_text(a.seconds()) + "\n";
  }
  if (Clock::rep since = soak.teardown_since.load(); since != 0)
    out += "  runtime " + std::to_string(soak.teardown_number.load()) + " is being destroyed, for " +
           seconds_text(seconds_since_rep(since)) + "\n";
  {
    std::lock_guard<std::mutex> lock(soak.churn_mutex);
    if (soak.base) out += "  base runtime: " + describe(soak.base->stats()) + "\n";
    if (soak.churned)
      out += "  runtime " + std::to_string(soak.churned_number) + ": " + describe(soak.churned->stats()) + "\n";
  }
  soak.print_line(out + summary(soak, 1));
  std::fflush(stderr);
  std::abort();
}

// Prints RSS and totals every few seconds; aborts when nothing progresses.
void watch(Soak& soak) {
  double hang = soak.opt.hang_seconds;
  double warm_up_at = std::min(10.0, soak.opt.seconds / 4);
  u64 last_progress = soak.progress.load();
  auto last_progress_at = Clock::now();
  double next_report = soak.opt.report_seconds;
  while (!soak.finished.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (u64 p = soak.progress.load(); p != last_progress) {
      last_progress = p;
      last_progress_at = Clock::now();
    }
    if (seconds_since(last_progress_at) > hang) report_hang(soak, "no result for " + seconds_text(hang));
    if (Clock::rep since = soak.teardown_since.load(); since != 0 && seconds_since_rep(since) > hang)
      report_hang(soak, "a Runtime's destructor has not returned for " + seconds_text(hang));
    for (std::size_t t = 0; t < soak.activities.size(); ++t) {
      const Activity& a = soak.activities[t];
      Step step = a.step.load();
      if (step == Step::idle || step == Step::done) continue;
      // A wait with a timeout of its own reports a lost result when it runs out; give it time to.
      double limit = a.timed.load() ? 2 * hang : hang;
      if (a.seconds() > limit)
        report_hang(soak, (t + 1 == soak.activities.size() ? std::string("main") : "thread " + std::to_string(t)) +
                              " is stuck");
    }
    double t = seconds_since(soak.start);
    if (soak.rss_warm.load() == 0 && t >= warm_up_at) soak.rss_warm.store(rss_mib());
    if (t >= next_report) {
      next_report += soak.opt.report_seconds;
      // The object table is shared by all runtimes: the base runtime's view covers them all.
      const lumen::Stats base = soak.base != nullptr ? soak.base->stats() : lumen::Stats{};
      char line[320];
      std::snprintf(line, sizeof line,
                    "lumen-soak: %5.0f s  dags %" PRIu64 "  nodes %" PRIu64 "  actor calls %" PRIu64 "  wrong %" PRIu64
                    "  lost %" PRIu64 "  refused %" PRIu64 "  runtimes %" PRIu64 "  objects %" PRIu64
                    " (table %.1f MiB)  actors %" PRIu64 "  RSS %.1f MiB",
                    t, soak.dags.load(), soak.nodes.load(), soak.actor_calls.load(), soak.wrong.load(),
                    soak.lost.load(), soak.refused.load(), soak.runtimes.load(), base.objects_live,
                    static_cast<double>(base.object_table_bytes) / (1024.0 * 1024.0), base.actors_alive, rss_mib());
      soak.print_line(line);
    }
  }
}

// Destroys rt while the submitters keep going, and tells the watchdog for how long.
void tear_down(Soak& soak, std::unique_ptr<lumen::Runtime> rt, u64 number) {
  if (!rt) return;
  soak.activities.back().set(Step::destroying_runtime, false);
  soak.teardown_number.store(number);
  auto t0 = Clock::now();
  soak.teardown_since.store(t0.time_since_epoch().count());
  soak.scope_changes.fetch_add(1);
  rt.reset();
  soak.scope_changes.fetch_add(1);
  soak.teardown_since.store(0);
  auto us = static_cast<u64>(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
  u64 slowest = soak.slowest_teardown_us.load();
  while (us > slowest && !soak.slowest_teardown_us.compare_exchange_weak(slowest, us)) {
  }
  soak.runtimes.fetch_add(1);
  soak.progress.fetch_add(1);
}

// The main thread: replaces the churned runtime every few hundred milliseconds while the
// submitters keep using whatever is in scope. The next runtime either starts before the old
// one is destroyed (so runtimes end out of creation order) or after (base is in scope between).
void churn_runtimes(Soak& soak) {
  Activity& activity = soak.activities.back();
  Rng rng(mix(soak.opt.seed, 0xc4a2));
  u64 created = 0;
  // Makes a new runtime the one in scope; returns the one it replaces.
  auto replace = [&]() -> std::pair<std::unique_ptr<lumen::Runtime>, u64> {
    activity.set(Step::creating_runtime, false);
    soak.scope_changes.fetch_add(1);
    auto rt = std::make_unique<lumen::Runtime>(
        runtime_config(static_cast<unsigned>(rng.range(1, static_cast<int>(soak.workers)))));
    soak.scope_changes.fetch_add(1);
    std::lock_guard<std::mutex> lock(soak.churn_mutex);
    return {std::exchange(soak.churned, std::move(rt)), std::exchange(soak.churned_number, ++created)};
  };
  auto take = [&]() -> std::pair<std::unique_ptr<lumen::Runtime>, u64> {
    std::lock_guard<std::mutex> lock(soak.churn_mutex);
    return {std::move(soak.churned), soak.churned_number};
  };
  auto pause = [&](int ms) {
    activity.set(Step::idle, false);
    auto until = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < until && seconds_since(soak.start) < soak.opt.seconds)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  };

  replace();
  while (seconds_since(soak.start) < soak.opt.seconds) {
    pause(rng.range(50, 400));
    if (rng.chance(0.5)) {
      auto [old, number] = replace();
      tear_down(soak, std::move(old), number);
    } else {
      auto [old, number] = take();
      tear_down(soak, std::move(old), number);
      pause(rng.range(0, 50));
      replace();
    }
  }
  auto [last, number] = take();
  tear_down(soak, std::move(last), number);
}

// The served counts must match the tickets seen; every call has been observed by now.
void check_tickets(Soak& soak) {
  auto final_count = [&](auto& handle, auto method, const char* what) -> u64 {
    ObjectRef<u64> r = handle.call(method);
    Outcome o = soak.await(soak.activities.back(), r, false);
    if (o.kind != Kind::value) {
      soak.report_wrong(std::string("the final call for the ") + what + " got " + describe(o));
      return 0;
    }
    return o.value;
  };
  if (std::string m = soak.ledger_tickets.mismatch(final_count(soak.ledger, &Ledger::count, "ledger's count"));
      !m.empty())
    soak.report_wrong("ledger: " + m);
  if (std::string m = soak.tally_tickets.mismatch(final_count(soak.tally, &Tally::count, "tally's count")); !m.empty())
    soak.report_wrong("tally: " + m);
  if (u64 peak = final_count(soak.tally, &Tally::most_at_once, "tally's peak"); peak > kTallyConcurrency)
    soak.report_wrong("tally ran " + std::to_string(peak) + " calls at once, max_concurrency " +
                      std::to_string(kTallyConcurrency));
  for (const auto& record : soak.turnstiles) {
    std::lock_guard<std::mutex> lock(record->m);
    if (std::string m = record->tickets.mismatch(record->most); !m.empty()) soak.report_wrong("turnstile: " + m);
  }
}

int run(const Options& opt) {
  Soak soak(opt);
  soak.oracle = lumen::actor<Oracle>(lumen::ActorOptions{.max_restarts = -1, .max_task_retries = -1});
  soak.echo = lumen::actor<Echo>(lumen::ActorOptions{.max_restarts = -1, .max_task_retries = -1});
  soak.ledger = lumen::actor<Ledger>(lumen::ActorOptions{.max_restarts = -1, .max_task_retries = -1});
  soak.tally = lumen::actor<Tally>(lumen::ActorOptions{.max_concurrency = kTallyConcurrency});
  soak.turnstile = std::make_shared<TurnstileRecord>();
  soak.turnstile->handle = lumen::actor<Turnstile>();
  soak.turnstiles.push_back(soak.turnstile);

  std::thread watchdog(watch, std::ref(soak));
  std::thread chaos(make_chaos, std::ref(soak));
  std::vector<std::thread> submitters;
  for (unsigned t = 0; t < opt.threads; ++t)
    submitters.emplace_back(submit_until_stopped, std::ref(soak), static_cast<int>(t));

  churn_runtimes(soak);
  soak.stop.store(true);
  soak.activities.back().set(Step::idle, false);
  for (auto& t : submitters) t.join();
  chaos.join();
  check_tickets(soak);
  soak.rss_end.store(rss_mib());

  soak.oracle = {};
  soak.echo = {};
  soak.ledger = {};
  soak.tally = {};
  soak.turnstile.reset();
  soak.turnstiles.clear();
  // A lost task keeps its runtime from ever finishing its shutdown: report and leave.
  if (soak.lost.load() != 0) {
    soak.print_line(summary(soak, 0));
    std::fflush(stderr);
    std::_Exit(1);
  }
  BlockPool::instance().clear();
  std::unique_ptr<lumen::Runtime> base;
  {
    std::lock_guard<std::mutex> lock(soak.churn_mutex);
    base = std::move(soak.base);
  }
  if (opt.memory_limit != 0) {
    const lumen::Stats st = base->stats();
    char buf[320];
    std::snprintf(buf, sizeof buf,
                  "lumen-soak memory: limit %zu bytes, %zu in use at the end, evicted %" PRIu64 ", rebuilt %" PRIu64
                  ", spilled %" PRIu64 ", restored %" PRIu64 ", spill failures %" PRIu64 ", puts waited %" PRIu64,
                  st.object_memory_limit, st.object_memory_used, st.objects_evicted, st.objects_rebuilt,
                  st.objects_spilled, st.objects_restored, st.spill_failures, st.puts_waited);
    soak.print_line(buf);
  }
  tear_down(soak, std::move(base), 0);
  if (!opt.spill_directory.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(opt.spill_directory, ec);
  }
  soak.finished.store(true);
  watchdog.join();
  soak.print_line(summary(soak, 0));
  return soak.wrong.load() == 0 ? 0 : 1;
}

}  // namespace

#if defined(__SANITIZE_THREAD__)
// libstdc++ counts the references to an exception object inside libstdc++.so, which
// ThreadSanitizer does not instrument. A task's exception is shared by every failure that
// carries it (the task's own, its dependents', a rethrow caught in another task), so it is
// read on one thread and freed on another, ordered only by that count, and ThreadSanitizer
// reports a race that is not there. Only frees of exception objects are silenced: a race on
// lumen's own failure records still shows, and AddressSanitizer sees a real early free.
extern "C" const char* __tsan_default_suppressions() {
  return "race:std::__exception_ptr::exception_ptr::_M_release\n";
}
#endif

int main(int argc, char** argv) {
  cxxopts::Options cli("lumen-soak", "A long randomized run of lumen's API, checked against a serial model");
  // clang-format off
  cli.add_options()
    ("seconds", "how long to submit work", cxxopts::value<double>()->default_value("60"))
    ("threads", "outside threads that submit", cxxopts::value<unsigned>()->default_value("4"))
    ("workers", "workers of the long-lived runtime, and at most of each churned one (0: one per core, at least 2)",
     cxxopts::value<unsigned>()->default_value("0"))
    ("seed", "seed of every random choice", cxxopts::value<u64>()->default_value("1"))
    ("hang-seconds", "a result pending this long is lost; no progress this long is a hang",
     cxxopts::value<double>()->default_value("30"))
    ("report-seconds", "time between progress lines", cxxopts::value<double>()->default_value("5"))
    ("memory-limit", "object memory limit of the long-lived runtime in bytes (0: none)",
     cxxopts::value<std::size_t>()->default_value("1048576"))
    ("spill-directory", "where it spills (default: a new folder under /tmp, removed at the end)",
     cxxopts::value<std::string>()->default_value(""))
    ("h,help", "print this help");
  // clang-format on
  Options opt;
  try {
    auto args = cli.parse(argc, argv);
    if (args.count("help") != 0) {
      std::printf("%s\n", cli.help().c_str());
      return 0;
    }
    opt.seconds = args["seconds"].as<double>();
    opt.threads = std::max(1u, args["threads"].as<unsigned>());
    opt.workers = args["workers"].as<unsigned>();
    opt.seed = args["seed"].as<u64>();
    opt.hang_seconds = args["hang-seconds"].as<double>();
    opt.report_seconds = args["report-seconds"].as<double>();
    opt.memory_limit = args["memory-limit"].as<std::size_t>();
    opt.spill_directory = args["spill-directory"].as<std::string>();
    if (opt.spill_directory.empty()) opt.spill_directory = "/tmp/lumen-soak-spill-" + std::to_string(::getpid());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lumen-soak: %s\n%s\n", e.what(), cli.help().c_str());
    return 2;
  }
  return run(opt);
}
