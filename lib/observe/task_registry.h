// The records behind the state API (lumen/state.h): one per live task of a runtime that tracks
// state, in shards so that submits on different workers take different locks, and what is
// left of the tasks that ended (a bounded history, totals by name).
#pragma once

#include <atomic>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <utility>
#include <vector>

#include "lumen/detail/cpu_relax.h"

namespace lumen::detail {

enum class RecordPhase : std::uint8_t { pending, queued, running, parked, finished, failed };

class TaskRegistry;

// A shard's lock: held for a few list and ring operations by the threads that submit and end
// tasks (half the cost of a mutex there), and for a copy of the shard by a snapshot, which
// others then wait out with pauses and, past a while, yields.
class SpinLock {
 public:
  void lock() noexcept {
    for (unsigned spins = 0; held_.exchange(true, std::memory_order_acquire);) {
      while (held_.load(std::memory_order_relaxed)) {
        if (++spins < 128) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  void unlock() noexcept { held_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> held_{false};
};

struct TaskRecord {
  TaskRegistry* registry = nullptr;
  TaskRecord* prev = nullptr;  // in its shard's live list
  TaskRecord* next = nullptr;
  std::uint32_t shard = 0;
  std::uint32_t type_label = 0;  // unnamed tasks: their callable's type (timeline label)
  std::uint64_t object_id = 0;
  std::string name;
  const char* file = "";
  const char* function = "";
  std::uint32_t line = 0;
  std::int64_t submitted = 0;  // ticks (timeline_now)
  std::int64_t ended = 0;      // under the shard's lock
  // Written by the thread that runs the task, read by snapshots.
  std::atomic<RecordPhase> phase{RecordPhase::pending};
  std::atomic<int> worker{-1};
  std::atomic<int> attempts{0};
  std::atomic<std::int64_t> started{0};
};

// A task that ended, as the history keeps it.
struct EndedTask {
  std::uint64_t object_id;
  std::uint32_t type_label;
  std::string name;
  const char* file;
  const char* function;
  std::uint32_t line;
  RecordPhase phase;
  int worker, attempts;
  std::int64_t submitted, started, ended;
};

struct NameTotals {
  std::uint64_t finished = 0, failed = 0;
  std::int64_t total_ticks = 0, max_ticks = 0;
};

class TaskRegistry {
 public:
  // `shards`: one per worker and one for other threads; `history`: ended tasks kept.
  TaskRegistry(unsigned shards, std::size_t history);
  ~TaskRegistry();
  TaskRegistry(const TaskRegistry&) = delete;
  TaskRegistry& operator=(const TaskRegistry&) = delete;

  void add(TaskRecord* r, unsigned shard) noexcept;
  void remove(TaskRecord* r) noexcept;  // into the history and totals; frees r

  // Group key: an unnamed task's type label, or a named task's name (label 0).
  using NameKey = std::pair<std::uint32_t, std::string>;
  struct Snapshot {
    std::vector<EndedTask> live;   // as EndedTask, ended = 0
    std::vector<EndedTask> ended;  // the last `history` to end, in no order
    std::map<NameKey, NameTotals> totals;
  };
  Snapshot snapshot(bool live, bool ended, bool totals) const;

  // Live tasks by phase (pending to parked), ended ones by outcome, and a histogram of the
  // ended tasks' times from first start to end (bounds kTimeBounds seconds, then +Inf).
  static constexpr double kTimeBounds[] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10};
  static constexpr std::size_t kBuckets = std::size(kTimeBounds) + 1;
  struct Counts {
    std::uint64_t live[4] = {};
    std::uint64_t finished = 0, failed = 0;
    std::uint64_t buckets[kBuckets] = {};
    std::int64_t total_ticks = 0;
  };
  Counts counts() const;
  double ns_per_tick() const noexcept;

  // Converts ticks of timeline_now() to steady-clock nanoseconds.
  std::int64_t to_steady_ns(std::int64_t ticks) const noexcept;

 private:
  struct alignas(64) Shard {
    mutable SpinLock guard;
    TaskRecord* head = nullptr;
    std::vector<EndedTask> ended;  // a ring of up to history_, next_ended the oldest once full
    std::size_t next_ended = 0;
    std::map<NameKey, NameTotals> totals;
    NameTotals* last_totals = nullptr;  // totals of the last task to end here (map nodes stay put)
    std::uint32_t last_label = 0;
    std::string last_name;
    std::uint64_t buckets[kBuckets] = {};
    std::int64_t total_ticks = 0;
  };
  std::int64_t bucket_ticks_[kBuckets - 1];  // kTimeBounds in ticks
  std::unique_ptr<Shard[]> shards_;
  unsigned shard_count_;
  std::size_t history_;  // kept per shard, and in all
  std::int64_t ticks0_, ns0_;  // read together at the start
};

}  // namespace lumen::detail
