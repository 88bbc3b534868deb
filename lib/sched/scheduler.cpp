#include "sched/scheduler.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

#include "actors/actor_directory.h"
#include "lumen/detail/object_memory.h"
#include "lumen/error.h"

namespace lumen::detail {

namespace {

std::atomic<std::uint64_t> next_scheduler_id{1};

// Above this, starting the threads alone takes seconds and each worker's share of the machine
// is too small to be worth a deque: more workers than this are a mistake, not a setting.
constexpr unsigned kMaxWorkers = 4096;
constexpr std::size_t kMinStack = 16 * 1024;
constexpr std::size_t kMaxStack = std::size_t{1} << 30;
constexpr std::size_t kMaxBlockingThreads = 32768;
// Resource counts travel as 32-bit units (ResourceDemand).
constexpr double kMaxResourceCount = 4294967295.0;

std::string number(double v) {
  char text[64];
  std::snprintf(text, sizeof text, "%.17g", v);
  return text;
}

Config validated(Config c) {
  if (c.workers > kMaxWorkers)
    throw usage_error("lumen: Config::workers is " + std::to_string(c.workers) + "; at most " +
                      std::to_string(kMaxWorkers) + " are allowed (0 means one per hardware thread)");
  if (c.fiber_stack_size < kMinStack || c.fiber_stack_size > kMaxStack)
    throw usage_error("lumen: Config::fiber_stack_size is " + std::to_string(c.fiber_stack_size) +
                      " bytes; it must be between 16 KiB and 1 GiB");
  if (c.max_blocking_threads < 1 || c.max_blocking_threads > kMaxBlockingThreads)
    throw usage_error("lumen: Config::max_blocking_threads is " + std::to_string(c.max_blocking_threads) +
                      "; it must be between 1 and " + std::to_string(kMaxBlockingThreads));
  if (c.idle_spin < std::chrono::microseconds::zero() || c.idle_spin > std::chrono::seconds(1))
    throw usage_error("lumen: Config::idle_spin is " + std::to_string(c.idle_spin.count()) +
                      " us; it must be between 0 and one second");
  if (c.state_history > (std::size_t{1} << 24))
    throw usage_error("lumen: Config::state_history is " + std::to_string(c.state_history) + "; it must be at most 2^24");
  if (c.timeline_events_per_thread < 1 || c.timeline_events_per_thread > (std::size_t{1} << 30))
    throw usage_error("lumen: Config::timeline_events_per_thread is " + std::to_string(c.timeline_events_per_thread) +
                      "; it must be between 1 and 2^30");
  for (const auto& [name, amount] : c.resources) {
    if (name.empty()) throw usage_error("lumen: Config::resources has a resource with an empty name");
    if (!(amount >= 0) || amount != std::floor(amount) || amount > kMaxResourceCount)
      throw usage_error("lumen: resource '" + name + "' has count " + number(amount) +
                        "; it needs a whole number between 0 and 4294967295");
  }
  return c;
}

// Stacks kept mapped for reuse: what the workers' idle fibers may hold, and as many again.
std::size_t kept_stacks(const Config& c) {
  std::size_t workers = c.workers != 0 ? c.workers : std::max(1u, std::thread::hardware_concurrency());
  return 2 * workers * (c.max_idle_fibers + 1);
}

}  // namespace

Scheduler::Scheduler(const Config& config)
    : config_(validated(config)), stacks_(config_.fiber_stack_size, config_.max_fibers, kept_stacks(config_)),
      id_(next_scheduler_id.fetch_add(1)) {
  unsigned n = config_.workers != 0 ? config_.workers : std::max(1u, std::thread::hardware_concurrency());
  config_.workers = n;
  resources_.push_back(Resource{"CPU", n});
  for (const auto& [name, amount] : config_.resources) {
    auto it = std::find_if(resources_.begin(), resources_.end(), [&wanted = name](const Resource& r) { return r.name == wanted; });
    if (it != resources_.end()) {
      it->capacity = static_cast<std::uint64_t>(amount);
    } else {
      resources_.push_back(Resource{name, static_cast<std::uint64_t>(amount)});
    }
  }
  install_overflow_report();
  unsigned started = 0;
  std::string failure;
  try {
    idle_.reserve(n);
    workers_.reserve(n);
    for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(*this, i));
    for (; started < n; ++started) workers_[started]->start();
  } catch (const std::exception& e) {
    failure = "lumen: could not start worker thread " + std::to_string(started + 1) + " of " + std::to_string(n) +
              " (" + e.what() + ")";
  }
  if (!failure.empty()) {
    // The ones that started find nothing to do and see exiting_ at once. The rest are freed
    // here, with no exception in flight: a fiber that never ran is unwound by Boost.Context
    // with an exception of its own.
    drained_ = true;
    stop_threads();
    workers_.clear();
    throw resource_error(failure);
  }
  try {
    const char* track = std::getenv("LUMEN_TRACK_STATE");
    if (config_.track_state || (track != nullptr && std::string_view(track) == "1"))
      task_registry = std::make_unique<TaskRegistry>(worker_count() + 1, config_.state_history);
    start_timeline_for_life();
  } catch (...) {
    drained_ = true;
    stop_threads();
    workers_.clear();
    throw;
  }
}

