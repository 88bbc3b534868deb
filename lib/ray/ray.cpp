// Ray's C++ API on lumen: the function registry, the runtime ray::Init starts, placement
// groups, and the translation of lumen's errors into Ray's exceptions.
#include "lumen/ray.h"

#include <cxxabi.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <unistd.h>

#include "lumen/detail/scheduler_api.h"
#include "lumen/runtime.h"

namespace ray {

namespace internal {

// ---- remote functions ---------------------------------------------------------------------

namespace {

struct Registry {
  std::shared_mutex mutex;
  std::unordered_map<std::string, std::string> names;  // key -> name; nodes never move
  std::unordered_set<std::string> taken;
};

Registry& registry() {
  static Registry r;  // used during static initialization, so built on first use
  return r;
}

std::string trimmed(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return std::string(s);
}

// "f, RAY_FUNC(g, int), &C::m" -> {"f", "RAY_FUNC(g, int)", "&C::m"}: commas inside brackets
// belong to their item.
std::vector<std::string> split_names(std::string_view text) {
  std::vector<std::string> out;
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '(' || c == '<' || c == '[') ++depth;
    if (c == ')' || c == '>' || c == ']') --depth;
    if (c == ',' && depth == 0) {
      out.push_back(trimmed(text.substr(start, i - start)));
      start = i + 1;
    }
  }
  out.push_back(trimmed(text.substr(start)));
  return out;
}

}  // namespace

void register_function(std::string key, const std::string& name) {
  Registry& r = registry();
  std::unique_lock lock(r.mutex);
  if (r.names.count(key) != 0 || r.taken.count(name) != 0) throw RayException("Duplicate RAY_REMOTE function: " + name);
  r.taken.insert(name);
  r.names.emplace(std::move(key), name);
}

const std::string* find_function(const std::string& key) noexcept {
  Registry& r = registry();
  std::shared_lock lock(r.mutex);
  auto it = r.names.find(key);
  return it == r.names.end() ? nullptr : &it->second;
}

void register_functions_from(const char* names, const std::string* keys, std::size_t count) {
  std::vector<std::string> split = split_names(names);
  if (split.size() != count) throw RayException(std::string("RAY_REMOTE could not tell its functions apart: ") + names);
  for (std::size_t i = 0; i < count; ++i) register_function(keys[i], split[i]);
}

std::string FunctionManager::GetClassNameByFuncName(const std::string& function_name) {
  std::string_view name = function_name;
  constexpr std::string_view ray_func = "RAY_FUNC(";
  if (name.substr(0, ray_func.size()) == ray_func) {
    name.remove_prefix(ray_func.size());
    name = name.substr(0, name.find_first_of(",)"));
  }
  while (!name.empty() && (name.front() == '&' || name.front() == ' ')) name.remove_prefix(1);
  std::size_t last = name.rfind("::");
  if (last == std::string_view::npos || last == 0) return {};
  return std::string(name.substr(0, last));
}

// ---- errors -------------------------------------------------------------------------------

// lumen's errors reach Ray's users reworded: an actor by the name its user gave it rather than
// its qualified_actor_name, Ray's calls rather than lumen's. The Ray layer checks what it can
// before lumen sees it (resources, options, empty refs and handles), so that those errors
// speak Ray's units and setters from the start.

namespace {

constexpr const char* kNotInitialized = "Ray has not been initialized: call ray::Init() first";
constexpr const char* kShuttingDown =
    "Ray is shutting down: ray::Shutdown() takes no new tasks or actor calls, except from the tasks it waits for";

std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name != nullptr ? std::string(name.get()) : std::string(type.name());
}

constexpr std::size_t npos = std::string_view::npos;

// The quote that closes a quoted name starting at `from`: one that ends a word, so that a
// name holding a quote itself ("it's") stays whole.
std::size_t closing_quote(std::string_view text, std::size_t from) {
  for (std::size_t i = text.find('\'', from); i != npos; i = text.find('\'', i + 1)) {
    if (i + 1 == text.size() || std::string_view(" .,:;)").find(text[i + 1]) != npos) return i;
  }
  return npos;
}

// `text` with every quoted qualified_actor_name ('5:shopcart') written as the user named the
// actor ('cart'), followed by its namespace (" in namespace 'shop'") when with_namespace.
std::string with_ray_actor_names(std::string_view text, bool with_namespace) {
  std::string out;
  std::size_t pos = 0;
  for (std::size_t open = text.find('\''); open != npos; open = text.find('\'', pos)) {
    out.append(text.substr(pos, open + 1 - pos));
    pos = open + 1;
    std::size_t colon = text.find_first_not_of("0123456789", pos);
    if (colon == pos || colon == npos || colon - pos > 9 || text[colon] != ':') continue;
    std::size_t namespace_size = 0;
    for (char digit : text.substr(pos, colon - pos)) namespace_size = namespace_size * 10 + static_cast<std::size_t>(digit - '0');
    std::size_t name_start = colon + 1 + namespace_size;
    if (name_start >= text.size()) continue;
    std::size_t close = closing_quote(text, name_start + 1);
    if (close == npos) continue;
    out.append(text.substr(name_start, close - name_start));
    out += '\'';
    if (with_namespace) out.append(" in namespace '").append(text.substr(colon + 1, namespace_size)).append("'");
    pos = close + 1;
  }
  out.append(text.substr(pos));
  return out;
}

// A lumen error text without lumen's prefix, with actors named as their users named them.
std::string in_ray_terms(std::string_view text, bool with_namespace) {
  constexpr std::string_view lumen_prefix = "lumen: ";
  if (text.substr(0, lumen_prefix.size()) == lumen_prefix) text.remove_prefix(lumen_prefix.size());
  std::string out = with_ray_actor_names(text, with_namespace);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 'a' + 'A');
  return out;
}

void replace_first(std::string& text, std::string_view from, std::string_view to) {
  std::size_t at = text.find(from);
  if (at != npos) text.replace(at, from.size(), to);
}

// Ray: "The actor 'NAME' died: WHY", or the actor's ID() for an anonymous one, WHY in Ray's calls.
std::string actor_death_in_ray_terms(const lumen::actor_died& e) {
  std::string who = e.actor_name().empty() ? actor_id_text(e.actor_id())
                                           : with_ray_actor_names("'" + e.actor_name() + "'", false);
  std::string why = with_ray_actor_names(e.reason(), false);
  replace_first(why, "exit_actor() was called", "ray::ExitActor() was called");
  replace_first(why, "its runtime shut down", "ray::Shutdown() stopped it");
  replace_first(why, "its constructor threw", "its factory threw");
  return "The actor " + who + " died: " + why;
}

}  // namespace

