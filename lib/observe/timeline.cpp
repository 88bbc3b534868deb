// Timeline recordings: the per-thread logs, the labels they name, the hooks header code calls,
// and the Chrome trace writer.
//
// A worker writes only to its own log, and only while its runtime's recording pointer is set.
// To stop, the pointer is cleared and each worker's "writing" flag is awaited: a worker sets
// the flag before it reads the pointer, both sequentially consistent, so once the flag reads
// clear after the pointer was cleared, that worker can no longer be writing to the recording.
// Other threads (a get on the main thread) write under the process-wide mutex of the list of
// active recordings, which stop also takes.
#include "observe/timeline_data.h"

#include <cxxabi.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <new>
#include <string>
#include <system_error>
#include <unordered_map>

#include "lumen/error.h"
#include "lumen/runtime.h"
#include "lumen/timeline.h"
#include "sched/scheduler.h"

namespace lumen::detail {

std::atomic<int> timeline_recordings{0};

namespace {

// Interned labels. Never shrinks: a label is a few bytes per distinct task name or type.
struct Labels {
  std::mutex mutex;
  std::deque<std::string> names{"task"};
  std::unordered_map<std::string_view, std::uint32_t> index{{"task", 0}};
  std::unordered_map<const std::type_info*, std::uint32_t> by_type;

  std::uint32_t intern_locked(std::string name) {
    auto it = index.find(name);
    if (it != index.end()) return it->second;
    const auto id = static_cast<std::uint32_t>(names.size());
    names.push_back(std::move(name));
    index.emplace(names.back(), id);
    return id;
  }
  static Labels& instance() {
    static Labels* labels = new Labels;  // never destroyed: workers may label during exit
    return *labels;
  }
};

std::string demangle(const char* mangled) {
  int status = 0;
  char* text = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (status != 0 || text == nullptr) return mangled;
  std::string out(text);
  std::free(text);
  return out;
}

// Recordings that take events from threads that are not their runtime's workers.
std::mutex g_active_mutex;
std::vector<TimelineData*> g_active;

void record_on_thread(TimelineData& d, const TimelineEvent& e) noexcept {
  const auto self = std::this_thread::get_id();
  for (auto& t : d.thread_logs) {
    if (t.thread == self) {
      t.log->add(e);
      return;
    }
  }
  try {
    d.thread_logs.push_back({self, std::make_unique<TimelineLog>(d.max_events)});
    d.thread_logs.back().log->add(e);
  } catch (...) {  // no memory for another log: the event is lost, the program goes on
  }
}

void append_escaped(std::string& out, std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
}

void append_us(std::string& out, std::int64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld.%03lld", static_cast<long long>(ns / 1000), static_cast<long long>(ns % 1000));
  out += buf;
}

}  // namespace

std::uint32_t timeline_label(std::string_view name) {
  Labels& l = Labels::instance();
  std::lock_guard lock(l.mutex);
  auto it = l.index.find(name);
  if (it != l.index.end()) return it->second;
  return l.intern_locked(std::string(name));
}

std::vector<std::string> timeline_label_names() {
  Labels& l = Labels::instance();
  std::lock_guard lock(l.mutex);
  return {l.names.begin(), l.names.end()};
}

std::uint32_t timeline_type_label(const std::type_info& type) {
  Labels& l = Labels::instance();
  std::string name = demangle(type.name());
  std::lock_guard lock(l.mutex);
  auto it = l.by_type.find(&type);
  if (it != l.by_type.end()) return it->second;
  const std::uint32_t id = l.intern_locked(std::move(name));
  l.by_type.emplace(&type, id);
  return id;
}

// ---- logs ------------------------------------------------------------------------------------

TimelineLog::TimelineLog(std::size_t max_events)
    : max_events_(max_events),
      max_chunks_((max_events + kChunkEvents - 1) / kChunkEvents),
      chunks_(std::make_unique<std::atomic<Chunk*>[]>(max_chunks_)) {}

TimelineLog::~TimelineLog() {
  const std::size_t n = chunk_count_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < n; ++i) delete chunks_[i].load(std::memory_order_relaxed);
}

