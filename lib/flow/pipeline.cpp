// The engine behind lumen::pipeline.
//
// An item is a task: it carries its value from stage to stage on one worker for as long as it
// can. At a serial stage that is busy (or, in order, not yet at its turn) the item is left in
// the stage's buffer and its task ends; the item that leaves the stage hands it to the next
// buffered one, which is spawned (or, at the sink, run next by the same task).
//
// Tokens and the source share one word: free tokens, "the source is held" and "the stream
// ended". Holding the source means being the one task allowed to call it. The holder takes a
// token with each item; if another token is free it keeps the source and spawns a task that
// holds it (so another worker can start the next item while this one carries its item on),
// otherwise it lets go. An item leaving the sink either returns its token or, when the source
// is free, hands its token straight to the source and calls it itself. Each of these steps is
// one compare-and-swap, so exactly one task sees the word become "ended, every token free",
// and that task completes the run.
//
// Handing the source to another worker costs a few cross-core transfers per item (the
// source's state, the item, the gates), about a microsecond on a small machine: worth it only
// when an item's work is larger. Every 64th item is timed through its stages (not the source:
// spreading overlaps the stages of one item with the source's call for the next, so a slow
// source with light stages gains nothing from it), and the source's holder spreads only while
// the recent items' work is above kSpreadAboveNs; below it, one task carries the stream item
// after item on its own worker, as with one worker.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <string>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <thread>
#include <utility>
#include <vector>

#include "lumen/detail/alloc.h"
#include "lumen/detail/completion.h"
#include "lumen/pipeline.h"
#include "sched/scheduler.h"

namespace lumen::detail {

namespace {

// Guards a serial stage's buffer for a few instructions; never held while a stage runs.
class SpinLock {
 public:
  void lock() noexcept {
    for (unsigned spins = 0; held_.exchange(true, std::memory_order_acquire);) {
      while (held_.load(std::memory_order_relaxed)) {
        // The holder may have been preempted (more threads than cores): let it run.
        if (++spins % 256 == 0) {
          std::this_thread::yield();
        } else {
          cpu_relax();
        }
      }
    }
  }
  void unlock() noexcept { held_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> held_{false};
};

class PipelineRun;

struct Item : Task {
  PipelineRun* owner = nullptr;
  Item* free_next = nullptr;
  std::uint64_t seq = 0;
  std::size_t stage = 0;    // the stage it runs next
  bool holds_gate = false;  // the item before it handed it the serial stage `stage`
  bool dead = false;        // holds no value: a stage threw, or the run was cancelled
  bool timed = false;       // its stages' time is added up in work_ns
  std::int64_t work_ns = 0;
};

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A serial stage's turn-taking. No more than `tokens` items are in flight, so a ring of that
// many entries holds every item waiting here. In order, the item with sequence number seq
// waits at seq % tokens: the item numbered `next` has not passed yet and holds a token, so
// every waiting item is within `tokens` of it.
struct alignas(64) Gate {
  SpinLock lock;
  bool in_order = false;
  bool busy = false;
  std::uint64_t next = 0;  // in order: the sequence number whose turn it is
  std::size_t head = 0, count = 0;  // serial: the ring as a FIFO
  std::vector<Item*> ring;

  // True when `it` may run the stage now; false when it was left in the buffer.
  bool enter(Item* it) noexcept {
    std::lock_guard<SpinLock> guard(lock);
    if (!busy && (!in_order || it->seq == next)) {
      busy = true;
      return true;
    }
    if (in_order) {
      ring[it->seq % ring.size()] = it;
    } else {
      ring[(head + count++) % ring.size()] = it;
    }
    return false;
  }

