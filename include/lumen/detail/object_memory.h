// The object table's memory limit (Config::object_memory_limit): what counts against it, and
// how a value that was taken out of memory comes back.
//
// While a limit is set, every value stored outside its slot (over 16 bytes) counts with the
// bytes SlotValue measured. Past the limit the table takes values out of memory, least
// recently read first, when it can bring them back:
//  - evicted: the value of a task marked deterministic is dropped; its Recipe (a copy of the
//    callable and its arguments, whose refs keep the inputs alive) submits the task again
//    when the value is next read, as Ray's lineage reconstruction does;
//  - spilled: a value of a type with a SpillCodec is written to a file under
//    Config::spill_directory and read back when next read.
// Every other value stays. A reader pins the value while it uses it (Residency::word), so it
// never leaves memory under a reader; get(const ref&) keeps it for good, since the reference
// it returns is valid as long as the object lives.
//
// Objects that can leave memory carry a Residency record: the slot's storage holds the value's
// address (null while out of memory) and the record's. Objects that only count hold their
// ValueOps there instead. Without a limit nothing is counted and no record is made.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "lumen/detail/alloc.h"
#include "lumen/detail/object_table.h"

namespace lumen::detail {

// Values of type T as raw bytes, for spilling: trivially copyable types, and vectors and
// strings of trivially copyable, default-constructible elements.
template <class T>
struct SpillCodec {
  static constexpr bool kSpillable = std::is_trivially_copyable_v<T>;
  static const void* data(const T& v) noexcept { return &v; }
  static std::size_t size(const T&) noexcept { return sizeof(T); }
  // Memory for a value of `bytes` bytes, filled by the caller through data(), then made a T.
  static void* make(std::size_t) { return allocate(sizeof(T), alignof(T)); }
  static void* bytes_of(void* made) noexcept { return made; }
  static T* finish(void* made) noexcept {
    // Copying the bytes onto themselves starts the lifetime of a trivially copyable T there.
    return static_cast<T*>(std::memmove(made, made, sizeof(T)));
  }
  static void discard(void* made) noexcept { deallocate(made); }
};

template <class E, class A>
struct SpillCodec<std::vector<E, A>> {
  using V = std::vector<E, A>;
  static constexpr bool kSpillable =
      std::is_trivially_copyable_v<E> && std::is_default_constructible_v<E> && !std::is_same_v<E, bool>;
  static const void* data(const V& v) noexcept { return v.data(); }
  static std::size_t size(const V& v) noexcept { return v.size() * sizeof(E); }
  static void* make(std::size_t bytes) { return create<V>(bytes / sizeof(E)); }
  static void* bytes_of(void* made) noexcept { return static_cast<V*>(made)->data(); }
  static V* finish(void* made) noexcept { return static_cast<V*>(made); }
  static void discard(void* made) noexcept { destroy(static_cast<V*>(made)); }
};

template <class C, class Tr, class A>
struct SpillCodec<std::basic_string<C, Tr, A>> {
  using V = std::basic_string<C, Tr, A>;
  static constexpr bool kSpillable = std::is_trivially_copyable_v<C>;
  static const void* data(const V& v) noexcept { return v.data(); }
  static std::size_t size(const V& v) noexcept { return v.size() * sizeof(C); }
  static void* make(std::size_t bytes) { return create<V>(bytes / sizeof(C), C{}); }
  static void* bytes_of(void* made) noexcept { return static_cast<V*>(made)->data(); }
  static V* finish(void* made) noexcept { return static_cast<V*>(made); }
  static void discard(void* made) noexcept { destroy(static_cast<V*>(made)); }
};

// What the table does with a value it does not know the type of.
struct ValueOps {
  void (*destroy)(void* value) noexcept;
  void* (*move_new)(void* from);  // a new value made from `from`, which it may move out of
  // Spilling; null when the type has no SpillCodec.
  const void* (*spill_data)(const void* value) noexcept;
  std::size_t (*spill_size)(const void* value) noexcept;
  void* (*unspill_make)(std::size_t bytes);          // memory to read `bytes` bytes into
  void* (*unspill_bytes)(void* made) noexcept;       // where they go
  void* (*unspill_finish)(void* made) noexcept;      // the value, once they are there
  void (*unspill_discard)(void* made) noexcept;      // after a failed read
};

template <class T>
struct ValueOpsFor {
  using Codec = SpillCodec<T>;
  static void destroy_value(void* v) noexcept { detail::destroy(static_cast<T*>(v)); }
  static void* move_value(void* from) {
    if constexpr (std::is_move_constructible_v<T>) {
      return create<T>(std::move(*static_cast<T*>(from)));
    } else {
      return create<T>(*static_cast<const T*>(from));
    }
  }
  static const void* data(const void* v) noexcept { return Codec::data(*static_cast<const T*>(v)); }
  static std::size_t size(const void* v) noexcept { return Codec::size(*static_cast<const T*>(v)); }
  static void* finish(void* m) noexcept { return Codec::finish(m); }
  // The codec's functions are named only for spillable types: for others (vector<bool>, a
  // vector of elements without a default constructor) they would not compile.
  static constexpr ValueOps make_ops() noexcept {
    ValueOps o{&destroy_value, &move_value, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
    if constexpr (Codec::kSpillable) {
      o.spill_data = &data;
      o.spill_size = &size;
      o.unspill_make = &Codec::make;
      o.unspill_bytes = &Codec::bytes_of;
      o.unspill_finish = &finish;
      o.unspill_discard = &Codec::discard;
    }
    return o;
  }
  static constexpr ValueOps ops = make_ops();
};

// How to compute a deterministic task's value again: submits a copy of the task.
struct Recipe {
  ObjectSlot* (*rebuild)(Recipe*);  // the new task's result, with one reference; throws as submit does
  void (*destroy)(Recipe*) noexcept;
};

// The record of a value that may leave memory.
struct Residency {
  static constexpr std::uint32_t kAbsent = 1u << 31;  // the value is evicted or spilled
  static constexpr std::uint32_t kKept = 1u << 30;    // read through get(const ref&): stays for good
  static constexpr std::uint32_t kPins = kKept - 1;   // readers using it now