void Scheduler::start_timeline_for_life() {
  timeline_path_ = config_.timeline_path;
  const bool from_environment = timeline_path_.empty();
  if (from_environment) {
    const char* env = std::getenv("LUMEN_TIMELINE");
    if (env == nullptr || *env == '\0') return;
    timeline_path_ = env;
  }
  timeline_file_ = std::fopen(timeline_path_.c_str(), "we");
  if (timeline_file_ == nullptr) {
    const std::string why = std::strerror(errno);
    if (!from_environment) throw usage_error("lumen: Config::timeline_path: cannot write '" + timeline_path_ + "': " + why);
    std::fprintf(stderr, "lumen: LUMEN_TIMELINE: cannot write '%s' (%s); no timeline is recorded\n", timeline_path_.c_str(),
                 why.c_str());
    return;
  }
  try {
    timeline_for_life_ = start_timeline(*this);
  } catch (...) {
    std::fclose(timeline_file_);
    timeline_file_ = nullptr;
    throw;
  }
}

void Scheduler::end_timeline_for_life() noexcept {
  std::shared_ptr<TimelineData> current;
  {
    std::lock_guard<std::mutex> lock(timeline_mutex);
    current = timeline_current;
  }
  if (current != nullptr) stop_timeline(*current);
  if (timeline_file_ == nullptr) return;
  bool ok = false;
  try {
    const std::string text = chrome_trace(*timeline_for_life_);
    ok = std::fwrite(text.data(), 1, text.size(), timeline_file_) == text.size();
  } catch (...) {
  }
  if (std::fclose(timeline_file_) != 0) ok = false;
  timeline_file_ = nullptr;
  if (!ok) std::fprintf(stderr, "lumen: could not write the timeline to '%s'\n", timeline_path_.c_str());
  timeline_for_life_.reset();
}