  // The stage's holder is done: returns the waiting item that holds it now, or null.
  Item* leave() noexcept {
    std::lock_guard<SpinLock> guard(lock);
    Item* it = nullptr;
    if (in_order) {
      ++next;
      std::swap(it, ring[next % ring.size()]);
    } else if (count != 0) {
      it = ring[head];
      head = (head + 1) % ring.size();
      --count;
    }
    busy = it != nullptr;
    return it;
  }
};

struct SourceTask : Task {
  PipelineRun* owner = nullptr;
};

class PipelineRun {
 public:
  PipelineRun(const PipelineShape& shape, Scheduler& sched)
      : shape_(shape), sched_(sched), tokens_(shape.tokens), gates_(shape.stage_count),
        can_spread_(sched.worker_count() > 1) {
    const std::size_t align = std::max<std::size_t>(shape.value_align, alignof(std::max_align_t));
    value_offset_ = (sizeof(Item) + align - 1) / align * align;
    stride_ = (value_offset_ + 2 * shape.value_size + 63) / 64 * 64;
    // tokens_ items of stride_ bytes, and the state word counts tokens in units of kToken.
    if (tokens_ > std::numeric_limits<std::size_t>::max() / stride_ || tokens_ > (std::uint64_t{1} << 60))
      throw usage_error("lumen::pipeline: " + std::to_string(tokens_) + " tokens of " + std::to_string(stride_) +
                        " bytes each exceed the address space; use fewer tokens");
    try {
      memory_ = static_cast<std::byte*>(allocate(stride_ * tokens_, std::max<std::size_t>(align, 64)));
    } catch (const std::bad_alloc&) {
      throw resource_error("lumen::pipeline: cannot allocate " + std::to_string(tokens_) + " item buffers of " +
                           std::to_string(stride_) + " bytes; use fewer tokens");
    }
    Item* free = nullptr;
    for (std::size_t i = tokens_; i-- > 0;) {
      Item* it = ::new (memory_ + i * stride_) Item;
      it->run = &run_item;
      it->group = this;
      it->owner = this;
      it->free_next = free;
      free = it;
    }
    free_.store(free, std::memory_order_relaxed);
    try {
      for (std::size_t k = 0; k < shape.stage_count; ++k) {
        if (shape.stages[k].mode == stage_mode::parallel) continue;
        gates_[k] = std::make_unique<Gate>();
        gates_[k]->in_order = shape.stages[k].mode == stage_mode::serial_in_order;
        gates_[k]->ring.assign(tokens_, nullptr);
      }
    } catch (const std::bad_alloc&) {
      release_items();
      throw resource_error("lumen::pipeline: cannot allocate the buffers of its serial stages for " +
                           std::to_string(tokens_) + " tokens; use fewer tokens");
    }
    source_task_.run = &run_source;
    source_task_.group = this;
    source_task_.owner = this;
  }

  ~PipelineRun() { release_items(); }

  void release_items() noexcept {
    for (std::size_t i = 0; i < tokens_; ++i) std::launder(reinterpret_cast<Item*>(memory_ + i * stride_))->~Item();
    deallocate(memory_);
  }

  PipelineRun(const PipelineRun&) = delete;
  PipelineRun& operator=(const PipelineRun&) = delete;

  void run() {
    // The caller starts out holding the source, with one token for its first item.
    state_.store((tokens_ - 1) * kToken | kSourceHeld, std::memory_order_relaxed);
    carry(produce());
    done_.wait(sched_, this);
    if (failed_.load(std::memory_order_acquire)) std::rethrow_exception(error_);
  }

 private:
  static constexpr std::uint64_t kSourceHeld = 1, kStreamEnded = 2, kToken = 4;
  static constexpr std::uint64_t kTimeEvery = 64;  // every kTimeEvery-th item is timed
  // Two workers on this 2-core machine: spreading items of 2 x 250 ns of work took 1,650 ns an
  // item against 666 carried by one task; at about 1 us an item both took 1.2 us; at 2 us
  // spreading won (1.5 against 2.3 us). More workers gain more from it, so the line sits at
  // the two-worker break-even.
  static constexpr std::int64_t kSpreadAboveNs = 1000;

