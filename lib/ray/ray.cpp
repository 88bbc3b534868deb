// Ray's C++ API on lumen: the function registry, the runtime ray::Init starts, placement
// groups, and the translation of lumen's errors into Ray's exceptions.
#include "lumen/ray.h"

#include <cxxabi.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

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
  std::string who = e.actor_name().empty() ? object_id_text(e.actor_id())
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

[[noreturn]] void throw_empty_ref(const char* call) {
  throw RayException(std::string(call) + " on an empty ObjectRef (default-constructed or moved from)");
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

// Ray counts resources in ten-thousandths; lumen in whole units. A lumen unit is one of Ray's.
constexpr double kUnitsPerResource = 10000;

// The node's "CPU", in Ray's units: its hardware threads, as Ray counts them.
unsigned node_cpus() {
  static const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  return cpus;
}

struct RuntimeState {
  std::mutex mutex;
  std::unique_ptr<lumen::Runtime> runtime;         // moved out by Shutdown while it stops it
  lumen::detail::Scheduler* scheduler = nullptr;   // the runtime's, until it has stopped
  bool stopping = false;                           // Shutdown waits for the runtime's tasks
  std::atomic<bool> initialized{false};            // from Init until Shutdown starts
  std::atomic<bool> running{false};                // from Init until Shutdown has stopped the runtime
  std::string ray_namespace;
};

RuntimeState& state() {
  static RuntimeState s;
  return s;
}

std::string argument_value(int argc, char** argv, std::string_view flag) {
  std::string prefix = "--" + std::string(flag) + "=";
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.substr(0, prefix.size()) == prefix) return std::string(arg.substr(prefix.size()));
  }
  return {};
}

void start(const std::string& address, std::string ray_namespace) {
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
  // Ray code blocks its threads freely; Ray's local mode gives it 10 threads (config.h).
  lumen::Config config;
  config.workers = std::max(10u, node_cpus());
  config.resources = {{"CPU", node_cpus() * kUnitsPerResource}};
  s.runtime = std::make_unique<lumen::Runtime>(config);
  s.scheduler = &s.runtime->scheduler();
  if (ray_namespace.empty()) {
    static std::uint64_t jobs = 0;  // under s.mutex
    ray_namespace = "anonymous-" + std::to_string(++jobs);
  }
  s.ray_namespace = std::move(ray_namespace);
  s.running.store(true, std::memory_order_release);
  s.initialized.store(true, std::memory_order_release);
}

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

void Init(RayConfig& config) { start(config.address, config.ray_namespace); }

void Init(RayConfig& config, int argc, char** argv) {
  std::string address = argument_value(argc, argv, "ray_address");
  std::string ray_namespace = argument_value(argc, argv, "ray_namespace");
  start(address.empty() ? config.address : address, ray_namespace.empty() ? config.ray_namespace : ray_namespace);
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
  static Groups g;
  return g;
}

std::string bundle_resource(const std::string& resource, int bundle_index, const std::string& group_id) {
  if (bundle_index < 0) return resource + "_group_" + group_id;
  return resource + "_group_" + std::to_string(bundle_index) + "_" + group_id;
}

std::uint64_t units(double amount) { return static_cast<std::uint64_t>(std::llround(amount * kUnitsPerResource)); }

// True when `amount` is more than `held` (both in Ray's units) in lumen's units. Amounts far
// above `held` never reach units(), which they would overflow.
bool exceeds(double amount, double held) { return amount > held + 1 || units(amount) > units(held); }

// How much of `resource` the node has, in Ray's units; none for a resource it lacks.
std::optional<double> node_capacity(const std::string& resource) {
  if (resource == "CPU") return node_cpus();
  return std::nullopt;
}

// The claim was granted: the bundles become resources of their own. Runs under the mutex of r.
void create_bundles(internal::PlacementGroupRecord& r) {
  std::map<std::string, double> whole;
  for (std::size_t i = 0; i < r.options.bundles.size(); ++i) {
    for (const auto& [name, amount] : r.options.bundles[i]) {
      lumen::detail::add_resource(*r.scheduler, bundle_resource(name, static_cast<int>(i), r.id), units(amount));
      whole[name] += amount;
    }
  }
  for (const auto& [name, amount] : whole) lumen::detail::add_resource(*r.scheduler, bundle_resource(name, -1, r.id), units(amount));
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
    if (!capacity || exceeds(amount, *capacity)) {
      record->feasible = false;  // more than the node has, or a resource it lacks: pending forever, as in Ray
      continue;
    }
    record->reservation.push_back(lumen::detail::resource_demand(sched, name, static_cast<double>(units(amount))));
  }
  {
    Groups& g = groups();
    std::lock_guard<std::mutex> lock(g.mutex);
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

// "Specified resource: CPU = 1.5.", as Ray's checks end.
std::string specified(const std::string& name, double value) {
  return "Specified resource: " + name + " = " + amount_text(value) + ".";
}

// `holder` ("this node", "bundle 0 of placement group ...") has `held` of `resource`, or none:
// never enough for `amount`.
[[noreturn]] void throw_unschedulable(const std::string& resource, double amount, const std::string& holder,
                                      std::optional<double> held) {
  throw internal::RayException(amount_text(amount) + " " + resource + " requested, but " + holder + " has " +
                               (held ? amount_text(*held) + " " + resource : "no " + resource) +
                               ": it could never be scheduled");
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
    if (value < 1 && units(value) == 0)
      throw RayException("Resource values should be at least 0.0001. " + specified(name, value));
  }
}

std::vector<std::pair<std::string, double>> lumen_resources(const std::unordered_map<std::string, double>& resources,
                                                            const PlacementGroup& group, int bundle_index) {
  check_resources(resources);
  std::vector<std::pair<std::string, double>> out;
  if (group.Empty()) {
    for (const auto& [name, value] : resources) {
      std::optional<double> capacity = node_capacity(name);
      if (!capacity || exceeds(value, *capacity)) throw_unschedulable(name, value, "this node", capacity);
      out.emplace_back(name, static_cast<double>(units(value)));
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
    if (!capacity || exceeds(value, *capacity)) throw_unschedulable(name, value, holder, capacity);
    out.emplace_back(bundle_resource(name, bundle_index, r.id), static_cast<double>(units(value)));
    // A task in bundle i also draws from the group as a whole, as in Ray.
    if (bundle_index >= 0) out.emplace_back(bundle_resource(name, -1, r.id), static_cast<double>(units(value)));
  }
  return out;
}

}  // namespace internal

// ---- the rest of the runtime --------------------------------------------------------------

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
  runtime.reset();  // waits for every task and actor call
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
    lumen::exit_actor();
  } catch (const lumen::usage_error&) {
    throw internal::RayException("ExitActor() was called outside an actor's method");
  }
}

}  // namespace ray