  std::atomic<std::uint32_t> word{0};
  std::atomic<bool> recently_read{true};  // the evictor's second chance
  std::mutex m;  // held to take the value out of memory and to bring it back; never across a wait
  ObjectSlot* slot = nullptr;
  const ValueOps* ops = nullptr;
  std::size_t bytes = 0;
  Recipe* recipe = nullptr;        // set: rebuilt from its task; else spilled
  ObjectSlot* rebuild = nullptr;   // a rebuild under way (one reference)
  std::string spill_path;          // non-empty while the value is in that file
  std::size_t spill_bytes = 0;     // what was written there
  Residency* prev = nullptr;       // the evictor's queue, under its lock
  Residency* next = nullptr;
  bool queued = false;
};

class ObjectMemory {
 public:
  enum class AtLimit { wait, fail };
  struct Counters {
    std::size_t limit = 0;
    std::size_t used = 0;
    std::uint64_t evicted = 0;
    std::uint64_t rebuilt = 0;
    std::uint64_t spilled = 0;
    std::uint64_t restored = 0;
    std::uint64_t spill_failures = 0;
    std::uint64_t puts_waited = 0;
  };

  static ObjectMemory& instance() noexcept;
  // True while a runtime has set a limit: the one check on paths that do not need the rest.
  static bool limited() noexcept { return limited_.load(std::memory_order_acquire); }

  // Set by the one runtime that has a limit (usage_error when another has one), cleared at its end.
  void configure(std::size_t limit, const std::string& spill_directory, AtLimit at_limit);
  void unconfigure() noexcept;
  Counters counters() const noexcept;