Scheduler::~Scheduler() {
  if (!drained_) drain();
  // A thread that queued the last work may still be waking a worker for it.
  while (foreign_wakers_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  for (auto& q : external_) {
    ExternalQueue* queue = q.load(std::memory_order_acquire);
    if (queue == nullptr) continue;
    while (queue->push_in_progress()) std::this_thread::yield();
  }
  // Actors that are still referenced end with their runtime: their instances are destroyed
  // here, on this thread, and later calls through their handles fail with actor_died.
  ActorDirectory::instance().end_runtime(*this);
  stop_threads();
  end_timeline_for_life();
  for (auto& q : external_) {
    if (ExternalQueue* queue = q.load(std::memory_order_relaxed)) queue->release();
  }
  // The runtime's objects may have been most of the table: give its free memory back.
  ObjectTable::instance().trim();
}

void Scheduler::stop_taking_outside_work() noexcept {
  if (stopping_.exchange(true, std::memory_order_seq_cst)) return;
  // Delays that only pace work (restart backoff) end now, so shutdown does not wait for them.
  {
    std::lock_guard<std::mutex> lock(timer_mutex_);
    timer_stopping_ = true;
  }
  timer_cv_.notify_all();
}

void Scheduler::drain() {
  stop_taking_outside_work();
  // Every submitted task finishes first; a task may still submit more while this waits.
  auto pause = std::chrono::microseconds(20);
  while (!quiescent()) {
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
  drained_ = true;
}

void Scheduler::stop_threads() noexcept {
  exiting_.store(true, std::memory_order_seq_cst);
  {
    std::lock_guard<std::mutex> lock(idle_mutex_);
    for (Worker* w : idle_) {
      w->sleep_state.store(0, std::memory_order_release);
      w->sleep_state.notify_one();
    }
    idle_.clear();
    idle_count_.store(0, std::memory_order_relaxed);
  }
  for (auto& w : workers_) w->join();
  {
    std::lock_guard<std::mutex> lock(timer_mutex_);
    timer_stop_ = true;
  }
  timer_cv_.notify_all();
  if (timer_thread_.joinable()) timer_thread_.join();
  {
    std::lock_guard<std::mutex> lock(blocking_mutex_);
    blocking_stop_ = true;
  }
  blocking_cv_.notify_all();
  for (auto& t : blocking_threads_) t.join();
}

// ---- queues -------------------------------------------------------------------------------

namespace {

// The queues this thread submits to, one per runtime. Keyed by scheduler id (never reused), so
// a binding to a runtime that is gone never matches a new one. Plain data, so the lookup on
// every submit costs no thread_local initialization check; BindingRelease gives the queues up
// when the thread exits.
struct Binding {
  std::uint64_t scheduler_id = 0;
  ExternalQueue* queue = nullptr;
};
constexpr unsigned kBindings = 4;
thread_local Binding tls_bindings[kBindings];
thread_local unsigned tls_next_eviction = 0;

void drop(Binding& b) noexcept {
  if (b.queue != nullptr) {
    b.queue->give_up_producer();
    b.queue->release();
  }
  b = Binding{};
}

struct BindingRelease {
  bool armed = false;
  ~BindingRelease() {
    for (Binding& b : tls_bindings) drop(b);
  }
};
thread_local BindingRelease binding_release;

// A binding to fill: a free one, else one whose runtime has let go of its queue (it is gone),
// else the next in turn.
Binding& binding_to_fill() noexcept {
  for (Binding& b : tls_bindings) {
    if (b.queue == nullptr) return b;
  }
  for (Binding& b : tls_bindings) {
    if (b.queue->sole_owner()) {
      drop(b);
      return b;
    }
  }
  Binding& b = tls_bindings[tls_next_eviction++ % kBindings];
  drop(b);
  return b;
}

}  // namespace

ExternalQueue* Scheduler::bound_queue() const noexcept {
  for (const Binding& b : tls_bindings) {
    if (b.scheduler_id == id_) return b.queue;
  }
  return nullptr;
}

Task* Scheduler::take_own_external_if(const void* group) noexcept {
  ExternalQueue* q = bound_queue();
  Task* t = nullptr;
  if (q == nullptr || q->take(&t, 1) == 0) return nullptr;
  if (t->group == group) return t;
  // Not ours: back at the other end of the queue, where workers find it.
  submit_external(t);
  return nullptr;
}

ExternalQueue* Scheduler::queue_of_this_thread() {
  if (ExternalQueue* q = bound_queue()) return q;
  binding_release.armed = true;
  Binding& b = binding_to_fill();
  std::lock_guard<std::mutex> lock(external_mutex_);
  unsigned n = external_count_.load(std::memory_order_relaxed);
  ExternalQueue* q = nullptr;
  // A queue whose thread has exited (or moved on) is handed over with what it still holds.
  for (unsigned i = 0; i < n && q == nullptr; ++i) {
    ExternalQueue* old = external_[i].load(std::memory_order_relaxed);
    if (old->claim_producer()) q = old;
  }
  if (q == nullptr) {
    // Beyond this many threads submitting at once, the rest share the injection queue.
    if (n == kMaxExternalQueues) return nullptr;
    q = new ExternalQueue;
    external_[n].store(q, std::memory_order_release);
    external_count_.store(n + 1, std::memory_order_seq_cst);
  }
  q->add_ref();  // the binding's
  b = Binding{id_, q};
  return q;
}

void Scheduler::submit_external(Task* t) noexcept {
  ExternalQueue* q = nullptr;
  try {
    q = queue_of_this_thread();
  } catch (...) {
  }
  if (q == nullptr) return inject_from_outside(t);
  q->begin_push();
  try {
    q->push(t);
  } catch (...) {
    q->end_push();
    return inject_from_outside(t);  // no memory to grow the queue
  }
  wake_after_external_push(*q);
  q->end_push();
}

void Scheduler::wake_after_external_push(const ExternalQueue& q) noexcept {
  if (idle_count_.load(std::memory_order_seq_cst) == 0) return;
  // A burst of a few tasks (no more than there are workers) wakes a sleeper per task at once;
  // past that it is a stream, which one spinner takes in batches and shares as it goes. The
  // queue's length (a line the workers write) is read only when a worker is looking already.
  if (spinning_.load(std::memory_order_seq_cst) == 0) return wake_for_work();
  const std::int64_t backlog = q.size_hint();
  if (backlog <= static_cast<std::int64_t>(workers_.size())) wake_for_work(backlog);
}

void Scheduler::inject_from_outside(Task* t) noexcept {
  ForeignWake foreign(*this);
  inject(t);
}

Task* Scheduler::take_external(Worker& w, unsigned start, bool eager) noexcept {
  unsigned n = external_count_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < n; ++i) {
    unsigned index = (start + i) % n;
    ExternalQueue* q = external_[index].load(std::memory_order_acquire);
    Task* batch[32];
    std::size_t k = q->take(batch, 32, eager ? nullptr : &w.external_seen[index]);
    if (k == 0) continue;
    for (std::size_t j = k - 1; j > 0; --j) w.push(batch[j]);  // the oldest is popped first
    if (k > 1 && idle_count_.load(std::memory_order_relaxed) != 0) wake_for_work(static_cast<std::int64_t>(k) - 1);
    return batch[0];
  }
  return nullptr;
}

bool Scheduler::external_nonempty() const noexcept {
  unsigned n = external_count_.load(std::memory_order_seq_cst);
  for (unsigned i = 0; i < n; ++i) {
    if (external_[i].load(std::memory_order_acquire)->nonempty_hint()) return true;
  }
  return false;
}

void Scheduler::inject(Task* t) noexcept {
  // The push (seq_cst) comes before the look at idle workers; a worker going to sleep
  // registers (seq_cst) before its last look at the queue, so one of the two sees the other.
  // A push onto a non-empty queue wakes no one: nobody sleeps while the queue is non-empty,
  // and the worker that drains a batch wakes a helper for what it leaves on its deque.
  if (injection_.push(t)) wake_for_work();
}

Task* Scheduler::take_injected(Worker& w) noexcept {
  if (!injection_.nonempty_hint()) return nullptr;
  if (injection_busy_.exchange(true, std::memory_order_acquire)) return nullptr;
  Task* first = static_cast<Task*>(injection_.pop());
  if (first != nullptr) {
    // Take a batch: the rest goes on this worker's deque, where others can steal it.
    for (int i = 0; i < 31; ++i) {
      MpscNode* n = injection_.pop();
      if (n == nullptr) break;
      w.push(static_cast<Task*>(n));
    }
  }
  injection_busy_.store(false, std::memory_order_release);
  if (first != nullptr && w.queued() > 0 && idle_count_.load(std::memory_order_relaxed) != 0) wake_for_work(static_cast<std::int64_t>(w.queued()));
  return first;
}

void Scheduler::push_priority(Task* t, int priority) {
  std::optional<ForeignWake> foreign;
  if (worker_of(*this) == nullptr) foreign.emplace(*this);
  {
    std::lock_guard<std::mutex> lock(priority_mutex_);
    priority_queue_.push(Prioritized{priority, priority_seq_++, t});
    priority_count_.fetch_add(1, std::memory_order_seq_cst);
  }
  wake_for_work();
}

Task* Scheduler::take_priority() noexcept {
  std::lock_guard<std::mutex> lock(priority_mutex_);
  if (priority_queue_.empty()) return nullptr;
  Task* t = priority_queue_.top().task;
  priority_queue_.pop();
  priority_count_.fetch_sub(1, std::memory_order_relaxed);
  return t;
}

// ---- idle workers -------------------------------------------------------------------------

void Scheduler::wake_for_work(std::int64_t backlog) noexcept {
  if (idle_count_.load(std::memory_order_seq_cst) == 0) return;
  // Enough workers are looking already: each of them will find one of the queued tasks, and
  // one that finds work wakes another when it stops spinning (end_spinning).
  int looking = spinning_.load(std::memory_order_seq_cst);
  do {
    if (looking >= backlog) return;
  } while (!spinning_.compare_exchange_weak(looking, looking + 1, std::memory_order_seq_cst));
  std::lock_guard<std::mutex> lock(idle_mutex_);
  if (idle_.empty()) {
    spinning_.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  Worker* w = idle_.back();
  idle_.pop_back();
  idle_count_.fetch_sub(1, std::memory_order_relaxed);
  w->woken_spinning = true;  // it starts out as the spinner counted above
  w->sleep_state.store(0, std::memory_order_release);
  w->sleep_state.notify_one();
}

void Scheduler::wake_worker(Worker& w) noexcept {
  if (w.sleep_state.load(std::memory_order_seq_cst) == 0) return;
  std::lock_guard<std::mutex> lock(idle_mutex_);
  auto it = std::find(idle_.begin(), idle_.end(), &w);
  if (it == idle_.end()) return;  // already woken
  idle_.erase(it);
  idle_count_.fetch_sub(1, std::memory_order_relaxed);
  w.sleep_state.store(0, std::memory_order_release);
  w.sleep_state.notify_one();
}

bool Scheduler::try_begin_spinning() noexcept {
  int busy = static_cast<int>(workers_.size()) - idle_count_.load(std::memory_order_relaxed);
  if (2 * spinning_.load(std::memory_order_relaxed) >= busy) return false;
  spinning_.fetch_add(1, std::memory_order_seq_cst);
  return true;
}

void Scheduler::end_spinning(bool found_work) noexcept {
  int before = spinning_.fetch_sub(1, std::memory_order_seq_cst);
  // The last spinner found work: there may be more, so let another worker look.
  if (found_work && before == 1) wake_for_work();
}

Scheduler::SleepEnd Scheduler::sleep(Worker& w) {
  {
    std::lock_guard<std::mutex> lock(idle_mutex_);
    w.sleep_state.store(1, std::memory_order_seq_cst);
    idle_.push_back(&w);
    idle_count_.fetch_add(1, std::memory_order_seq_cst);
  }
  // A last look, after registering: a task queued before this point is seen here, and one
  // queued after it finds this worker registered and wakes it.
  bool work = exiting() || w.has_visible_work() || work_queued_outside_workers();
  for (unsigned i = 0; !work && i < workers_.size(); ++i) work = workers_[i]->queued() != 0;
  if (work) {
    std::lock_guard<std::mutex> lock(idle_mutex_);
    auto it = std::find(idle_.begin(), idle_.end(), &w);
    if (it != idle_.end()) {
      idle_.erase(it);
      idle_count_.fetch_sub(1, std::memory_order_relaxed);
      w.sleep_state.store(0, std::memory_order_relaxed);
      return SleepEnd::work_seen;
    }
    return SleepEnd::woken;  // a waker took this worker off the list first and set the state
  }
  while (w.sleep_state.load(std::memory_order_acquire) == 1) w.sleep_state.wait(1, std::memory_order_acquire);
  return SleepEnd::woken;
}

// ---- accounting ---------------------------------------------------------------------------

// Threads that run lumen::blocking calls act for a task: their submits go to the task's
// runtime and are accepted during its shutdown.
thread_local Scheduler* tls_blocking_scheduler = nullptr;

void Scheduler::begin_external_task() {
  external_created_.fetch_add(1, std::memory_order_seq_cst);
  if (stopping_.load(std::memory_order_seq_cst) && tls_blocking_scheduler != this) {
    external_finished_.fetch_add(1, std::memory_order_release);
    throw shutdown_error("lumen: the runtime is shutting down and takes no new tasks from outside it");
  }
}

bool Scheduler::quiescent() const noexcept {
  // Finished before created: every finish seen here has its creation seen below.
  std::uint64_t finished = external_finished_.load(std::memory_order_seq_cst);
  for (const auto& w : workers_) finished += w->finished.read();
  std::uint64_t created = external_created_.load(std::memory_order_seq_cst);
  for (const auto& w : workers_) created += w->created.read();
  return created == finished;
}

// ---- resources ----------------------------------------------------------------------------

ResourceDemand Scheduler::demand(std::string_view name, double count) {
  if (name.empty()) throw usage_error("lumen: a resource name is empty");
  if (!(count > 0) || count != std::floor(count) || count > kMaxResourceCount)
    throw usage_error("lumen: a task claims " + number(count) + " of resource '" + std::string(name) +
                      "'; claims are whole numbers between 1 and 4294967295");
  std::lock_guard<std::mutex> lock(resource_mutex_);
  for (std::uint32_t i = 0; i < resources_.size(); ++i) {
    if (resources_[i].name != name) continue;
    if (count > static_cast<double>(resources_[i].capacity))
      throw usage_error("lumen: a task claims " + number(count) + " of resource '" + std::string(name) +
                        "' but the runtime has " + std::to_string(resources_[i].capacity));
    return ResourceDemand{i, static_cast<std::uint32_t>(count)};
  }
  throw usage_error("lumen: unknown resource '" + std::string(name) + "': declare it in Config::resources");
}

void Scheduler::add_resource(std::string_view name, std::uint64_t capacity) {
  if (name.empty()) throw usage_error("lumen: a resource name is empty");
  std::lock_guard<std::mutex> lock(resource_mutex_);
  for (const Resource& r : resources_) {
    if (r.name == name) throw usage_error("lumen: resource '" + std::string(name) + "' exists already");
  }
  // Demands hold indices into resources_, so it only grows.
  resources_.push_back(Resource{std::string(name), capacity});
}

bool Scheduler::acquire(Task* t, const ResourceDemand* d, std::size_t n) {
  std::lock_guard<std::mutex> lock(resource_mutex_);
  bool fits = true;
  for (std::size_t i = 0; i < n && fits; ++i) fits = resources_[d[i].resource].in_use + d[i].count <= resources_[d[i].resource].capacity;
  if (fits) {
    for (std::size_t i = 0; i < n; ++i) resources_[d[i].resource].in_use += d[i].count;
    return true;
  }
  resource_waiting_.push_back(Waiting{t, d, n});
  return false;
}

void Scheduler::release(const ResourceDemand* d, std::size_t n) noexcept {
  std::vector<Task*> granted;
  {
    std::lock_guard<std::mutex> lock(resource_mutex_);
    for (std::size_t i = 0; i < n; ++i) resources_[d[i].resource].in_use -= d[i].count;
    for (auto it = resource_waiting_.begin(); it != resource_waiting_.end();) {
      bool fits = true;
      for (std::size_t i = 0; i < it->n && fits; ++i)
        fits = resources_[it->demand[i].resource].in_use + it->demand[i].count <= resources_[it->demand[i].resource].capacity;
      if (!fits) {
        ++it;
        continue;
      }
      for (std::size_t i = 0; i < it->n; ++i) resources_[it->demand[i].resource].in_use += it->demand[i].count;
      try {
        granted.push_back(it->task);
      } catch (...) {
        for (std::size_t i = 0; i < it->n; ++i) resources_[it->demand[i].resource].in_use -= it->demand[i].count;
        break;
      }
      it = resource_waiting_.erase(it);
    }
  }
  // Granted tasks hold their resources already; run() sees that and does not ask again.
  for (Task* t : granted) spawn(*this, t);
}

// ---- timers and blocking calls ------------------------------------------------------------

Scheduler::TimerId Scheduler::add_timer(Clock::time_point when, void (*fire)(void*) noexcept, void* arg,
                                        bool early_at_shutdown) {
  std::lock_guard<std::mutex> lock(timer_mutex_);
  if (!timer_thread_.joinable()) timer_thread_ = std::thread([this] { timer_main(); });
  std::uint64_t seq = ++timer_seq_;
  timers_.emplace(when, Timer{fire, arg, early_at_shutdown, seq});
  timer_cv_.notify_one();
  return TimerId{when, seq};
}

bool Scheduler::cancel_timer(TimerId id) noexcept {
  std::lock_guard<std::mutex> lock(timer_mutex_);
  auto [first, last] = timers_.equal_range(id.when);
  for (auto it = first; it != last; ++it) {
    if (it->second.seq == id.seq) {
      timers_.erase(it);
      return true;
    }
  }
  return false;
}

void Scheduler::timer_main() {
  std::unique_lock<std::mutex> lock(timer_mutex_);
  auto fire_and_erase = [&](std::multimap<Clock::time_point, Timer>::iterator it) {
    Timer t = it->second;
    timers_.erase(it);
    lock.unlock();
    t.fire(t.arg);
    lock.lock();
  };
  while (!timer_stop_) {
    if (timer_stopping_) {
      auto early = std::find_if(timers_.begin(), timers_.end(), [](const auto& e) { return e.second.early_at_shutdown; });
      if (early != timers_.end()) {
        fire_and_erase(early);
        continue;
      }
    }
    if (timers_.empty()) {
      timer_cv_.wait(lock);
      continue;
    }
    auto first = timers_.begin();
    // A copy: wait_until reads its deadline again after waking, and a cancel_timer meanwhile
    // may have erased the timer that held it.
    const Clock::time_point deadline = first->first;
    if (Clock::now() < deadline) {
      // A deadline of time_point::max() is "never": waiting until it would overflow inside
      // the condition variable, so it only waits for a notification.
      if (deadline == Clock::time_point::max()) {
        timer_cv_.wait(lock);
      } else {
        timer_cv_.wait_until(lock, deadline);
      }
      continue;
    }
    fire_and_erase(first);
  }
  // Pending timers still hold what they point at: fire them so nothing leaks.
  while (!timers_.empty()) fire_and_erase(timers_.begin());
}

void Scheduler::run_blocking(Task* t) {
  std::lock_guard<std::mutex> lock(blocking_mutex_);
  blocking_queue_.push_back(t);
  try {
    start_blocking_thread_if_needed();
  } catch (const std::exception& e) {
    if (!blocking_threads_.empty()) return;  // one of them runs t once it is free
    blocking_queue_.pop_back();
    throw resource_error(std::string("lumen: could not start a thread for blocking calls (") + e.what() + ")");
  }
}

// Under blocking_mutex_. One idle thread per queued call, started while fewer than the cap
// run calls that are not waiting.
void Scheduler::start_blocking_thread_if_needed() {
  if (blocking_queue_.empty()) return;
  if (blocking_idle_ != 0) blocking_cv_.notify_one();
  if (blocking_queue_.size() <= blocking_idle_ + blocking_starting_) return;
  if (blocking_running_ + blocking_starting_ >= config_.max_blocking_threads) return;
  ++blocking_starting_;
  try {
    blocking_threads_.emplace_back([this] { blocking_main(); });
  } catch (...) {
    --blocking_starting_;
    throw;
  }
}

void Scheduler::blocking_call_waits() noexcept {
  std::lock_guard<std::mutex> lock(blocking_mutex_);
  --blocking_running_;
  try {
    start_blocking_thread_if_needed();
  } catch (...) {  // no thread now: the queued call waits for a running one to finish
  }
}

void Scheduler::blocking_call_resumes() noexcept {
  std::lock_guard<std::mutex> lock(blocking_mutex_);
  ++blocking_running_;
}

void Scheduler::blocking_main() {
  tls_blocking_scheduler = this;
  std::unique_lock<std::mutex> lock(blocking_mutex_);
  --blocking_starting_;
  for (;;) {
    if (!blocking_queue_.empty()) {
      Task* t = blocking_queue_.front();
      blocking_queue_.pop_front();
      ++blocking_running_;
      lock.unlock();
      t->run(t);
      lock.lock();
      --blocking_running_;
      continue;
    }
    if (blocking_stop_) return;
    ++blocking_idle_;
    blocking_cv_.wait(lock);
    --blocking_idle_;
  }
}

// ---- stats --------------------------------------------------------------------------------

Stats Scheduler::stats() const {
  Stats s;
  s.workers = static_cast<unsigned>(workers_.size());
  std::uint64_t created = external_created_.load(std::memory_order_acquire);
  std::uint64_t finished = external_finished_.load(std::memory_order_acquire);
  for (const auto& w : workers_) {
    s.tasks_run += w->tasks_run.read();
    s.steals += w->steals.read();
    s.parks += w->parks.read();
    s.fibers_created += w->fibers_created.read();
    s.fibers_pooled += w->pooled_fibers.load(std::memory_order_relaxed);
    s.queue_lengths.push_back(w->queued());
    std::uint64_t idle = w->idle_ns.read();
    const std::int64_t since = w->idle_since_ns.load(std::memory_order_relaxed);
    if (since >= 0) {
      const std::int64_t now = steady_ns();
      if (now > since) idle += static_cast<std::uint64_t>(now - since);
    }
    s.idle_ns.push_back(idle);
    created += w->created.read();
    finished += w->finished.read();
  }
  s.tasks_pending = created > finished ? created - finished : 0;
  s.task_retries = task_retries_.load(std::memory_order_relaxed);
  s.injection_queued = injection_.nonempty_hint() || external_nonempty();
  auto usage = ObjectTable::instance().usage();
  s.objects_live = usage.live;
  s.object_bytes = usage.bytes;
  const ObjectMemory::Counters memory = ObjectMemory::instance().counters();
  s.object_memory_limit = memory.limit;
  s.object_memory_used = memory.used;
  s.objects_evicted = memory.evicted;
  s.objects_rebuilt = memory.rebuilt;
  s.objects_spilled = memory.spilled;
  s.objects_restored = memory.restored;
  s.spill_failures = memory.spill_failures;
  s.puts_waited = memory.puts_waited;
  s.object_table_bytes = ObjectTable::instance().committed_bytes();
  s.outside_queues = external_count_.load(std::memory_order_acquire);
  {
    std::lock_guard<std::mutex> lock(blocking_mutex_);
    s.blocking_threads = blocking_threads_.size();
  }
  ActorDirectory::instance().add_stats(*this, s);
  return s;
}

}  // namespace lumen::detail