[[noreturn]] void throw_task_exception(const std::string& function_name) {
  try {
    try {
      throw;
    } catch (const lumen::error&) {
      rethrow_as_ray_exception();  // described as the Ray exception its caller would see
    }
  } catch (const std::exception& e) {
    throw RayTaskException("An exception was thrown while executing function(" + function_name +
                           "): " + type_name(typeid(e)) + ": " + e.what());
  } catch (...) {
    throw RayTaskException("An unknown exception was thrown while executing function(" + function_name + ").");
  }
}

[[noreturn]] void rethrow_as_ray_exception() {
  try {
    throw;
  } catch (const lumen::detail::actor_exit_request&) {
    throw;  // ExitActor() on its way to the actor
  } catch (const RayException&) {
    throw;
  } catch (const lumen::timeout_error&) {
    throw RayTimeoutException("Get timed out: some object(s) not ready.");
  } catch (const lumen::actor_died& e) {
    throw RayActorException(actor_death_in_ray_terms(e));
  } catch (const lumen::shutdown_error&) {
    throw RayException(kShuttingDown);
  } catch (const lumen::error& e) {
    throw RayException(in_ray_terms(e.what(), true));
  } catch (const std::exception& e) {
    throw RayTaskException("An exception was thrown: " + type_name(typeid(e)) + ": " + e.what());
  } catch (...) {
    throw RayTaskException("An unknown exception was thrown.");
  }
}

std::string object_id_text(std::uint64_t id) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(id));
  return text;
}

// True while the running job was started with RayConfig::local_mode.
bool in_local_mode() noexcept;

// ---- ids ----------------------------------------------------------------------------------

namespace {

// Ids are short enough for std::string's inline buffer (15 characters with libstdc++), so a
// ref's id costs no allocation: 13 base-32 digits hold 64 bits, 2 more hold a type tag.
constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuv";
constexpr std::size_t kIdDigits = 13;
constexpr std::size_t kTagDigits = 2;

void write_base32(char* out, std::size_t n, std::uint64_t value) {
  for (std::size_t i = n; i-- > 0;) {
    out[i] = kDigits[value & 31];
    value >>= 5;
  }
}

std::optional<std::uint64_t> read_base32(std::string_view text) {
  std::uint64_t value = 0;
  for (char c : text) {
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'v' ? c - 'a' + 10 : -1;
    if (digit < 0) return std::nullopt;
    value = value << 5 | static_cast<std::uint64_t>(digit);
  }
  return value;
}


// lumen's id in an id text of `length` characters ("ObjectRef", "ActorHandle" name the kind).
std::uint64_t parse_id(const std::string& id, std::size_t length, const char* kind) {
  std::optional<std::uint64_t> value;
  // The top digit holds one bit only.
  if (id.size() == length && id[0] <= '1') value = read_base32(std::string_view(id).substr(0, kIdDigits));
  if (!value) throw RayException(std::string(kind) + "('" + id + "'): not an id this process made (ID() gives them)");
  return *value;
}

}  // namespace

std::uint32_t type_tag(const std::type_info& type) noexcept {
  return static_cast<std::uint32_t>(type.hash_code() & ((1u << (5 * kTagDigits)) - 1));
}

std::string object_ref_id(std::uint64_t id, std::uint32_t tag) {
  std::string text(kIdDigits + kTagDigits, '0');
  write_base32(text.data(), kIdDigits, id);
  write_base32(text.data() + kIdDigits, kTagDigits, tag);
  return text;
}

lumen::detail::ObjectSlot* find_object(const std::string& id, const std::type_info& type) {
  std::uint64_t value = parse_id(id, kIdDigits + kTagDigits, "ObjectRef");
  if (read_base32(std::string_view(id).substr(kIdDigits)) != type_tag(type))
    throw RayException("ObjectRef<" + type_name(type) + ">('" + id + "'): the object with this id holds another type");
  return lumen::detail::ObjectTable::instance().acquire(value);
}

std::string actor_id_text(std::uint64_t id) {
  if (id == 0) return {};
  std::string text(kIdDigits, '0');
  write_base32(text.data(), kIdDigits, id);
  return text;
}

lumen::detail::ActorCore* find_actor(const std::string& id, const std::type_info& type) {
  if (id.empty()) return nullptr;
  std::uint64_t value = parse_id(id, kIdDigits, "ActorHandle");
  try {
    return lumen::detail::find_actor_by_id(value, type);
  } catch (const lumen::usage_error&) {
    throw RayException("ActorHandle('" + id + "'): the actor with this id is of another class than the handle's");
  }
}

lumen::detail::ObjectSlot* missing_actor_result(const std::string& actor_id) {
  auto& table = lumen::detail::ObjectTable::instance();
  lumen::detail::ObjectSlot* s = table.allocate(1);
  table.fail(s, lumen::detail::make_failure(std::make_exception_ptr(RayActorException(
                                                "The actor " + actor_id + " died: no actor with this id lives in this "
                                                "process (it ended, or the id is from another process)")),
                                            {}));
  return s;
}

[[noreturn]] void throw_empty_ref(const char* call, const std::string& id) {
  if (!id.empty())
    throw RayException(std::string(call) + ": no object with id " + id +
                       " lives in this process (every ref to it was dropped, or the id is from another process)");
  throw RayException(std::string(call) + " on an empty ObjectRef (default-constructed or moved from)");
}

void check_ref_to_ref_parameter() {
  if (in_local_mode()) return;
  throw std::invalid_argument(
      "Remote() was given an ObjectRef for a parameter declared ObjectRef<T>: a Ray cluster passes an ObjectRef "
      "argument only as its value (Ray's local mode alone accepts this, and so does lumen with "
      "RayConfig::local_mode). Declare the parameter as T, or pass the ref inside a container or struct");
}

[[noreturn]] void throw_empty_argument() {
  throw RayException(
      "Remote() was given an empty ObjectRef (default-constructed or moved from) for a parameter that needs its value");
}

[[noreturn]] void throw_empty_handle(const char* call) {
  throw RayException(std::string(call) + " on an empty ActorHandle (default-constructed): it refers to no actor");
}

