#include "scheduler.h"

#include "actor_directory.h"
#include <algorithm>
#include <cmath>

#include "lumen/error.h"

namespace lumen::detail {

namespace {
std::atomic<std::uint64_t> next_scheduler_id{1};
}  // namespace

Scheduler::Scheduler(const Config& config)
    : config_(config), stacks_(config.fiber_stack_size), id_(next_scheduler_id.fetch_add(1)) {
  unsigned n = config_.workers != 0 ? config_.workers : std::max(1u, std::thread::hardware_concurrency());
  config_.workers = n;
  resources_.push_back(Resource{"CPU", n});
  for (const auto& [name, amount] : config_.resources) {
    if (name.empty()) throw usage_error("lumen: Config::resources has a resource with an empty name");
    if (!(amount >= 0) || amount != std::floor(amount))
      throw usage_error("lumen: resource '" + name + "' needs a whole, non-negative count");
    auto it = std::find_if(resources_.begin(), resources_.end(), [&](const Resource& r) { return r.name == name; });
    if (it != resources_.end()) {
      it->capacity = static_cast<std::uint64_t>(amount);
    } else {
      resources_.push_back(Resource{name, static_cast<std::uint64_t>(amount)});
    }
  }
  idle_.reserve(n);
  workers_.reserve(n);
  for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(*this, i));
  for (auto& w : workers_) w->start();
}

