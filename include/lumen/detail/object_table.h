// The object table: every task result and every put() lives in one slot of it.
//
// A slot is a fixed 64-byte entry in a segmented array that never moves, so a pointer to a
// slot stays valid for the life of the process and lookups need no locks:
//  - an id is (generation << 32 | index); the generation changes each time a slot is reused,
//    so a stale id never finds a newer object;
//  - the reference count and the generation share one 64-bit word, so "look up by id and take
//    a reference" is a single compare-and-swap that fails once the count has reached zero;
//  - free slots sit in a small per-thread cache, or in their segment's free list; slots are
//    taken from the lowest segment that has free ones, so that high segments empty out;
//  - a segment whose slots are all free can be given back to the system (trim()): its pages
//    are dropped and read as zeros, generation 0, which no id names. When slots run short it
//    comes back, its generations carrying on above every one it had before.
//  - waiters form a lock-free stack in the slot; resolving the object swaps in kResolved and
//    wakes everything that was pushed before. A waiter that gives up (a timed-out wait) takes
//    its node out under a lock bit in the same word, which pushes and the resolve wait out.
// Values up to 16 bytes live inside the slot; larger ones in one allocation of their own
// (slot_value.h), which a memory limit may take out of memory (object_memory.h).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "lumen/detail/alloc.h"

namespace lumen::detail {

// pending: its producer cannot be cancelled (a blocking call, a value being put, an actor call
// that has started). cancellable: its producer (a Cancellable, whose address the slot's
// storage holds meanwhile) can be. claimed: a cancel() is publishing the object's failure.
enum class ObjectState : std::uint16_t { free = 0, pending = 1, cancellable = 2, claimed = 3, ready = 4, failed = 5 };

// A node in an object's waiter list. notify() runs once, on the thread that resolves the
// object; the list no longer touches the node once notify() has been called.
struct Waiter {
  void (*notify)(Waiter*) noexcept = nullptr;
  Waiter* next = nullptr;
};

// Why an object failed; shared by a failed task's result and every dependent that failed
// because of it.
struct Failure {
  std::exception_ptr error;
  std::string task_name;
  std::string description;  // "task 'name' failed: <exception type>: <what()>"
  int attempts = 1;          // runs of the task, retries included
  // A recursive cancel (or a timeout): the tasks its task submitted stop too (see cancel.h).
  bool stops_children = false;
  std::atomic<int> refs{1};
};

// What cancel() reaches through a cancellable object: the producing task or actor call.
// The producer lives until it has claimed the object (ObjectTable::claim) or seen that a
// cancel() published it first, so a canceller that holds the claim may read it.
struct Cancellable {
  std::atomic<bool> stop{false};  // set by cancel() and by a timeout: what stop_requested() polls
  bool is_actor_call = false;     // for the wording of its failure
  // The name its cancelled_error gives ("" for an unnamed task).
  std::string_view (*name_of)(const Cancellable*) noexcept = nullptr;
};

// Never fails: without memory for a new one it returns a shared failure carrying std::bad_alloc.
// Takes the caller's reference to the exception (the caller's pointer is left empty), so that
// no copy of it outlives the publication of the failure on the caller's thread: the
// exception must be freed by whoever lets go of the failure last, not by a temporary that a
// waiter never synchronized with.
Failure* make_failure(std::exception_ptr&& error, std::string_view task_name) noexcept;
// Records that the task ran `attempts` times, in the failure and its description ("... after
// 3 attempts"). Before the failure is published.
void note_attempts(Failure* f, int attempts) noexcept;
// "<exception type>: <what()>".
std::string describe_exception(std::exception_ptr error);
inline void retain(Failure* f) noexcept { f->refs.fetch_add(1, std::memory_order_relaxed); }
void release(Failure* f) noexcept;

// Why a producer is being stopped.
enum class StopReason {
  cancelled,              // cancel(ref)
  cancelled_recursively,  // cancel(ref, {.recursive = true}): what it submitted stops too
  timed_out,              // TaskOptions::timeout passed: what it submitted stops too
  parent_cancelled,       // the task that submitted it was cancelled recursively
};
// The failure of a producer stopped for `why`: cancelled_error (timeout_error when timed out)
// naming it. Never fails (see make_failure).
Failure* cancellation_failure(const Cancellable& c, StopReason why) noexcept;

struct alignas(64) ObjectSlot {
  static constexpr std::uintptr_t kResolved = 1;
  // A waiter is being taken out, or the object's outcome is being published (claim()).
  static constexpr std::uintptr_t kWaitersLocked = 2;
  static constexpr std::uint16_t kStopsChildren = 1;  // flags: failed by a recursive cancel
  static constexpr std::uint16_t kHasResidency = 2;   // flags: the value may leave memory (object_memory.h)
  static constexpr std::size_t kInlineBytes = 16;
  static constexpr std::uint64_t kWriter = 0x80000000u;
  static constexpr std::uint64_t kRefMask = 0x7fffffffu;

