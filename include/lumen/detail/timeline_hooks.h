// What header code calls to put its work on the timeline (lumen/timeline.h). Each hook costs a
// relaxed load and a branch while nothing records.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>
#include <typeinfo>

namespace lumen::detail {

// Recordings running in the process, any runtime.
extern std::atomic<int> timeline_recordings;
inline bool timeline_active() noexcept { return timeline_recordings.load(std::memory_order_relaxed) != 0; }

// Labels are interned names, shared by every recording; 0 is the generic "task".
std::uint32_t timeline_label(std::string_view name);
// The demangled name of a type, interned once per type.
std::uint32_t timeline_type_label(const std::type_info& type);
// Every label's name, by label.
std::vector<std::string> timeline_label_names();

// Gives the work running on this stack a name on the timeline until it ends: the slice the
// worker loop opened for it is renamed (and ended here), or, when it runs inside another slice
// (run inline by a get), the outer slice pauses while it runs.
class TimelineSlice {
 public:
  TimelineSlice() = default;
  ~TimelineSlice() {
    if (context_ != nullptr) close();
  }
  TimelineSlice(const TimelineSlice&) = delete;
  TimelineSlice& operator=(const TimelineSlice&) = delete;
  void open(std::uint32_t label) noexcept;

 private:
  void close() noexcept;
  struct TaskContext* context_ = nullptr;
  std::uint32_t outer_label_ = 0;
  enum class Kind : std::uint8_t { renamed, nested, own } kind_ = Kind::own;
};

// A put of a value of this many bytes (an instant on the timeline).
void timeline_put(std::size_t bytes) noexcept;

}  // namespace lumen::detail