void check_actor_options(const lumen::ActorOptions& options) {
  if (options.max_concurrency < 1)
    throw RayException("SetMaxConcurrency(" + std::to_string(options.max_concurrency) +
                       "): the maximum concurrency must be at least 1");
  if (options.max_restarts < -1)
    throw RayException("SetMaxRestarts(" + std::to_string(options.max_restarts) +
                       "): the maximum number of restarts must be -1 (without limit) or more");
}

void check_wait_count(int num_objects, std::size_t size) {
  if (num_objects <= 0 || static_cast<std::size_t>(num_objects) > size)
    throw RayException("Number of objects to wait for must be between 1 and the number of ids.");
}

std::string qualified_actor_name(const std::string& ray_namespace, const std::string& name) {
  return std::to_string(ray_namespace.size()) + ":" + ray_namespace + name;
}

}  // namespace internal

// ---- the runtime --------------------------------------------------------------------------

namespace {

// Ray counts resources in ten-thousandths; lumen in whole units. A lumen unit is one of Ray's,
// except for memory: Ray counts it in bytes, lumen in MiB (its counts are 32-bit).
constexpr double kUnitsPerResource = 10000;
constexpr double kBytesPerMemoryUnit = 1 << 20;

bool is_memory(const std::string& resource) { return resource == "memory" || resource == "object_store_memory"; }

// The node's "CPU", in Ray's units: its hardware threads, as Ray counts them.
unsigned node_cpus() {
  static const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  return cpus;
}

// The memory this process may use: the machine's, or less under a cgroup (v2) limit.
double system_memory_bytes() {
  double bytes = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  if (std::FILE* f = std::fopen("/sys/fs/cgroup/memory.max", "r")) {
    unsigned long long limit = 0;
    if (std::fscanf(f, "%llu", &limit) == 1 && limit > 0) bytes = std::min(bytes, static_cast<double>(limit));
    std::fclose(f);
  }
  return bytes;
}

// Ray's split of a node's memory: 30% for the object store (at most 200 GB), the rest for
// "memory", both in whole MiB.
double node_object_store_memory() {
  static const double bytes =
      std::floor(std::min(system_memory_bytes() * 0.3, 200e9) / kBytesPerMemoryUnit) * kBytesPerMemoryUnit;
  return bytes;
}
double node_memory() {
  static const double bytes =
      std::floor((system_memory_bytes() - node_object_store_memory()) / kBytesPerMemoryUnit) * kBytesPerMemoryUnit;
  return bytes;
}

// The shortest text that reads back as `amount`, as a user would write it: 2, 0.5, 1e9.
std::string amount_text(double amount) {
  char text[32];
  auto [end, error] = std::to_chars(text, text + sizeof text, amount);
  std::string out(text, error == std::errc() ? end : text);
  // to_chars writes exponents as e+09 and e-05.
  std::size_t e = out.find('e');
  if (e != std::string::npos) {
    std::size_t digits = out.find_first_not_of("+-0", e + 1);
    std::string sign = out[e + 1] == '-' ? "-" : "";
    out = out.substr(0, e + 1) + sign + (digits == std::string::npos ? std::string("0") : out.substr(digits));
  }
  return out;
}

// `amount` of `resource` in lumen's units; memory rounds up to whole MiB.
std::uint64_t units(const std::string& resource, double amount) {
  if (is_memory(resource)) return static_cast<std::uint64_t>(std::ceil(amount / kBytesPerMemoryUnit));
  return static_cast<std::uint64_t>(std::llround(amount * kUnitsPerResource));
}

// True when `amount` is more than `held` (both in Ray's units) in lumen's units. Amounts far
// above `held` never reach units(), which they would overflow.
bool exceeds(const std::string& resource, double amount, double held) {
  return amount > held + 1 || units(resource, amount) > units(resource, held);
}

struct RuntimeState {
  std::mutex mutex;
  std::unique_ptr<lumen::Runtime> runtime;         // moved out by Shutdown while it stops it
  lumen::detail::Scheduler* scheduler = nullptr;   // the runtime's, until it has stopped
  bool stopping = false;                           // Shutdown waits for the runtime's tasks
  std::atomic<bool> initialized{false};            // from Init until Shutdown starts
  std::atomic<bool> running{false};                // from Init until Shutdown has stopped the runtime
  std::string ray_namespace;
  std::map<std::string, double> node;  // the node's resources, in Ray's units
  std::atomic<bool> local_mode{false};   // RayConfig::local_mode of the running job
};

RuntimeState& state() {
  static auto* s = new RuntimeState;  // never destroyed: an abandoned task may call Ray after exit begins
  return *s;
}

std::string argument_value(int argc, char** argv, std::string_view flag) {
  std::string prefix = "--" + std::string(flag) + "=";
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.substr(0, prefix.size()) == prefix) return std::string(arg.substr(prefix.size()));
  }
  return {};
}

// The number `text` given for head argument `flag`; RayException unless it is one, at least 0.
double head_number(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(value >= 0) || std::isinf(value))
    throw internal::RayException("RayConfig::head_args: " + flag + " needs a number of at least 0, not '" + text + "'");
  return value;
}

// The node's resources, in Ray's units, as `ray start --head` with these arguments would give
// them: --num-cpus, --num-gpus, --memory, --object-store-memory and --resources (a JSON object)
// change the machine's defaults; other arguments mean nothing to one process and are ignored.
std::map<std::string, double> node_resources(const std::vector<std::string>& head_args) {
  std::map<std::string, double> node{
      {"CPU", node_cpus()}, {"memory", node_memory()}, {"object_store_memory", node_object_store_memory()}};
  for (std::size_t i = 0; i < head_args.size(); ++i) {
    std::string flag = head_args[i];
    std::string value;
    if (std::size_t eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    } else if (flag.rfind("--", 0) == 0 && i + 1 < head_args.size()) {
      value = head_args[i + 1];
    }
    bool taken = true;
    if (flag == "--num-cpus") {
      node["CPU"] = head_number(flag, value);
    } else if (flag == "--num-gpus") {
      node["GPU"] = head_number(flag, value);
    } else if (flag == "--memory") {
      node["memory"] = head_number(flag, value);
    } else if (flag == "--object-store-memory") {
      node["object_store_memory"] = head_number(flag, value);
    } else if (flag == "--resources") {
      nlohmann::json custom;
      try {
        custom = nlohmann::json::parse(value);
      } catch (const std::exception&) {
        custom = nullptr;
      }
      if (!custom.is_object())
        throw internal::RayException("RayConfig::head_args: --resources needs a JSON object of numbers, not '" + value + "'");
      for (const auto& [name, amount] : custom.items()) {
        if (!amount.is_number()) throw internal::RayException("RayConfig::head_args: --resources: " + name + " is not a number");
        node[name] = head_number("--resources", std::to_string(amount.get<double>()));
      }
    } else {
      taken = false;
    }
    if (taken && head_args[i].find('=') == std::string::npos) ++i;  // the value was the next argument
  }
  for (const auto& [name, amount] : node) {
    if (units(name, amount) > std::numeric_limits<std::uint32_t>::max())
      throw internal::RayException("RayConfig::head_args: the node cannot have " + amount_text(amount) + " " + name +
                                   ": lumen counts at most " + amount_text(std::numeric_limits<std::uint32_t>::max() /
                                                                           (is_memory(name) ? 1.0 / kBytesPerMemoryUnit
                                                                                            : kUnitsPerResource)));
  }
  return node;
}

