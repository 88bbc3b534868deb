#include "lumen/detail/object_table.h"

#include <cxxabi.h>

#include <bit>
#include <memory>

#include "lumen/detail/cpu_relax.h"
#include <new>
#include <stdexcept>

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

Failure* make_failure(std::exception_ptr error, std::string_view task_name) noexcept {
  try {
    auto f = std::make_unique<Failure>();
    f->error = error;
    f->task_name = task_name;
    f->description = describe(error, task_name);
    return f.release();
  } catch (...) {
    retain(&g_out_of_memory);
    return &g_out_of_memory;
  }
}

void release(Failure* f) noexcept {
  if (f->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete f;
}

ObjectTable& ObjectTable::instance() noexcept {
  alignas(ObjectTable) static unsigned char storage[sizeof(ObjectTable)];
  static ObjectTable* table = ::new (storage) ObjectTable();
  return *table;
}

ObjectSlot* ObjectTable::slot_at(std::uint32_t index) const noexcept {
  // Segment k starts at 1024 * (2^k - 1).
  std::uint64_t scaled = (std::uint64_t{index} >> kBaseShift) + 1;
  unsigned k = static_cast<unsigned>(std::bit_width(scaled)) - 1;
  std::uint64_t start = ((std::uint64_t{1} << k) - 1) << kBaseShift;
  return segments_[k].load(std::memory_order_acquire) + (index - start);
}

namespace {

// Free slots this thread may reuse without touching the shared free list: most objects are
// freed by the thread that made them, or by one worker among a few.
struct LocalSlots {
  static constexpr std::uint32_t kCapacity = 64;
  std::uint32_t count = 0;
  std::uint32_t index[kCapacity];
  ~LocalSlots() { ObjectTable::instance().give_back(index, count); }
};
__attribute__((tls_model("initial-exec"))) thread_local LocalSlots local_slots;

}  // namespace

void ObjectTable::ensure_segment(std::uint32_t index) {
  std::uint64_t scaled = (std::uint64_t{index} >> kBaseShift) + 1;
  unsigned k = static_cast<unsigned>(std::bit_width(scaled)) - 1;
  if (k >= kSegments) throw std::length_error("lumen: the object table is full (4 billion objects alive)");
  ObjectSlot* seg = segments_[k].load(std::memory_order_acquire);
  if (seg != nullptr) return;
  std::size_t count = std::size_t{1} << (k + kBaseShift);
  auto* fresh = static_cast<ObjectSlot*>(::operator new(count * sizeof(ObjectSlot), std::align_val_t{64}));
  std::uint64_t start = ((std::uint64_t{1} << k) - 1) << kBaseShift;
  for (std::size_t i = 0; i < count; ++i) {
    ObjectSlot* s = ::new (fresh + i) ObjectSlot();
    s->index = static_cast<std::uint32_t>(start + i);
  }
  if (!segments_[k].compare_exchange_strong(seg, fresh, std::memory_order_acq_rel))
    ::operator delete(fresh, std::align_val_t{64});
}

ObjectSlot* ObjectTable::take_slot() {
  LocalSlots& local = local_slots;
  if (local.count != 0) return slot_at(local.index[--local.count]);
  std::uint64_t head = free_head_.load(std::memory_order_acquire);
  while ((head & 0xffffffffu) != 0) {
    ObjectSlot* top = slot_at(static_cast<std::uint32_t>(head & 0xffffffffu) - 1);
    std::uint64_t next_link = top->waiters.load(std::memory_order_relaxed);
    std::uint64_t next = (head & ~std::uint64_t{0xffffffff}) + (std::uint64_t{1} << 32) + next_link;
    if (free_head_.compare_exchange_weak(head, next, std::memory_order_acquire, std::memory_order_acquire)) return top;
  }
  // Fresh slots come in batches, so threads rarely meet here.
  constexpr std::uint32_t kBatch = 16;
  std::uint32_t first = fresh_reserved_.fetch_add(kBatch, std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < kBatch; ++i) ensure_segment(first + i);
  std::uint32_t seen = fresh_.load(std::memory_order_relaxed);
  while (seen < first + kBatch && !fresh_.compare_exchange_weak(seen, first + kBatch, std::memory_order_release)) {
  }
  for (std::uint32_t i = kBatch - 1; i > 0; --i) local.index[local.count++] = first + i;
  return slot_at(first);
}

void ObjectTable::give_back(const std::uint32_t* indexes, std::uint32_t n) noexcept {
  if (n == 0) return;
  // Link them into a chain, then push the chain with one CAS.
  for (std::uint32_t i = 0; i + 1 < n; ++i)
    slot_at(indexes[i])->waiters.store(indexes[i + 1] + 1, std::memory_order_relaxed);
  ObjectSlot* last = slot_at(indexes[n - 1]);
  std::uint64_t head = free_head_.load(std::memory_order_relaxed);
  for (;;) {
    last->waiters.store(head & 0xffffffffu, std::memory_order_relaxed);
    std::uint64_t next = (head & ~std::uint64_t{0xffffffff}) + (std::uint64_t{1} << 32) + (indexes[0] + 1);
    if (free_head_.compare_exchange_weak(head, next, std::memory_order_release, std::memory_order_relaxed)) return;
  }
}

ObjectSlot* ObjectTable::allocate(std::uint32_t refs, bool writer) {
  ObjectSlot* s = take_slot();
  std::uint64_t gen = s->refgen.load(std::memory_order_relaxed) & ~std::uint64_t{0xffffffff};
  s->waiters.store(0, std::memory_order_relaxed);
  s->producer_waits_on.store(nullptr, std::memory_order_relaxed);
  s->bytes.store(0, std::memory_order_relaxed);
  s->destroy_value = nullptr;
  s->state.store(ObjectState::pending, std::memory_order_relaxed);
  s->refgen.store(gen | refs | (writer ? ObjectSlot::kWriter : 0), std::memory_order_release);
  return s;
}

ObjectSlot* ObjectTable::acquire(std::uint64_t id) noexcept {
  auto index = static_cast<std::uint32_t>(id & 0xffffffffu);
  if (index >= fresh_.load(std::memory_order_acquire)) return nullptr;
  if (segments_[static_cast<unsigned>(std::bit_width((std::uint64_t{index} >> kBaseShift) + 1)) - 1].load(
          std::memory_order_acquire) == nullptr)
    return nullptr;
  ObjectSlot* s = slot_at(index);
  std::uint64_t word = s->refgen.load(std::memory_order_acquire);
  for (;;) {
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
  if (local.count == LocalSlots::kCapacity) {
    // Keep half, share the rest.
    constexpr std::uint32_t kHalf = LocalSlots::kCapacity / 2;
    give_back(local.index + kHalf, kHalf);
    local.count = kHalf;
  }
  local.index[local.count++] = s->index;
}

namespace {
// The waiter list, once no waiter is being taken out of it.
std::uintptr_t unlocked_waiters(ObjectSlot* s) noexcept {
  std::uintptr_t head = s->waiters.load(std::memory_order_acquire);
  while ((head & ObjectSlot::kWaitersLocked) != 0) {
    cpu_relax();
    head = s->waiters.load(std::memory_order_acquire);
  }
  return head;
}
}  // namespace

void ObjectTable::resolve(ObjectSlot* s, ObjectState outcome, bool detach_writer) noexcept {
  s->state.store(outcome, std::memory_order_release);
  std::uintptr_t list = unlocked_waiters(s);
  while (!s->waiters.compare_exchange_weak(list, ObjectSlot::kResolved, std::memory_order_acq_rel,
                                           std::memory_order_acquire)) {
    if ((list & ObjectSlot::kWaitersLocked) != 0) list = unlocked_waiters(s);
  }
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

void ObjectTable::fail(ObjectSlot* s, Failure* f, bool detach_writer) noexcept {
  std::memcpy(s->storage, &f, sizeof f);
  resolve(s, ObjectState::failed, detach_writer);
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
  std::uintptr_t head = s->waiters.load(std::memory_order_acquire);
  for (;;) {
    if (head == ObjectSlot::kResolved) return false;
    if ((head & ObjectSlot::kWaitersLocked) != 0) {
      head = unlocked_waiters(s);
      continue;
    }
    if (s->waiters.compare_exchange_weak(head, head | ObjectSlot::kWaitersLocked, std::memory_order_acquire,
                                         std::memory_order_acquire))
      break;
  }
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

ObjectTable::Usage ObjectTable::usage() const noexcept {
  Usage u;
  std::uint32_t n = fresh_.load(std::memory_order_acquire);
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint64_t scaled = (std::uint64_t{i} >> kBaseShift) + 1;
    unsigned k = static_cast<unsigned>(std::bit_width(scaled)) - 1;
    if (segments_[k].load(std::memory_order_acquire) == nullptr) continue;  // still being made
    ObjectSlot* s = slot_at(i);
    ++u.capacity;
    if ((s->refgen.load(std::memory_order_acquire) & 0xffffffffu) != 0) {
      ++u.live;
      if (s->state.load(std::memory_order_acquire) == ObjectState::ready) u.bytes += s->bytes.load(std::memory_order_relaxed);
    }
  }
  return u;
}

}  // namespace lumen::detail
