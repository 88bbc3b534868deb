/// @file
/// The state API: what the runtime holds right now, task by task, actor by actor and object by
/// object, as Ray's `ray list` / `ray summary tasks` / `ray memory` show a cluster.
///
/// @code
///   lumen::Runtime rt{{.track_state = true}};
///   ...
///   for (const lumen::TaskInfo& t : lumen::list_tasks(rt, {.phase = lumen::TaskPhase::running}))
///     std::printf("%s on worker %d since %s:%u\n", t.name.c_str(), t.worker, t.file.c_str(), t.line);
///   for (const lumen::TaskSummary& s : lumen::summarize_tasks(rt)) ...   // by name
///   for (const lumen::ObjectInfo& o : lumen::list_objects({.order = lumen::ObjectOrder::largest})) ...
/// @endcode
///
/// Tasks are tracked only when Config::track_state is on (or the environment variable
/// LUMEN_TRACK_STATE is 1): each submitted task then gets a record at submit, which its phase
/// changes update (a store each) and which leaves the live list when the task ends, into a
/// bounded history of ended tasks and the totals by name. Off, every hook is a pointer test.
/// Its measured cost is in docs/observing.md. Actors and objects need no tracking.
///
/// Each call returns a snapshot: tasks and actors are read under short per-shard locks, so a
/// snapshot is consistent per task but not across tasks (a task may move on while others are
/// read). Any thread may call these functions at any time, from inside tasks too.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lumen/object_ref.h"
#include "lumen/runtime.h"

namespace lumen {

/// Where a task is. pending: waits for its ObjectRef arguments (or for resources); queued: ready,
/// waits for a worker; running: on a worker; parked: its fiber waits in a get or wait;
/// finished: published its value; failed: ended with an error (its own, a dependency's, a
/// cancel or a timeout).
enum class TaskPhase : std::uint8_t { pending, queued, running, parked, finished, failed };
/// The phase's name: "pending", "queued", ...
std::string_view to_string(TaskPhase phase) noexcept;

/// One task.
struct TaskInfo {
  ObjectId object_id;  ///< its result's ObjectRef::id()
  std::string name;             ///< the name it was given, else its callable's type
  TaskPhase phase = TaskPhase::pending;  ///< where it is now
  int worker = -1;              ///< the worker that ran it last; -1 before it ran
  int attempts = 0;             ///< runs begun, retries included
  /// Where lumen::task(f) was called; empty file and line 0 for lumen::submit(f, ...), which
  /// cannot take the place of its caller.
  /// @{
  std::string file, function;
  unsigned line = 0;
  /// @}
  using time_point = std::chrono::steady_clock::time_point;  ///< a steady_clock time
  time_point submitted;  ///< when submit returned
  time_point started;    ///< its first run began; time_point{} before it ran
  time_point ended;      ///< time_point{} while it is live
};

/// Which tasks list_tasks returns.
struct TaskFilter {
  bool live = true;          ///< pending, queued, running and parked tasks
  bool ended = false;        ///< the most recent ended tasks (Config::state_history of them)
  std::string name{};        ///< only tasks of this name; empty: any
  std::size_t limit = 1000;  ///< at most this many, oldest submitted first
};

/// Tasks of one name: how many are in each phase now, and the run time of those that ended.
struct TaskSummary {
  std::string name;  ///< the tasks' name
  /// @{
  std::uint64_t pending = 0, queued = 0, running = 0, parked = 0;  ///< live now
  /// @}
  /// @{
  std::uint64_t finished = 0, failed = 0;                          ///< since the runtime started
  /// @}
  std::chrono::nanoseconds total_time{0};  ///< from first start to end, over the ended ones
  std::chrono::nanoseconds max_time{0};  ///< the longest of them, from first start to end
};

/// Whether rt keeps task records (Config::track_state or LUMEN_TRACK_STATE=1).
bool tracks_tasks(const Runtime& rt) noexcept;
/// Throw usage_error when the runtime does not track tasks.
std::vector<TaskInfo> list_tasks(const Runtime& rt, const TaskFilter& filter = {});
std::vector<TaskSummary> summarize_tasks(const Runtime& rt);  ///< by name, most tasks first

/// One actor of the runtime; live ones and dead ones whose handles still exist.
struct ActorInfo {
  std::uint64_t id = 0;  ///< ActorHandle::id()
  std::string name;  ///< its registered name; empty when it has none
  std::string type;  ///< the actor class
  bool alive = true;  ///< false once it has ended for good
  std::uint64_t calls_queued = 0;    ///< its mailbox now
  std::uint64_t calls_executed = 0;  ///< since it was created
};
std::vector<ActorInfo> list_actors(const Runtime& rt);  ///< by id

/// One object of the object table. The table belongs to the process, so this lists the objects
/// of every runtime.
struct ObjectInfo {
  ObjectId id;  ///< ObjectRef::id()
  /// Whether its value is there yet: pending until its task ends, then ready or failed.
  /// @{
  enum class Status : std::uint8_t { pending, ready, failed } status = Status::pending;
  /// @}
  std::size_t bytes = 0;   ///< the value's size (ready values)
  std::uint32_t refs = 0;  ///< ObjectRefs to it
  /// How long it has existed. Zero for an object created while no runtime of the process
  /// tracked state (Config::track_state): only then is the creation time written.
  std::chrono::nanoseconds age{0};
};
/// How list_objects orders the objects: largest value first, or oldest first.
enum class ObjectOrder : std::uint8_t { largest, oldest };
/// Which objects list_objects returns.
struct ObjectFilter {
  ObjectOrder order = ObjectOrder::largest;  ///< largest or oldest first
  std::size_t limit = 100;  ///< at most this many
};
/// Scans the whole table (a few ns per slot ever used): for a person or a dashboard, not a loop.
std::vector<ObjectInfo> list_objects(const ObjectFilter& filter = {});

}  // namespace lumen