void start(const std::string& address, std::string ray_namespace, const RuntimeEnv* job_env,
           const std::vector<std::string>& head_args, bool local_mode) {
  std::string cluster = address;
  if (cluster.empty()) {
    if (const char* env = std::getenv("RAY_ADDRESS")) cluster = env;
  }
  if (!cluster.empty() && cluster != "local")
    throw internal::RayException("lumen runs Ray programs in this process and cannot connect to the cluster at '" +
                                 cluster +
                                 "': running on a cluster needs Ray itself (link the program against Ray instead "
                                 "of lumen), or leave RayConfig::address and RAY_ADDRESS empty");
  RuntimeState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  // The end of that Shutdown would mark a runtime started now as stopped.
  if (s.stopping)
    throw internal::RayException("ray::Init() was called while ray::Shutdown() was stopping Ray: call it once Shutdown "
                                 "has returned");
  if (s.runtime != nullptr) return;
  std::map<std::string, double> node = node_resources(head_args);
  // Before the workers start, so that no task reads the environment while it changes.
  if (job_env != nullptr) internal::apply_env_vars(*job_env);
  // Ray code blocks its threads freely; Ray's local mode gives it 10 threads (config.h).
  lumen::Config config;
  config.workers = std::max(10u, node_cpus());
  // Ray's tasks run on worker threads' stacks (8 MiB by default on Linux) and programs pass
  // large values by value; a fiber's stack takes memory only as it is touched.
  config.fiber_stack_size = 8 << 20;
  for (const auto& [name, amount] : node) config.resources.emplace_back(name, static_cast<double>(units(name, amount)));
  s.runtime = std::make_unique<lumen::Runtime>(config);
  s.node = std::move(node);
  s.local_mode.store(local_mode, std::memory_order_release);
  s.scheduler = &s.runtime->scheduler();
  if (ray_namespace.empty()) {
    static std::uint64_t jobs = 0;  // under s.mutex
    ray_namespace = "anonymous-" + std::to_string(++jobs);
  }
  s.ray_namespace = std::move(ray_namespace);
  s.running.store(true, std::memory_order_release);
  s.initialized.store(true, std::memory_order_release);
}

}  // namespace

bool internal::in_local_mode() noexcept { return state().local_mode.load(std::memory_order_acquire); }

namespace {

lumen::detail::Scheduler& ray_scheduler() {
  RuntimeState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.scheduler == nullptr) throw internal::RayException(internal::kNotInitialized);
  if (s.stopping && lumen::detail::worker_scheduler() != s.scheduler) throw internal::RayException(internal::kShuttingDown);
  return *s.scheduler;
}

}  // namespace

void Init() {
  RayConfig config;
  Init(config);
}

void Init(RayConfig& config) {
  if (config.runtime_env) internal::check_runtime_env(*config.runtime_env);
  start(config.address, config.ray_namespace, config.runtime_env.get_ptr(), config.head_args, config.local_mode);
}

void Init(RayConfig& config, int argc, char** argv) {
  if (config.runtime_env) internal::check_runtime_env(*config.runtime_env);
  std::string address = argument_value(argc, argv, "ray_address");
  std::string ray_namespace = argument_value(argc, argv, "ray_namespace");
  start(address.empty() ? config.address : address, ray_namespace.empty() ? config.ray_namespace : ray_namespace,
        config.runtime_env.get_ptr(), config.head_args, config.local_mode);
}

bool IsInitialized() { return state().initialized.load(std::memory_order_acquire); }

void internal::check_initialized() {
  if (!state().running.load(std::memory_order_acquire)) throw RayException(internal::kNotInitialized);
}

// ---- placement groups ---------------------------------------------------------------------

namespace internal {

// A group, and the claim on the runtime's resources that reserves its bundles: a task that
// the scheduler spawns when the claim is granted.
struct PlacementGroupRecord : lumen::detail::Task {
  std::string id;
  PlacementGroupCreationOptions options;
  lumen::detail::Scheduler* scheduler = nullptr;
  std::vector<lumen::detail::ResourceDemand> reservation;
  bool feasible = true;
  std::mutex mutex;
  std::condition_variable created_or_removed;
  PlacementGroupState state = PENDING;
  bool reserved = false;  // the claim was granted
};

}  // namespace internal

namespace {

struct Groups {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<internal::PlacementGroupRecord>> by_id;
  std::uint64_t next_id = 1;
};

Groups& groups() {
  static auto* g = new Groups;  // never destroyed, as the runtime state
  return *g;
}

std::string bundle_resource(const std::string& resource, int bundle_index, const std::string& group_id) {
  if (bundle_index < 0) return resource + "_group_" + group_id;
  return resource + "_group_" + std::to_string(bundle_index) + "_" + group_id;
}

// How much of `resource` the node has, in Ray's units; none for a resource it lacks.
std::optional<double> node_capacity(const std::string& resource) {
  RuntimeState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  auto it = s.node.find(resource);
  if (it == s.node.end()) return std::nullopt;
  return it->second;
}

// The claim was granted: the bundles become resources of their own. Runs under the mutex of r.
void create_bundles(internal::PlacementGroupRecord& r) {
  std::map<std::string, double> whole;
  for (std::size_t i = 0; i < r.options.bundles.size(); ++i) {
    for (const auto& [name, amount] : r.options.bundles[i]) {
      lumen::detail::add_resource(*r.scheduler, bundle_resource(name, static_cast<int>(i), r.id), units(name, amount));
      whole[name] += amount;
    }
  }
  for (const auto& [name, amount] : whole) lumen::detail::add_resource(*r.scheduler, bundle_resource(name, -1, r.id), units(name, amount));
  r.state = CREATED;
}

void reservation_granted(lumen::detail::Task* t) noexcept {
  auto& r = *static_cast<internal::PlacementGroupRecord*>(t);
  bool give_back = false;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    r.reserved = true;
    if (r.state == REMOVED) {
      give_back = true;
    } else {
      create_bundles(r);
    }
  }
  if (give_back) lumen::detail::release_resources(*r.scheduler, r.reservation.data(), r.reservation.size());
  r.created_or_removed.notify_all();
}