  // generation << 32 | writer bit | references. Generations start at 1, so no object's id is
  // 0, the id of an empty ref. The writer bit (kWriter) is the producing task's hold on the
  // slot: the slot is freed once the references are gone and the writer has let go.
  std::atomic<std::uint64_t> refgen{std::uint64_t{1} << 32};
  std::atomic<std::uintptr_t> waiters{0}; // Waiter* stack, kResolved, or (free) next free index + 1
  std::atomic<ObjectState> state{ObjectState::free};
  std::atomic<std::uint16_t> flags{0};    // kStopsChildren
  std::uint32_t index = 0;
  std::atomic<std::size_t> bytes{0};      // size of the value, for stats and memory accounting
  void (*destroy_value)(ObjectSlot*) noexcept = nullptr;
  // While the task producing this object is parked in a get: the object it waits for. Lets a
  // task about to wait see a cycle of tasks that would wait on each other forever.
  std::atomic<ObjectSlot*> producer_waits_on{nullptr};
  alignas(16) unsigned char storage[kInlineBytes];  // the value, a pointer to it, or a Failure*

  bool resolved() const noexcept { return state.load(std::memory_order_acquire) >= ObjectState::ready; }
  // The producer of a cancellable object; read only by whoever claimed it from `cancellable`.
  Cancellable* producer() const noexcept {
    Cancellable* c;
    std::memcpy(&c, storage, sizeof c);
    return c;
  }
  Failure* failure() const noexcept {
    Failure* f;
    std::memcpy(&f, storage, sizeof f);
    return f;
  }
  std::uint64_t id() const noexcept {
    return (refgen.load(std::memory_order_relaxed) & ~std::uint64_t{0xffffffff}) | index;
  }
};
static_assert(sizeof(ObjectSlot) == 64, "an object entry is one cache line");

class ObjectTable {
 public:
  // The process-wide table. It is never destroyed, so references held by static objects
  // stay valid through exit.
  static ObjectTable& instance() noexcept;

  // A pending slot with `refs` references and, with `writer`, the producing task's hold.
  ObjectSlot* allocate(std::uint32_t refs, bool writer = false);
  // The slot for `id` with one more reference, or nullptr if that object is gone.
  ObjectSlot* acquire(std::uint64_t id) noexcept;

  // Frees a slot that allocate() just returned and no one else has seen.
  void discard(ObjectSlot* s) noexcept { free_slot(s); }

  static void add_ref(ObjectSlot* s) noexcept { s->refgen.fetch_add(1, std::memory_order_relaxed); }
  void release(ObjectSlot* s) noexcept {
    if ((s->refgen.fetch_sub(1, std::memory_order_acq_rel) & 0xffffffffu) == 1) free_slot(s);
  }

  // Makes a slot that allocate() just returned cancellable through its producer `c`: before
  // anyone else sees the slot.
  static void set_producer(ObjectSlot* s, Cancellable* c) noexcept {
    std::memcpy(s->storage, &c, sizeof c);
    s->state.store(ObjectState::cancellable, std::memory_order_release);
  }

