// Every live actor of the process: names and ids for get_actor, counts for stats, and the end of the
// actors of a runtime that shuts down. Creating, naming and destroying actors takes its lock;
// calls never do.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lumen/detail/actor_core.h"
#include "lumen/runtime.h"
#include "lumen/state.h"

namespace lumen::detail {

class ActorDirectory {
 public:
  // The process's directory; never destroyed, so handles that outlive everything stay safe.
  static ActorDirectory& instance();

  // Lists a new actor and takes its name (holding a reference for it). Throws usage_error
  // when a live actor of the same runtime has the name.
  void add(ActorCore* a);
  // Frees the name of an actor that died, and drops the reference the name held.
  void unbind(ActorCore* a) noexcept;
  // Takes an actor that is being destroyed off the lists.
  void remove(ActorCore* a) noexcept;
  // The named actor with one more reference, or null.
  ActorCore* find(const Scheduler& s, const std::string& name, const std::type_info& type);
  // The live actor with this id, with one more reference, or null (also when it is being
  // destroyed).
  ActorCore* find(std::uint64_t id, const std::type_info& type);

  // After the runtime's last task: every actor of s ends (instance destroyed, later calls fail)
  // and names are dropped.
  void end_runtime(const Scheduler& s) noexcept;
  void add_stats(const Scheduler& s, Stats& out);
  std::vector<ActorInfo> list(const Scheduler& s);  // the runtime's actors, by id

 private:
  std::mutex mutex_;
  std::map<std::pair<const Scheduler*, std::string>, ActorCore*> names_;
  std::unordered_map<std::uint64_t, ActorCore*> live_;  // by id
  std::unordered_map<const Scheduler*, std::uint64_t> retired_calls_;  // calls run by destroyed actors
};

}  // namespace lumen::detail
