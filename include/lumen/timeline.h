/// @file
/// The timeline: what every thread of a runtime did, and when, in Chrome's trace format
/// (chrome://tracing and https://ui.perfetto.dev open the file).
///
/// @code
///   lumen::TimelineRecording rec{rt};
///   ... work ...
///   rec.stop();
///   rec.write("run.trace.json");
/// @endcode
///
/// Or for a runtime's whole life: Config::timeline_path, or the environment variable
/// LUMEN_TIMELINE naming the file, which is written when the runtime ends.
///
/// What is recorded, per worker (one track each): a slice for each task the worker loop runs,
/// named after the task (its TaskOptions name, else its callable's type) or the actor whose
/// calls it serves; the slice pauses while the task's fiber is parked, with "park" and "resume"
/// marks; a "steal" mark naming the victim; "idle" slices while the worker looks for work or
/// sleeps. On other threads: "get"/"wait" slices while they block on objects, and "put" marks
/// with the value's size. Children that a wait runs inline (task_group::wait, a get on a task
/// still queued there) are part of the slice of the task that waits, except submitted tasks,
/// which get a slice of their own.
///
/// Cost: events are appended to per-thread logs without locks; one event is about 24 bytes and
/// each thread keeps at most Config::timeline_events_per_thread of them (later events are
/// counted as dropped). While nothing records, each hook is a relaxed load and a branch.
///
/// Thread safety: every member may be called from any thread. One recording per runtime at a
/// time. A recording may outlive its runtime: it then stops, and keeps what it recorded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lumen {

class Runtime;
namespace detail {
struct TimelineData;
}

/// A recording of a runtime's timeline: what each worker ran and when, for Chrome's trace viewer
/// (chrome://tracing, Perfetto) or a live view. See the top of this file.
class TimelineRecording {
 public:
  /// Starts recording rt's threads, each keeping at most events_per_thread events (0: the
  /// runtime's Config::timeline_events_per_thread). Throws usage_error when rt is already
  /// recording (this way or through Config::timeline_path), or events_per_thread is over 2^30.
  explicit TimelineRecording(Runtime& rt, std::size_t events_per_thread = 0);
  ~TimelineRecording();  ///< stops
  /// Takes over o's recording; o records nothing.
  TimelineRecording(TimelineRecording&&) noexcept;
  /// Stops this recording, then takes over o's.
  TimelineRecording& operator=(TimelineRecording&&) noexcept;
  TimelineRecording(const TimelineRecording&) = delete;
  TimelineRecording& operator=(const TimelineRecording&) = delete;

  /// Ends the recording; what was recorded stays. Idempotent.
  void stop() noexcept;
  /// True from construction until stop().
  bool recording() const noexcept;

  /// The events so far (while recording too), as a Chrome trace JSON document. Its otherData
  /// holds dropped_events and start_steady_ns, the recording's start on std::chrono::
  /// steady_clock (event times are microseconds after it), to line up several recordings.
  std::string chrome_trace() const;
  /// Writes chrome_trace() to path; throws std::system_error naming the path when it cannot.
  void write(const std::string& path) const;

  /// The slices on the workers' tracks so far (tasks and idle spans), without going through
  /// JSON: what a live view draws. Times are microseconds after start_steady_ns().
  struct Slice {
    unsigned worker;  ///< the worker's index
    std::string name;  ///< the task's name, or "idle"
    bool idle;  ///< an idle span rather than a task
    /// @{
    double start_us, duration_us;  ///< when it began and how long it lasted, in microseconds
    /// @}
  };
  /// The slices recorded so far, while recording too.
  std::vector<Slice> slices() const;
  std::int64_t start_steady_ns() const noexcept;  ///< the recording's start on steady_clock
  std::uint64_t events() const noexcept;   ///< recorded
  std::uint64_t dropped() const noexcept;  ///< not recorded: a thread's log was full

 private:
  std::shared_ptr<detail::TimelineData> data_;
};

}  // namespace lumen