std::shared_ptr<internal::PlacementGroupRecord> find_group(const std::string& id) {
  Groups& g = groups();
  std::lock_guard<std::mutex> lock(g.mutex);
  auto it = g.by_id.find(id);
  return it == g.by_id.end() ? nullptr : it->second;
}

}  // namespace

PlacementGroup CreatePlacementGroup(const PlacementGroupCreationOptions& create_options) {
  internal::check_initialized();
  if (create_options.bundles.empty()) throw internal::RayException("A placement group needs at least one bundle");
  std::map<std::string, double> total;
  for (const auto& bundle : create_options.bundles) {
    if (bundle.empty()) throw internal::RayException("A bundle of a placement group must not be empty");
    internal::check_resources(bundle);
    for (const auto& [name, amount] : bundle) total[name] += amount;
  }
  lumen::detail::Scheduler& sched = ray_scheduler();
  auto record = std::make_shared<internal::PlacementGroupRecord>();
  record->run = &reservation_granted;
  record->options = create_options;
  record->scheduler = &sched;
  // One node: bundles that must be on different nodes never fit.
  record->feasible = !(create_options.strategy == PlacementStrategy::STRICT_SPREAD && create_options.bundles.size() > 1);
  for (const auto& [name, amount] : total) {
    std::optional<double> capacity = node_capacity(name);
    if (!capacity || exceeds(name, amount, *capacity)) {
      record->feasible = false;  // more than the node has, or a resource it lacks: pending forever, as in Ray
      continue;
    }
    record->reservation.push_back(lumen::detail::resource_demand(sched, name, static_cast<double>(units(name, amount))));
  }
  {
    Groups& g = groups();
    std::lock_guard<std::mutex> lock(g.mutex);
    if (!create_options.name.empty()) {
      for (const auto& [id, other] : g.by_id) {
        std::lock_guard<std::mutex> other_lock(other->mutex);
        if (other->options.name == create_options.name && other->state != REMOVED)
          throw internal::RayException("Failed to create placement group '" + create_options.name +
                                       "' because name already exists.");
      }
    }
    record->id = internal::object_id_text(g.next_id++);
    g.by_id.emplace(record->id, record);
  }
  if (record->feasible &&
      lumen::detail::acquire_resources(sched, record.get(), record->reservation.data(), record->reservation.size())) {
    std::lock_guard<std::mutex> lock(record->mutex);
    record->reserved = true;
    create_bundles(*record);
  }
  return PlacementGroup(record);
}

void RemovePlacementGroup(const std::string& placement_group_id) {
  internal::check_initialized();
  auto r = find_group(placement_group_id);
  if (r == nullptr) throw internal::RayException("No placement group with id " + placement_group_id);
  bool give_back = false;
  {
    std::lock_guard<std::mutex> lock(r->mutex);
    if (r->state == REMOVED) return;
    give_back = r->reserved;
    r->state = REMOVED;
  }
  // A claim still waiting is given back when it is granted (reservation_granted).
  if (give_back) lumen::detail::release_resources(*r->scheduler, r->reservation.data(), r->reservation.size());
  r->created_or_removed.notify_all();
}

std::vector<PlacementGroup> GetAllPlacementGroups() {
  internal::check_initialized();
  Groups& g = groups();
  std::lock_guard<std::mutex> lock(g.mutex);
  std::vector<PlacementGroup> out;
  for (const auto& [id, r] : g.by_id) out.emplace_back(r);
  return out;
}

PlacementGroup GetPlacementGroupById(const std::string& id) {
  internal::check_initialized();
  return PlacementGroup(find_group(id));
}

PlacementGroup GetPlacementGroup(const std::string& name) {
  internal::check_initialized();
  Groups& g = groups();
  std::lock_guard<std::mutex> lock(g.mutex);
  for (const auto& [id, r] : g.by_id) {
    if (r->options.name == name && r->state != REMOVED) return PlacementGroup(r);
  }
  return PlacementGroup();
}

std::string PlacementGroup::GetID() const { return record_ != nullptr ? record_->id : std::string(); }
std::string PlacementGroup::GetName() { return record_ != nullptr ? record_->options.name : std::string(); }
std::vector<std::unordered_map<std::string, double>> PlacementGroup::GetBundles() {
  return record_ != nullptr ? record_->options.bundles : std::vector<std::unordered_map<std::string, double>>{};
}
PlacementGroupState PlacementGroup::GetState() {
  if (record_ == nullptr) return UNRECOGNIZED;
  std::lock_guard<std::mutex> lock(record_->mutex);
  return record_->state;
}
PlacementStrategy PlacementGroup::GetStrategy() {
  return record_ != nullptr ? record_->options.strategy : PlacementStrategy::UNRECOGNIZED;
}
bool PlacementGroup::Wait(int timeout_seconds) {
  if (record_ == nullptr) return false;
  std::unique_lock<std::mutex> lock(record_->mutex);
  record_->created_or_removed.wait_for(lock, std::chrono::seconds(timeout_seconds),
                                       [&] { return record_->state != PENDING; });
  return record_->state == CREATED;
}

// ---- resources ----------------------------------------------------------------------------

namespace {

// "Specified resource: CPU = 1.5.", as Ray's checks end.
std::string specified(const std::string& name, double value) {
  return "Specified resource: " + name + " = " + amount_text(value) + ".";
}

// Why a claim of `amount` of `resource` can never be granted by `holder` ("this node", "bundle
// 0 of placement group ..."), which has `held` of it, or none.
std::string unschedulable(const std::string& resource, double amount, const std::string& holder,
                          std::optional<double> held) {
  return "it requires {" + resource + ": " + amount_text(amount) + "}, but " + holder + " has " +
         (held ? "{" + resource + ": " + amount_text(*held) + "}" : "no " + resource);
}

// What bundle `bundle_index` of `bundles` holds of `resource` (-1: all of them together).
std::optional<double> bundle_capacity(const std::vector<std::unordered_map<std::string, double>>& bundles,
                                      int bundle_index, const std::string& resource) {
  std::optional<double> held;
  for (std::size_t i = 0; i < bundles.size(); ++i) {
    if (bundle_index >= 0 && static_cast<std::size_t>(bundle_index) != i) continue;
    auto it = bundles[i].find(resource);
    if (it != bundles[i].end()) held = held.value_or(0) + it->second;
  }
  return held;
}

}  // namespace

