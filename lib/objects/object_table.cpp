#include "lumen/detail/object_table.h"

#include <cxxabi.h>
#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <thread>

#include "lumen/detail/cpu_relax.h"
#include "observe/timeline_data.h"

namespace lumen::detail {

namespace {

std::string exception_type_name() {
  const std::type_info* t = abi::__cxa_current_exception_type();
  if (t == nullptr) return "unknown exception";
  int status = 0;
  char* name = abi::__cxa_demangle(t->name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name != nullptr ? name : t->name();
  std::free(name);
  return out;
}

std::string describe(std::exception_ptr error, std::string_view task_name) {
  return "task '" + (task_name.empty() ? std::string("<unnamed>") : std::string(task_name)) + "' failed: " + describe_exception(error);
}

}  // namespace

std::string describe_exception(std::exception_ptr error) {
  std::string what;
  std::string type;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    type = exception_type_name();
    // A user's what() may return null, or throw: the description does without it.
    try {
      if (const char* text = e.what()) what = text;
    } catch (...) {
    }
  } catch (...) {
    type = exception_type_name();
  }
  return what.empty() ? type : type + ": " + what;
}

namespace {
// The failure recorded when there is no memory to describe one: it still carries an error,
// so the task's result fails (with std::bad_alloc) instead of being lost.
Failure g_out_of_memory{std::make_exception_ptr(std::bad_alloc()), "", "out of memory while recording a task's failure", {1}};
}  // namespace

Failure* make_failure(std::exception_ptr&& error, std::string_view task_name) noexcept {
  try {
    auto f = std::make_unique<Failure>();
    f->task_name = task_name;
    f->description = describe(error, task_name);
    f->error = std::move(error);
    return f.release();
  } catch (...) {
    error = nullptr;
    retain(&g_out_of_memory);
    return &g_out_of_memory;
  }
}

void note_attempts(Failure* f, int attempts) noexcept {
  if (f == &g_out_of_memory) return;  // shared: it stays as it is
  f->attempts = attempts;
  try {
    f->description += " (after " + std::to_string(attempts) + " attempts)";
  } catch (...) {  // no memory: the count is still in `attempts`
  }
}

void release(Failure* f) noexcept {
  if (f->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete f;
}

// One segment's bookkeeping. The lock guards the free list and the counts; it is taken once
// per batch of slots (a thread's cache fills or drains 32 at a time), not per object.
// The free list is a stack of indexes in an array of its own, not a chain through the free
// slots: a batch then moves with one copy, where following a chain took one cache miss per
// slot (the slots were last written on other cores), which made taking a batch cost more
// than the calls whose results it held.
struct alignas(64) ObjectTable::SegmentState {
  std::mutex lock;
  std::uint32_t* free_list = nullptr;  // `listed` indexes, the latest freed last
  std::uint32_t listed = 0;       // slots on the free list
  std::uint32_t initialized = 0;  // slots handed out at least once since the segment was (re)made
  bool given_back = false;        // its pages went back to the system; `initialized` restarts at 0
  std::uint32_t next_generation = 1;  // for slots made from here on: above every id the segment gave
};

namespace {

// Per segment k: its first index and its size.
constexpr std::uint32_t segment_start(unsigned k) noexcept { return ((std::uint32_t{1} << k) - 1) << 10; }
constexpr std::uint32_t segment_size(unsigned k) noexcept { return std::uint32_t{1024} << k; }
unsigned segment_of(std::uint32_t index) noexcept {
  return static_cast<unsigned>(std::bit_width((std::uint64_t{index} >> 10) + 1)) - 1;
}

// Slow paths (a new segment, slots made for the first time, trimming) take turns on this lock.
std::mutex& grow_mutex() {
  static auto* m = new std::mutex;
  return *m;
}

// Free slots this thread may reuse without touching any lock: most objects are freed by the
// thread that made them, or by one worker among a few. A trim raises the table's epoch to ask
// for them back; the thread hands them in at its next allocation or free.
struct LocalSlots {
  static constexpr std::uint32_t kCapacity = 64;
  std::uint32_t count = 0;
  std::uint64_t epoch = 0;
  std::uint32_t index[kCapacity];
  ~LocalSlots() { ObjectTable::instance().give_back(index, count); }
};
__attribute__((tls_model("initial-exec"))) thread_local LocalSlots local_slots;

constexpr std::uint32_t kBatch = 32;  // slots a thread's cache takes from, or hands to, a segment at once

}  // namespace

ObjectTable& ObjectTable::instance() noexcept {
  alignas(ObjectTable) static unsigned char storage[sizeof(ObjectTable)];
  static ObjectTable* table = ::new (storage) ObjectTable();
  return *table;
}

ObjectTable::ObjectTable() : state_(new SegmentState[kSegments]) {}

ObjectSlot* ObjectTable::slot_at(std::uint32_t index) const noexcept {
  unsigned k = segment_of(index);
  return segments_[k].load(std::memory_order_acquire) + (index - segment_start(k));
}

ObjectSlot* ObjectTable::take_slot() {
  LocalSlots& local = local_slots;
  std::uint64_t epoch = cache_epoch_.load(std::memory_order_relaxed);
  if (local.epoch != epoch) {
    give_back(local.index, local.count);
    local.count = 0;
    local.epoch = epoch;
  }
  if (local.count == 0) local.count = refill(local.index, kBatch);
  return slot_at(local.index[--local.count]);
}

// Fills `out` with up to `max` free slots for the calling thread: from the lowest segment's
// free list that has any, else slots made for the first time (in a segment that was given
// back, before the frontier moves on). Returns how many (at least one; throws when the table
// cannot grow).
std::uint32_t ObjectTable::refill(std::uint32_t* out, std::uint32_t max) {
  for (std::uint32_t mask = nonempty_.load(std::memory_order_acquire); mask != 0; mask &= mask - 1) {
    unsigned k = static_cast<unsigned>(std::countr_zero(mask));
    SegmentState& seg = state_[k];
    std::uint32_t n = 0;
    {
      std::lock_guard<std::mutex> lock(seg.lock);
      n = std::min(max, seg.listed);
      seg.listed -= n;
      // The latest freed at the end of `out`: the caller's cache hands those out first.
      std::memcpy(out, seg.free_list + seg.listed, n * sizeof(std::uint32_t));
      if (seg.listed == 0) nonempty_.fetch_and(~(std::uint32_t{1} << k), std::memory_order_relaxed);
    }
    if (n != 0) return n;
  }
  // Nothing free: make slots. A given-back segment first, then the frontier's.
  std::lock_guard<std::mutex> grow(grow_mutex());
  for (unsigned k = 0; k < kSegments; ++k) {
    SegmentState& seg = state_[k];
    std::uint32_t generation;
    std::uint32_t first;
    std::uint32_t n;
    {
      std::lock_guard<std::mutex> lock(seg.lock);
      if (seg.initialized == segment_size(k)) continue;
      if (segments_[k].load(std::memory_order_relaxed) == nullptr) {
        void* memory = ::mmap(nullptr, std::size_t{segment_size(k)} * sizeof(ObjectSlot), PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (memory == MAP_FAILED) throw std::bad_alloc();
        void* births = ::mmap(nullptr, std::size_t{segment_size(k)} * sizeof(std::int64_t), PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        void* free_list = ::mmap(nullptr, std::size_t{segment_size(k)} * sizeof(std::uint32_t), PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (births == MAP_FAILED || free_list == MAP_FAILED) {
          ::munmap(memory, std::size_t{segment_size(k)} * sizeof(ObjectSlot));
          if (births != MAP_FAILED) ::munmap(births, std::size_t{segment_size(k)} * sizeof(std::int64_t));
          if (free_list != MAP_FAILED) ::munmap(free_list, std::size_t{segment_size(k)} * sizeof(std::uint32_t));
          throw std::bad_alloc();
        }
        seg.free_list = static_cast<std::uint32_t*>(free_list);
        births_[k].store(static_cast<std::atomic<std::int64_t>*>(births), std::memory_order_release);
        segments_[k].store(static_cast<ObjectSlot*>(memory), std::memory_order_release);
      }
      first = segment_start(k) + seg.initialized;
      n = std::min(max, segment_size(k) - seg.initialized);
      seg.initialized += n;
      seg.given_back = false;
      generation = seg.next_generation;
    }
    for (std::uint32_t i = 0; i < n; ++i) {
      ObjectSlot* slot = slot_at(first + i);
      slot->index = first + i;
      slot->refgen.store(std::uint64_t{generation} << 32, std::memory_order_relaxed);
      out[n - 1 - i] = first + i;  // popped from the end: the lowest index first
    }
    std::uint32_t seen = fresh_.load(std::memory_order_relaxed);
    while (seen < first + n && !fresh_.compare_exchange_weak(seen, first + n, std::memory_order_release)) {
    }
    return n;
  }
  throw std::length_error("lumen: the object table is full (4 billion objects alive)");
}

void ObjectTable::give_back(const std::uint32_t* indexes, std::uint32_t n) noexcept {
  // One lock per run of slots from the same segment.
  for (std::uint32_t i = 0; i < n;) {
    unsigned k = segment_of(indexes[i]);
    SegmentState& seg = state_[k];
    std::lock_guard<std::mutex> lock(seg.lock);
    // Each slot is on the list at most once, so the list never outgrows its segment.
    for (; i < n && segment_of(indexes[i]) == k; ++i) seg.free_list[seg.listed++] = indexes[i];
    nonempty_.fetch_or(std::uint32_t{1} << k, std::memory_order_relaxed);
  }
}

ObjectSlot* ObjectTable::allocate(std::uint32_t refs, bool writer) {
  ObjectSlot* s = take_slot();
  std::uint64_t gen = s->refgen.load(std::memory_order_relaxed) & ~std::uint64_t{0xffffffff};
  s->waiters.store(0, std::memory_order_relaxed);
  s->producer_waits_on.store(nullptr, std::memory_order_relaxed);
  s->flags.store(0, std::memory_order_relaxed);
  s->bytes.store(0, std::memory_order_relaxed);
  s->destroy_value = nullptr;
  s->state.store(ObjectState::pending, std::memory_order_relaxed);
  if (birth_recorders.load(std::memory_order_relaxed) != 0) {
    const unsigned k = segment_of(s->index);
    births_[k].load(std::memory_order_relaxed)[s->index - segment_start(k)].store(timeline_now(), std::memory_order_relaxed);
  }
  s->refgen.store(gen | refs | (writer ? ObjectSlot::kWriter : 0), std::memory_order_release);
  return s;
}

ObjectSlot* ObjectTable::acquire(std::uint64_t id) noexcept {
  auto index = static_cast<std::uint32_t>(id & 0xffffffffu);
  if (index >= fresh_.load(std::memory_order_acquire)) return nullptr;
  if (segments_[segment_of(index)].load(std::memory_order_acquire) == nullptr) return nullptr;
  ObjectSlot* s = slot_at(index);
  std::uint64_t word = s->refgen.load(std::memory_order_acquire);
  for (;;) {
    // A given-back slot reads generation 0, which no id has.
    if ((word & ~std::uint64_t{0xffffffff}) != (id & ~std::uint64_t{0xffffffff})) return nullptr;
    if ((word & ObjectSlot::kRefMask) == 0) return nullptr;  // only the writer holds it
    if (s->refgen.compare_exchange_weak(word, word + 1, std::memory_order_acquire, std::memory_order_acquire))
      return s;
  }
}

void ObjectTable::free_slot(ObjectSlot* s) noexcept {
  ObjectState st = s->state.load(std::memory_order_acquire);
  if (st == ObjectState::ready && s->destroy_value != nullptr) s->destroy_value(s);
  if (st == ObjectState::failed) detail::release(s->failure());
  s->destroy_value = nullptr;
  s->bytes.store(0, std::memory_order_relaxed);
  s->state.store(ObjectState::free, std::memory_order_relaxed);
  // A new generation: ids of the object that lived here no longer match.
  std::uint64_t gen = (s->refgen.load(std::memory_order_relaxed) & ~std::uint64_t{0xffffffff}) + (std::uint64_t{1} << 32);
  if (gen == 0) gen = std::uint64_t{1} << 32;  // wrapped: generation 0 is never used
  s->refgen.store(gen, std::memory_order_release);
  LocalSlots& local = local_slots;
  std::uint64_t epoch = cache_epoch_.load(std::memory_order_relaxed);
  if (local.epoch != epoch) {
    give_back(local.index, local.count);
    local.count = 0;
    local.epoch = epoch;
  }
  if (local.count == LocalSlots::kCapacity) {
    // Keep half, share the rest.
    constexpr std::uint32_t kHalf = LocalSlots::kCapacity / 2;
    give_back(local.index + kHalf, kHalf);
    local.count = kHalf;
  }
  local.index[local.count++] = s->index;
}

std::size_t ObjectTable::trim() noexcept {
  // Threads hand their cached slots in at their next allocation or free; this one at once.
  cache_epoch_.fetch_add(1, std::memory_order_relaxed);
  LocalSlots& local = local_slots;
  give_back(local.index, local.count);
  local.count = 0;
  local.epoch = cache_epoch_.load(std::memory_order_relaxed);
  std::size_t bytes = 0;
  std::unique_lock<std::mutex> grow(grow_mutex(), std::try_to_lock);
  if (!grow.owns_lock()) return 0;  // another thread is trimming or growing: not now
  for (unsigned k = kSegments; k-- > kFirstTrimmedSegment;) {
    if (trim_segment(k)) bytes += std::size_t{segment_size(k)} * sizeof(ObjectSlot);
  }
  return bytes;
}

// Under the grow lock (no slot of k is being made). The segment goes back only when every slot
// it ever handed out is on its free list: none is live, none sits in a thread's cache.
bool ObjectTable::trim_segment(unsigned k) noexcept {
  SegmentState& seg = state_[k];
  ObjectSlot* base = segments_[k].load(std::memory_order_relaxed);
  std::uint32_t initialized;
  {
    std::lock_guard<std::mutex> lock(seg.lock);
    if (base == nullptr || seg.given_back || seg.initialized == 0 || seg.listed != seg.initialized) return false;
    // Off the free list, with its bit: from here no thread can reach any slot of k.
    seg.listed = 0;
    initialized = seg.initialized;
    nonempty_.fetch_and(~(std::uint32_t{1} << k), std::memory_order_relaxed);
  }
  std::uint32_t highest = 0;
  for (std::uint32_t i = 0; i < initialized; ++i)
    highest = std::max(highest, static_cast<std::uint32_t>(base[i].refgen.load(std::memory_order_relaxed) >> 32));
  ::madvise(base, std::size_t{segment_size(k)} * sizeof(ObjectSlot), MADV_DONTNEED);
  ::madvise(births_[k].load(std::memory_order_relaxed), std::size_t{segment_size(k)} * sizeof(std::int64_t), MADV_DONTNEED);
  ::madvise(seg.free_list, std::size_t{segment_size(k)} * sizeof(std::uint32_t), MADV_DONTNEED);
  std::lock_guard<std::mutex> lock(seg.lock);
  seg.initialized = 0;
  seg.given_back = true;
  seg.next_generation = highest == 0xffffffffu ? 1 : highest + 1;
  return true;
}

std::size_t ObjectTable::committed_bytes() const noexcept {
  std::size_t bytes = 0;
  for (unsigned k = 0; k < kSegments; ++k) {
    std::lock_guard<std::mutex> lock(state_[k].lock);
    bytes += std::size_t{state_[k].initialized} * sizeof(ObjectSlot);
  }
  return bytes;
}

namespace {
// The waiter list, once no waiter is being taken out of it.
std::uintptr_t unlocked_waiters(ObjectSlot* s) noexcept {
  std::uintptr_t head = s->waiters.load(std::memory_order_acquire);
  // The holder does not park, but its thread may be descheduled (a canceller on the timer
  // thread): spin briefly, then yield.
  for (unsigned spins = 0; (head & ObjectSlot::kWaitersLocked) != 0; ++spins) {
    if (spins < 128) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
    head = s->waiters.load(std::memory_order_acquire);
  }
  return head;
}
}  // namespace

bool ObjectTable::claim_contended(ObjectSlot* s) noexcept {
  std::uintptr_t head = s->waiters.load(std::memory_order_acquire);
  for (;;) {
    if (head == ObjectSlot::kResolved) return false;
    if ((head & ObjectSlot::kWaitersLocked) != 0) {
      head = unlocked_waiters(s);
      continue;
    }
    if (s->waiters.compare_exchange_weak(head, head | ObjectSlot::kWaitersLocked, std::memory_order_acquire,
                                         std::memory_order_acquire))
      return true;
  }
}

void ObjectTable::wait_published(const ObjectSlot* s) noexcept {
  for (unsigned spins = 0; !s->resolved(); ++spins) {
    if (spins < 128) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

void ObjectTable::publish(ObjectSlot* s, ObjectState outcome, bool detach_writer) noexcept {
  // Locked by claim(): no push, no removal and no other publication changes the list.
  const std::uintptr_t list = s->waiters.load(std::memory_order_relaxed) & ~ObjectSlot::kWaitersLocked;
  s->state.store(outcome, std::memory_order_release);
  s->waiters.store(ObjectSlot::kResolved, std::memory_order_release);
  if (detach_writer) {
    std::uint64_t old = s->refgen.fetch_sub(ObjectSlot::kWriter, std::memory_order_acq_rel);
    // No references left: no one can be waiting (waiters hold references), so the list holds
    // at most links of waits that timed out, which own their own memory.
    if ((old & 0xffffffffu) == ObjectSlot::kWriter) free_slot(s);
  }
  auto* w = reinterpret_cast<Waiter*>(list);
  while (w != nullptr) {
    Waiter* next = w->next;  // read before notify: the node may be gone after it
    w->notify(w);
    w = next;
  }
}

void ObjectTable::publish_failure(ObjectSlot* s, Failure* f, bool detach_writer) noexcept {
  std::memcpy(s->storage, &f, sizeof f);
  if (f->stops_children) s->flags.fetch_or(ObjectSlot::kStopsChildren, std::memory_order_relaxed);
  publish(s, ObjectState::failed, detach_writer);
}

void ObjectTable::resolve(ObjectSlot* s, ObjectState outcome, bool detach_writer) noexcept {
  claim(s);
  publish(s, outcome, detach_writer);
}

void ObjectTable::fail(ObjectSlot* s, Failure* f, bool detach_writer) noexcept {
  claim(s);
  publish_failure(s, f, detach_writer);
}

bool ObjectTable::add_waiter(ObjectSlot* s, Waiter* w) noexcept {
  std::uintptr_t head = s->waiters.load(std::memory_order_acquire);
  for (;;) {
    if (head == ObjectSlot::kResolved) return false;
    if ((head & ObjectSlot::kWaitersLocked) != 0) {
      head = unlocked_waiters(s);
      continue;
    }
    w->next = reinterpret_cast<Waiter*>(head);
    if (s->waiters.compare_exchange_weak(head, reinterpret_cast<std::uintptr_t>(w), std::memory_order_acq_rel,
                                         std::memory_order_acquire))
      return true;
  }
}

bool ObjectTable::remove_waiter(ObjectSlot* s, Waiter* w) noexcept {
  if (!claim_contended(s)) return false;  // the same lock as a claim's, held only for the walk
  const std::uintptr_t head = s->waiters.load(std::memory_order_relaxed) & ~ObjectSlot::kWaitersLocked;
  // Locked: no push, no resolve and no other removal touches the list until the store below.
  auto* first = reinterpret_cast<Waiter*>(head);
  bool found = false;
  if (first == w) {
    first = w->next;
    found = true;
  } else {
    for (Waiter* at = first; at != nullptr; at = at->next) {
      if (at->next == w) {
        at->next = w->next;
        found = true;
        break;
      }
    }
  }
  s->waiters.store(reinterpret_cast<std::uintptr_t>(first), std::memory_order_release);
  return found;
}

std::atomic<int> ObjectTable::birth_recorders{0};

template <class F>
std::size_t ObjectTable::for_each_made_slot(F&& f) const {
  std::size_t made = 0;
  for (unsigned k = 0; k < kSegments; ++k) {
    std::uint32_t initialized;
    {
      std::lock_guard<std::mutex> lock(state_[k].lock);
      initialized = state_[k].initialized;
    }
    const ObjectSlot* base = segments_[k].load(std::memory_order_acquire);
    if (base == nullptr) continue;
    const std::atomic<std::int64_t>* births = births_[k].load(std::memory_order_acquire);
    made += initialized;
    for (std::uint32_t i = 0; i < initialized; ++i) f(base[i], births[i]);
  }
  return made;
}

void ObjectTable::scan(void (*f)(void*, const LiveObject&), void* arg) const noexcept {
  for_each_made_slot([&](const ObjectSlot& s, const std::atomic<std::int64_t>& born) {
    const std::uint64_t word = s.refgen.load(std::memory_order_acquire);
    const auto refs = static_cast<std::uint32_t>(word & ObjectSlot::kRefMask);
    if (refs == 0) return;
    const ObjectState st = s.state.load(std::memory_order_acquire);
    f(arg, LiveObject{(word & ~std::uint64_t{0xffffffff}) | s.index, st,
                      st == ObjectState::ready ? s.bytes.load(std::memory_order_relaxed) : 0, refs,
                      born.load(std::memory_order_relaxed)});
  });
}

ObjectTable::Usage ObjectTable::usage() const noexcept {
  Usage u;
  u.capacity = for_each_made_slot([&](const ObjectSlot& s, const std::atomic<std::int64_t>&) {
    if ((s.refgen.load(std::memory_order_acquire) & 0xffffffffu) != 0) {
      ++u.live;
      if (s.state.load(std::memory_order_acquire) == ObjectState::ready) u.bytes += s.bytes.load(std::memory_order_relaxed);
    }
  });
  return u;
}

}  // namespace lumen::detail