void TimelineLog::add(const TimelineEvent& e) noexcept {
  if (written_ == max_events_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (current_ == nullptr || current_->size.load(std::memory_order_relaxed) == kChunkEvents) {
    const std::size_t n = chunk_count_.load(std::memory_order_relaxed);
    Chunk* c = n < max_chunks_ ? new (std::nothrow) Chunk : nullptr;
    if (c == nullptr) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    chunks_[n].store(c, std::memory_order_release);
    chunk_count_.store(n + 1, std::memory_order_release);
    current_ = c;
  }
  const std::uint32_t k = current_->size.load(std::memory_order_relaxed);
  current_->events[k] = e;
  current_->size.store(k + 1, std::memory_order_release);
  ++written_;
}

std::uint64_t TimelineLog::size() const noexcept {
  std::uint64_t total = 0;
  for_each([&](const TimelineEvent&) { ++total; });
  return total;
}

// ---- recording -------------------------------------------------------------------------------

std::shared_ptr<TimelineData> start_timeline(Scheduler& s, std::size_t max_events) {
  if (max_events > (std::size_t{1} << 30))
    throw usage_error("lumen: a timeline recording may keep at most 2^30 events per thread, not " + std::to_string(max_events));
  auto d = std::make_shared<TimelineData>();
  d->scheduler = &s;
  d->runtime_id = s.id();
  d->max_events = max_events != 0 ? max_events : s.config().timeline_events_per_thread;
  for (unsigned i = 0; i < s.worker_count(); ++i) d->worker_logs.push_back(std::make_unique<TimelineLog>(d->max_events));
  {
    std::lock_guard lock(s.timeline_mutex);
    if (s.timeline_current != nullptr)
      throw usage_error("lumen: this runtime already records a timeline; stop that recording first");
    std::lock_guard active(g_active_mutex);
    g_active.push_back(d.get());  // reserve before publishing: nothing below throws
    d->start = timeline_now();
    d->start_ns = steady_ns();
    s.timeline_current = d;
    timeline_recordings.fetch_add(1, std::memory_order_relaxed);
    s.timeline.store(d.get(), std::memory_order_seq_cst);
  }
  return d;
}

void stop_timeline(TimelineData& d) noexcept {
  std::lock_guard lock(d.mutex);
  Scheduler* s = std::exchange(d.scheduler, nullptr);
  if (s == nullptr) return;
  s->timeline.store(nullptr, std::memory_order_seq_cst);
  for (unsigned i = 0; i < s->worker_count(); ++i) {
    while (s->worker(i).timeline_writing.load(std::memory_order_seq_cst)) std::this_thread::yield();
  }
  d.stop = timeline_now();
  d.idle_at_stop.assign(s->worker_count(), -1);
  for (unsigned i = 0; i < s->worker_count(); ++i) d.idle_at_stop[i] = s->worker(i).idle_since_tick.load(std::memory_order_relaxed);
  {
    std::lock_guard active(g_active_mutex);
    g_active.erase(std::find(g_active.begin(), g_active.end(), &d));
  }
  timeline_recordings.fetch_sub(1, std::memory_order_relaxed);
  std::lock_guard own(s->timeline_mutex);
  if (s->timeline_current.get() == &d) s->timeline_current.reset();  // the caller holds d too
}

void timeline_record(TimelineKind kind, std::uint32_t label, std::int64_t begin, std::int64_t end) noexcept {
  const TimelineEvent e{begin, end, label, kind};
  if (Worker* w = this_worker()) {
    w->timeline_writing.store(true, std::memory_order_seq_cst);
    if (TimelineData* d = w->scheduler().timeline.load(std::memory_order_seq_cst)) d->worker_logs[w->index()]->add(e);
    w->timeline_writing.store(false, std::memory_order_release);
    return;
  }
  std::lock_guard lock(g_active_mutex);
  for (TimelineData* d : g_active) record_on_thread(*d, e);
}

void timeline_put(std::size_t bytes) noexcept {
  timeline_record(TimelineKind::put, 0, timeline_now(), static_cast<std::int64_t>(bytes));
}

// ---- slices ----------------------------------------------------------------------------------

void TimelineSlice::open(std::uint32_t label) noexcept {
  TaskContext& c = task_context();
  context_ = &c;
  if (c.slice_state == TaskContext::kSliceFresh) {
    kind_ = Kind::renamed;
    c.slice_label = label;
    c.slice_state = TaskContext::kSliceOpen;
    return;
  }
  const std::int64_t now = timeline_now();
  if (c.slice_state == TaskContext::kSliceOpen) {
    timeline_record(TimelineKind::slice, c.slice_label, c.slice_begin, now);
    kind_ = Kind::nested;
    outer_label_ = c.slice_label;
  } else {
    kind_ = Kind::own;
    c.slice_state = TaskContext::kSliceOpen;
  }
  c.slice_begin = now;
  c.slice_label = label;
}

// Ends the slice here rather than leaving a renamed one to the worker loop: the task publishes
// its result right after, and whoever sees the result should find its slice recorded.
void TimelineSlice::close() noexcept {
  TaskContext& c = *context_;
  const std::int64_t now = timeline_now();
  if (c.slice_state != TaskContext::kSliceNone) timeline_record(TimelineKind::slice, c.slice_label, c.slice_begin, now);
  if (kind_ == Kind::nested) {
    c.slice_state = TaskContext::kSliceOpen;
    c.slice_label = outer_label_;
    c.slice_begin = now;
  } else {
    c.slice_state = TaskContext::kSliceNone;
  }
}

// ---- reading -----------------------------------------------------------------------------------

namespace {

// Nanoseconds per tick, from the span between the recording's start and now.
double nanoseconds_per_tick(const TimelineData& d) {
  const std::int64_t ticks = timeline_now() - d.start, ns = steady_ns() - d.start_ns;
  return ticks > 0 && ns > 0 ? static_cast<double>(ns) / static_cast<double>(ticks) : 1.0;
}

}  // namespace

// ---- Chrome trace ----------------------------------------------------------------------------

std::string chrome_trace(const TimelineData& d) {
  const std::vector<std::string> names = timeline_label_names();
  const std::int64_t start = d.start;
  const double ns_per_tick = nanoseconds_per_tick(d);
  auto to_ns = [ns_per_tick](std::int64_t t) { return static_cast<std::int64_t>(static_cast<double>(t) * ns_per_tick); };
  // Idle spans still open: up to now while recording, else up to the stop.
  std::vector<std::int64_t> open_idle;
  std::int64_t open_until = 0;
  {
    std::lock_guard lock(d.mutex);
    if (d.scheduler != nullptr) {
      open_until = timeline_now();
      for (unsigned i = 0; i < d.scheduler->worker_count(); ++i)
        open_idle.push_back(d.scheduler->worker(i).idle_since_tick.load(std::memory_order_relaxed));
    } else {
      open_until = d.stop;
      open_idle = d.idle_at_stop;
    }
  }
  std::string out;
  out.reserve(1 << 16);
  out += "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
  const std::string pid = std::to_string(d.runtime_id);
  out += "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":" + pid + ",\"tid\":0,\"args\":{\"name\":\"lumen runtime " + pid + "\"}}";
  std::uint64_t dropped = 0;
  auto write_log = [&](const TimelineLog& log, unsigned tid, const std::string& thread_name, std::int64_t idle_since) {
    const std::string tids = std::to_string(tid);
    out += ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":" + pid + ",\"tid\":" + tids + ",\"args\":{\"name\":\"";
    append_escaped(out, thread_name);
    out += "\"}}";
    out += ",\n{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":" + pid + ",\"tid\":" + tids + ",\"args\":{\"sort_index\":" + tids + "}}";
    dropped += log.dropped();
    auto write_event = [&](const TimelineEvent& e) {
      if (e.begin < start) return;  // a slice opened before this recording started
      const std::string_view label = e.label < names.size() ? std::string_view(names[e.label]) : std::string_view("task");
      const char* name = nullptr;
      const char* cat = nullptr;
      bool span = true;
      switch (e.kind) {
        case TimelineKind::slice: cat = "task"; break;
        case TimelineKind::idle: name = "idle"; cat = "idle"; break;
        case TimelineKind::get: name = "get"; cat = "object"; break;
        case TimelineKind::wait: name = "wait"; cat = "object"; break;
        case TimelineKind::park: name = "park"; cat = "fiber"; span = false; break;
        case TimelineKind::resume: name = "resume"; cat = "fiber"; span = false; break;
        case TimelineKind::steal: name = "steal"; cat = "scheduler"; span = false; break;
        case TimelineKind::put: name = "put"; cat = "object"; span = false; break;
      }
      out += ",\n{\"name\":\"";
      if (name != nullptr) {
        out += name;
      } else {
        append_escaped(out, label);
      }
      out += "\",\"cat\":\"";
      out += cat;
      out += span ? "\",\"ph\":\"X\",\"ts\":" : "\",\"ph\":\"i\",\"s\":\"t\",\"ts\":";
      append_us(out, to_ns(e.begin - start));
      if (span) {
        out += ",\"dur\":";
        append_us(out, to_ns(std::max<std::int64_t>(0, e.end - e.begin)));
      }
      out += ",\"pid\":" + pid + ",\"tid\":" + tids;
      if (e.kind == TimelineKind::steal) {
        out += ",\"args\":{\"victim\":\"worker " + std::to_string(e.end) + "\"}";
      } else if (e.kind == TimelineKind::put) {
        out += ",\"args\":{\"bytes\":" + std::to_string(e.end) + "}";
      } else if (e.kind == TimelineKind::park || e.kind == TimelineKind::resume) {
        out += ",\"args\":{\"task\":\"";
        append_escaped(out, label);
        out += "\"}";
      }
      out += '}';
    };
    log.for_each(write_event);
    if (idle_since >= start && open_until > idle_since) write_event(TimelineEvent{idle_since, open_until, 0, TimelineKind::idle});
  };
  for (std::size_t i = 0; i < d.worker_logs.size(); ++i)
    write_log(*d.worker_logs[i], static_cast<unsigned>(i), "worker " + std::to_string(i), i < open_idle.size() ? open_idle[i] : -1);
  {
    std::lock_guard lock(g_active_mutex);
    for (std::size_t i = 0; i < d.thread_logs.size(); ++i)
      write_log(*d.thread_logs[i].log, static_cast<unsigned>(1000 + i), "thread " + std::to_string(i + 1) + " (not a worker)", -1);
  }
  out += "\n],\"otherData\":{\"dropped_events\":" + std::to_string(dropped) + ",\"start_steady_ns\":" +
         std::to_string(d.start_ns) + "}}\n";
  return out;
}

}  // namespace lumen::detail

