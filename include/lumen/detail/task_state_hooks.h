// What the task code calls to keep the state API's records (lumen/state.h). While no runtime
// of the process tracks state, a hook costs a relaxed load and a branch; while one does, tasks
// of runtimes that do not track have no record, and their hooks a pointer test.
#pragma once

#include <atomic>
#include <cstdint>
#include <source_location>
#include <string_view>

namespace lumen::detail {

class Scheduler;
struct TaskRecord;

// Runtimes of the process that track state (Config::track_state).
extern std::atomic<int> state_trackers;
inline bool state_tracking() noexcept { return state_trackers.load(std::memory_order_relaxed) != 0; }

// The record of a task just submitted (pending), or null when s does not track state or no
// memory is left for it. Unnamed tasks pass their type's timeline label instead of a name.
TaskRecord* track_task(Scheduler& s, std::uint64_t object_id, std::string_view name, std::uint32_t type_label,
                       const std::source_location* where) noexcept;
void task_pending(TaskRecord* r) noexcept;  // waits for resources or for a retry's delay
void task_queued(TaskRecord* r) noexcept;
void task_running(TaskRecord* r) noexcept;  // on a worker: which, and the first start
void task_succeeded(TaskRecord* r) noexcept;
// `running_task` is a TaskContext::task (a SubmitTaskBase) whose fiber parks or resumes.
void task_parked(const void* running_task, bool parked) noexcept;
// The task ends: finished after task_succeeded, else failed. Frees the record.
void untrack_task(TaskRecord* r) noexcept;

}  // namespace lumen::detail