Scheduler::~Scheduler() {
  stopping_.store(true, std::memory_order_seq_cst);
  // Every submitted task finishes first; a task may still submit more while this waits.
  auto pause = std::chrono::microseconds(20);
  while (!quiescent()) {
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
  // Actors that are still referenced end with their runtime: their instances are destroyed
  // here, on this thread, and later calls through their handles fail with actor_died.
  ActorDirectory::instance().end_runtime(*this);
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
  for (auto& q : external_) delete q.load(std::memory_order_relaxed);
}

// ---- queues -------------------------------------------------------------------------------

namespace {
// The queue this thread submits to, keyed by scheduler id (ids are never reused, so a
// binding to a runtime that is gone never matches a new one).
struct Binding {
  std::uint64_t scheduler_id = 0;
  ExternalQueue* queue = nullptr;
};
thread_local Binding binding;
}  // namespace

ExternalQueue* Scheduler::bound_queue() const noexcept {
  return binding.scheduler_id == id_ ? binding.queue : nullptr;
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
  if (binding.scheduler_id == id_) return binding.queue;
  std::lock_guard<std::mutex> lock(external_mutex_);
  unsigned n = external_count_.load(std::memory_order_relaxed);
  if (n == kMaxExternalQueues) return nullptr;
  auto* q = new ExternalQueue;
  external_[n].store(q, std::memory_order_release);
  external_count_.store(n + 1, std::memory_order_seq_cst);
  binding = Binding{id_, q};
  return q;
}

void Scheduler::submit_external(Task* t) noexcept {
  ExternalQueue* q = nullptr;
  try {
    q = queue_of_this_thread();
  } catch (...) {
  }
  if (q == nullptr) return inject(t);
  try {
    q->push(t);
  } catch (...) {
    return inject(t);  // no memory to grow the queue
  }
  if (idle_count_.load(std::memory_order_seq_cst) != 0) wake_for_work();
}

Task* Scheduler::take_external(Worker& w, unsigned start) noexcept {
  unsigned n = external_count_.load(std::memory_order_acquire);
  for (unsigned i = 0; i < n; ++i) {
    unsigned index = (start + i) % n;
    ExternalQueue* q = external_[index].load(std::memory_order_acquire);
    Task* batch[32];
    std::size_t k = q->take(batch, 32, &w.external_seen[index]);
    if (k == 0) continue;
    for (std::size_t j = k - 1; j > 0; --j) w.push(batch[j]);  // the oldest is popped first
    if (k > 1 && idle_count_.load(std::memory_order_relaxed) != 0) wake_for_work();
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
  if (first != nullptr && w.queued() > 0 && idle_count_.load(std::memory_order_relaxed) != 0) wake_for_work();
  return first;
}

void Scheduler::push_priority(Task* t, int priority) {
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

void Scheduler::wake_for_work() noexcept {
  if (idle_count_.load(std::memory_order_seq_cst) == 0) return;
  // One spinner at a time: a spinning worker will find the new task itself.
  int zero = 0;
  if (!spinning_.compare_exchange_strong(zero, 1, std::memory_order_seq_cst)) return;
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

void Scheduler::sleep(Worker& w) {
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
    }
    return;  // if a waker took this worker off the list first, it has already set the state
  }
  while (w.sleep_state.load(std::memory_order_acquire) == 1) w.sleep_state.wait(1, std::memory_order_acquire);
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
  if (!(count > 0) || count != std::floor(count))
    throw usage_error("lumen: resource '" + std::string(name) + "' must be claimed in whole, positive units");
  std::lock_guard<std::mutex> lock(resource_mutex_);
  for (std::uint32_t i = 0; i < resources_.size(); ++i) {
    if (resources_[i].name != name) continue;
    if (count > static_cast<double>(resources_[i].capacity))
      throw usage_error("lumen: a task claims " + std::to_string(static_cast<std::uint64_t>(count)) + " of resource '" +
                        std::string(name) + "' but the runtime has " + std::to_string(resources_[i].capacity));
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

void Scheduler::add_timer(Clock::time_point when, void (*fire)(void*) noexcept, void* arg) {
  std::lock_guard<std::mutex> lock(timer_mutex_);
  if (!timer_thread_.joinable()) timer_thread_ = std::thread([this] { timer_main(); });
  timers_.emplace(when, std::make_pair(fire, arg));
  timer_cv_.notify_one();
}

void Scheduler::timer_main() {
  std::unique_lock<std::mutex> lock(timer_mutex_);
  while (!timer_stop_) {
    if (timers_.empty()) {
      timer_cv_.wait(lock);
      continue;
    }
    auto first = timers_.begin();
    if (Clock::now() < first->first) {
      timer_cv_.wait_until(lock, first->first);
      continue;
    }
    auto [fire, arg] = first->second;
    timers_.erase(first);
    lock.unlock();
    fire(arg);
    lock.lock();
  }
  // Pending timers still hold what they point at: fire them so nothing leaks.
  while (!timers_.empty()) {
    auto [fire, arg] = timers_.begin()->second;
    timers_.erase(timers_.begin());
    lock.unlock();
    fire(arg);
    lock.lock();
  }
}

void Scheduler::run_blocking(Task* t) {
  std::lock_guard<std::mutex> lock(blocking_mutex_);
  blocking_queue_.push_back(t);
  if (blocking_idle_ == 0 && blocking_threads_.size() < std::max<std::size_t>(1, config_.max_blocking_threads)) {
    blocking_threads_.emplace_back([this] { blocking_main(); });
  } else {
    blocking_cv_.notify_one();
  }
}

void Scheduler::blocking_main() {
  tls_blocking_scheduler = this;
  std::unique_lock<std::mutex> lock(blocking_mutex_);
  for (;;) {
    if (!blocking_queue_.empty()) {
      Task* t = blocking_queue_.front();
      blocking_queue_.pop_front();
      lock.unlock();
      t->run(t);
      lock.lock();
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
    created += w->created.read();
    finished += w->finished.read();
  }
  s.tasks_pending = created > finished ? created - finished : 0;
  s.injection_queued = injection_.nonempty_hint() || external_nonempty();
  auto usage = ObjectTable::instance().usage();
  s.objects_live = usage.live;
  s.object_bytes = usage.bytes;
  {
    std::lock_guard<std::mutex> lock(blocking_mutex_);
    s.blocking_threads = blocking_threads_.size();
  }
  ActorDirectory::instance().add_stats(*this, s);
  return s;
}

}  // namespace lumen::detail
