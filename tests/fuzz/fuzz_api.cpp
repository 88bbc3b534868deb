// A libFuzzer target over lumen's public API.
//
// Each input is a small program: a sequence of operations (tasks with dependencies, gets and
// waits with timeouts, puts, actors and their faults, task groups, parallel loops over every
// integral type, sorts, scans, pipelines, graphs, short-lived runtimes with odd Configs), with
// arguments drawn towards the extremes. Beside lumen runs a cheap model of what each result may
// be: a value (exactly, when the model knows it), one of the user exceptions that could reach
// it, actor_died, or a lumen error that the arguments make legal. An answer outside the model
// aborts with a message, as does a crash, a hang (libFuzzer's -timeout) or a sanitizer report.
//
// Where timing decides an outcome (a call racing a restart, a get racing its task), the model
// admits every outcome the documentation allows and forgets what it can no longer know.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <ratio>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <lumen/lumen.h>
#include <unistd.h>

namespace {

using u64 = std::uint64_t;
using FDP = FuzzedDataProvider;

[[noreturn]] __attribute__((format(printf, 1, 2))) void fail(const char* format, ...) {
  std::va_list args;
  va_start(args, format);
  std::fputs("fuzz_api: lumen disagrees with the model: ", stderr);
  std::vfprintf(stderr, format, args);
  std::fputc('\n', stderr);
  va_end(args);
  std::abort();
}

#define EXPECT(cond, ...)           \
  do {                              \
    if (!(cond)) fail(__VA_ARGS__); \
  } while (0)

unsigned long long ull(u64 v) { return static_cast<unsigned long long>(v); }

// FUZZ_API_TRACE=1 prints each operation with its arguments: replaying a finding with it gives
// the program to reduce by hand.
const bool tracing = std::getenv("FUZZ_API_TRACE") != nullptr;

__attribute__((format(printf, 1, 2))) void trace(const char* format, ...) {
  if (!tracing) return;
  std::va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  std::fputc('\n', stderr);
  va_end(args);
}

u64 mix(u64 x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// ---- the exceptions fuzzed code throws -------------------------------------------------------

// One derived from std::exception and one that is not: each must come back with its type.
struct FuzzError : std::runtime_error {
  explicit FuzzError(u64 c) : std::runtime_error("fuzz error " + std::to_string(c)), code(c) {}
  u64 code;
};
struct PlainError {
  u64 code;
};

struct Thrown {
  bool plain = false;
  u64 code = 0;
  friend bool operator==(const Thrown&, const Thrown&) = default;
};

[[noreturn]] void throw_it(Thrown t) {
  if (t.plain) throw PlainError{t.code};
  throw FuzzError(t.code);
}

Thrown draw_thrown(FDP& in) { return Thrown{in.ConsumeBool(), in.ConsumeIntegralInRange<u64>(1, 1000)}; }

// Thrown by loop bodies past the start of a huge range, so that it ends quickly.
constexpr Thrown kBeyond{false, 999999};

// ---- what a result may be --------------------------------------------------------------------

struct Expect {
  bool may_value = true;
  std::optional<u64> value;  // the value, when the model knows it
  bool may_die = false;      // actor_died
  bool may_misuse = false;   // usage_error (an actor method that returned an empty ObjectRef)
  std::vector<Thrown> errors;
  bool may_cancel = false;   // cancelled_error (it, or what it depends on, was cancelled)

  static Expect exactly(u64 v) { return Expect{true, v, false, false, {}}; }
  static Expect any_value() { return Expect{}; }
  static Expect died() { return Expect{false, std::nullopt, true, false, {}}; }
  static Expect thrown(Thrown t) { return Expect{false, std::nullopt, false, false, {t}}; }
  static Expect cancelled() { return Expect{false, std::nullopt, false, false, {}, true}; }

  bool may_fail() const { return may_die || may_misuse || may_cancel || !errors.empty(); }
  bool allows(Thrown t) const { return std::find(errors.begin(), errors.end(), t) != errors.end(); }
  // The failures another object may pass on to this one.
  void add_failures_of(const Expect& o) {
    may_die = may_die || o.may_die;
    may_misuse = may_misuse || o.may_misuse;
    may_cancel = may_cancel || o.may_cancel;
    for (const Thrown& t : o.errors)
      if (!allows(t)) errors.push_back(t);
  }
};

enum class Outcome { value, failed, timed_out };

// Runs read() (a get or similar) and checks what it returns or throws against `e`.
template <class Read>
Outcome check_read(const Expect& e, bool may_time_out, const char* what, Read&& read) {
  try {
    u64 v = read();
    EXPECT(e.may_value, "%s returned %llu but must fail", what, ull(v));
    EXPECT(!e.value || *e.value == v, "%s returned %llu, expected %llu", what, ull(v), ull(e.value.value_or(0)));
    return Outcome::value;
  } catch (const lumen::timeout_error&) {
    EXPECT(may_time_out, "%s timed out, but the object is resolved or the timeout unbounded", what);
    return Outcome::timed_out;
  } catch (const lumen::cancelled_error& x) {
    EXPECT(e.may_cancel, "%s threw cancelled_error (%s)", what, x.what());
  } catch (const lumen::actor_died& x) {
    EXPECT(e.may_die, "%s threw actor_died (%s)", what, x.what());
  } catch (const lumen::usage_error& x) {
    EXPECT(e.may_misuse, "%s threw usage_error (%s)", what, x.what());
  } catch (const FuzzError& x) {
    EXPECT(e.allows(Thrown{false, x.code}), "%s threw FuzzError %llu, which cannot reach it", what, ull(x.code));
  } catch (const PlainError& x) {
    EXPECT(e.allows(Thrown{true, x.code}), "%s threw PlainError %llu, which cannot reach it", what, ull(x.code));
  } catch (const std::exception& x) {
    fail("%s threw an unexpected exception: %s", what, x.what());
  } catch (...) {
    fail("%s threw an exception of an unknown type", what);
  }
  return Outcome::failed;
}

// Runs f, which must throw usage_error.
template <class F>
void expect_usage_error(const char* what, F&& f) {
  try {
    f();
  } catch (const lumen::usage_error&) {
    return;
  } catch (const std::exception& x) {
    fail("%s: expected usage_error, got: %s", what, x.what());
  } catch (...) {
    fail("%s: expected usage_error, got an exception of an unknown type", what);
  }
  fail("%s: expected usage_error, nothing was thrown", what);
}

// Checks an exception that structured code (loops, groups, pipelines, graphs) let through:
// one of `allowed`, with its type.
void check_escaped(std::exception_ptr e, const std::vector<Thrown>& allowed, const char* what) {
  Expect x;
  x.may_value = false;
  x.errors = allowed;
  check_read(x, false, what, [&]() -> u64 { std::rethrow_exception(e); });
}

// ---- timeouts --------------------------------------------------------------------------------

// A timeout of one of many duration types, and what the model may assume of it.
struct Timeout {
  enum Kind { nonpositive, short_, unbounded, nan } kind;
  int pick;
  int small;  // the count for the short kinds
};

constexpr int kTimeoutPicks = 17;

Timeout make_timeout(int pick, int small) {
  static constexpr Timeout::Kind kinds[kTimeoutPicks] = {
      Timeout::nonpositive, Timeout::nonpositive, Timeout::short_,      Timeout::short_,    Timeout::unbounded,
      Timeout::unbounded,   Timeout::unbounded,   Timeout::nonpositive, Timeout::nonpositive, Timeout::unbounded,
      Timeout::unbounded,   Timeout::nonpositive, Timeout::nan,         Timeout::short_,    Timeout::short_,
      Timeout::unbounded,   Timeout::short_};
  return Timeout{kinds[pick], pick, small};
}

Timeout draw_timeout(FDP& in) {
  int pick = in.ConsumeIntegralInRange(0, kTimeoutPicks - 1);
  return make_timeout(pick, in.ConsumeIntegralInRange(1, 3000));
}

// At most 3 ms, for objects that may wait for a gate the program has not opened (NaN is
// refused before any wait).
Timeout bounded(Timeout t) {
  if (t.kind == Timeout::unbounded) return make_timeout(2, t.small);
  return t;
}

// Calls f(duration) with the duration `t` stands for.
template <class F>
decltype(auto) with_duration(const Timeout& t, F&& f) {
  using namespace std::chrono;
  constexpr double inf = std::numeric_limits<double>::infinity();
  switch (t.pick) {
    case 0: return f(nanoseconds(0));
    case 1: return f(microseconds(-t.small));
    case 2: return f(microseconds(t.small));
    case 3: return f(milliseconds(1 + t.small % 3));
    case 4: return f(seconds::max());
    case 5: return f(nanoseconds::max());
    case 6: return f(hours::max());
    case 7: return f(seconds::min());
    case 8: return f(nanoseconds::min());
    case 9: return f(duration<double>(inf));
    case 10: return f(duration<double>(1e300));
    case 11: return f(duration<double>(-inf));
    case 12: return f(duration<double>(std::numeric_limits<double>::quiet_NaN()));
    case 13: return f(duration<float, std::milli>(static_cast<float>(t.small) / 1000.0f));
    case 14: return f(duration<std::int8_t, std::micro>(static_cast<std::int8_t>(t.small % 256 - 128)));
    case 15: return f(duration<u64, std::nano>(std::numeric_limits<u64>::max()));
    default: return f(duration<std::uint32_t, std::micro>(static_cast<std::uint32_t>(t.small)));
  }
}

// ---- the program's state ---------------------------------------------------------------------

constexpr std::size_t kMaxEntries = 48;
constexpr std::size_t kMaxGates = 8;
constexpr std::size_t kMaxActors = 6;

// A gate holds back the tasks that depend on it until the program opens it: the only way the
// model knows for sure that an object is still pending.
struct Gate {
  std::shared_ptr<std::atomic<bool>> open = std::make_shared<std::atomic<bool>>(false);
};

struct Entry {
  u64 id = 0;  // copies share it
  std::vector<u64> deps;  // ids of the entries whose outcomes reach it, directly or not
  lumen::ObjectRef<u64> ref;  // empty (never made, or moved out): every read is a usage_error
  Expect expect;
  u64 gates = 0;  // the gates it waits for, directly or through what it depends on
  bool seen_resolved = false;
  // The name error_of must report, when only the task itself can fail it.
  std::optional<std::string> failure_name;
  // The attempts the task must have made, when its dependencies cannot fail it.
  std::shared_ptr<std::atomic<int>> attempts;
  int expected_attempts = -1;
  bool cancellable = false;  // a task's result (cancelling an actor call would change the actor)
};

// How an actor's constructor behaves: the first `failures` constructions throw.
struct CtorPlan {
  std::shared_ptr<std::atomic<int>> constructions = std::make_shared<std::atomic<int>>(0);
  int failures = 0;
};

struct Acc {
  Acc(u64 start, CtorPlan plan) : state(start) {
    if (plan.constructions->fetch_add(1) < plan.failures) throw FuzzError(4242);
  }
  u64 add(u64 k) { return state += k; }
  u64 peek() const { return state; }
  u64 raise(Thrown t) { throw_it(t); }
  u64 quit() { lumen::exit_actor(); }
  // Misuse: the exit request is swallowed; the actor ends all the same.
  u64 quit_swallowed() {
    try {
      lumen::exit_actor();
    } catch (...) {
    }
    return state;
  }
  u64 was_restarted() const { return lumen::actor_restarted() ? 1 : 0; }
  // Blocks inside the method: parks the call's fiber until r is resolved.
  u64 add_awaited(lumen::ObjectRef<u64> r) { return state += lumen::get(r); }
  // The caller receives the value of the returned ref, not a ref to a ref.
  lumen::ObjectRef<u64> add_later(u64 k) {
    state += k;
    return lumen::submit([s = state] { return s; });
  }
  lumen::ObjectRef<u64> give_empty() { return {}; }
  u64 add_loop(u64 n) {
    state += lumen::parallel_reduce(u64{0}, n, u64{0}, [](u64 i) { return mix(i); }, std::plus<>{});
    return state;
  }
  // A task_group child of a method is not the method: exit_actor() there is refused.
  u64 exit_from_child() {
    lumen::task_group g;
    bool refused = false;
    g.run([&] {
      try {
        lumen::exit_actor();
      } catch (const lumen::usage_error&) {
        refused = true;
      }
    });
    g.wait();
    EXPECT(refused, "exit_actor() in a task_group child of an actor method was not refused with usage_error");
    return state;
  }
  u64 state;
};

// An actor whose state survives restarts through checkpoints.
struct Saver : Acc {
  using Acc::Acc;
  u64 checkpoint() const { return state; }
  void restore(u64 saved) { state = saved; }
};

struct Other {};

template <class H>
struct actor_type_of;
template <class T>
struct actor_type_of<lumen::ActorHandle<T>> {
  using type = T;
};
template <class H>
using actor_type = typename actor_type_of<std::remove_cvref_t<H>>::type;

u64 loop_sum(u64 n) {
  u64 s = 0;
  for (u64 i = 0; i < n; ++i) s += mix(i);
  return s;
}

enum class Method {
  add,
  peek,
  raise,
  quit,
  quit_swallowed,
  was_restarted,
  add_awaited,
  add_arg,
  add_later,
  give_empty,
  add_loop,
  exit_from_child,
  count
};

struct ActorModel {
  bool saver = false;
  lumen::ActorHandle<Acc> acc;
  lumen::ActorHandle<Saver> sav;
  std::string name;
  lumen::ActorOptions options;
  u64 start = 0;
  CtorPlan plan;

  // What the model knows. Neither alive nor dead: it does not know, and never will again.
  bool alive = false, dead = false;
  bool doomed = false;  // every construction throws: each call fails, restarting or dead
  bool state_known = false;
  u64 state = 0;
  int restarts_used = 0;
  bool saved_known = true;  // the checkpoint a restart would restore
  std::optional<u64> saved;
  int successes_since_save = 0;
  bool name_released = false;  // its name may be given again
  u64 blocked_gates = 0;       // gates that calls holding up the actor wait for
  // An end (exit, kill, failed construction) that no peek has seen through yet: calls made
  // since may have been pending at it, or made after it.
  bool ending_unsynced = false;
  // The first construction fails and no peek has seen it yet: the restart it uses may not be
  // used when a kill comes, so whether kill(false) is final cannot be told in advance.
  bool construction_unsynced = false;
  lumen::ObjectRef<u64> last_call;
  std::vector<u64> calls;  // entry ids of its calls not known to have finished

  bool serial() const { return options.max_concurrency == 1; }
  bool restarts_left() const { return options.max_restarts < 0 || restarts_used < options.max_restarts; }
  template <class F>
  decltype(auto) with(F&& f) {
    return saver ? f(sav) : f(acc);
  }
  void forget() {
    alive = dead = false;
    state_known = false;
    saved_known = false;
  }
  void end_for_good() {
    alive = false;
    dead = true;
    state_known = false;
  }
  // A restart the model can follow: the new instance starts from the arguments, or the
  // last checkpoint.
  void restart() {
    ++restarts_used;
    state = saver && saved ? *saved : start;
    state_known = serial() && (!saver || saved_known);
  }
};

// Everything one input built; checked once more and torn down at its end.
struct Program {
  FDP& in;
  lumen::Runtime& rt;
  std::string name_prefix;
  std::vector<Entry> entries;
  std::vector<Gate> gates;
  std::vector<ActorModel> actors;

  u64 next_id = 1;

  u64 closed_gates() const {
    u64 m = 0;
    for (std::size_t i = 0; i < gates.size(); ++i)
      if (!gates[i].open->load()) m |= u64{1} << i;
    return m;
  }
  bool gated(u64 gates) const { return (gates & closed_gates()) != 0; }
  bool may_hang(const Entry& e) const { return e.ref.valid() && gated(e.gates); }
  // No value can come before a closed gate opens; a failure might.
  bool surely_pending(const Entry& e) const { return may_hang(e) && !e.expect.may_fail(); }

  std::size_t pick_entry() { return in.ConsumeIntegralInRange<std::size_t>(0, entries.size() - 1); }
  ActorModel& pick_actor() { return actors[in.ConsumeIntegralInRange<std::size_t>(0, actors.size() - 1)]; }
  void add_entry(Entry e) {
    if (e.id == 0) e.id = next_id++;
    if (entries.size() < kMaxEntries) {
      entries.push_back(std::move(e));
    } else {
      entries[pick_entry()] = std::move(e);
    }
  }
};

// ---- tasks -------------------------------------------------------------------------------------

// A task's value: its salt mixed with its dependencies' values, in order. Its first `failures`
// attempts throw.
struct Mixer {
  u64 salt = 0;
  int failures = 0;
  Thrown thrown;
  std::shared_ptr<std::atomic<int>> attempts = std::make_shared<std::atomic<int>>(0);

  u64 finish(u64 v) const {
    if (attempts->fetch_add(1) < failures) throw_it(thrown);
    return v;
  }
  u64 operator()() const { return finish(salt); }
  u64 operator()(const u64& a) const { return finish(mix(salt ^ a)); }
  u64 operator()(const u64& a, const u64& b) const { return finish(mix(mix(salt ^ a) ^ b)); }
  u64 operator()(const u64& a, const u64& b, const u64& c) const { return finish(mix(mix(mix(salt ^ a) ^ b) ^ c)); }
};

u64 mixed(u64 salt, const std::vector<u64>& deps) {
  u64 v = salt;
  for (u64 d : deps) v = mix(v ^ d);
  return v;
}

// Takes its dependency as a ref and reads it inside the task, parking if it must wait.
struct ReadsRef {
  u64 salt;
  u64 operator()(lumen::ObjectRef<u64> r) const { return mix(salt ^ lumen::get(r)); }
};

struct ResourceClaim {
  std::string name;
  double count;
};

ResourceClaim draw_claim(FDP& in) {
  static const char* names[] = {"CPU", "gpu", "", "nope", "cpu"};
  static const double counts[] = {-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 1e300, std::numeric_limits<double>::infinity(),
                                  std::numeric_limits<double>::quiet_NaN(), 4294967295.0, 4294967296.0, -0.0};
  return ResourceClaim{names[in.ConsumeIntegralInRange(0, 4)], counts[in.ConsumeIntegralInRange(0, 11)]};
}

// As Runtime documents claims: whole, positive, of a declared resource, within its capacity.
bool claim_is_valid(const ResourceClaim& c, const std::vector<std::pair<std::string, double>>& capacities) {
  if (!(c.count > 0) || c.count != std::floor(c.count)) return false;
  for (const auto& [name, capacity] : capacities)
    if (name == c.name) return c.count <= capacity;
  return false;
}

const std::vector<std::pair<std::string, double>> kMainCapacities = {{"CPU", 2.0}, {"gpu", 2.0}};

void op_submit(Program& p) {
  FDP& in = p.in;
  int arity = in.ConsumeIntegralInRange(0, 3);
  std::vector<std::size_t> deps;
  if (!p.entries.empty())
    for (int i = 0; i < arity; ++i) deps.push_back(p.pick_entry());
  bool as_ref = deps.size() == 1 && in.ConsumeBool();

  Mixer m;
  m.salt = in.ConsumeIntegral<u64>();
  int fail_mode = in.ConsumeIntegralInRange(0, 3);  // never, the first 1-3 attempts, always
  m.thrown = draw_thrown(in);
  m.failures = fail_mode == 0 ? 0 : fail_mode == 3 ? std::numeric_limits<int>::max() : in.ConsumeIntegralInRange(1, 3);
  bool with_options = in.ConsumeBool();
  static const char* names[] = {"", "load", "a name with spaces", "\xff\xfe"};
  std::string name = with_options ? names[in.ConsumeIntegralInRange(0, 3)] : "";
  static const int retry_counts[] = {0, 1, 2, 3, -1, std::numeric_limits<int>::max(), std::numeric_limits<int>::min()};
  int retries = with_options ? retry_counts[in.ConsumeIntegralInRange(0, 6)] : 0;
  static const int priorities[] = {0, 1, -1, std::numeric_limits<int>::max(), std::numeric_limits<int>::min()};
  int priority = with_options ? priorities[in.ConsumeIntegralInRange(0, 4)] : 0;
  std::vector<ResourceClaim> claims;
  if (with_options)
    for (int i = in.ConsumeIntegralInRange(0, 2); i > 0; --i) claims.push_back(draw_claim(in));
  // A task that always throws with unbounded retries would run forever.
  if (m.failures == std::numeric_limits<int>::max() && retries > 3) m.failures = 3;
  // ReadsRef blocks while it holds its claims: a dependency needing the same units could never run.
  if (as_ref) {
    m.failures = 0;
    claims.clear();
  }

  trace("  deps %zu%s, fails %d times (%s %llu), options %d: retries %d, priority %d, %zu claims", deps.size(),
        as_ref ? " (read in the task)" : "", m.failures, m.thrown.plain ? "plain" : "std", ull(m.thrown.code),
        with_options, retries, priority, claims.size());
  bool bad = retries < 0;
  for (std::size_t d : deps) bad = bad || !p.entries[d].ref.valid();
  for (const auto& c : claims) bad = bad || !claim_is_valid(c, kMainCapacities);

  Entry e;
  e.attempts = m.attempts;
  std::vector<u64> dep_values;
  bool deps_known = true, deps_may_fail = false, deps_may_value = true;
  for (std::size_t d : deps) {
    const Entry& de = p.entries[d];
    e.deps.push_back(de.id);
    e.deps.insert(e.deps.end(), de.deps.begin(), de.deps.end());
    e.gates |= de.gates;
    e.expect.add_failures_of(de.expect);
    deps_may_fail = deps_may_fail || de.expect.may_fail();
    deps_may_value = deps_may_value && de.expect.may_value;
    if (de.expect.may_value && de.expect.value) {
      dep_values.push_back(*de.expect.value);
    } else {
      deps_known = false;
    }
  }
  // The task runs only once every dependency has a value; it fails when it throws on every
  // attempt its retries allow.
  int attempts_allowed = retries == std::numeric_limits<int>::max() ? retries : retries + 1;
  bool task_fails = m.failures >= attempts_allowed;
  if (deps_may_value && task_fails) e.expect.errors.push_back(m.thrown);
  e.expect.may_value = deps_may_value && !task_fails;
  if (e.expect.may_value && deps_known) e.expect.value = mixed(m.salt, dep_values);
  if (!deps_may_fail && !as_ref) {
    e.expected_attempts = task_fails ? attempts_allowed : m.failures + 1;
    if (task_fails) e.failure_name = name;
  }

  auto submit_args = [&](auto&& submitter) {
    if (as_ref) return submitter(ReadsRef{m.salt}, p.entries[deps[0]].ref);
    switch (deps.size()) {
      case 0: return submitter(m);
      case 1: return submitter(m, p.entries[deps[0]].ref);
      case 2: return submitter(m, p.entries[deps[0]].ref, p.entries[deps[1]].ref);
      default: return submitter(m, p.entries[deps[0]].ref, p.entries[deps[1]].ref, p.entries[deps[2]].ref);
    }
  };
  try {
    if (with_options) {
      std::vector<std::pair<std::string, double>> resources;
      for (const auto& c : claims) resources.emplace_back(c.name, c.count);
      e.ref = submit_args([&](auto&& f, auto&&... args) {
        return lumen::task(f).name(name).retries(retries).priority(priority).resources(resources).submit(args...);
      });
    } else {
      e.ref = submit_args([&](auto&& f, auto&&... args) { return lumen::submit(f, args...); });
    }
  } catch (const lumen::usage_error& x) {
    EXPECT(bad, "submit threw usage_error for good arguments: %s", x.what());
    return;
  }
  EXPECT(!bad, "submit accepted an empty ref, negative retries or a bad resource claim");
  e.cancellable = true;
  p.add_entry(std::move(e));
}

// Cancels a task's result. A cancel that wins fails it with cancelled_error at once, and may
// fail whatever depends on it; one that loses changes nothing.
void op_cancel(Program& p) {
  if (p.entries.empty()) return;
  Entry& e = p.entries[p.pick_entry()];
  const bool recursive = p.in.ConsumeBool();
  if (!e.ref.valid()) {
    expect_usage_error("cancel of an empty ref", [&] { (void)lumen::cancel(e.ref); });
    return;
  }
  if (!e.cancellable) return;
  const bool won = lumen::cancel(e.ref, {.recursive = recursive});
  trace("  entry %llu, recursive %d: %s", ull(e.id), recursive, won ? "cancelled" : "too late");
  if (!won) return;
  EXPECT(e.ref.ready(), "a cancelled object is not resolved when cancel returns");
  EXPECT(!lumen::cancel(e.ref), "a second cancel of the same object returned true");
  const u64 id = e.id;
  for (Entry& o : p.entries) {
    const bool depends = std::find(o.deps.begin(), o.deps.end(), id) != o.deps.end();
    if (o.id != id && !depends) continue;
    if (o.id == id) o.expect = Expect::cancelled();
    o.expect.may_cancel = true;
    o.failure_name.reset();
    o.expected_attempts = -1;
  }
}

// A task that waits for a gate in lumen::blocking: its worker goes on with other work.
void op_gated(Program& p) {
  if (p.gates.size() >= kMaxGates) return;
  Gate g;
  u64 v = p.in.ConsumeIntegral<u64>();
  trace("  gate %zu", p.gates.size());
  Entry e;
  e.ref = lumen::submit([open = g.open, v] {
    lumen::blocking([&] {
      while (!open->load()) std::this_thread::sleep_for(std::chrono::microseconds(50));
    });
    return v;
  });
  e.expect = Expect::exactly(v);
  e.cancellable = true;
  e.gates = u64{1} << p.gates.size();
  p.gates.push_back(g);
  p.add_entry(std::move(e));
}

void op_open_gate(Program& p) {
  if (p.gates.empty()) return;
  std::size_t g = p.in.ConsumeIntegralInRange<std::size_t>(0, p.gates.size() - 1);
  trace("  gate %zu", g);
  p.gates[g].open->store(true);
}

void op_put(Program& p) {
  Entry e;
  u64 v = p.in.ConsumeIntegral<u64>();
  e.ref = lumen::put(v);
  e.expect = Expect::exactly(v);
  e.seen_resolved = true;
  EXPECT(e.ref.ready(), "a put object is not ready");
  p.add_entry(std::move(e));
}

// After a read that did not time out: the object is resolved, its task made the attempts it
// had to, and error_of agrees with the read.
void after_read(Entry& e, Outcome o) {
  if (o == Outcome::timed_out || !e.ref.valid()) return;
  e.seen_resolved = true;
  EXPECT(e.ref.ready(), "a ref whose get returned is not ready()");
  if (e.expected_attempts >= 0)
    EXPECT(e.attempts->load() == e.expected_attempts, "a task ran %d times, expected %d", e.attempts->load(),
           e.expected_attempts);
  std::optional<lumen::task_error> err = lumen::error_of(e.ref);
  EXPECT(err.has_value() == (o == Outcome::failed), "error_of disagrees with get on whether the object failed");
  if (!err) return;
  check_read(e.expect, false, "rethrowing error_of's cause", [&]() -> u64 { std::rethrow_exception(err->cause()); });
  if (e.failure_name)
    EXPECT(err->task_name() == *e.failure_name, "error_of names the task '%s', expected '%s'", err->task_name().c_str(),
           e.failure_name->c_str());
}

void op_get(Program& p) {
  if (p.entries.empty()) return;
  Entry& e = p.entries[p.pick_entry()];
  int how = p.in.ConsumeIntegralInRange(0, 3);  // by reference, on a temporary copy, moved out, timed
  if (!e.ref.valid()) {
    expect_usage_error("get on an empty ref", [&] { (void)lumen::get(e.ref); });
    expect_usage_error("timed get on an empty ref", [&] { (void)lumen::get(e.ref, std::chrono::hours::max()); });
    expect_usage_error("wait on an empty ref", [&] { (void)lumen::wait(std::vector<lumen::ObjectRef<u64>>{e.ref}, 0); });
    return;
  }
  if (how == 3 || p.may_hang(e)) {
    Timeout t = draw_timeout(p.in);
    if (p.may_hang(e)) t = bounded(t);
    trace("  timed: duration #%d (%d)", t.pick, t.small);
    bool on_copy = p.in.ConsumeBool();
    if (t.kind == Timeout::nan) {
      with_duration(t, [&](auto d) {
        expect_usage_error("timed get with a NaN timeout", [&] { (void)lumen::get(e.ref, d); });
      });
      return;
    }
    bool may_time_out = !e.seen_resolved && t.kind != Timeout::unbounded;
    Outcome o = with_duration(t, [&](auto d) {
      return check_read(e.expect, may_time_out, "timed get", [&] {
        return on_copy ? lumen::get(lumen::ObjectRef<u64>(e.ref), d) : lumen::get(e.ref, d);
      });
    });
    if (p.surely_pending(e))
      EXPECT(o == Outcome::timed_out && !e.ref.ready(), "a get returned an object whose gate is still closed");
    after_read(e, o);
    return;
  }
  Outcome o;
  if (how == 0) {
    o = check_read(e.expect, false, "get", [&] { return lumen::get(e.ref); });
  } else if (how == 1) {
    o = check_read(e.expect, false, "get on a temporary", [&] { return lumen::get(lumen::ObjectRef<u64>(e.ref)); });
  } else {
    // The only ref gives its value away and is emptied; a shared one copies and stays.
    o = check_read(e.expect, false, "get on a moved ref", [&] { return lumen::get(std::move(e.ref)); });
    if (!e.ref.valid()) {
      EXPECT(o == Outcome::value, "a get on a moved ref that failed emptied the ref");
      return;
    }
  }
  after_read(e, o);
}

void op_get_all(Program& p) {
  if (p.entries.empty()) return;
  std::vector<std::size_t> picks;
  for (int i = p.in.ConsumeIntegralInRange(0, 6); i > 0; --i) picks.push_back(p.pick_entry());
  std::vector<lumen::ObjectRef<u64>> refs;
  for (std::size_t i : picks) {
    if (p.may_hang(p.entries[i])) return;
    refs.push_back(p.entries[i].ref);
  }
  // The refs are read in order: the first failure (or empty ref) ends it.
  Expect whole;
  for (std::size_t i : picks) {
    const Entry& e = p.entries[i];
    if (!e.ref.valid()) {
      whole.may_value = false;
      whole.may_misuse = true;
      break;
    }
    whole.add_failures_of(e.expect);
    if (!e.expect.may_value) {
      whole.may_value = false;
      break;
    }
  }
  std::vector<u64> values;
  Outcome o = check_read(whole, false, "get(vector)", [&] {
    values = lumen::get(refs);
    return u64{0};
  });
  if (o != Outcome::value) return;
  EXPECT(values.size() == refs.size(), "get(vector) returned %zu values for %zu refs", values.size(), refs.size());
  for (std::size_t k = 0; k < picks.size(); ++k) {
    const Expect& x = p.entries[picks[k]].expect;
    EXPECT(x.may_value && (!x.value || *x.value == values[k]), "get(vector) value %zu is wrong", k);
  }
}

// True when `ready` and `not_ready` interleave back into `refs` (both keep the input's order).
bool is_split_of(const std::vector<lumen::ObjectRef<u64>>& refs, const std::vector<lumen::ObjectRef<u64>>& ready,
                 const std::vector<lumen::ObjectRef<u64>>& not_ready) {
  if (ready.size() + not_ready.size() != refs.size()) return false;
  // can[a]: the first a + b refs split into ready[0, a) and not_ready[0, b), b = k - a.
  std::vector<bool> can(ready.size() + 1, false);
  can[0] = true;
  for (std::size_t k = 0; k < refs.size(); ++k) {
    std::vector<bool> next(ready.size() + 1, false);
    for (std::size_t a = 0; a <= ready.size() && a <= k; ++a) {
      if (!can[a]) continue;
      std::size_t b = k - a;
      if (a < ready.size() && ready[a] == refs[k]) next[a + 1] = true;
      if (b < not_ready.size() && not_ready[b] == refs[k]) next[a] = true;
    }
    can = std::move(next);
  }
  return can[ready.size()];
}

void op_wait(Program& p) {
  FDP& in = p.in;
  std::vector<std::size_t> picks;
  if (!p.entries.empty())
    for (int i = in.ConsumeIntegralInRange(0, 8); i > 0; --i) picks.push_back(p.pick_entry());
  std::vector<lumen::ObjectRef<u64>> refs;
  bool empty = false;
  std::size_t can_resolve = 0, resolved = 0;
  for (std::size_t i : picks) {
    const Entry& e = p.entries[i];
    refs.push_back(e.ref);
    empty = empty || !e.ref.valid();
    if (e.ref.valid() && !p.may_hang(e)) ++can_resolve;
    if (e.ref.valid() && e.seen_resolved) ++resolved;
  }
  std::size_t num = in.ConsumeIntegralInRange<std::size_t>(0, refs.size() + 1);
  if (in.ConsumeIntegralInRange(0, 15) == 0) num = std::numeric_limits<std::size_t>::max();
  Timeout t = draw_timeout(in);
  bool timed = in.ConsumeBool() || num > can_resolve;
  if (num > can_resolve) t = bounded(t);
  bool bad = empty || num > refs.size() || (timed && t.kind == Timeout::nan);
  trace("  %zu refs, num_ready %zu, %s duration #%d (%d)", refs.size(), num, timed ? "timed" : "untimed", t.pick, t.small);

  std::optional<lumen::WaitResult<u64>> got;
  try {
    if (timed) {
      got = with_duration(t, [&](auto d) { return lumen::wait(refs, num, d); });
    } else {
      got = lumen::wait(refs, num);
    }
  } catch (const lumen::usage_error& x) {
    EXPECT(bad, "wait threw usage_error: %s", x.what());
    return;
  } catch (const std::exception& x) {
    fail("wait threw: %s", x.what());
  }
  EXPECT(!bad, "wait accepted an empty ref, or num_ready %zu of %zu refs", num, refs.size());
  const lumen::WaitResult<u64>& r = *got;
  EXPECT(is_split_of(refs, r.ready, r.not_ready), "wait's ready (%zu) and not_ready (%zu) are not a split of its %zu refs",
         r.ready.size(), r.not_ready.size(), refs.size());
  EXPECT(r.ready.size() <= num, "wait returned %zu ready, more than num_ready %zu", r.ready.size(), num);
  if (!timed || t.kind == Timeout::unbounded)
    EXPECT(r.ready.size() == num, "wait without a deadline returned %zu ready of %zu asked", r.ready.size(), num);
  if (resolved >= num) EXPECT(r.ready.size() == num, "wait left out objects known to be resolved");
  for (const auto& ready : r.ready) EXPECT(ready.ready(), "wait listed a ref as ready that is not ready()");
  for (std::size_t k = 0; k < picks.size(); ++k) {
    const Entry& e = p.entries[picks[k]];
    if (p.surely_pending(e)) EXPECT(!e.ref.ready(), "an object behind a closed gate is ready()");
    if (r.ready.size() < num && e.seen_resolved)
      EXPECT(std::count(r.ready.begin(), r.ready.end(), refs[k]) > 0, "wait left a resolved object out of `ready`");
  }
}

void op_error_of(Program& p) {
  if (p.entries.empty()) return;
  Entry& e = p.entries[p.pick_entry()];
  std::optional<lumen::task_error> err = lumen::error_of(e.ref);
  if (!e.ref.valid()) {
    EXPECT(!err, "error_of an empty ref is not empty");
    return;
  }
  if (!err) {
    EXPECT(!e.seen_resolved || e.expect.may_value, "error_of is empty for an object that must have failed");
    return;
  }
  EXPECT(e.ref.ready(), "error_of reports a failure for an object that is not resolved");
  check_read(e.expect, false, "rethrowing error_of's cause", [&]() -> u64 { std::rethrow_exception(err->cause()); });
}

void op_drop_or_copy(Program& p) {
  if (p.entries.empty()) return;
  std::size_t i = p.pick_entry();
  if (p.in.ConsumeBool()) {
    p.entries[i].ref.reset();  // fire and forget: the task still runs
  } else {
    Entry copy = p.entries[i];
    p.add_entry(std::move(copy));
  }
}

// A move-only value: get on a temporary moves it out of the last ref, and refuses a shared one.
void op_move_only(Program& p) {
  u64 v = p.in.ConsumeIntegral<u64>();
  bool share = p.in.ConsumeBool();
  auto ref = lumen::put(std::make_unique<u64>(v));
  if (share) {
    auto other = ref;
    expect_usage_error("get on a temporary ref to a shared move-only value", [&] { (void)lumen::get(std::move(ref)); });
    EXPECT(ref.valid() && *lumen::get(other) == v, "a refused get on a shared move-only value changed it");
  } else {
    std::unique_ptr<u64> out = lumen::get(std::move(ref));
    EXPECT(out && *out == v, "a move-only value moved out of its last ref is wrong");
    EXPECT(!ref.valid(), "the last ref of a value moved out by get is still valid");
  }
}

// Tasks that submit and wait for their children: fibers park and resume.
u64 fib(int n) { return n < 2 ? static_cast<u64>(n) : fib(n - 1) + fib(n - 2); }
u64 fib_task(int n) {
  if (n < 2) return static_cast<u64>(n);
  auto a = lumen::submit(fib_task, n - 1);
  auto b = lumen::submit(fib_task, n - 2);
  return lumen::get(a) + lumen::get(b);
}

void op_nested(Program& p) {
  int n = p.in.ConsumeIntegralInRange(0, 11);
  u64 got = lumen::get(lumen::submit(fib_task, n));
  EXPECT(got == fib(n), "nested tasks computed fib(%d) = %llu", n, ull(got));
}

void op_blocking(Program& p) {
  bool in_task = p.in.ConsumeBool();
  bool throws = p.in.ConsumeBool();
  Thrown t = draw_thrown(p.in);
  u64 v = p.in.ConsumeIntegral<u64>();
  auto body = [=] {
    return lumen::blocking([&]() -> u64 {
      if (throws) throw_it(t);
      return v;
    });
  };
  Expect want = throws ? Expect::thrown(t) : Expect::exactly(v);
  if (in_task) {
    check_read(want, false, "blocking in a task", [&] { return lumen::get(lumen::submit(body)); });
  } else {
    check_read(want, false, "blocking outside a worker", body);
  }
}

void op_exit_outside(Program& p) {
  if (p.in.ConsumeBool()) {
    expect_usage_error("exit_actor() outside an actor", [] { lumen::exit_actor(); });
    EXPECT(!lumen::actor_restarted(), "actor_restarted() is true outside an actor");
    return;
  }
  bool refused = lumen::get(lumen::submit([] {
    try {
      lumen::exit_actor();
    } catch (const lumen::usage_error&) {
      return true;
    }
    return false;
  }));
  EXPECT(refused, "exit_actor() in a plain task was not refused with usage_error");
}

void op_void_task(Program& p) {
  auto counter = std::make_shared<std::atomic<u64>>(0);
  u64 v = p.in.ConsumeIntegral<u64>();
  bool throws = p.in.ConsumeBool();
  Thrown t = draw_thrown(p.in);
  lumen::ObjectRef<void> r = lumen::submit([=] {
    counter->fetch_add(v);
    if (throws) throw_it(t);
  });
  check_read(throws ? Expect::thrown(t) : Expect::exactly(0), false, "get of a void task", [&] {
    lumen::get(r);
    return u64{0};
  });
  EXPECT(counter->load() == v, "a void task did not run exactly once");
  EXPECT(r.ready(), "a void task's ref is not ready after get");
}

// ---- actors ------------------------------------------------------------------------------------

void op_actor_create(Program& p) {
  if (p.actors.size() >= kMaxActors) return;
  FDP& in = p.in;
  ActorModel a;
  a.saver = in.ConsumeBool();
  static const int concurrency[] = {1, 1, 1, 2, 3, 0, -1, std::numeric_limits<int>::max(),
                                    std::numeric_limits<int>::min()};
  static const int restarts[] = {0, 1, 2, -1, -2, std::numeric_limits<int>::max(), std::numeric_limits<int>::min()};
  static const int intervals[] = {1, 2, 3, 0, -1, std::numeric_limits<int>::max()};
  a.options.max_concurrency = concurrency[in.ConsumeIntegralInRange(0, 8)];
  a.options.max_restarts = restarts[in.ConsumeIntegralInRange(0, 6)];
  a.options.max_task_retries = restarts[in.ConsumeIntegralInRange(0, 6)];
  a.options.checkpoint_interval = intervals[in.ConsumeIntegralInRange(0, 5)];
  int naming = in.ConsumeIntegralInRange(0, 3);  // anonymous, or one of three names
  if (naming != 0) a.name = p.name_prefix + std::to_string(naming);
  a.options.name = a.name;
  a.start = in.ConsumeIntegral<u64>();
  int ctor = in.ConsumeIntegralInRange(0, 5);  // 0-3 builds, 4 throws once, 5 always throws
  a.plan.failures = ctor == 4 ? 1 : ctor == 5 ? std::numeric_limits<int>::max() : 0;
  // Constructions that always throw, restarted many times (with growing pauses), would keep
  // calls that are replayed waiting for seconds.
  if (a.plan.failures == std::numeric_limits<int>::max() && (a.options.max_restarts < 0 || a.options.max_restarts > 2))
    a.plan.failures = 1;

  trace("  %s: max_concurrency %d, max_restarts %d, max_task_retries %d, checkpoint_interval %d, name '%s', ctor "
        "fails %d times",
        a.saver ? "Saver" : "Acc", a.options.max_concurrency, a.options.max_restarts, a.options.max_task_retries,
        a.options.checkpoint_interval, a.name.c_str(), a.plan.failures);
  bool bad_options = a.options.max_concurrency < 1 || a.options.max_restarts < -1 || a.options.max_task_retries < -1 ||
                     a.options.checkpoint_interval < 1;
  // A name is known taken while its actor is known alive, and known free once released.
  bool name_taken = false, name_maybe_taken = false;
  for (const ActorModel& o : p.actors) {
    if (a.name.empty() || o.name != a.name) continue;
    name_taken = name_taken || o.alive;
    name_maybe_taken = name_maybe_taken || !o.name_released;
  }
  try {
    if (a.saver) {
      a.sav = lumen::actor<Saver>(a.options, a.start, a.plan);
    } else {
      a.acc = lumen::actor<Acc>(a.options, a.start, a.plan);
    }
  } catch (const lumen::usage_error& x) {
    EXPECT(bad_options || name_maybe_taken, "actor() threw usage_error for good options and a free name: %s", x.what());
    return;
  }
  EXPECT(!bad_options, "actor() accepted bad options");
  EXPECT(!name_taken, "actor() accepted the name of a live actor");
  for (ActorModel& o : p.actors)
    if (!a.name.empty() && o.name == a.name) o.name.clear();  // the name is the new actor's now

  // What the first construction decides. Calls made before it resolves are either pending at
  // a failed construction (replayed as max_task_retries allows, or failed) or made later.
  if (a.plan.failures == 0) {
    a.alive = true;
    a.state = a.start;
    a.state_known = a.serial();
  } else if (a.plan.failures == std::numeric_limits<int>::max()) {
    a.forget();
    a.doomed = true;
  } else if (a.options.max_restarts == 0) {
    a.end_for_good();
  } else if (a.options.max_task_retries != 0 && a.serial()) {
    a.alive = true;
    a.restart();
  } else {
    a.forget();
  }
  a.ending_unsynced = a.plan.failures != 0;
  a.construction_unsynced = a.plan.failures != 0;
  p.actors.push_back(std::move(a));
}

// What a call of `m` on `a` resolves to; updates what the model knows.
Expect model_call(ActorModel& a, Method m, u64 arg, const Expect* arg_expect, Thrown thrown) {
  if (a.dead || a.doomed) return Expect::died();
  if (m == Method::quit || m == Method::quit_swallowed) {
    if (!a.alive || !a.serial()) {
      a.forget();  // concurrent calls around it run on either instance
    } else if (!a.restarts_left()) {
      a.end_for_good();
    } else if (a.ending_unsynced || a.options.max_task_retries == 0) {
      a.forget();  // later calls are pending at the end (and fail) or made after it: timing decides
    } else {
      a.restart();
    }
    a.ending_unsynced = true;
    return Expect::died();
  }
  Expect out = Expect::any_value();
  bool success = true;  // counts towards the next checkpoint
  switch (m) {
    case Method::add:
    case Method::add_later:
      a.state += arg;
      out.value = a.state;
      break;
    case Method::add_loop:
      a.state += loop_sum(arg);
      out.value = a.state;
      break;
    case Method::add_arg:
    case Method::add_awaited:
      out.add_failures_of(*arg_expect);
      out.may_value = arg_expect->may_value;
      if (arg_expect->may_fail()) {
        a.state_known = false;  // the argument may or may not have been added
        a.saved_known = false;
      } else if (arg_expect->value) {
        a.state += *arg_expect->value;
        out.value = a.state;
      } else {
        a.state_known = false;
      }
      success = !arg_expect->may_fail();
      break;
    case Method::peek:
    case Method::exit_from_child:
      out.value = a.state;
      break;
    case Method::was_restarted:
      out.value = a.restarts_used > 0 ? 1 : 0;
      break;
    case Method::raise:
      out = Expect::thrown(thrown);
      success = false;
      break;
    case Method::give_empty:
      out.may_value = false;
      out.may_misuse = true;
      success = false;
      break;
    case Method::quit:
    case Method::quit_swallowed:
    case Method::count:
      break;
  }
  if (!a.alive) {
    // Neither known alive nor dead: the call's own outcome, any value, or actor_died.
    out.value.reset();
    out.may_die = true;
    return out;
  }
  if (!a.state_known || !a.serial()) {
    if (m != Method::was_restarted || !a.serial()) out.value.reset();
    a.saved_known = false;
  }
  if (success && a.saver && a.state_known && ++a.successes_since_save >= a.options.checkpoint_interval) {
    a.successes_since_save = 0;
    a.saved = a.state;
  }
  return out;
}

// Calls of `a` that may not have run yet may now fail with actor_died, or run on a new instance;
// so may whatever depends on them.
void unsettle_calls(Program& p, ActorModel& a) {
  auto unsettled = [&](u64 id) { return std::find(a.calls.begin(), a.calls.end(), id) != a.calls.end(); };
  for (Entry& e : p.entries) {
    if (e.seen_resolved) continue;
    if (!unsettled(e.id) && std::none_of(e.deps.begin(), e.deps.end(), unsettled)) continue;
    e.expect.value.reset();
    e.expect.may_die = true;
    e.expected_attempts = -1;  // a task whose dependency died does not run
    e.failure_name.reset();
  }
}

void op_actor_call(Program& p) {
  if (p.actors.empty()) return;
  FDP& in = p.in;
  ActorModel& a = p.pick_actor();
  auto m = static_cast<Method>(in.ConsumeIntegralInRange(0, static_cast<int>(Method::count) - 1));
  u64 arg = in.ConsumeIntegral<u64>();
  if (m == Method::add_loop) arg %= 2000;
  Thrown thrown = draw_thrown(in);
  const Entry* arg_entry = nullptr;
  if (m == Method::add_awaited || m == Method::add_arg) {
    if (p.entries.empty()) return;
    arg_entry = &p.entries[p.pick_entry()];
    if (!arg_entry->ref.valid()) {
      a.with([&](auto& h) {
        expect_usage_error("actor call with an empty ref argument", [&] {
          if (m == Method::add_arg) {
            (void)h.call(&Acc::add, arg_entry->ref);
          } else {
            (void)h.call(&Acc::add_awaited, arg_entry->ref);
          }
        });
      });
      return;
    }
  }
  trace("  method %d on actor %llu, argument entry %llu (gates %llx of closed %llx)", static_cast<int>(m),
        ull(a.with([](auto& h) { return h.id(); })), ull(arg_entry != nullptr ? arg_entry->id : 0),
        ull(arg_entry != nullptr ? arg_entry->gates : 0), ull(p.closed_gates()));
  Entry e;
  if (arg_entry != nullptr) {
    e.deps = arg_entry->deps;
    e.deps.push_back(arg_entry->id);
  }
  u64 arg_gates = arg_entry != nullptr ? arg_entry->gates : 0;
  // Later calls wait behind a call that waits for its arguments (or, on a concurrent actor,
  // behind enough of them): the model keeps every such gate.
  if (!a.dead) e.gates = a.blocked_gates |= arg_gates;
  bool concurrent_end = !a.serial() && (m == Method::quit || m == Method::quit_swallowed);
  e.expect = model_call(a, m, arg, arg_entry != nullptr ? &arg_entry->expect : nullptr, thrown);
  // On a concurrent actor the calls made before an exit may still be queued when it ends.
  if (concurrent_end) unsettle_calls(p, a);
  e.ref = a.with([&](auto& h) -> lumen::ObjectRef<u64> {
    switch (m) {
      case Method::add: return h.call(&Acc::add, arg);
      case Method::peek: return h.call(&Acc::peek);
      case Method::raise: return h.call(&Acc::raise, thrown);
      case Method::quit: return h.call(&Acc::quit);
      case Method::quit_swallowed: return h.call(&Acc::quit_swallowed);
      case Method::was_restarted: return h.call(&Acc::was_restarted);
      case Method::add_awaited: return h.call(&Acc::add_awaited, arg_entry->ref);
      case Method::add_arg: return h.call(&Acc::add, arg_entry->ref);
      case Method::add_later: return h.call(&Acc::add_later, arg);
      case Method::give_empty: return h.call(&Acc::give_empty);
      case Method::add_loop: return h.call(&Acc::add_loop, arg);
      case Method::exit_from_child: return h.call(&Acc::exit_from_child);
      case Method::count: break;
    }
    return {};
  });
  a.last_call = e.ref;
  e.id = p.next_id++;
  a.calls.push_back(e.id);
  p.add_entry(std::move(e));
}

// A peek whose result the program waits for: afterwards the model knows the state again.
void op_actor_sync(Program& p) {
  if (p.actors.empty()) return;
  ActorModel& a = p.pick_actor();
  if (!a.dead && p.gated(a.blocked_gates)) return;
  Expect want = model_call(a, Method::peek, 0, nullptr, {});
  lumen::ObjectRef<u64> ref = a.with([](auto& h) { return h.call(&Acc::peek); });
  a.last_call = ref;
  Outcome o = check_read(want, false, "actor sync", [&] { return lumen::get(ref); });
  if (a.serial()) a.calls.clear();  // everything before the peek has finished
  if (o == Outcome::value && a.alive && a.serial()) {
    a.state = lumen::get(ref);
    a.state_known = true;
    a.ending_unsynced = false;
    a.construction_unsynced = false;
  } else if (o == Outcome::failed && a.dead) {
    a.name_released = true;
    a.ending_unsynced = false;
    a.construction_unsynced = false;
  }
}

void op_actor_kill(Program& p) {
  if (p.actors.empty()) return;
  ActorModel& a = p.pick_actor();
  bool no_restart = p.in.ConsumeBool();
  // Calls that may still be queued run before the kill, or fail, or run again after it.
  bool settled = a.serial() && (!a.last_call.valid() || a.last_call.ready());
  trace("  kill(%d) actor %llu", no_restart, ull(a.with([](auto& h) { return h.id(); })));
  bool for_good = no_restart || (a.alive && !a.restarts_left() && !a.construction_unsynced);
  a.with([&](auto& h) {
    h.kill(no_restart);
    if (for_good) {
      // An end for good shows when kill() returns.
      EXPECT(h.dead(), "an actor killed for good is not dead() when kill() returns");
      if (!a.name.empty())
        EXPECT(!lumen::get_actor<actor_type<decltype(h)>>(a.name), "an actor killed for good is still found by name");
    }
  });
  if (a.dead) return;
  if (!settled) unsettle_calls(p, a);
  if (for_good) {
    a.end_for_good();
    a.name_released = true;
    return;
  }
  if (!a.alive || !settled || !a.serial() || a.ending_unsynced) {
    a.forget();
    return;
  }
  a.restart();
  a.ending_unsynced = true;
}

void op_actor_lookup(Program& p) {
  FDP& in = p.in;
  if (p.actors.empty() || in.ConsumeBool()) {
    EXPECT(!lumen::get_actor<Acc>(p.name_prefix + "never").has_value(), "get_actor found a name never given");
    return;
  }
  ActorModel& a = p.pick_actor();
  if (a.name.empty()) return;
  if (in.ConsumeBool()) {
    try {
      EXPECT(!lumen::get_actor<Other>(a.name), "get_actor<Other> found an actor of another type");
    } catch (const lumen::usage_error&) {
      EXPECT(!a.name_released, "get_actor of a released name threw usage_error");
    }
    return;
  }
  bool found = a.with([&](auto& h) {
    auto looked_up = lumen::get_actor<actor_type<decltype(h)>>(a.name);
    if (looked_up) EXPECT(*looked_up == h && looked_up->name() == a.name, "get_actor returned another actor");
    return looked_up.has_value();
  });
  if (a.alive && a.plan.failures == 0) EXPECT(found, "get_actor did not find a live named actor");
  if (a.name_released) EXPECT(!found, "get_actor found an actor whose name was released");
}

void op_actor_handles(Program& p) {
  FDP& in = p.in;
  int what = in.ConsumeIntegralInRange(0, 2);
  if (what == 0) {
    lumen::ActorHandle<Acc> empty;
    EXPECT(!empty.valid() && !empty.dead() && empty.id() == 0, "an empty ActorHandle claims an actor");
    expect_usage_error("call on an empty handle", [&] { (void)empty.call(&Acc::peek); });
    expect_usage_error("kill on an empty handle", [&] { empty.kill(); });
    expect_usage_error("name of an empty handle", [&] { (void)empty.name(); });
    return;
  }
  if (p.actors.empty()) return;
  std::size_t k = in.ConsumeIntegralInRange<std::size_t>(0, p.actors.size() - 1);
  ActorModel& a = p.actors[k];
  if (what == 1) {
    // A call from inside a task that the program waits for at once: ordered as if made here.
    if (!a.dead && p.gated(a.blocked_gates)) return;
    Expect want = model_call(a, Method::peek, 0, nullptr, {});
    auto ref = a.with([](auto& h) { return lumen::submit([h] { return lumen::get(h.call(&Acc::peek)); }); });
    check_read(want, false, "an actor call from a task", [&] { return lumen::get(ref); });
    return;
  }
  // Its last handle goes: its queued calls still run and resolve.
  if (a.name.empty()) p.actors.erase(p.actors.begin() + static_cast<std::ptrdiff_t>(k));
}

// ---- task groups -------------------------------------------------------------------------------

// Runs f here, or in a task the program waits for.
template <class F>
void run_where(bool in_task, F&& f) {
  if (in_task) {
    lumen::get(lumen::submit([&] { f(); }));
  } else {
    f();
  }
}

void op_task_group(Program& p) {
  FDP& in = p.in;
  bool in_task = in.ConsumeBool();
  std::size_t children = in.ConsumeIntegralInRange<std::size_t>(0, 40);
  std::vector<u64> values(children);
  std::vector<std::optional<Thrown>> throws(children);
  std::vector<int> grandchildren(children);
  for (std::size_t i = 0; i < children; ++i) {
    values[i] = in.ConsumeIntegral<u64>();
    if (in.ConsumeIntegralInRange(0, 7) == 0) throws[i] = draw_thrown(in);
    grandchildren[i] = in.ConsumeIntegralInRange(0, 7) == 0 ? in.ConsumeIntegralInRange(1, 3) : 0;
  }
  int cancel_at = in.ConsumeIntegralInRange(-1, static_cast<int>(children));  // -1: never
  bool reuse = in.ConsumeBool();
  run_where(in_task, [&] {
    lumen::task_group g;
    std::atomic<u64> sum{0};
    std::atomic<int> ran{0};
    std::vector<std::atomic<int>> runs(children);
    std::vector<Thrown> allowed;
    u64 expected_sum = 0;
    int expected_ran = 0;
    for (std::size_t i = 0; i < children; ++i) {
      if (static_cast<int>(i) == cancel_at) g.cancel();
      if (throws[i]) allowed.push_back(*throws[i]);
      expected_sum += values[i] * static_cast<u64>(1 + grandchildren[i]);
      expected_ran += 1 + grandchildren[i];
      g.run([&, i] {
        runs[i].fetch_add(1);
        // Children may spawn into their own group.
        for (int k = 0; k < grandchildren[i]; ++k)
          g.run([&, i] {
            sum.fetch_add(values[i]);
            ran.fetch_add(1);
          });
        sum.fetch_add(values[i]);
        ran.fetch_add(1);
        if (throws[i]) throw_it(*throws[i]);
      });
    }
    if (cancel_at == static_cast<int>(children)) g.cancel();
    bool cancelled = cancel_at >= 0;
    if (cancelled) EXPECT(g.is_canceling(), "a cancelled task_group is not canceling");
    std::exception_ptr error;
    try {
      g.wait();
    } catch (...) {
      error = std::current_exception();
    }
    EXPECT(!g.is_canceling(), "a task_group is still canceling after wait");
    EXPECT(ran.load() <= expected_ran, "a task_group ran more children than it was given");
    for (std::size_t i = 0; i < children; ++i) {
      EXPECT(runs[i].load() <= 1, "a task_group child ran twice");
      // A child that threw makes wait rethrow.
      if (throws[i] && runs[i].load() == 1) EXPECT(error, "a child threw but task_group::wait did not rethrow");
    }
    if (error) check_escaped(error, allowed, "task_group::wait");
    if (!cancelled && allowed.empty())
      EXPECT(sum.load() == expected_sum && ran.load() == expected_ran, "a task_group ran %d of %d children", ran.load(),
             expected_ran);
    if (reuse) {
      // After wait the group is as new; a wait with nothing to do returns at once.
      g.wait();
      std::atomic<int> again{0};
      for (int i = 0; i < 5; ++i) g.run([&] { again.fetch_add(1); });
      g.wait();
      EXPECT(again.load() == 5, "a reused task_group ran %d of 5 children", again.load());
    }
  });
}

// ---- parallel loops ----------------------------------------------------------------------------

// Ranges up to kSmallRange indices are checked index by index. Longer ones only over their
// first kTracked offsets: past those their bodies throw kBeyond, so even a range of 2^64
// indices ends at once.
constexpr u64 kTracked = 256;
constexpr u64 kSmallRange = 4096;

template <class T>
T draw_bound(FDP& in) {
  using L = std::numeric_limits<T>;
  T small = static_cast<T>(in.ConsumeIntegralInRange<int>(0, 100));
  switch (in.ConsumeIntegralInRange(0, 7)) {
    case 0: return T(0);
    case 1: return L::max();
    case 2: return L::min();
    case 3: return static_cast<T>(L::max() - small);
    case 4: return static_cast<T>(L::min() + small);
    case 5: return static_cast<T>(T(0) - small);  // negative, or near the top of an unsigned type
    case 6: return small;
    default: return in.ConsumeIntegral<T>();
  }
}

// `first` plus a short length (or minus, for an empty range), saturated at B's limits.
template <class A, class B>
B draw_last(FDP& in, A first) {
  if (in.ConsumeIntegralInRange(0, 3) == 0) return draw_bound<B>(in);
  long double want = static_cast<long double>(first) + in.ConsumeIntegralInRange<int>(-3, 300);
  if (want >= static_cast<long double>(std::numeric_limits<B>::max())) return std::numeric_limits<B>::max();
  if (want <= static_cast<long double>(std::numeric_limits<B>::min())) return std::numeric_limits<B>::min();
  return static_cast<B>(want);
}

// The loop's range as parallel_for.h defines it: indices of the bounds' common type in
// [first, last), empty when last <= first as numbers, refused when not empty and a bound does
// not fit the common type.
template <class A, class B>
struct Range {
  using I = std::common_type_t<A, B>;
  using U = std::make_unsigned_t<I>;
  I first{}, last{};
  u64 size = 0;
  bool refused = false;
  Range(A a, B b) {
    if (!std::cmp_less(a, b)) return;
    refused = !std::in_range<I>(a) || !std::in_range<I>(b);
    if (refused) return;
    first = static_cast<I>(a);
    last = static_cast<I>(b);
    size = static_cast<u64>(static_cast<U>(static_cast<U>(last) - static_cast<U>(first)));
  }
  u64 offset(I i) const { return static_cast<u64>(static_cast<U>(static_cast<U>(i) - static_cast<U>(first))); }
  I at(u64 off) const { return static_cast<I>(static_cast<U>(static_cast<U>(first) + static_cast<U>(off))); }
  bool contains(I i) const { return i >= first && i < last; }
  bool huge() const { return size > kSmallRange; }
  u64 checked() const { return huge() ? kTracked : size; }
};

struct LoopThrow {
  bool on = false;
  u64 at = 0;  // the offset whose body throws
  Thrown thrown;
};

LoopThrow draw_loop_throw(FDP& in, u64 size) {
  LoopThrow t;
  if (size == 0 || in.ConsumeIntegralInRange(0, 3) != 0) return t;
  t.on = true;
  t.at = in.ConsumeIntegralInRange<u64>(0, std::min(size, kTracked) - 1);
  t.thrown = draw_thrown(in);
  return t;
}

template <class A, class B>
void loop_for(FDP& in, A first, B last, bool in_task) {
  using R = Range<A, B>;
  using I = typename R::I;
  R range(first, last);
  LoopThrow lt = draw_loop_throw(in, range.size);
  int form = in.ConsumeIntegralInRange(0, 2);  // per index, chunks, chunks of a grain
  static const std::size_t grains[] = {0, 1, 2, 7, 64, 1000, std::numeric_limits<std::size_t>::max()};
  std::size_t grain = grains[in.ConsumeIntegralInRange(0, 6)];
  std::vector<Thrown> allowed;
  if (lt.on) allowed.push_back(lt.thrown);
  if (range.huge()) allowed.push_back(kBeyond);

  run_where(in_task, [&] {
    std::vector<std::atomic<int>> visits(range.checked());
    auto visit = [&](u64 off) {
      if (off >= visits.size()) throw_it(kBeyond);
      EXPECT(visits[off].fetch_add(1) == 0, "parallel_for ran offset %llu of %llu twice", ull(off), ull(range.size));
      if (lt.on && off == lt.at) throw_it(lt.thrown);
    };
    auto chunk = [&](I lo, I hi) {
      u64 lo_off = range.offset(lo), hi_off = range.offset(hi);
      EXPECT(range.contains(lo) && lo_off < hi_off && hi_off <= range.size,
             "parallel_for passed an empty chunk or one outside [first, last)");
      if (form == 2)
        EXPECT(hi_off - lo_off <= lumen::grain(grain).size, "parallel_for passed a chunk of %llu indices, grain %zu",
               ull(hi_off - lo_off), grain);
      for (u64 off = lo_off; off < hi_off; ++off) visit(off);
    };
    std::exception_ptr error;
    try {
      if (form == 0) {
        lumen::parallel_for(first, last, [&](I i) {
          EXPECT(range.contains(i), "parallel_for passed an index outside [first, last)");
          visit(range.offset(i));
        });
      } else if (form == 1) {
        lumen::parallel_for(first, last, chunk);
      } else {
        lumen::parallel_for(first, last, lumen::grain(grain), chunk);
      }
    } catch (const lumen::usage_error& x) {
      EXPECT(range.refused, "parallel_for refused a range that fits its index type: %s", x.what());
      return;
    } catch (...) {
      error = std::current_exception();
    }
    EXPECT(!range.refused, "parallel_for ran a range whose bound does not fit its index type");
    if (error) {
      check_escaped(error, allowed, "parallel_for");
      return;
    }
    EXPECT(allowed.empty(), "parallel_for finished although a body threw");
    for (std::size_t k = 0; k < visits.size(); ++k)
      EXPECT(visits[k].load() == 1, "parallel_for skipped offset %zu of %llu", k, ull(range.size));
  });
}

// An affine map x -> a x + b modulo 2^64: composing them is associative but not commutative,
// so pieces combined out of order give a different result.
struct Affine {
  u64 a = 1, b = 0;
  friend bool operator==(const Affine&, const Affine&) = default;
};
Affine then(const Affine& f, const Affine& g) { return Affine{g.a * f.a, g.a * f.b + g.b}; }
Affine affine_of(u64 off) { return Affine{mix(off) | 1, mix(off + 1)}; }

template <class T, class A, class B, class Map, class Combine>
T reduce_in_form(int form, std::size_t grain, A first, B last, Map map, Combine combine) {
  if (form == 0) return lumen::parallel_reduce(first, last, T{}, map, combine);
  if (form == 1) return lumen::parallel_reduce(first, last, T{}, map, combine, lumen::grain(grain));
  return lumen::parallel_reduce(first, last, T{}, map, combine, lumen::deterministic{grain});
}

template <class A, class B>
void loop_reduce(FDP& in, A first, B last, bool in_task) {
  using R = Range<A, B>;
  using I = typename R::I;
  R range(first, last);
  LoopThrow lt = draw_loop_throw(in, range.size);
  int form = in.ConsumeIntegralInRange(0, 2);  // adaptive, grain, deterministic
  static const std::size_t grains[] = {0, 1, 3, 100, std::numeric_limits<std::size_t>::max()};
  std::size_t grain = grains[in.ConsumeIntegralInRange(0, 4)];
  bool ordered = in.ConsumeBool();
  trace("  form %d, grain %zu, %s, throws at %s", form, grain, ordered ? "ordered" : "sum", lt.on ? "an index" : "none");
  std::vector<Thrown> allowed;
  if (lt.on) allowed.push_back(lt.thrown);
  if (range.huge()) allowed.push_back(kBeyond);

  run_where(in_task, [&] {
    auto offset_of = [&](I i) {
      EXPECT(range.contains(i), "parallel_reduce passed an index outside [first, last)");
      u64 off = range.offset(i);
      if (off >= range.checked()) throw_it(kBeyond);
      if (lt.on && off == lt.at) throw_it(lt.thrown);
      return off;
    };
    std::exception_ptr error;
    try {
      if (ordered) {
        Affine got = reduce_in_form<Affine>(form, grain, first, last, [&](I i) { return affine_of(offset_of(i)); }, then);
        EXPECT(allowed.empty(), "parallel_reduce finished although a map threw");
        Affine want;
        for (u64 off = 0; off < range.size; ++off) want = then(want, affine_of(off));
        EXPECT(got == want, "parallel_reduce combined pieces out of order (%llu indices)", ull(range.size));
      } else {
        u64 got = reduce_in_form<u64>(form, grain, first, last, [&](I i) { return mix(offset_of(i)); },
                                      [](u64 x, u64 y) { return x + y; });
        EXPECT(allowed.empty(), "parallel_reduce finished although a map threw");
        EXPECT(got == loop_sum(range.size), "parallel_reduce sum is wrong (%llu indices)", ull(range.size));
      }
    } catch (const lumen::usage_error& x) {
      EXPECT(range.refused, "parallel_reduce refused a range that fits its index type: %s", x.what());
      return;
    } catch (...) {
      error = std::current_exception();
    }
    EXPECT(!range.refused, "parallel_reduce ran a range whose bound does not fit its index type");
    if (error) check_escaped(error, allowed, "parallel_reduce");
  });
}

template <class A, class B>
void loop_with(FDP& in, bool in_task, bool reduce) {
  A first = draw_bound<A>(in);
  B last = draw_last<A, B>(in, first);
  trace("  %s over [%lld, %llu) of %zu- and %zu-byte %s/%s types", reduce ? "parallel_reduce" : "parallel_for",
        static_cast<long long>(first), static_cast<unsigned long long>(last), sizeof(A), sizeof(B),
        std::is_signed_v<A> ? "signed" : "unsigned", std::is_signed_v<B> ? "signed" : "unsigned");
  if (reduce) {
    loop_reduce(in, first, last, in_task);
  } else {
    loop_for(in, first, last, in_task);
  }
}

template <class A>
void loop_second_type(FDP& in, bool in_task, bool reduce) {
  switch (in.ConsumeIntegralInRange(0, 3)) {
    case 0: return loop_with<A, A>(in, in_task, reduce);
    case 1: return loop_with<A, int>(in, in_task, reduce);
    case 2: return loop_with<A, std::size_t>(in, in_task, reduce);
    default: return loop_with<A, std::int64_t>(in, in_task, reduce);
  }
}

void op_loop(Program& p) {
  FDP& in = p.in;
  bool reduce = in.ConsumeBool();
  bool in_task = in.ConsumeBool();
  switch (in.ConsumeIntegralInRange(0, 7)) {
    case 0: return loop_second_type<std::int8_t>(in, in_task, reduce);
    case 1: return loop_second_type<std::uint8_t>(in, in_task, reduce);
    case 2: return loop_second_type<std::int16_t>(in, in_task, reduce);
    case 3: return loop_second_type<std::uint16_t>(in, in_task, reduce);
    case 4: return loop_second_type<std::int32_t>(in, in_task, reduce);
    case 5: return loop_second_type<std::uint32_t>(in, in_task, reduce);
    case 6: return loop_second_type<std::int64_t>(in, in_task, reduce);
    default: return loop_second_type<std::uint64_t>(in, in_task, reduce);
  }
}

// Sorts, scans, for_each and invoke over a vector.
void op_sequence(Program& p) {
  FDP& in = p.in;
  bool in_task = in.ConsumeBool();
  int what = in.ConsumeIntegralInRange(0, 3);
  static const std::size_t sizes[] = {0, 1, 2, 31, 32, 33, 1000, 5000, 16384, 16385, 40000};
  std::size_t n = sizes[in.ConsumeIntegralInRange(0, 10)];
  u64 seed = in.ConsumeIntegral<u64>();
  bool few_values = in.ConsumeBool();
  std::vector<u64> data(n);
  for (std::size_t i = 0; i < n; ++i) data[i] = few_values ? mix(seed + i) % 3 : mix(seed + i);
  bool throws = in.ConsumeIntegralInRange(0, 3) == 0;
  Thrown thrown = draw_thrown(in);
  u64 throw_after = in.ConsumeIntegralInRange<u64>(0, 5000);
  bool in_place = in.ConsumeBool();
  run_where(in_task, [&] {
    std::atomic<u64> calls{0};
    auto maybe_throw = [&] {
      if (throws && calls.fetch_add(1, std::memory_order_relaxed) == throw_after) throw_it(thrown);
    };
    std::exception_ptr error;
    if (what == 0) {
      std::vector<u64> v = data;
      bool descending = (seed & 1) != 0;
      try {
        lumen::parallel_sort(v.begin(), v.end(), [&](u64 a, u64 b) {
          maybe_throw();
          return descending ? a > b : a < b;
        });
      } catch (...) {
        error = std::current_exception();
      }
      if (error) {
        check_escaped(error, {thrown}, "parallel_sort");
        EXPECT(throws, "parallel_sort threw without a throwing comparator");
        return;
      }
      EXPECT(!throws || calls.load() <= throw_after, "parallel_sort swallowed its comparator's exception");
      std::vector<u64> want = data;
      std::sort(want.begin(), want.end(), [&](u64 a, u64 b) { return descending ? a > b : a < b; });
      EXPECT(v == want, "parallel_sort of %zu elements is not sorted or not a permutation", n);
    } else if (what == 1 || what == 2) {
      bool inclusive = what == 1;
      std::vector<u64> out = in_place ? data : std::vector<u64>(n, 0xdead);
      auto op = [&](u64 a, u64 b) {
        maybe_throw();
        return a + b;
      };
      try {
        auto from = in_place ? out.begin() : data.begin();
        auto to = in_place ? out.end() : data.end();
        if (inclusive) {
          lumen::parallel_scan(from, to, out.begin(), seed, op);
        } else {
          lumen::parallel_exclusive_scan(from, to, out.begin(), seed, op);
        }
      } catch (...) {
        error = std::current_exception();
      }
      if (error) {
        check_escaped(error, {thrown}, "parallel_scan");
        EXPECT(throws, "parallel_scan threw without a throwing op");
        return;
      }
      EXPECT(!throws || calls.load() <= throw_after, "parallel_scan swallowed its op's exception");
      u64 acc = seed;
      for (std::size_t i = 0; i < n; ++i) {
        u64 before = acc;
        acc += data[i];
        EXPECT(out[i] == (inclusive ? acc : before), "%s scan of %zu elements is wrong at %zu",
               inclusive ? "inclusive" : "exclusive", n, i);
      }
    } else {
      std::vector<std::atomic<int>> seen(n);
      std::vector<u64> v = data;
      try {
        lumen::parallel_for_each(v.begin(), v.end(), [&](u64& x) {
          auto i = static_cast<std::size_t>(&x - v.data());
          seen[i].fetch_add(1);
          if (throws && i == throw_after) throw_it(thrown);
        });
        u64 a = 0, b = 0, c = 0;
        lumen::parallel_invoke([&] { a = seed; }, [&] { b = seed + 1; }, [&] { c = seed + 2; });
        EXPECT(a == seed && b == seed + 1 && c == seed + 2, "parallel_invoke skipped a callable");
      } catch (...) {
        error = std::current_exception();
      }
      bool must_throw = throws && throw_after < n;
      if (error) check_escaped(error, {thrown}, "parallel_for_each");
      EXPECT(static_cast<bool>(error) == must_throw, "parallel_for_each %s", must_throw ? "swallowed an exception" : "threw");
      for (std::size_t i = 0; i < n; ++i) {
        EXPECT(seen[i].load() <= 1, "parallel_for_each visited element %zu twice", i);
        if (!error) EXPECT(seen[i].load() == 1, "parallel_for_each skipped element %zu", i);
      }
    }
  });
}

// ---- pipelines ---------------------------------------------------------------------------------

struct Item {
  u64 seq;
  u64 value;
  std::string pad;  // long ones live on the heap: a leaked or doubly destroyed item shows
};

u64 stage_step(u64 v, int k) { return mix(v + static_cast<u64>(k)); }

// Checks that a stage keeps its mode as items pass through it.
struct StageWatch {
  lumen::stage_mode mode = lumen::stage_mode::parallel;
  std::atomic<int> inside{0};
  std::mutex order_mutex;
  std::optional<u64> last_seq;
  std::vector<std::atomic<int>>* arrivals = nullptr;  // per item, for the sink

  void enter(const Item& it, const char* what) {
    if (mode != lumen::stage_mode::parallel)
      EXPECT(inside.fetch_add(1) == 0, "two items inside a serial pipeline %s at once", what);
    if (mode == lumen::stage_mode::serial_in_order) {
      std::lock_guard<std::mutex> lock(order_mutex);
      EXPECT(!last_seq || *last_seq < it.seq, "a serial_in_order %s took item %llu after %llu", what, ull(it.seq),
             ull(last_seq.value_or(0)));
      last_seq = it.seq;
    }
    if (arrivals != nullptr)
      EXPECT((*arrivals)[it.seq].fetch_add(1) == 0, "item %llu reached the %s twice", ull(it.seq), what);
  }
  void leave() {
    if (mode != lumen::stage_mode::parallel) inside.fetch_sub(1);
  }
};

// More tokens than any machine has memory for their item buffers.
constexpr std::size_t kAbsurdTokens = std::size_t{1} << 40;

void op_pipeline(Program& p) {
  FDP& in = p.in;
  bool in_task = in.ConsumeBool();
  static const std::size_t token_counts[] = {1, 2, 3, 4, 7, 16, 100, 0, std::numeric_limits<std::size_t>::max(),
                                             std::size_t{1} << 62};
  std::size_t tokens = token_counts[in.ConsumeIntegralInRange(0, 9)];
  u64 items = in.ConsumeIntegralInRange<u64>(0, 200);
  int middle = in.ConsumeIntegralInRange(0, 2);
  std::array<lumen::stage_mode, 2> modes{};
  for (auto& m : modes) m = static_cast<lumen::stage_mode>(in.ConsumeIntegralInRange(0, 2));
  auto sink_mode = static_cast<lumen::stage_mode>(in.ConsumeIntegralInRange(0, 2));
  bool optional_source = in.ConsumeBool();
  // Who throws: -1 nobody, 0 the source, 1..middle a stage, middle + 1 the sink.
  int thrower = in.ConsumeIntegralInRange(0, 2) == 0 ? in.ConsumeIntegralInRange(0, middle + 1) : -1;
  u64 throw_at = in.ConsumeIntegralInRange<u64>(0, items);
  Thrown thrown = draw_thrown(in);
  trace("  tokens %zu, %llu items, %d middle stages, thrower %d", tokens, ull(items), middle, thrower);

  run_where(in_task, [&] {
    std::atomic<u64> produced{0}, finished{0};
    std::atomic<int> in_source{0};
    std::vector<std::atomic<int>> arrivals(items);
    std::array<StageWatch, 2> watches;
    for (std::size_t k = 0; k < 2; ++k) watches[k].mode = modes[k];
    StageWatch sink_watch;
    sink_watch.mode = sink_mode;
    sink_watch.arrivals = &arrivals;

    auto next_item = [&]() -> std::optional<Item> {
      EXPECT(in_source.fetch_add(1) == 0, "a pipeline's source was called concurrently");
      u64 seq = produced.load();
      // Items that finished the sink gave their token back (or are about to).
      EXPECT(seq - finished.load() < tokens, "a pipeline has more than %zu items in flight", tokens);
      std::optional<Item> out;
      if (seq < items) {
        if (thrower == 0 && seq == throw_at) {
          in_source.fetch_sub(1);
          throw_it(thrown);
        }
        produced.store(seq + 1);
        out = Item{seq, mix(seq), std::string(seq % 40, 'x')};
      }
      in_source.fetch_sub(1);
      return out;
    };
    auto source_with_flow_control = [&](lumen::flow_control& fc) -> Item {
      std::optional<Item> it = next_item();
      if (!it) {
        fc.stop();
        return Item{0, 0, {}};
      }
      return std::move(*it);
    };
    auto stage = [&](int k) {
      return [&, k](Item it) {
        StageWatch& w = watches[static_cast<std::size_t>(k - 1)];
        w.enter(it, "stage");
        if (thrower == k && it.seq == throw_at) {
          w.leave();
          throw_it(thrown);
        }
        it.value = stage_step(it.value, k);
        w.leave();
        return it;
      };
    };
    auto sink = [&](Item it) {
      sink_watch.enter(it, "sink");
      if (thrower == middle + 1 && it.seq == throw_at) {
        sink_watch.leave();
        throw_it(thrown);
      }
      u64 want = mix(it.seq);
      for (int k = 1; k <= middle; ++k) want = stage_step(want, k);
      EXPECT(it.value == want && it.pad.size() == it.seq % 40, "pipeline item %llu arrived damaged", ull(it.seq));
      sink_watch.leave();
      finished.fetch_add(1);
    };
    auto run_from = [&](auto source) {
      auto start = lumen::pipeline(tokens).source(std::move(source));
      if (middle == 0) {
        std::move(start).sink(sink_mode, sink).run();
      } else if (middle == 1) {
        std::move(start).stage(modes[0], stage(1)).sink(sink_mode, sink).run();
      } else {
        std::move(start).stage(modes[0], stage(1)).stage(modes[1], stage(2)).sink(sink_mode, sink).run();
      }
    };

    std::exception_ptr error;
    try {
      if (optional_source) {
        run_from(next_item);
      } else {
        run_from(source_with_flow_control);
      }
    } catch (const lumen::usage_error& x) {
      // No tokens, or token buffers larger than the address space.
      EXPECT(tokens == 0 || tokens > kAbsurdTokens, "a pipeline with %zu tokens threw usage_error: %s", tokens, x.what());
      return;
    } catch (const lumen::resource_error& x) {
      EXPECT(tokens > kAbsurdTokens, "a pipeline with %zu tokens threw resource_error: %s", tokens, x.what());
      return;
    } catch (...) {
      error = std::current_exception();
    }
    EXPECT(tokens != 0, "a pipeline accepted 0 tokens");
    bool must_throw = thrower >= 0 && throw_at < items;
    if (error) {
      check_escaped(error, {thrown}, "pipeline");
      EXPECT(must_throw, "a pipeline threw without a throwing stage");
      return;
    }
    EXPECT(!must_throw, "a pipeline swallowed a stage's exception");
    EXPECT(produced.load() == items, "a pipeline's source made %llu items, not %llu", ull(produced.load()), ull(items));
    for (u64 s = 0; s < items; ++s)
      EXPECT(arrivals[s].load() == 1, "pipeline item %llu reached the sink %d times", ull(s), arrivals[s].load());
  });
}

// ---- graphs ------------------------------------------------------------------------------------

void op_graph(Program& p) {
  FDP& in = p.in;
  bool in_task = in.ConsumeBool();
  std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, 10);
  std::vector<std::pair<std::size_t, std::size_t>> edges;
  if (n > 1) {
    for (int k = in.ConsumeIntegralInRange(0, 20); k > 0; --k) {
      std::size_t a = in.ConsumeIntegralInRange<std::size_t>(0, n - 1);
      std::size_t b = in.ConsumeIntegralInRange<std::size_t>(0, n - 1);
      if (a != b) edges.emplace_back(std::min(a, b), std::max(a, b));
    }
  }
  // A plain cycle through every node: no node can ever start.
  bool cycle = n > 1 && in.ConsumeIntegralInRange(0, 5) == 0;
  if (cycle) {
    for (std::size_t i = 0; i + 1 < n; ++i) edges.emplace_back(i, i + 1);
    edges.emplace_back(n - 1, 0);
  }
  std::optional<std::size_t> thrower;
  if (n > 0 && in.ConsumeIntegralInRange(0, 3) == 0) thrower = in.ConsumeIntegralInRange<std::size_t>(0, n - 1);
  Thrown thrown = draw_thrown(in);
  std::size_t runs = in.ConsumeIntegralInRange<std::size_t>(0, 3);
  // Runs stop after one that threw: a thrower ends even endless runs at once.
  if (thrower && in.ConsumeBool()) runs = std::numeric_limits<std::size_t>::max();
  bool composed = in.ConsumeBool();

  run_where(in_task, [&] {
    std::atomic<u64> clock{0};
    std::mutex spans_mutex;
    std::vector<std::vector<std::pair<u64, u64>>> spans(n);  // per node, (start, end) of each run
    lumen::graph g("fuzz");
    std::vector<lumen::graph_task> tasks;
    for (std::size_t i = 0; i < n; ++i) {
      tasks.push_back(g.emplace([&, i] {
        u64 start = clock.fetch_add(1);
        if (thrower == i) throw_it(thrown);
        u64 end = clock.fetch_add(1);
        std::lock_guard<std::mutex> lock(spans_mutex);
        spans[i].emplace_back(start, end);
      }));
    }
    for (auto [a, b] : edges) tasks[a].precede(tasks[b]);
    lumen::graph outer("outer");
    if (composed) outer.emplace([] {}).precede(outer.compose(g));
    std::exception_ptr error;
    try {
      lumen::run_n(composed ? outer : g, runs).wait();
    } catch (...) {
      error = std::current_exception();
    }
    if (cycle) {
      if (runs > 0) {
        EXPECT(error, "a graph with a plain cycle ran");
        expect_usage_error("running a graph with a plain cycle", [&] { std::rethrow_exception(error); });
      }
      return;
    }
    bool threw = thrower && runs > 0;
    if (error) check_escaped(error, {thrown}, "a graph run");
    EXPECT(static_cast<bool>(error) == threw, "a graph run %s", threw ? "swallowed a task's exception" : "threw");
    std::size_t done = threw ? 1 : runs;
    for (std::size_t i = 0; i < n; ++i) {
      EXPECT(spans[i].size() <= done, "graph task %zu ran %zu times in %zu runs", i, spans[i].size(), done);
      if (!threw) EXPECT(spans[i].size() == done, "graph task %zu ran %zu times in %zu runs", i, spans[i].size(), done);
    }
    if (threw) return;
    for (auto [a, b] : edges)
      for (std::size_t r = 0; r < done; ++r)
        EXPECT(spans[a][r].second < spans[b][r].first, "graph task %zu started before its predecessor %zu ended", b, a);
  });
}

// ---- a short-lived runtime ---------------------------------------------------------------------

// Starts a runtime with cfg into rt, which runtime.h's ranges say must be refused with
// usage_error when `bad`; true when it started.
bool start_runtime(std::optional<lumen::Runtime>& rt, const lumen::Config& cfg, bool bad, const char* what) {
  try {
    rt.emplace(cfg);
  } catch (const lumen::usage_error& x) {
    EXPECT(bad, "a Runtime rejected %s within the documented ranges: %s", what, x.what());
    return false;
  }
  EXPECT(!bad, "a Runtime accepted %s outside the documented ranges", what);
  return true;
}

void op_runtime(Program& p) {
  FDP& in = p.in;
  lumen::Config cfg;
  static const unsigned workers[] = {0, 1, 2, 3, 4097, std::numeric_limits<unsigned>::max()};
  cfg.workers = workers[in.ConsumeIntegralInRange(0, 5)];
  static const std::size_t stacks[] = {0,       4096,    16 * 1024, 16 * 1024 + 1, 64 * 1024, 256 * 1024, 1 << 20,
                                       1 << 30, (std::size_t{1} << 30) + 1,      std::numeric_limits<std::size_t>::max()};
  cfg.fiber_stack_size = stacks[in.ConsumeIntegralInRange(0, 9)];
  static const std::size_t counts[] = {0, 1, 2, 3, 16, 32768, 32769, std::numeric_limits<std::size_t>::max()};
  cfg.max_fibers = counts[in.ConsumeIntegralInRange(0, 7)];
  cfg.max_idle_fibers = counts[in.ConsumeIntegralInRange(0, 7)];
  cfg.max_blocking_threads = counts[in.ConsumeIntegralInRange(0, 7)];
  using std::chrono::microseconds;
  static const microseconds spins[] = {microseconds(0), microseconds(-1), microseconds(50), microseconds(1000000),
                                       microseconds(1000001), microseconds::max(), microseconds::min()};
  cfg.idle_spin = spins[in.ConsumeIntegralInRange(0, 6)];
  for (int k = in.ConsumeIntegralInRange(0, 3); k > 0; --k) {
    ResourceClaim c = draw_claim(in);
    cfg.resources.emplace_back(c.name, c.count);
  }
  // The ranges runtime.h documents for each field.
  bool bad = cfg.workers > 4096 || cfg.fiber_stack_size < 16 * 1024 || cfg.fiber_stack_size > (std::size_t{1} << 30) ||
             cfg.max_blocking_threads < 1 || cfg.max_blocking_threads > 32768 || cfg.idle_spin < microseconds(0) ||
             cfg.idle_spin > std::chrono::seconds(1);
  for (const auto& [name, amount] : cfg.resources)
    bad = bad || name.empty() || !(amount >= 0) || amount != std::floor(amount) || amount > 4294967295.0;
  unsigned n = cfg.workers != 0 ? cfg.workers : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::pair<std::string, double>> capacities{{"CPU", static_cast<double>(n)}};
  for (const auto& resource : cfg.resources) {
    auto it = std::find_if(capacities.begin(), capacities.end(), [&](const auto& c) { return c.first == resource.first; });
    if (it != capacities.end()) {
      it->second = resource.second;
    } else {
      capacities.push_back(resource);
    }
  }
  ResourceClaim claim = draw_claim(in);
  u64 v = in.ConsumeIntegral<u64>();
  bool keep_actor = in.ConsumeBool();
  trace("  workers %u, stack %zu, max_fibers %zu, max_idle_fibers %zu, max_blocking_threads %zu, idle_spin %lld us, "
        "%zu resources",
        cfg.workers, cfg.fiber_stack_size, cfg.max_fibers, cfg.max_idle_fibers, cfg.max_blocking_threads,
        static_cast<long long>(cfg.idle_spin.count()), cfg.resources.size());

  // With few fibers a task that blocks may find none left to park on.
  Expect blocked = Expect::exactly(mix(v));
  lumen::ObjectRef<u64> survivor;
  lumen::ActorHandle<Acc> orphan;
  {
    std::optional<lumen::Runtime> rt;
    if (!start_runtime(rt, cfg, bad, "a Config")) return;
    EXPECT(rt->workers() == n, "a Runtime has %u workers, %u were asked", rt->workers(), cfg.workers);
    auto inner = lumen::submit([v] {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      return v;
    });
    survivor = lumen::submit([inner] { return mix(lumen::get(inner)); });
    std::atomic<int> iterations{0};
    lumen::parallel_for(0, 100, [&](int) { iterations.fetch_add(1); });
    EXPECT(iterations.load() == 100, "parallel_for on a short-lived runtime ran %d of 100", iterations.load());
    try {
      auto r = lumen::task([v] { return v; }).resources({{claim.name, claim.count}}).submit();
      EXPECT(claim_is_valid(claim, capacities), "a Runtime accepted an invalid resource claim");
      EXPECT(lumen::get(r) == v, "a task holding a resource returned a wrong value");
    } catch (const lumen::usage_error& x) {
      EXPECT(!claim_is_valid(claim, capacities), "a Runtime rejected a valid resource claim: %s", x.what());
    }
    auto a = lumen::actor<Acc>(lumen::ActorOptions{}, v, CtorPlan{});
    EXPECT(lumen::get(a.call(&Acc::add, u64{1})) == v + 1, "an actor of a short-lived runtime added wrongly");
    if (keep_actor) orphan = a;
  }
  // The runtime is gone; its objects stay, its actors are dead.
  try {
    EXPECT(lumen::get(survivor) == mix(v), "a ref outlived its runtime with a wrong value");
  } catch (const lumen::resource_error&) {
    EXPECT(cfg.max_fibers != 0, "a task failed for want of a fiber with max_fibers unlimited");
  }
  if (orphan.valid()) {
    EXPECT(orphan.dead(), "an actor outlived its runtime");
    try {
      (void)lumen::get(orphan.call(&Acc::peek));
      fail("a call to an actor whose runtime is gone returned a value");
    } catch (const lumen::actor_died&) {
    } catch (const lumen::shutdown_error&) {
    }
  }
}

// A short-lived runtime with an object memory limit: deterministic results and puts of
// vectors of drawn sizes, read back with read() (get(const ref&) would keep them in memory).
void op_memory_limit(Program& p) {
  FDP& in = p.in;
  static const std::size_t limits[] = {0, 1, 4096, 64 * 1024, 1 << 20, std::numeric_limits<std::size_t>::max()};
  lumen::Config cfg;
  cfg.workers = 2;
  cfg.object_memory_limit = limits[in.ConsumeIntegralInRange(0, 5)];
  const int spill = in.ConsumeIntegralInRange(0, 2);  // none, a folder, a path under a file
  const std::string folder = "/tmp/lumen-fuzz-spill-" + std::to_string(::getpid());
  if (spill == 1) cfg.spill_directory = folder;
  if (spill == 2) cfg.spill_directory = "/proc/version/spill";
  cfg.put_at_limit = in.ConsumeBool() ? lumen::PutAtLimit::wait : lumen::PutAtLimit::fail;
  const bool bad = (spill != 0 && cfg.object_memory_limit == 0) || spill == 2;
  trace("  limit %zu, spill %d, %s", cfg.object_memory_limit, spill,
        cfg.put_at_limit == lumen::PutAtLimit::wait ? "wait" : "fail");
  {
    std::optional<lumen::Runtime> rt;
    if (!start_runtime(rt, cfg, bad, "a memory limit and spill folder")) return;
    using Values = std::vector<u64>;
    auto make = [](u64 seed, std::size_t n) {
      Values v(n);
      for (std::size_t i = 0; i < n; ++i) v[i] = mix(seed + i);
      return v;
    };
    struct Made {
      lumen::ObjectRef<Values> ref;
      u64 seed;
      std::size_t n;
    };
    std::vector<Made> made;
    // A put that must wait with nothing able to leave would wait for ever: only puts that can
    // be spilled are made under `wait`.
    const bool puts_ok = cfg.put_at_limit == lumen::PutAtLimit::fail || spill == 1 || cfg.object_memory_limit == 0;
    for (int k = in.ConsumeIntegralInRange(0, 24); k > 0; --k) {
      static const std::size_t sizes[] = {0, 1, 2, 3, 100, 4096, 20000};
      const std::size_t n = sizes[in.ConsumeIntegralInRange(0, 6)];
      const u64 seed = in.ConsumeIntegral<u64>();
      if (in.ConsumeBool() || !puts_ok) {
        made.push_back({lumen::task(make).deterministic().submit(seed, n), seed, n});
        continue;
      }
      const std::size_t bytes = sizeof(Values) + n * sizeof(u64);
      try {
        made.push_back({lumen::put(make(seed, n)), seed, n});
      } catch (const lumen::resource_error&) {
        EXPECT(cfg.put_at_limit == lumen::PutAtLimit::fail || bytes > cfg.object_memory_limit,
               "a put that may wait threw resource_error though it fits under the limit");
      }
    }
    for (const Made& m : made) {
      const bool right = lumen::read(m.ref, [&](const Values& v) { return v == make(m.seed, m.n); });
      EXPECT(right, "a value under a memory limit of %zu came back wrong", cfg.object_memory_limit);
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(folder, ec);
}

// ---- the end of an input -----------------------------------------------------------------------

void finish(Program& p) {
  for (Gate& g : p.gates) g.open->store(true);
  for (Entry& e : p.entries) {
    if (!e.ref.valid()) {
      expect_usage_error("get on an empty ref", [&] { (void)lumen::get(e.ref); });
      continue;
    }
    after_read(e, check_read(e.expect, false, "final get", [&] { return lumen::get(e.ref); }));
  }
  for (ActorModel& a : p.actors) {
    a.with([&](auto& h) {
      h.kill();
      EXPECT(h.dead(), "an actor is not dead() when kill() returns");
      check_read(Expect::died(), false, "a call after kill()", [&] { return lumen::get(h.call(&Acc::peek)); });
    });
    if (!a.name.empty())
      EXPECT(!lumen::get_actor<Acc>(a.name) && !lumen::get_actor<Saver>(a.name), "a killed actor is still found by name");
  }
  p.entries.clear();
  p.actors.clear();
  // Everything the input started must end: no task, call or actor may linger into the next.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    lumen::Stats s = p.rt.stats();
    if (s.tasks_pending == 0 && s.actors_alive == 0 && s.actor_calls_queued == 0) break;
    EXPECT(std::chrono::steady_clock::now() < deadline,
           "the runtime did not settle after the input: %llu tasks pending, %llu actors alive, %llu calls queued",
           ull(s.tasks_pending), ull(s.actors_alive), ull(s.actor_calls_queued));
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

lumen::Runtime& main_runtime() {
  // Never destroyed: libFuzzer may exit from any point, with workers still running.
  static auto* rt = new lumen::Runtime(lumen::Config{.workers = 2, .resources = {{"gpu", 2.0}}});
  return *rt;
}

struct Operation {
  const char* name;
  void (*run)(Program&);
};

// Listed as often as they should be drawn.
constexpr Operation kOperations[] = {
    {"submit", op_submit},
    {"submit", op_submit},
    {"submit", op_submit},
    {"gated task", op_gated},
    {"open gate", op_open_gate},
    {"put", op_put},
    {"get", op_get},
    {"get", op_get},
    {"get vector", op_get_all},
    {"wait", op_wait},
    {"error_of", op_error_of},
    {"drop or copy ref", op_drop_or_copy},
    {"move-only value", op_move_only},
    {"nested tasks", op_nested},
    {"blocking", op_blocking},
    {"exit_actor outside an actor", op_exit_outside},
    {"void task", op_void_task},
    {"actor", op_actor_create},
    {"actor call", op_actor_call},
    {"actor call", op_actor_call},
    {"actor sync", op_actor_sync},
    {"actor kill", op_actor_kill},
    {"get_actor", op_actor_lookup},
    {"actor handles", op_actor_handles},
    {"task_group", op_task_group},
    {"loop", op_loop},
    {"loop", op_loop},
    {"sequence", op_sequence},
    {"pipeline", op_pipeline},
    {"graph", op_graph},
    {"short-lived runtime", op_runtime},
    {"short-lived runtime", op_runtime},
    {"cancel", op_cancel},
    {"memory limit", op_memory_limit},
};
constexpr int kOperationCount = static_cast<int>(sizeof kOperations / sizeof kOperations[0]);

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::uint64_t inputs = 0;
  FDP in(data, size);
  // Names are unique to the input: an actor a previous input killed may still hold its name.
  Program p{in, main_runtime(), "actor" + std::to_string(inputs++) + "-", {}, {}, {}};
  for (int ops = 0; ops < 48 && in.remaining_bytes() > 0; ++ops) {
    const Operation& op = kOperations[in.ConsumeIntegralInRange(0, kOperationCount - 1)];
    trace("%d: %s", ops, op.name);
    op.run(p);
  }
  trace("finish");
  finish(p);
  return 0;
}
