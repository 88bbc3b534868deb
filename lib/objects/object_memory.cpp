#include "lumen/detail/object_memory.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <new>
#include <string>
#include <system_error>

#include "lumen/error.h"
#include "lumen/object_ref.h"

namespace lumen::detail {

namespace {

std::string error_text(int err) { return std::generic_category().message(err); }

// Writes all of [data, data + n) to a new file at path. On failure removes what it wrote and
// returns the errno.
int write_file(const std::string& path, const void* data, std::size_t n) noexcept {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  const char* p = static_cast<const char*>(data);
  int err = 0;
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) ::unlink(path.c_str());
  return err;
}

// Reads exactly n bytes of the file at path into out; the errno on failure (EIO when the file
// has another size).
int read_file(const std::string& path, void* out, std::size_t n) noexcept {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  struct stat st {};
  int err = 0;
  if (::fstat(fd, &st) != 0) {
    err = errno;
  } else if (static_cast<std::size_t>(st.st_size) != n) {
    err = EIO;
  }
  char* p = static_cast<char*>(out);
  while (err == 0 && n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      err = errno;
    } else if (r == 0) {
      err = EIO;
    } else {
      p += r;
      n -= static_cast<std::size_t>(r);
    }
  }
  ::close(fd);
  return err;
}

// The slot's value address, or null once it left memory.
void set_value(ObjectSlot* s, void* v) noexcept { std::memcpy(s->storage, &v, sizeof v); }

// Set while a thread holds a record's lock and brings back another value (a rebuild's own,
// spilled value): the evictor it would start might try to lock the record this thread holds.
thread_local int tls_holding_record = 0;

}  // namespace

ObjectMemory& ObjectMemory::instance() noexcept {
  static ObjectMemory* memory = new ObjectMemory();  // never destroyed: objects may outlive main
  return *memory;
}

void ObjectMemory::configure(std::size_t limit, const std::string& spill_directory, AtLimit at_limit) {
  std::lock_guard<std::mutex> lock(evict_m_);
  if (limited_.load(std::memory_order_relaxed))
    throw usage_error(
        "lumen: Config::object_memory_limit is set by another live Runtime (the object table, and its limit, "
        "are shared by the process)");
  if (!spill_directory.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(spill_directory, ec);
    if (ec || !std::filesystem::is_directory(spill_directory, ec))
      throw usage_error("lumen: Config::spill_directory '" + spill_directory +
                        "' is not a folder that can be created: " + (ec ? ec.message() : "it is a file"));
  }
  spill_directory_ = spill_directory;
  at_limit_ = at_limit;
  // The counters are the limiting runtime's (Stats are totals since the runtime started).
  for (auto* c : {&evicted_, &rebuilt_, &spilled_, &restored_, &spill_failures_, &puts_waited_})
    c->store(0, std::memory_order_relaxed);
  limit_.store(limit, std::memory_order_relaxed);
  limited_.store(true, std::memory_order_release);
}

void ObjectMemory::unconfigure() noexcept {
  std::lock_guard<std::mutex> lock(evict_m_);
  limited_.store(false, std::memory_order_relaxed);
  limit_.store(0, std::memory_order_relaxed);
  // Puts waiting for room no longer have a limit to wait for.
  room_wanted_.store(true, std::memory_order_seq_cst);
  uncount(0);
}

ObjectMemory::Counters ObjectMemory::counters() const noexcept {
  Counters c;
  c.limit = limit_.load(std::memory_order_relaxed);
  c.used = used_.load(std::memory_order_relaxed);
  c.evicted = evicted_.load(std::memory_order_relaxed);
  c.rebuilt = rebuilt_.load(std::memory_order_relaxed);
  c.spilled = spilled_.load(std::memory_order_relaxed);
  c.restored = restored_.load(std::memory_order_relaxed);
  c.spill_failures = spill_failures_.load(std::memory_order_relaxed);
  c.puts_waited = puts_waited_.load(std::memory_order_relaxed);
  return c;
}

void ObjectMemory::count(std::size_t bytes) noexcept { used_.fetch_add(bytes, std::memory_order_seq_cst); }