  // Publishing an outcome is claim(), then writing the value or failure into the slot, then
  // publish(). The claim locks the waiter list (waits and new waiters spin meanwhile, so keep
  // it short), and makes the claimer the only one to write the slot's storage: a producer
  // claims before it writes its value, so that a cancel() that came first owns the storage.
  // False when the object is resolved already: a cancel() published it.
  static bool claim(ObjectSlot* s) noexcept {
    std::uintptr_t head = s->waiters.load(std::memory_order_acquire);
    if ((head & (ObjectSlot::kResolved | ObjectSlot::kWaitersLocked)) == 0 &&
        s->waiters.compare_exchange_weak(head, head | ObjectSlot::kWaitersLocked, std::memory_order_acquire,
                                         std::memory_order_relaxed))
      return true;
    return claim_contended(s);
  }
  // For a producer that found its object claimed by a cancel(): returns once the canceller has
  // published (it does not park in between, but its thread may be descheduled).
  static void wait_published(const ObjectSlot* s) noexcept;
  // After claim(): publishes the outcome written into the slot and wakes its waiters. With
  // detach_writer the producing task lets go of the slot before the waiters run, so a waiter
  // that holds the last reference sees itself as the only owner.
  void publish(ObjectSlot* s, ObjectState outcome, bool detach_writer) noexcept;
  // After claim(): publishes f (taking one reference of it) as the object's failure.
  void publish_failure(ObjectSlot* s, Failure* f, bool detach_writer) noexcept;
  // claim() and publish(), for a producer that no cancel() can get ahead of (its object is not
  // cancellable, or it made it pending).
  void resolve(ObjectSlot* s, ObjectState outcome, bool detach_writer = false) noexcept;
  void fail(ObjectSlot* s, Failure* f, bool detach_writer = false) noexcept;  // takes one reference of f
  // Claims a cancellable object from its producer, sets the producer's stop request and fails
  // the object for `why`. False when there was nothing to cancel: the object is ready or
  // failed, its producer has published or started (an actor call), or it has no producer that
  // can be cancelled.
  // `unnamed`, when given, is a failure shared by the objects of unnamed producers that one
  // call cancels (made at the first, one reference per object): a bulk cancel then allocates
  // once, not once per object. The caller releases its own reference when done.
  bool cancel(ObjectSlot* s, StopReason why, Failure** unnamed = nullptr) noexcept;
  // Lets go of the writer's hold on a resolved object; frees it if no reference is left.
  void release_writer(ObjectSlot* s) noexcept {
    if ((s->refgen.fetch_sub(ObjectSlot::kWriter, std::memory_order_acq_rel) & 0xffffffffu) == ObjectSlot::kWriter)
      free_slot(s);
  }
  // Adds w to the waiters unless the object is already resolved (then returns false).
  static bool add_waiter(ObjectSlot* s, Waiter* w) noexcept;
  // Takes w back out. True when it was still there (it will not be notified); false when the
  // object resolved first (w is notified, or already was).
  static bool remove_waiter(ObjectSlot* s, Waiter* w) noexcept;

  struct Usage {
    std::size_t live = 0;      // objects with at least one reference
    std::size_t bytes = 0;     // their values' sizes
    std::size_t capacity = 0;  // slots ever created
  };
  Usage usage() const noexcept;  // scans the table: for stats, not for hot paths

  // Objects get a creation time (time-stamp counter ticks, timeline_data.h) while any runtime
  // tracks state (state.h): the count of such runtimes. 0 for objects created while none did.
  static std::atomic<int> birth_recorders;
  struct LiveObject {
    std::uint64_t id;
    ObjectState state;
    std::size_t bytes;
    std::uint32_t refs;
    std::int64_t born_ticks;
  };
  // Calls f for each object with a reference. Reads each slot once, without locks: an object
  // freed meanwhile may still be seen, one created meanwhile may be missed.
  void scan(void (*f)(void*, const LiveObject&), void* arg) const noexcept;

  // Returns free slots to their segments' free lists (a thread's cache of them).
  void give_back(const std::uint32_t* indexes, std::uint32_t n) noexcept;

  // Gives back to the system the memory of every large segment whose slots are all free, and
  // asks threads to return the free slots they cache, so that a later trim finds more. Returns
  // the bytes given back. Runs at the end of each Runtime and now and then on an idle worker;
  // cheap when there is nothing to give back.
  std::size_t trim() noexcept;
  // Pages of the table that hold slots (given-back segments not counted).
  std::size_t committed_bytes() const noexcept;

 private:
  static constexpr unsigned kBaseShift = 10;  // segment k holds 1024 << k slots
  static constexpr unsigned kSegments = 22;
  // Segments from 64 Ki slots (4 MiB) up are given back when free; smaller ones stay.
  static constexpr unsigned kFirstTrimmedSegment = 6;

  struct SegmentState;

  ObjectTable();
  ObjectSlot* slot_at(std::uint32_t index) const noexcept;
  static bool claim_contended(ObjectSlot* s) noexcept;
  ObjectSlot* take_slot();
  std::uint32_t refill(std::uint32_t* out, std::uint32_t max);
  void free_slot(ObjectSlot* s) noexcept;
  bool trim_segment(unsigned k) noexcept;
  // Calls f(slot, its creation time) for every slot made so far; returns how many there are.
  template <class F>
  std::size_t for_each_made_slot(F&& f) const;

  std::atomic<ObjectSlot*> segments_[kSegments]{};
  // Beside each segment, its objects' creation times (see birth_recorders): pages are touched
  // only by objects made while state is tracked.
  std::atomic<std::atomic<std::int64_t>*> births_[kSegments]{};
  SegmentState* state_;  // kSegments of them
  alignas(64) std::atomic<std::uint32_t> nonempty_{0};  // bit k: segment k's free list may hold slots
  alignas(64) std::atomic<std::uint64_t> cache_epoch_{0};  // bumped to ask threads for their cached slots
  std::atomic<std::uint32_t> fresh_{0};  // no slot at or above it was ever handed out: lookups stay below
};

}  // namespace lumen::detail