namespace lumen {

TimelineRecording::TimelineRecording(Runtime& rt, std::size_t events_per_thread)
    : data_(detail::start_timeline(rt.scheduler(), events_per_thread)) {}
TimelineRecording::~TimelineRecording() { stop(); }
TimelineRecording::TimelineRecording(TimelineRecording&&) noexcept = default;
TimelineRecording& TimelineRecording::operator=(TimelineRecording&& o) noexcept {
  if (this != &o) {
    stop();
    data_ = std::move(o.data_);
  }
  return *this;
}

void TimelineRecording::stop() noexcept {
  if (data_ != nullptr) detail::stop_timeline(*data_);
}

bool TimelineRecording::recording() const noexcept {
  if (data_ == nullptr) return false;
  std::lock_guard lock(data_->mutex);
  return data_->scheduler != nullptr;
}

std::string TimelineRecording::chrome_trace() const {
  if (data_ == nullptr) throw usage_error("lumen: chrome_trace() of a moved-from TimelineRecording");
  return detail::chrome_trace(*data_);
}

void TimelineRecording::write(const std::string& path) const {
  const std::string text = chrome_trace();
  std::FILE* f = std::fopen(path.c_str(), "we");
  if (f == nullptr) throw std::system_error(errno, std::generic_category(), "lumen: cannot write the timeline to '" + path + "'");
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const int err = errno;
  if (std::fclose(f) != 0 || !ok)
    throw std::system_error(ok ? errno : err, std::generic_category(), "lumen: cannot write the timeline to '" + path + "'");
}

std::vector<TimelineRecording::Slice> TimelineRecording::slices() const {
  if (data_ == nullptr) throw usage_error("lumen: slices() of a moved-from TimelineRecording");
  const detail::TimelineData& d = *data_;
  const std::vector<std::string> names = detail::timeline_label_names();
  const double us_per_tick = detail::nanoseconds_per_tick(d) / 1000.0;
  std::vector<Slice> out;
  for (std::size_t i = 0; i < d.worker_logs.size(); ++i) {
    d.worker_logs[i]->for_each([&](const detail::TimelineEvent& e) {
      const bool idle = e.kind == detail::TimelineKind::idle;
      if ((!idle && e.kind != detail::TimelineKind::slice) || e.begin < d.start) return;
      out.push_back({static_cast<unsigned>(i), idle ? "idle" : (e.label < names.size() ? names[e.label] : "task"), idle,
                     static_cast<double>(e.begin - d.start) * us_per_tick,
                     static_cast<double>(std::max<std::int64_t>(0, e.end - e.begin)) * us_per_tick});
    });
  }
  return out;
}

std::int64_t TimelineRecording::start_steady_ns() const noexcept { return data_ != nullptr ? data_->start_ns : 0; }

namespace {
// The sum of `count` over every log of the recording, workers' and other threads'.
template <class Count>
std::uint64_t sum_over_logs(const detail::TimelineData* d, Count count) noexcept {
  if (d == nullptr) return 0;
  std::uint64_t n = 0;
  for (const auto& l : d->worker_logs) n += count(*l);
  std::lock_guard lock(detail::g_active_mutex);
  for (const auto& t : d->thread_logs) n += count(*t.log);
  return n;
}
}  // namespace

std::uint64_t TimelineRecording::events() const noexcept {
  return sum_over_logs(data_.get(), [](const detail::TimelineLog& l) { return l.size(); });
}

std::uint64_t TimelineRecording::dropped() const noexcept {
  return sum_over_logs(data_.get(), [](const detail::TimelineLog& l) { return l.dropped(); });
}

}  // namespace lumen
