// Typed access to the value in an object's slot: storing it, reading it, destroying it.
//
// Values up to 16 bytes (and 16-aligned) live in the slot; larger ones in an allocation of
// their own, which counts against a memory limit and may leave memory (object_memory.h). A
// reader of such a value holds a PinnedValue while it uses it.
#pragma once

#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include "lumen/detail/alloc.h"
#include "lumen/detail/object_memory.h"
#include "lumen/detail/object_table.h"

namespace lumen::detail {

template <class T>
struct SlotValue {
  static_assert(std::is_nothrow_destructible_v<T>,
                "lumen: an object's value needs a destructor that does not throw: it runs when the last "
                "ref goes, where an exception has nowhere to go");
  static constexpr bool kInline = sizeof(T) <= ObjectSlot::kInlineBytes && alignof(T) <= 16;

  // The value's address, as stored: for slots whose value cannot leave memory, or that the
  // caller has pinned.
  static T* get(ObjectSlot* s) noexcept {
    if constexpr (kInline) {
      return std::launder(reinterpret_cast<T*>(s->storage));
    } else {
      return static_cast<T*>(ObjectMemory::value_of(s));
    }
  }

  // For get(const ref&): the value stays in memory as long as the object lives.
  static const T& read_kept(ObjectSlot* s) {
    if constexpr (!kInline) {
      if (ObjectMemory::has_residency(s)) return *static_cast<T*>(ObjectMemory::pin(s, true));
    }
    return *get(s);
  }

  template <class... A>
  static void emplace(ObjectSlot* s, A&&... a) {
    emplace_with(s, nullptr, static_cast<A&&>(a)...);
  }

  // As emplace; `recipe` (taken over, may be null) can compute the value again once it was
  // evicted (see object_memory.h).
  template <class... A>
  static void emplace_with(ObjectSlot* s, Recipe* recipe, A&&... a) {
    T* p;
    if constexpr (kInline) {
      p = ::new (static_cast<void*>(s->storage)) T(static_cast<A&&>(a)...);
    } else {
      try {
        p = create<T>(static_cast<A&&>(a)...);
      } catch (...) {
        if (recipe != nullptr) recipe->destroy(recipe);
        throw;
      }
      std::memcpy(s->storage, &p, sizeof p);
    }
    const std::size_t bytes = value_bytes(*p);
    s->bytes.store(bytes, std::memory_order_relaxed);
    s->destroy_value = &destroy;
    if constexpr (!kInline) {
      if (ObjectMemory::limited()) {
        ObjectMemory::instance().track(s, bytes, &ValueOpsFor<T>::ops, recipe);
        return;
      }
    }
    if (recipe != nullptr) recipe->destroy(recipe);
  }

  static void destroy(ObjectSlot* s) noexcept {
    if constexpr (kInline) {
      get(s)->~T();
    } else {
      detail::destroy(get(s));
    }
  }

  // sizeof(T), plus the elements of a contiguous container.
  static std::size_t value_bytes(const T& v) noexcept {
    if constexpr (requires { v.size(); v.data(); typename T::value_type; }) {
      return sizeof(T) + v.size() * sizeof(typename T::value_type);
    } else {
      return sizeof(T);
    }
  }
};

// A reader's hold on the value of a ready object: while it lives the value stays in memory.
// Constructing it may bring the value back (see ObjectMemory::pin).
template <class T>
class PinnedValue {
 public:
  explicit PinnedValue(ObjectSlot* s) {
    if constexpr (!SlotValue<T>::kInline) {
      if (ObjectMemory::has_residency(s)) {
        value_ = static_cast<T*>(ObjectMemory::pin(s, false));
        pinned_ = s;
        return;
      }
    }
    value_ = SlotValue<T>::get(s);
  }
  ~PinnedValue() { unpin(); }
  // Lets go early: before the caller frees the object.
  void unpin() noexcept {
    if (pinned_ != nullptr) ObjectMemory::unpin(pinned_);
    pinned_ = nullptr;
  }
  PinnedValue(const PinnedValue&) = delete;
  PinnedValue& operator=(const PinnedValue&) = delete;

  T& operator*() const noexcept { return *value_; }
  T* get() const noexcept { return value_; }

 private:
  T* value_ = nullptr;
  ObjectSlot* pinned_ = nullptr;
};

}  // namespace lumen::detail