namespace internal {

void check_resources(const std::unordered_map<std::string, double>& resources) {
  for (const auto& [name, value] : resources) {
    if (name.empty()) throw RayException("Resource names should not be empty. " + specified(name, value));
    if (!(value > 0)) throw RayException("Resource values should be positive. " + specified(name, value));
    double whole;
    if (value > 1 && std::modf(value, &whole) != 0.0)
      throw RayException("A resource value should be an integer if it is greater than 1.0. " + specified(name, value));
    // Ray counts resources in steps of 1 / kUnitsPerResource.
    if (value < 1 && !is_memory(name) && units(name, value) == 0)
      throw RayException("Resource values should be at least 0.0001. " + specified(name, value));
  }
}

ResourceClaims lumen_resources(const std::unordered_map<std::string, double>& resources, const PlacementGroup& group,
                               int bundle_index) {
  check_resources(resources);
  ResourceClaims out;
  auto infeasible = [&](std::string why) {
    out.claims.clear();
    if (out.infeasible.empty()) out.infeasible = std::move(why);
  };
  if (group.Empty()) {
    for (const auto& [name, value] : resources) {
      std::optional<double> capacity = node_capacity(name);
      if (!capacity || exceeds(name, value, *capacity)) {
        infeasible(unschedulable(name, value, "this node", capacity));
      } else if (out.infeasible.empty()) {
        out.claims.emplace_back(name, static_cast<double>(units(name, value)));
      }
    }
    return out;
  }
  PlacementGroupRecord& r = *group.record();
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    if (r.state != CREATED)
      throw RayException("Placement group " + r.id + (r.state == REMOVED ? " was removed" : " is not created yet: call Wait() first"));
  }
  if (bundle_index < -1 || bundle_index >= static_cast<int>(r.options.bundles.size()))
    throw RayException("Bundle index " + std::to_string(bundle_index) + " is out of range for placement group " + r.id);
  std::string holder = (bundle_index < 0 ? "" : "bundle " + std::to_string(bundle_index) + " of ") +
                       "placement group " + r.id;
  // Ray's tasks ask for one CPU unless they say otherwise.
  const std::unordered_map<std::string, double> one_cpu{{"CPU", 1}};
  for (const auto& [name, value] : resources.empty() ? one_cpu : resources) {
    std::optional<double> capacity = bundle_capacity(r.options.bundles, bundle_index, name);
    if (!capacity || exceeds(name, value, *capacity)) {
      infeasible(unschedulable(name, value, holder, capacity));
      continue;
    }
    if (!out.infeasible.empty()) continue;
    out.claims.emplace_back(bundle_resource(name, bundle_index, r.id), static_cast<double>(units(name, value)));
    // A task in bundle i also draws from the group as a whole, as in Ray.
    if (bundle_index >= 0) out.claims.emplace_back(bundle_resource(name, -1, r.id), static_cast<double>(units(name, value)));
  }
  return out;
}

// ---- infeasible tasks ---------------------------------------------------------------------

namespace {

// `what` ("The task F", "The actor F") can never be granted its resources, because `why`.
void warn_unschedulable(const std::string& what, const std::string& why) {
  RAYLOG(WARNING) << what << " cannot be scheduled: " << why
                  << ". It stays pending, as on a Ray cluster without such a node, until ray::Shutdown()";
}

// Results of tasks that can never run, held (one reference each) until Shutdown fails them.
struct Infeasible {
  std::mutex mutex;
  std::vector<std::pair<lumen::detail::ObjectSlot*, std::string>> results;  // slot, what never ran
};

Infeasible& infeasible_tasks() {
  static auto* tasks = new Infeasible;  // never destroyed: results may be made during exit
  return *tasks;
}

// Fails every infeasible task's result: the job ends without them.
void fail_infeasible_tasks() {
  std::vector<std::pair<lumen::detail::ObjectSlot*, std::string>> results;
  {
    Infeasible& t = infeasible_tasks();
    std::lock_guard<std::mutex> lock(t.mutex);
    results.swap(t.results);
  }
  auto& table = lumen::detail::ObjectTable::instance();
  for (auto& [slot, what] : results) {
    table.fail(slot, lumen::detail::make_failure(
                         std::make_exception_ptr(RayException(what + " was never scheduled: ray::Shutdown() ended the job")),
                         {}));
    table.release(slot);
  }
}

}  // namespace

lumen::detail::ObjectSlot* infeasible_result(const std::string& name, const std::string& why) {
  auto& table = lumen::detail::ObjectTable::instance();
  lumen::detail::ObjectSlot* s = table.allocate(2);
  std::string what = "The task " + name;
  {
    Infeasible& t = infeasible_tasks();
    std::lock_guard<std::mutex> lock(t.mutex);
    try {
      t.results.emplace_back(s, what);
    } catch (...) {
      table.discard(s);
      throw;
    }
  }
  warn_unschedulable(what, why);
  return s;
}

// ---- what actors hold --------------------------------------------------------------------

// A claim on the runtime's resources for an actor's life. Its Task part is what the scheduler
// spawns once a claim it queued is granted. The state moves idle -> waiting -> held -> idle
// (per construction: a restart claims again), or to abandoned when Shutdown begins.
struct ActorResources : lumen::detail::Task {
  enum class State { idle, waiting, held, abandoned };

  lumen::detail::Scheduler* scheduler = nullptr;
  std::vector<lumen::detail::ResourceDemand> demands;
  std::string description;  // "The actor Counter::FactoryCreate"
  std::string infeasible;   // why it can never be granted; empty when it can
  std::mutex mutex;
  State state = State::idle;
  lumen::detail::ObjectSlot* granted = nullptr;  // while waiting: resolved when granted
};