void ObjectMemory::uncount(std::size_t bytes) noexcept {
  used_.fetch_sub(bytes, std::memory_order_seq_cst);
  if (!room_wanted_.load(std::memory_order_seq_cst)) return;
  ObjectSlot* room;
  {
    std::lock_guard<std::mutex> lock(room_m_);
    room = std::exchange(room_, nullptr);
    room_wanted_.store(false, std::memory_order_relaxed);
  }
  if (room != nullptr) {
    ObjectTable::instance().resolve(room, ObjectState::ready);
    ObjectTable::instance().release(room);
  }
}

void ObjectMemory::enqueue(Residency* r) noexcept {
  r->prev = tail_;
  r->next = nullptr;
  (tail_ != nullptr ? tail_->next : head_) = r;
  tail_ = r;
  r->queued = true;
  ++queued_;
}

void ObjectMemory::dequeue(Residency* r) noexcept {
  (r->prev != nullptr ? r->prev->next : head_) = r->next;
  (r->next != nullptr ? r->next->prev : tail_) = r->prev;
  r->prev = r->next = nullptr;
  r->queued = false;
  --queued_;
}

void ObjectMemory::track(ObjectSlot* s, std::size_t bytes, const ValueOps* ops, Recipe* recipe) noexcept {
  const bool can_leave = recipe != nullptr || (ops->spill_data != nullptr && !spill_directory_.empty());
  Residency* r = nullptr;
  if (can_leave) r = new (std::nothrow) Residency();
  if (r == nullptr) {
    // Counted only; without memory for a record the value simply stays.
    if (recipe != nullptr) recipe->destroy(recipe);
    std::memcpy(s->storage + sizeof(void*), &ops, sizeof ops);
  } else {
    r->slot = s;
    r->ops = ops;
    r->bytes = bytes;
    r->recipe = recipe;
    std::memcpy(s->storage + sizeof(void*), &r, sizeof r);
    s->flags.fetch_or(ObjectSlot::kHasResidency, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(queue_m_);
    enqueue(r);
  }
  s->destroy_value = &destroy_tracked;
  count(bytes);
  const std::size_t limit = limit_.load(std::memory_order_relaxed);
  if (limit != 0 && used_.load(std::memory_order_relaxed) > limit) make_room(limit, false);
}

void ObjectMemory::destroy_tracked(ObjectSlot* s) noexcept {
  ObjectMemory& memory = instance();
  if (!has_residency(s)) {
    const ValueOps* ops;
    std::memcpy(&ops, s->storage + sizeof(void*), sizeof ops);
    ops->destroy(value_of(s));
    memory.uncount(s->bytes.load(std::memory_order_relaxed));
    return;
  }
  Residency* r = residency_of(s);
  {
    // An evictor that holds the record finishes with it first.
    std::lock_guard<std::mutex> lock(r->m);
    std::lock_guard<std::mutex> queue(memory.queue_m_);
    if (r->queued) memory.dequeue(r);
  }
  if ((r->word.load(std::memory_order_acquire) & Residency::kAbsent) == 0) {
    r->ops->destroy(value_of(s));
    memory.uncount(r->bytes);
  }
  if (!r->spill_path.empty()) ::unlink(r->spill_path.c_str());
  if (r->rebuild != nullptr) ObjectTable::instance().release(r->rebuild);
  if (r->recipe != nullptr) r->recipe->destroy(r->recipe);  // may free its arguments' objects
  delete r;
}

bool ObjectMemory::take_out(Residency* r) noexcept {
  ObjectSlot* s = r->slot;
  if (s->state.load(std::memory_order_acquire) != ObjectState::ready) return false;
  std::uint32_t idle = 0;
  if (!r->word.compare_exchange_strong(idle, Residency::kAbsent, std::memory_order_acq_rel)) return false;
  void* value = value_of(s);
  if (r->recipe == nullptr) {
    // Spilled under an earlier runtime's folder; this runtime has none.
    if (spill_directory_.empty()) {
      r->word.store(0, std::memory_order_release);
      return false;
    }
    int err;
    try {
      r->spill_path = spill_directory_ + "/lumen-" + std::to_string(::getpid()) + "-" + std::to_string(s->id()) + ".spill";
      r->spill_bytes = r->ops->spill_size(value);
      err = write_file(r->spill_path, r->ops->spill_data(value), r->spill_bytes);
    } catch (...) {
      err = ENOMEM;
    }
    if (err != 0) {
      r->spill_path.clear();
      r->word.store(0, std::memory_order_release);
      spill_failures_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    spilled_.fetch_add(1, std::memory_order_relaxed);
  } else {
    evicted_.fetch_add(1, std::memory_order_relaxed);
  }
  set_value(s, nullptr);
  r->ops->destroy(value);
  uncount(r->bytes);
  return true;
}

void ObjectMemory::make_room(std::size_t target, bool wait_for_evictor) noexcept {
  if (tls_holding_record != 0) return;
  // A thread that found the evictor busy left its bytes to it; the evictor may have looked at
  // the count before they came, so it looks again after letting go, as long as it gets on.
  while (used_.load(std::memory_order_seq_cst) > target) {
    std::unique_lock<std::mutex> evicting(evict_m_, std::defer_lock);
    if (wait_for_evictor) {
      evicting.lock();
    } else if (!evicting.try_lock()) {
      return;  // another thread is at it
    }
    if (!evict_until(target)) return;
  }
}

bool ObjectMemory::evict_until(std::size_t target) noexcept {
  bool progress = false;
  // Each record is looked at most twice (once to clear its second chance).
  std::size_t budget;
  {
    std::lock_guard<std::mutex> queue(queue_m_);
    budget = 2 * queued_ + 1;
  }
  while (used_.load(std::memory_order_relaxed) > target && budget-- > 0) {
    Residency* r;
    {
      std::lock_guard<std::mutex> queue(queue_m_);
      r = head_;
      if (r == nullptr) break;
      dequeue(r);
      if (r->recently_read.exchange(false, std::memory_order_relaxed) || !r->m.try_lock()) {
        enqueue(r);
        continue;
      }
    }
    // Holding r->m keeps the record alive (destroy_tracked takes it first).
    const bool out = take_out(r);
    if (!out && (r->word.load(std::memory_order_relaxed) & Residency::kKept) == 0) {
      std::lock_guard<std::mutex> queue(queue_m_);
      enqueue(r);  // pinned for now, or its spill failed: later
    }
    r->m.unlock();
    progress = progress || out;
  }
  return progress;
}

void* ObjectMemory::pin_slow(ObjectSlot* s, bool keep, bool may_wait) {
  Residency* r = residency_of(s);
  for (;;) {
    std::uint32_t w = r->word.load(std::memory_order_acquire);
    if ((w & Residency::kAbsent) == 0) {
      if ((w & Residency::kKept) != 0) return value_of(s);
      if ((w & Residency::kPins) == Residency::kPins)
        throw resource_error("lumen: an object is being read by too many readers at once (2^30)");
      if (r->word.compare_exchange_weak(w, keep ? (w | Residency::kKept) : w + 1, std::memory_order_acq_rel)) {
        r->recently_read.store(true, std::memory_order_relaxed);
        return value_of(s);
      }
      continue;
    }
    void* v = bring_back(r, keep, may_wait);
    if (v != nullptr || !may_wait) return v;
  }
}

// Brings r's value back into memory, pinned for the caller. Null when another reader was
// first (the caller pins again), or, without may_wait, when a rebuild would be needed.
void* ObjectMemory::bring_back(Residency* r, bool keep, bool may_wait) {
  ObjectSlot* s = r->slot;
  const std::uint32_t pinned = keep ? Residency::kKept : 1;
  std::unique_lock<std::mutex> lock(r->m);
  if ((r->word.load(std::memory_order_acquire) & Residency::kAbsent) == 0) return nullptr;
  void* value;
  if (r->recipe == nullptr) {
    const std::size_t n = r->spill_bytes;
    void* made = r->ops->unspill_make(n);
    const int err = read_file(r->spill_path, r->ops->unspill_bytes(made), n);
    if (err != 0) {
      r->ops->unspill_discard(made);
      throw resource_error("lumen: object " + std::to_string(s->id()) + " was spilled to " + r->spill_path +
                           " and cannot be read back: " + error_text(err));
    }
    value = r->ops->unspill_finish(made);
    ::unlink(r->spill_path.c_str());
    r->spill_path.clear();
    restored_.fetch_add(1, std::memory_order_relaxed);
  } else {
    if (!may_wait) return nullptr;
    if (r->rebuild == nullptr) r->rebuild = r->recipe->rebuild(r->recipe);
    ObjectSlot* rebuild = r->rebuild;
    ObjectTable::add_ref(rebuild);
    lock.unlock();
    auto hold = ObjectRef<void>::adopt(rebuild);  // lets go of the reference at the end
    try {
      await(rebuild);
    } catch (...) {
      // A failed rebuild is not kept: the next read tries again.
      lock.lock();
      if (r->rebuild == rebuild) {
        r->rebuild = nullptr;
        ObjectTable::instance().release(rebuild);
      }
      throw;
    }
    lock.lock();
    if ((r->word.load(std::memory_order_acquire) & Residency::kAbsent) == 0 || r->rebuild != rebuild) return nullptr;
    // The rebuild's own value may have left memory too (spilled): pin it while moving it over.
    const bool rebuild_pinned = has_residency(rebuild);
    void* from;
    {
      struct Holding {
        Holding() noexcept { ++tls_holding_record; }
        ~Holding() { --tls_holding_record; }
      } holding;
      from = rebuild_pinned ? pin(rebuild, false) : value_of(rebuild);
    }
    try {
      value = r->ops->move_new(from);
    } catch (...) {
      if (rebuild_pinned) unpin(rebuild);
      throw;
    }
    if (rebuild_pinned) unpin(rebuild);
    r->rebuild = nullptr;
    ObjectTable::instance().release(rebuild);
    rebuilt_.fetch_add(1, std::memory_order_relaxed);
  }
  set_value(s, value);
  count(r->bytes);
  r->recently_read.store(true, std::memory_order_relaxed);
  r->word.store(pinned, std::memory_order_release);
  if (!keep) {
    std::lock_guard<std::mutex> queue(queue_m_);
    if (!r->queued) enqueue(r);
  }
  lock.unlock();
  const std::size_t limit = limit_.load(std::memory_order_relaxed);
  if (limit != 0 && used_.load(std::memory_order_relaxed) > limit) make_room(limit, false);
  return value;
}

void ObjectMemory::admit(std::size_t bytes) {
  // A value can become evictable without any bytes being freed (its task publishes it, its
  // last reader lets go), so a waiting put also looks again now and then.
  std::chrono::milliseconds poll(1);
  bool waited = false;
  for (;;) {
    const std::size_t limit = limit_.load(std::memory_order_relaxed);
    if (limit == 0) return;
    if (bytes > limit)
      throw resource_error("lumen: put of " + std::to_string(bytes) + " bytes cannot fit under Config::object_memory_limit (" +
                           std::to_string(limit) + " bytes)");
    if (used_.load(std::memory_order_seq_cst) + bytes <= limit) return;
    make_room(limit - bytes, true);
    if (used_.load(std::memory_order_seq_cst) + bytes <= limit) return;
    if (at_limit_ == AtLimit::fail)
      throw resource_error("lumen: put of " + std::to_string(bytes) + " bytes would pass Config::object_memory_limit (" +
                           std::to_string(limit) + " bytes; " + std::to_string(used_.load()) +
                           " in use, none of it can be evicted or spilled now)");
    ObjectSlot* room;
    {
      std::lock_guard<std::mutex> lock(room_m_);
      if (room_ == nullptr) room_ = ObjectTable::instance().allocate(1);
      room = room_;
      ObjectTable::add_ref(room);
      room_wanted_.store(true, std::memory_order_seq_cst);
    }
    auto hold = ObjectRef<void>::adopt(room);
    // Looked at again after asking: memory given back in between has seen the request.
    if (used_.load(std::memory_order_seq_cst) + bytes <= limit) return;
    if (!std::exchange(waited, true)) puts_waited_.fetch_add(1, std::memory_order_relaxed);
    wait_resolved_until(room, Clock::now() + poll);
    poll = std::min(poll * 2, std::chrono::milliseconds(50));
  }
}

}  // namespace lumen::detail
