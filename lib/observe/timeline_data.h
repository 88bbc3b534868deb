// A timeline recording's data: one append-only event log per worker, one per other thread
// that blocks or puts while it records, and the calls the scheduler makes to fill them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "lumen/detail/timeline_hooks.h"

namespace lumen::detail {

class Scheduler;
class Worker;

enum class TimelineKind : std::uint16_t { slice, idle, park, resume, steal, get, wait, put };

// 24 bytes. Slices span [begin, end); marks happen at `begin` and carry `arg` in `end`.
struct TimelineEvent {
  std::int64_t begin;
  std::int64_t end;
  std::uint32_t label;
  TimelineKind kind;
};

// Event times in ticks: the time-stamp counter on x86-64 (about 12 ns to read here, against 29
// for steady_clock, and read a few times per task), converted to nanoseconds when the trace is
// written, from the ticks and steady_clock time read together at the recording's start and at
// the writing.
inline std::int64_t timeline_now() noexcept {
#if defined(__x86_64__)
  return static_cast<std::int64_t>(__builtin_ia32_rdtsc());
#else
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
#endif
}
inline std::int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// One writer appends; any thread reads what was appended so far, without locks. Chunks are
// allocated as the log grows, up to a fixed number of events; past it events are counted.
class TimelineLog {
 public:
  explicit TimelineLog(std::size_t max_events);
  ~TimelineLog();
  TimelineLog(const TimelineLog&) = delete;
  TimelineLog& operator=(const TimelineLog&) = delete;

  void add(const TimelineEvent& e) noexcept;
  template <class F>
  void for_each(F&& f) const {
    const std::size_t chunks = chunk_count_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < chunks; ++i) {
      const Chunk* c = chunks_[i].load(std::memory_order_acquire);
      const std::uint32_t n = c->size.load(std::memory_order_acquire);
      for (std::uint32_t k = 0; k < n; ++k) f(c->events[k]);
    }
  }
  std::uint64_t size() const noexcept;
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::uint32_t kChunkEvents = 4096;
  struct Chunk {
    std::atomic<std::uint32_t> size{0};
    TimelineEvent events[kChunkEvents];
  };
  std::size_t max_events_;
  std::size_t written_ = 0;  // the writer's
  std::size_t max_chunks_;
  std::unique_ptr<std::atomic<Chunk*>[]> chunks_;
  std::atomic<std::size_t> chunk_count_{0};
  Chunk* current_ = nullptr;  // the writer's
  std::atomic<std::uint64_t> dropped_{0};
};

struct TimelineData {
  mutable std::mutex mutex;      // guards scheduler (the link to a live runtime)
  Scheduler* scheduler = nullptr;  // while recording
  std::uint64_t runtime_id = 0;
  std::int64_t start = 0;     // ticks (timeline_now)
  std::int64_t start_ns = 0;  // steady_clock, read together with start
  std::size_t max_events = 0;
  std::vector<std::unique_ptr<TimelineLog>> worker_logs;  // fixed when it starts
  // Set when it stops: the time, and when each worker's idle span then open began (-1: none).
  std::int64_t stop = 0;
  std::vector<std::int64_t> idle_at_stop;
  // Other threads' logs, made as they first record; guarded by the process-wide list of
  // active recordings' mutex (timeline.cpp).
  struct ThreadLog {
    std::thread::id thread;
    std::unique_ptr<TimelineLog> log;
  };
  std::vector<ThreadLog> thread_logs;
};

// Starts a recording of s, each thread keeping at most max_events (0: s's Config). Throws
// usage_error when s already records.
std::shared_ptr<TimelineData> start_timeline(Scheduler& s, std::size_t max_events = 0);
// Stops it (if it still records): workers no longer write to it once this returns.
void stop_timeline(TimelineData& d) noexcept;
// The recording as Chrome trace JSON.
std::string chrome_trace(const TimelineData& d);

// Appends to the calling thread's log of every recording that covers it: a worker's own log
// in its runtime's recording, else this thread's log in every active recording.
void timeline_record(TimelineKind kind, std::uint32_t label, std::int64_t begin, std::int64_t end) noexcept;

}  // namespace lumen::detail