  static void run_item(Task* t) noexcept {
    auto* it = static_cast<Item*>(t);
    it->owner->carry(it);
  }
  static void run_source(Task* t) noexcept {
    PipelineRun* self = static_cast<SourceTask*>(t)->owner;
    self->carry(self->produce());
  }

  void* value(Item* it, std::size_t k) noexcept {
    return reinterpret_cast<std::byte*>(it) + value_offset_ + (k & 1) * shape_.value_size;
  }

  // The body of every task of the run: items one after another, as long as this task has one.
  void carry(Item* it) noexcept {
    while (it != nullptr) it = advance(it);
  }

  // Takes `it` through its remaining stages. Returns the item to carry on with: the one this
  // item handed the sink to, or a new one when it took over the source; null otherwise.
  Item* advance(Item* it) noexcept {
    const std::size_t n = shape_.stage_count;
    Item* handed_sink = nullptr;
    for (std::size_t k = it->stage; k < n; ++k) {
      Gate* gate = gates_[k].get();
      if (gate != nullptr && !std::exchange(it->holds_gate, false)) {
        it->stage = k;  // before enter(): once buffered, another task may take the item
        if (!gate->enter(it)) return nullptr;
      }
      const PipelineStage& st = shape_.stages[k];
      if (!it->dead) {
        if (failed_.load(std::memory_order_relaxed)) {
          st.discard(value(it, k));
          it->dead = true;
        } else {
          GroupStopScope stop(&failed_);
          const std::int64_t began = it->timed ? now_ns() : 0;
          try {
            st.invoke(st.fn, value(it, k), value(it, k + 1));
          } catch (...) {
            record(std::current_exception());
            it->dead = true;
          }
          if (it->timed) it->work_ns += now_ns() - began;
        }
      }
      if (gate != nullptr) {
        if (Item* next = gate->leave()) {
          next->holds_gate = true;
          if (k + 1 == n) {
            handed_sink = next;
          } else {
            spawn(sched_, next);
          }
        }
      }
    }
    if (it->timed) record_item_work(it->work_ns);
    Item* reuse = leave(it);
    if (handed_sink != nullptr) {
      if (reuse != nullptr) {
        push_free(reuse);  // the source task pops it
        spawn(sched_, &source_task_);
      }
      return handed_sink;
    }
    return reuse != nullptr ? produce(reuse) : nullptr;
  }

  // Called by the source's holder, which has taken a token for the item (`it`, or one from
  // the free list). Returns null when the stream ended (then the token, the source and,
  // maybe, the run are given back).
  Item* produce(Item* it = nullptr) noexcept {
    if (it == nullptr) it = pop_free();
    bool produced = false;
    it->timed = can_spread_ && next_seq_ % kTimeEvery == 0;
    it->work_ns = 0;
    if (!failed_.load(std::memory_order_relaxed)) {
      GroupStopScope stop(&failed_);
      try {
        produced = shape_.produce(shape_.source, value(it, 0));
      } catch (...) {
        record(std::current_exception());
      }
    }
    if (!produced) {
      push_free(it);
      constexpr std::uint64_t step = kToken + kStreamEnded - kSourceHeld;
      const std::uint64_t over = all_over_;  // read first: the run may end and vanish at the add
      if (state_.fetch_add(step, std::memory_order_acq_rel) + step == over) done_.finish();
      return nullptr;
    }
    it->seq = next_seq_++;
    it->stage = 0;
    it->dead = false;
    // With one worker nobody could take a spawned source task sooner than this one, and with
    // light items the hand-off costs more than it gains: the item that leaves the sink takes
    // the source instead, without a trip through the queue.
    const bool spread = can_spread_ && item_work_ns_.load(std::memory_order_relaxed) >= kSpreadAboveNs;
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      const bool keep = s >= kToken && spread;
      if (state_.compare_exchange_weak(s, keep ? s - kToken : s & ~kSourceHeld, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        if (keep) spawn(sched_, &source_task_);
        return it;
      }
    }
  }