  // Counts the value just stored in s (its address in storage[0..8)); makes it a Residency
  // when it can leave memory (a recipe, or a spillable type and a spill directory), taking
  // over the recipe. Then brings memory under the limit if it can.
  void track(ObjectSlot* s, std::size_t bytes, const ValueOps* ops, Recipe* recipe) noexcept;
  // The destroy_value of tracked slots.
  static void destroy_tracked(ObjectSlot* s) noexcept;
  // Before a put of `bytes`: waits or throws resource_error, by Config::put_at_limit.
  void admit(std::size_t bytes);

  static bool has_residency(const ObjectSlot* s) noexcept {
    return (s->flags.load(std::memory_order_relaxed) & ObjectSlot::kHasResidency) != 0;
  }
  static Residency* residency_of(const ObjectSlot* s) noexcept {
    Residency* r;
    std::memcpy(&r, s->storage + sizeof(void*), sizeof r);
    return r;
  }
  static void* value_of(const ObjectSlot* s) noexcept {
    void* v;
    std::memcpy(&v, s->storage, sizeof v);
    return v;
  }
  // The value of a ready object with a Residency, brought back into memory if it left, and
  // pinned there: until unpin(), or for good with keep. May wait for a rebuild (parks a
  // task); throws what the rebuild threw, or resource_error when a spill file cannot be read.
  static void* pin(ObjectSlot* s, bool keep) {
    Residency* r = residency_of(s);
    std::uint32_t w = r->word.load(std::memory_order_acquire);
    if ((w & Residency::kAbsent) == 0) {
      if ((w & Residency::kKept) != 0) return value_of(s);
      if ((w & Residency::kPins) != Residency::kPins &&
          r->word.compare_exchange_weak(w, keep ? (w | Residency::kKept) : w + 1, std::memory_order_acq_rel)) {
        r->recently_read.store(true, std::memory_order_relaxed);
        return value_of(s);
      }
    }
    return instance().pin_slow(s, keep, true);
  }
  // As pin(), but returns null instead of waiting for a rebuild.
  static void* try_pin(ObjectSlot* s) { return instance().pin_slow(s, false, false); }
  static void unpin(ObjectSlot* s) noexcept {
    Residency* r = residency_of(s);
    if ((r->word.load(std::memory_order_relaxed) & Residency::kKept) != 0) return;
    // The last reader gone: a put waiting for room may now evict this value.
    if (r->word.fetch_sub(1, std::memory_order_release) == 1) instance().wake_waiting_puts();
  }

 private:
  ObjectMemory() = default;
  void* pin_slow(ObjectSlot* s, bool keep, bool may_wait);
  void* bring_back(Residency* r, bool keep, bool may_wait);
  bool take_out(Residency* r) noexcept;
  void make_room(std::size_t target, bool wait_for_evictor) noexcept;
  bool evict_until(std::size_t target) noexcept;  // under evict_m_; true when it took any out
  void count(std::size_t bytes) noexcept;
  void uncount(std::size_t bytes) noexcept;
  void wake_waiting_puts() noexcept {
    if (room_wanted_.load(std::memory_order_seq_cst)) uncount(0);
  }
  void enqueue(Residency* r) noexcept;  // under queue_m_
  void dequeue(Residency* r) noexcept;  // under queue_m_

  inline static std::atomic<bool> limited_{false};

  std::atomic<std::size_t> limit_{0};
  std::atomic<std::size_t> used_{0};
  AtLimit at_limit_ = AtLimit::wait;
  std::string spill_directory_;  // written only while no runtime has a limit

  std::mutex queue_m_;  // the evictor's queue: records whose values are in memory
  Residency* head_ = nullptr;
  Residency* tail_ = nullptr;
  std::size_t queued_ = 0;
  std::mutex evict_m_;  // one evictor at a time

  // Puts waiting for room wait on an object that is resolved when memory is given back.
  std::mutex room_m_;
  ObjectSlot* room_ = nullptr;
  std::atomic<bool> room_wanted_{false};

  std::atomic<std::uint64_t> evicted_{0}, rebuilt_{0}, spilled_{0}, restored_{0}, spill_failures_{0},
      puts_waited_{0};
};

}  // namespace lumen::detail
