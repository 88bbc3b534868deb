// Ray's C++ API on lumen: the function registry, the runtime ray::Init starts, placement
// groups, and the translation of lumen's errors into Ray's exceptions.
#include "lumen/ray.h"

#include <cxxabi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>

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

namespace {
std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name != nullptr ? std::string(name.get()) : std::string(type.name());
}
}  // namespace

[[noreturn]] void throw_task_exception(const std::string& function_name) {
  try {
    throw;
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
  } catch (const lumen::timeout_error& e) {
    throw RayTimeoutException(std::string("Get timed out: some object(s) not ready. ") + e.what());
  } catch (const lumen::actor_died& e) {
    throw RayActorException(e.what());
  } catch (const lumen::error& e) {
    throw RayException(e.what());
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

struct RuntimeState {
  std::mutex mutex;
  std::unique_ptr<lumen::Runtime> runtime;
  std::atomic<bool> initialized{false};
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
  if (s.runtime != nullptr) return;
  unsigned hardware = std::max(1u, std::thread::hardware_concurrency());
  // Ray code blocks its threads freely; Ray's local mode gives it 10 threads (config.h).
  lumen::Config config;
  config.workers = std::max(10u, hardware);
  config.resources = {{"CPU", hardware * kUnitsPerResource}};
  s.runtime = std::make_unique<lumen::Runtime>(config);
  if (ray_namespace.empty()) {
    static std::uint64_t jobs = 0;  // under s.mutex
    ray_namespace = "anonymous-" + std::to_string(++jobs);
  }
  s.ray_namespace = std::move(ray_namespace);
  s.initialized.store(true, std::memory_order_release);
}

lumen::detail::Scheduler& ray_scheduler() {
  RuntimeState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.runtime == nullptr) throw internal::RayException("Ray has not been initialized: call ray::Init() first");
  return s.runtime->scheduler();
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
    try {
      record->reservation.push_back(lumen::detail::resource_demand(sched, name, static_cast<double>(units(amount))));
    } catch (const lumen::usage_error&) {
      record->feasible = false;  // more than the node has, or a resource it lacks: pending forever, as in Ray
    }
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
  Groups& g = groups();
  std::lock_guard<std::mutex> lock(g.mutex);
  std::vector<PlacementGroup> out;
  for (const auto& [id, r] : g.by_id) out.emplace_back(r);
  return out;
}

PlacementGroup GetPlacementGroupById(const std::string& id) { return PlacementGroup(find_group(id)); }

PlacementGroup GetPlacementGroup(const std::string& name) {
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

namespace internal {

void check_resources(const std::unordered_map<std::string, double>& resources) {
  for (const auto& [name, value] : resources) {
    if (name.empty() || !(value > 0))
      throw RayException("Resource values should be positive. Specified resource: " + name + " = " +
                         std::to_string(value) + ".");
    double whole;
    if (value > 1 && std::modf(value, &whole) != 0.0)
      throw RayException("A resource value should be an integer if it is greater than 1.0. Specified resource: " + name +
                         " = " + std::to_string(value) + ".");
  }
}

std::vector<std::pair<std::string, double>> lumen_resources(const std::unordered_map<std::string, double>& resources,
                                                            const PlacementGroup& group, int bundle_index) {
  check_resources(resources);
  std::vector<std::pair<std::string, double>> out;
  if (group.Empty()) {
    for (const auto& [name, value] : resources) out.emplace_back(name, static_cast<double>(units(value)));
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
  // Ray's tasks ask for one CPU unless they say otherwise.
  const std::unordered_map<std::string, double> one_cpu{{"CPU", 1}};
  for (const auto& [name, value] : resources.empty() ? one_cpu : resources) {
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
    s.initialized.store(false, std::memory_order_release);
    runtime = std::move(s.runtime);
  }
  runtime.reset();  // waits for every task and actor call
  Groups& g = groups();
  std::lock_guard<std::mutex> lock(g.mutex);
  g.by_id.clear();
}

std::string GetNamespace() {
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