namespace {

// Every claim made since Init, kept until the runtime has stopped: the scheduler may hold a
// queued claim's Task until then.
struct ActorClaims {
  std::mutex mutex;
  std::vector<std::shared_ptr<ActorResources>> claims;
};

ActorClaims& actor_claims() {
  static auto* claims = new ActorClaims;  // never destroyed, as the runtime state
  return *claims;
}

void claim_granted(lumen::detail::Task* t) noexcept {
  auto& r = *static_cast<ActorResources*>(t);
  lumen::detail::ObjectSlot* granted = nullptr;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    if (r.state != ActorResources::State::waiting) {
      // Shutdown gave up on it meanwhile: the grant goes back.
      lumen::detail::release_resources(*r.scheduler, r.demands.data(), r.demands.size());
      return;
    }
    r.state = ActorResources::State::held;
    granted = std::exchange(r.granted, nullptr);
  }
  auto& table = lumen::detail::ObjectTable::instance();
  table.resolve(granted, lumen::detail::ObjectState::ready);
  table.release(granted);
}

// At Shutdown: actors let go of what they hold (the tasks Shutdown waits for may need it), and
// actors still waiting for resources fail.
void abandon_actor_claims() {
  std::vector<std::shared_ptr<ActorResources>> claims;
  {
    ActorClaims& c = actor_claims();
    std::lock_guard<std::mutex> lock(c.mutex);
    claims = c.claims;
  }
  auto& table = lumen::detail::ObjectTable::instance();
  // Every claim is abandoned before any held resource goes back: a claim that could still
  // wait would otherwise be granted what is released (hold() sees the abandon, the granter
  // gives back).
  std::vector<ActorResources*> held;
  for (const auto& r : claims) {
    lumen::detail::ObjectSlot* waiting = nullptr;
    {
      std::lock_guard<std::mutex> lock(r->mutex);
      if (r->state == ActorResources::State::held) held.push_back(r.get());
      if (r->state == ActorResources::State::waiting) waiting = std::exchange(r->granted, nullptr);
      r->state = ActorResources::State::abandoned;
    }
    if (waiting == nullptr) continue;
    table.fail(waiting, lumen::detail::make_failure(std::make_exception_ptr(RayActorException(
                                                        r->description + " was never scheduled: ray::Shutdown() "
                                                                         "ended the job while it waited for resources")),
                                                    {}));
    table.release(waiting);
  }
  for (ActorResources* r : held) lumen::detail::release_resources(*r->scheduler, r->demands.data(), r->demands.size());
}

// After the runtime has stopped: no scheduler holds the claims any more.
void forget_actor_claims() {
  ActorClaims& c = actor_claims();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.claims.clear();
}

}  // namespace

std::shared_ptr<ActorResources> actor_resources(const std::unordered_map<std::string, double>& resources,
                                                const PlacementGroup& group, int bundle_index,
                                                const std::string& factory_name) {
  check_resources(resources);
  if (!group.Empty() && resources.empty()) {
    lumen_resources(resources, group, bundle_index);  // checks the group and the index
    return nullptr;
  }
  if (resources.empty()) return nullptr;
  ResourceClaims claims = lumen_resources(resources, group, bundle_index);
  lumen::detail::Scheduler& sched = ray_scheduler();
  auto r = std::make_shared<ActorResources>();
  r->run = &claim_granted;
  r->scheduler = &sched;
  r->description = "The actor " + factory_name;
  r->infeasible = claims.infeasible;
  for (const auto& [name, amount] : claims.claims) r->demands.push_back(lumen::detail::resource_demand(sched, name, amount));
  {
    ActorClaims& c = actor_claims();
    std::lock_guard<std::mutex> lock(c.mutex);
    c.claims.push_back(r);
  }
  if (!r->infeasible.empty()) warn_unschedulable(r->description, r->infeasible);
  return r;
}

void hold(ActorResources& r) {
  auto& table = lumen::detail::ObjectTable::instance();
  lumen::detail::ObjectSlot* granted = table.allocate(2);  // one reference here, one for the granter
  auto wait_for_it = lumen::ObjectRef<void>::adopt(granted);
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    if (r.state == ActorResources::State::abandoned) {
      table.release(granted);
      throw RayActorException(r.description + " was never scheduled: ray::Shutdown() ended the job");
    }
    r.state = ActorResources::State::waiting;
    r.granted = granted;
  }
  if (r.infeasible.empty() && lumen::detail::acquire_resources(*r.scheduler, &r, r.demands.data(), r.demands.size())) {
    claim_granted(&r);
  }
  with_ray_exceptions([&] { lumen::get(wait_for_it); });
}

void let_go(ActorResources& r) noexcept {
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.state != ActorResources::State::held) return;
  lumen::detail::release_resources(*r.scheduler, r.demands.data(), r.demands.size());
  r.state = ActorResources::State::idle;
}

}  // namespace internal

// ---- the rest of the runtime --------------------------------------------------------------