  // `it` left the sink. Returns it when its token went straight to the source, which the
  // caller now holds and calls with `it`; otherwise the token is back, and the caller must
  // not touch the run again.
  Item* leave(Item* it) noexcept {
    const std::uint64_t over = all_over_;  // read first: the run may end and vanish at the CAS
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    while ((s & (kSourceHeld | kStreamEnded)) == 0) {
      if (state_.compare_exchange_weak(s, s | kSourceHeld, std::memory_order_acq_rel, std::memory_order_relaxed))
        return it;
    }
    push_free(it);  // before the token: a holder that sees the token finds the item
    if (state_.fetch_add(kToken, std::memory_order_acq_rel) + kToken == over) done_.finish();
    return nullptr;
  }

  // Only the source's holder pops, so a popped item cannot come back while a pop is under
  // way (no ABA); an item is pushed before its token is returned, so a holder finds one.
  Item* pop_free() noexcept {
    Item* head = free_.load(std::memory_order_acquire);
    while (!free_.compare_exchange_weak(head, head->free_next, std::memory_order_acquire,
                                        std::memory_order_acquire)) {
    }
    return head;
  }
  void push_free(Item* it) noexcept {
    Item* head = free_.load(std::memory_order_relaxed);
    do {
      it->free_next = head;
    } while (!free_.compare_exchange_weak(head, it, std::memory_order_release, std::memory_order_relaxed));
  }

  void record(std::exception_ptr e) noexcept {
    if (!failed_.exchange(true, std::memory_order_acq_rel)) error_ = std::move(e);
  }

  // A moving average of timed items' work. Items that finish at once may overwrite each
  // other's update: it is an estimate, read only to choose how to run.
  void record_item_work(std::int64_t ns) noexcept {
    const std::int64_t old = item_work_ns_.load(std::memory_order_relaxed);
    item_work_ns_.store(old < 0 ? ns : (3 * old + ns) / 4, std::memory_order_relaxed);
  }

  const PipelineShape& shape_;
  Scheduler& sched_;
  const std::size_t tokens_;
  const std::uint64_t all_over_ = tokens_ * kToken + kStreamEnded;  // the state that ends the run
  std::size_t value_offset_ = 0, stride_ = 0;
  std::byte* memory_ = nullptr;  // the items, `stride_` bytes apart
  std::vector<std::unique_ptr<Gate>> gates_;  // null for parallel stages
  const bool can_spread_;       // more than one worker: the source may go to a spawned task
  std::uint64_t next_seq_ = 0;  // the source's holder only
  SourceTask source_task_;
  alignas(64) std::atomic<std::uint64_t> state_{0};
  alignas(64) std::atomic<Item*> free_{nullptr};
  alignas(64) std::atomic<bool> failed_{false};
  // The estimate of an item's work in its stages; negative until the first timed item ends.
  std::atomic<std::int64_t> item_work_ns_{-1};
  std::exception_ptr error_;
  Completion done_;
};

}  // namespace

void run_pipeline(const PipelineShape& shape) {
  if (shape.tokens == 0) throw usage_error("lumen::pipeline: tokens must be at least 1");
  if (Scheduler* s = worker_scheduler()) {
    PipelineRun run(shape, *s);
    run.run();
    return;
  }
  // From a thread that is not a worker: the run counts as work of the runtime in scope, so
  // that runtime's shutdown waits for it.
  Scheduler* s = nullptr;
  {
    RuntimeEntry entry;
    entry.scheduler().begin_external_task();
    s = &entry.scheduler();
  }
  struct Counted {
    Scheduler& s;
    ~Counted() { s.end_external_task(); }
  } counted{*s};
  PipelineRun run(shape, *s);
  run.run();
}

}  // namespace lumen::detail