namespace {

// How long Shutdown waits for submitted work: LUMEN_RAY_SHUTDOWN_TIMEOUT seconds, 30 unless set.
std::chrono::milliseconds shutdown_timeout() {
  constexpr double kDefaultSeconds = 30;
  double seconds = kDefaultSeconds;
  if (const char* text = std::getenv("LUMEN_RAY_SHUTDOWN_TIMEOUT")) {
    char* end = nullptr;
    double value = std::strtod(text, &end);
    if (end != text && *end == '\0' && value >= 0 && value <= 1e9) {
      seconds = value;
    } else {
      RAYLOG(WARNING) << "LUMEN_RAY_SHUTDOWN_TIMEOUT='" << text << "' is not a number of seconds from 0 to 1e9; "
                      << "ray::Shutdown() waits " << kDefaultSeconds << " s";
    }
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

// Stops the runtime once its submitted tasks and actor calls are done, waiting at most
// shutdown_timeout(); true when it has stopped. Past the wait, the work still running is
// abandoned: the runtime ends on a thread of its own once that work returns (a task's thread
// cannot be taken from it), and the log says what was left.
bool stop_within_bound(std::unique_ptr<lumen::Runtime> runtime) {
  const std::chrono::milliseconds timeout = shutdown_timeout();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  lumen::Stats left = runtime->stats();
  while (left.tasks_pending + left.actor_calls_queued > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    left = runtime->stats();
  }
  if (left.tasks_pending + left.actor_calls_queued == 0) {
    runtime.reset();  // only the actors' ends are left
    return true;
  }
  RAYLOG(WARNING) << "ray::Shutdown() stopped waiting after " << timeout.count() / 1000.0 << " s: "
                  << left.tasks_pending << " task(s) and " << left.actor_calls_queued
                  << " actor call(s) were still queued or running. They are abandoned: no Get will see their "
                     "results, and they finish in the background (a running task keeps its thread until it "
                     "returns). Set LUMEN_RAY_SHUTDOWN_TIMEOUT (seconds) to wait longer.";
  try {
    std::thread([runtime = std::move(runtime)]() mutable { runtime.reset(); }).detach();
  } catch (const std::system_error&) {
    (void)runtime.release();  // no thread to end it on: it is left running, which is what abandoning means
  }
  return false;
}

}  // namespace

void Shutdown() {
  RuntimeState& s = state();
  std::unique_ptr<lumen::Runtime> runtime;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.runtime == nullptr) return;
    if (lumen::detail::worker_scheduler() == s.scheduler)
      throw internal::RayException("ray::Shutdown() was called inside a Ray task or actor method: Shutdown waits for "
                                   "every task and actor call, this one too. Call it from the driver, outside tasks and "
                                   "actors");
    s.initialized.store(false, std::memory_order_release);
    s.stopping = true;
    runtime = std::move(s.runtime);
  }
  internal::fail_infeasible_tasks();  // no one waits for them: a task waiting on one gets its error
  internal::abandon_actor_claims();
  if (stop_within_bound(std::move(runtime))) internal::forget_actor_claims();
  std::map<std::string, std::shared_ptr<internal::PlacementGroupRecord>> removed;
  {
    Groups& g = groups();
    std::lock_guard<std::mutex> lock(g.mutex);
    removed.swap(g.by_id);
  }
  // Handles to the groups may outlive the runtime whose resources they reserved.
  for (const auto& [id, r] : removed) {
    {
      std::lock_guard<std::mutex> lock(r->mutex);
      r->state = REMOVED;
    }
    r->created_or_removed.notify_all();
  }
  std::lock_guard<std::mutex> lock(s.mutex);
  s.scheduler = nullptr;
  s.stopping = false;
  s.running.store(false, std::memory_order_release);
}

std::string GetNamespace() {
  internal::check_initialized();
  RuntimeState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.ray_namespace;
}

[[noreturn]] void ExitActor() {
  try {
    lumen::exit_actor(/*no_restart=*/true);
  } catch (const lumen::usage_error&) {
    // Ray's own type and words for this misuse.
    throw std::logic_error("This shouldn't be called on a non-actor worker: ray::ExitActor() was called outside an "
                           "actor's method");
  }
}

// ---- runtime environments ------------------------------------------------------------------

void RuntimeEnv::SetJsonStr(const std::string& name, const std::string& json_str) {
  try {
    fields_[name] = nlohmann::json::parse(json_str);
  } catch (const std::exception& e) {
    throw internal::RayRuntimeEnvException("Failed to set the field " + name + " by json string: " + e.what());
  }
}

std::string RuntimeEnv::GetJsonStr(const std::string& name) const {
  if (!Contains(name)) throw internal::RayRuntimeEnvException("The field " + name + " not found.");
  return fields_.at(name).dump();
}

std::string RuntimeEnv::SerializeToRuntimeEnvInfo() const {
  return nlohmann::json{{"serialized_runtime_env", Serialize()}}.dump();
}

RuntimeEnv RuntimeEnv::Deserialize(const std::string& serialized_runtime_env) {
  RuntimeEnv env;
  try {
    env.fields_ = nlohmann::json::parse(serialized_runtime_env);
  } catch (const std::exception& e) {
    throw internal::RayRuntimeEnvException(std::string("Failed to deserialize the runtime env: ") + e.what());
  }
  if (!env.fields_.is_object())
    throw internal::RayRuntimeEnvException("Failed to deserialize the runtime env: " + serialized_runtime_env +
                                           " is not a JSON object");
  return env;
}

namespace internal {

void check_runtime_env(const RuntimeEnv& env) {
  if (!env.Contains("env_vars")) return;
  env.Get<std::map<std::string, std::string>>("env_vars");  // throws RayRuntimeEnvException naming the field
}

void apply_env_vars(const RuntimeEnv& env) {
  if (!env.Contains("env_vars")) return;
  for (const auto& [name, value] : env.Get<std::map<std::string, std::string>>("env_vars")) {
    if (name.empty() || name.find('=') != std::string::npos)
      throw RayRuntimeEnvException("Failed to set the environment variable '" + name + "': not a variable name");
    if (::setenv(name.c_str(), value.c_str(), 1) != 0)
      throw RayRuntimeEnvException("Failed to set the environment variable " + name + ": " + std::strerror(errno));
  }
}

// ---- the log ------------------------------------------------------------------------------

namespace {

RayLogLevel lowest_logged_level() {
  static const RayLogLevel level = [] {
    const char* text = std::getenv("RAY_BACKEND_LOG_LEVEL");
    std::string name = text != nullptr ? text : "";
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "debug" || name == "trace") return RayLogLevel::DEBUG;
    if (name == "warning") return RayLogLevel::WARNING;
    if (name == "error") return RayLogLevel::ERROR;
    if (name == "fatal") return RayLogLevel::FATAL;
    return RayLogLevel::INFO;
  }();
  return level;
}

const char* level_name(RayLogLevel level) {
  switch (level) {
    case RayLogLevel::DEBUG: return "DEBUG";
    case RayLogLevel::INFO: return "INFO";
    case RayLogLevel::WARNING: return "WARNING";
    case RayLogLevel::ERROR: return "ERROR";
    case RayLogLevel::FATAL: return "FATAL";
  }
  return "?";
}

}  // namespace

bool log_enabled(RayLogLevel level) noexcept { return level >= RayLogLevel::FATAL || level >= lowest_logged_level(); }

RayLogLine::RayLogLine(const char* file, int line, RayLogLevel level) : level_(level) {
  const char* base = std::strrchr(file, '/');
  text_ << "[lumen ray " << level_name(level) << ' ' << (base != nullptr ? base + 1 : file) << ':' << line << "] ";
}

RayLogLine::~RayLogLine() noexcept(false) {
  text_ << '\n';
  std::string line = text_.str();
  // One write per line: lines of threads that log at once do not interleave.
  std::fwrite(line.data(), 1, line.size(), stderr);
  if (level_ == RayLogLevel::FATAL) {
    std::fflush(stderr);
    std::abort();
  }
}

}  // namespace internal

}  // namespace ray
