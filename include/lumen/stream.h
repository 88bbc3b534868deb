/// @file
/// Streams: a task (or an actor method) that hands out its results one at a time, as Ray's
/// streaming generators do.
///
/// @code
///   lumen::Stream<int> s = lumen::stream<int>([](lumen::Emitter<int>& out, int n) {
///     for (int i = 0; i < n; ++i) out.emit(i * i);   // waits while 16 items are unconsumed
///   }, 100);
///   while (std::optional<lumen::ObjectRef<int>> r = s.next()) use(lumen::get(*r));
/// @endcode
///
/// Each emitted value becomes an object of its own, ready when next() returns its ref, in the
/// order emitted. next() waits (parking a fiber, or blocking a thread that is not a worker)
/// until the producer emits, ends or fails; it returns nullopt once the stream has ended and
/// every item was taken.
///
/// Back-pressure: emit() waits while `max_ahead` items are emitted and not yet taken by next(),
/// so a fast producer never runs more than that far ahead of a slow consumer.
/// Errors: if the producer throws, the consumer gets every item emitted before, then one ref
/// that fails with the producer's exception (get() rethrows it), then nullopt.
/// Cancellation: cancel(stream) (or destroying the Stream) stops the producer: its emit()
/// throws cancelled_error from then on, stop_requested() is true in it, and next() returns one
/// ref that fails with cancelled_error, then nullopt. Items not taken are dropped.
/// Actor methods stream through an Emitter passed as an argument:
///
/// @code
///   auto [s, out] = lumen::make_stream<Row>();
///   db.call(&Db::scan, out, query);   // Db::scan(lumen::Emitter<Row> out, Query q) emits
/// @endcode
///
/// The stream ends when the last copy of the Emitter is gone (the method returned), or when one
/// copy calls fail(e).
///
/// Thread safety: a Stream belongs to one consumer at a time; Emitter copies may emit from
/// several tasks at once (items keep the order in which emit() calls took their turn).
/// Cost: per item one object (as put()) and one uncontended lock; a waiting side is woken by the
/// item, the end or the cancel that it waits for.
#pragma once

#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "lumen/cancel.h"
#include "lumen/detail/scheduler_api.h"
#include "lumen/error.h"
#include "lumen/object_ref.h"
#include "lumen/task.h"

namespace lumen {

/// A stream's settings.
struct StreamOptions {
  std::size_t max_ahead = 16;  ///< items emitted and not taken, at most (>= 1)
};

namespace detail {

// What a stream's producer and consumer share.
template <class T>
class StreamState {
 public:
  explicit StreamState(std::size_t max_ahead) : max_ahead_(max_ahead) {}

  void add_sender() {
    std::lock_guard<std::mutex> lock(m_);
    ++senders_;
  }
  // The last sender gone ends the stream.
  void remove_sender() noexcept {
    std::vector<Wakeup> wake;
    {
      std::lock_guard<std::mutex> lock(m_);
      if (--senders_ == 0) ended_ = true;
      if (ended_) take_waiters(consumers_, wake);
    }
    for (Wakeup w : wake) unpark(w);
  }

  void emit(ObjectRef<T> item) {
    std::unique_lock<std::mutex> lock(m_);
    while (!stopped_ && !ended_ && ready_.size() >= max_ahead_) {
      lock.unlock();
      wait(producers_, [](StreamState* s) { return s->stopped_ || s->ended_ || s->ready_.size() < s->max_ahead_; });
      lock.lock();
    }
    if (stopped_) throw cancelled_error("lumen: the stream was cancelled by its consumer");
    if (ended_) throw usage_error("lumen: emit() on a stream that has ended (fail() was called)");
    ready_.push_back(std::move(item));
    std::vector<Wakeup> wake;
    take_waiters(consumers_, wake);
    lock.unlock();
    for (Wakeup w : wake) unpark(w);
  }

  void fail(std::exception_ptr e) noexcept {
    std::vector<Wakeup> wake;
    {
      std::lock_guard<std::mutex> lock(m_);
      if (ended_ || stopped_) return;
      error_ = std::move(e);
      ended_ = true;
      take_waiters(consumers_, wake);
      take_waiters(producers_, wake);
    }
    for (Wakeup w : wake) unpark(w);
  }

  // nullopt: the stream has ended and everything was taken. An error (or a cancel) comes out
  // once, as a failed ref.
  std::optional<ObjectRef<T>> next() {
    std::unique_lock<std::mutex> lock(m_);
    while (ready_.empty() && !ended_ && !stopped_) {
      lock.unlock();
      wait(consumers_, [](StreamState* s) { return !s->ready_.empty() || s->ended_ || s->stopped_; });
      lock.lock();
    }
    if (stopped_) {
      if (std::exchange(stop_reported_, true)) return std::nullopt;
      lock.unlock();
      return failed_ref(std::make_exception_ptr(cancelled_error("lumen: the stream was cancelled")));
    }
    if (!ready_.empty()) {
      ObjectRef<T> item = std::move(ready_.front());
      ready_.pop_front();
      std::vector<Wakeup> wake;
      // A waiting producer is woken once half the room is free, not at every item: it then
      // emits a run of items per wake-up instead of one.
      if (ready_.size() <= max_ahead_ / 2) take_waiters(producers_, wake);
      lock.unlock();
      for (Wakeup w : wake) unpark(w);
      return item;
    }
    if (error_ == nullptr) return std::nullopt;
    std::exception_ptr e = std::exchange(error_, nullptr);
    lock.unlock();
    return failed_ref(std::move(e));
  }

  // The consumer lets go: producers stop at their next emit(). True when the stream had not
  // ended yet.
  bool stop() noexcept {
    std::vector<Wakeup> wake;
    std::deque<ObjectRef<T>> dropped;  // let go of outside the lock: values' destructors may run
    bool was_open;
    {
      std::lock_guard<std::mutex> lock(m_);
      was_open = !ended_ && !stopped_;
      stopped_ = true;
      dropped.swap(ready_);
      take_waiters(producers_, wake);
      take_waiters(consumers_, wake);
    }
    for (Wakeup w : wake) unpark(w);
    return was_open;
  }

  bool stopped() const {
    std::lock_guard<std::mutex> lock(m_);
    return stopped_;
  }

 private:
  static void take_waiters(std::vector<Wakeup>& from, std::vector<Wakeup>& into) {
    into.insert(into.end(), from.begin(), from.end());
    from.clear();
  }

  // Parks until `ready(this)`; the check runs again under the lock once the caller is
  // suspended, so a wake-up between the caller's check and its park is not lost.
  template <class Ready>
  void wait(std::vector<Wakeup>& queue, Ready ready) {
    struct Park {
      StreamState* s;
      std::vector<Wakeup>* queue;
      Ready ready;
      std::exception_ptr error;
    } p{this, &queue, ready, nullptr};
    park(
        [](void* arg, Wakeup w) {
          auto* p = static_cast<Park*>(arg);
          bool now;
          {
            std::lock_guard<std::mutex> lock(p->s->m_);
            now = p->ready(p->s);
            if (!now) {
              try {
                p->queue->push_back(w);
              } catch (...) {  // no memory to queue the wake-up: look again at once
                now = true;
              }
            }
          }
          if (now) unpark(w);
        },
        &p);
  }

  static ObjectRef<T> failed_ref(std::exception_ptr e) {
    ObjectTable& table = ObjectTable::instance();
    ObjectSlot* s = table.allocate(1);
    table.fail(s, make_failure(std::move(e), "stream"));
    return ObjectRef<T>::adopt(s);
  }

  mutable std::mutex m_;
  const std::size_t max_ahead_;
  std::deque<ObjectRef<T>> ready_;
  std::size_t senders_ = 0;
  bool ended_ = false;
  bool stopped_ = false;
  bool stop_reported_ = false;
  std::exception_ptr error_;
  std::vector<Wakeup> consumers_, producers_;
};

}  // namespace detail

template <class T>
class Stream;
template <class T>
class Emitter;
template <class T>
std::pair<Stream<T>, Emitter<T>> make_stream(StreamOptions options = {});

/// The producer's end of a stream. Copyable: each copy keeps the stream open; the stream ends
/// when the last copy is destroyed.
template <class T>
class Emitter {
 public:
  /// Another sender: the stream stays open until every copy is gone.
  Emitter(const Emitter& o) : state_(o.state_) {
    if (state_) state_->add_sender();
  }
  /// Takes over o's place as a sender; o no longer keeps the stream open.
  Emitter(Emitter&& o) noexcept : state_(std::move(o.state_)) {}
  /// Lets go of the stream this emitter fed (ending it if this was its last copy) and takes o's
  /// place.
  Emitter& operator=(Emitter o) noexcept {
    std::swap(state_, o.state_);
    return *this;
  }
  ~Emitter() {
    if (state_) state_->remove_sender();
  }

  /// Hands out one item; waits while max_ahead items are not taken. Throws cancelled_error once
  /// the consumer cancelled or let go of the stream.
  template <class V>
  void emit(V&& value) {
    check().emit(put(T(std::forward<V>(value))));
  }
  /// Ends the stream with e: the consumer gets it after the items emitted before.
  void fail(std::exception_ptr e) noexcept {
    if (state_) state_->fail(std::move(e));
  }
  /// True once the consumer cancelled or let go of the stream.
  bool cancelled() const { return check().stopped(); }

 private:
  template <class U>
  friend std::pair<Stream<U>, Emitter<U>> make_stream(StreamOptions);
  explicit Emitter(std::shared_ptr<detail::StreamState<T>> s) : state_(std::move(s)) { state_->add_sender(); }
  detail::StreamState<T>& check() const {
    if (!state_) throw usage_error("lumen: use of a moved-from Emitter");
    return *state_;
  }
  std::shared_ptr<detail::StreamState<T>> state_;
};

/// The consumer's end of a stream. Move-only; destroying it cancels the stream.
template <class T>
class Stream {
 public:
  Stream() = default;
  /// Takes over o's stream; o is left empty.
  Stream(Stream&&) noexcept = default;
  /// Cancels the stream this one held (as the destructor does), then takes over o's.
  Stream& operator=(Stream&& o) noexcept {
    if (this != &o) {
      close();
      state_ = std::move(o.state_);
      task_ = std::move(o.task_);
    }
    return *this;
  }
  ~Stream() { close(); }

  /// The next item's ref, once there is one; nullopt once the stream ended and all were taken.
  std::optional<ObjectRef<T>> next() {
    if (!state_) throw usage_error("lumen: next() on an empty Stream");
    return state_->next();
  }
  /// Stops the producer (see the header). True when the stream had not ended yet.
  bool cancel() noexcept {
    if (!state_) return false;
    // The task first: a producer that sees the stream stopped must also see stop_requested().
    const bool task_open = task_.valid() && lumen::cancel(task_);
    return state_->stop() || task_open;
  }
  /// The producing task's result (void); empty for a stream made by make_stream().
  const ObjectRef<void>& task() const noexcept { return task_; }

 private:
  template <class U>
  friend std::pair<Stream<U>, Emitter<U>> make_stream(StreamOptions);
  template <class U, class F, class... Args>
  friend Stream<U> stream(StreamOptions, F&&, Args&&...);
  explicit Stream(std::shared_ptr<detail::StreamState<T>> s) : state_(std::move(s)) {}
  void close() noexcept {
    cancel();
    state_.reset();
  }

  std::shared_ptr<detail::StreamState<T>> state_;
  ObjectRef<void> task_;
};

/// Stops the producer: s.cancel().
template <class T>
bool cancel(Stream<T>& s) noexcept {
  return s.cancel();
}

/// A stream and the emitter that feeds it, for a producer you start yourself (an actor method,
/// a thread).
template <class T>
std::pair<Stream<T>, Emitter<T>> make_stream(StreamOptions options) {
  if (options.max_ahead == 0) throw usage_error("lumen: a stream's max_ahead must be at least 1");
  auto state = std::make_shared<detail::StreamState<T>>(options.max_ahead);
  Emitter<T> out(state);
  return {Stream<T>(std::move(state)), std::move(out)};
}

/// Runs f(emitter, args...) as a task on the runtime in scope; its emits come out of the
/// returned stream. An exception from f ends the stream with it. Arguments are stored as
/// submit() stores them and reach f as const lvalues; an ObjectRef argument reaches f as the
/// ref (get it inside f).
template <class T, class F, class... Args>
Stream<T> stream(StreamOptions options, F&& f, Args&&... args) {
  auto [s, out] = make_stream<T>(options);
  s.task_ = submit(
      [fn = std::forward<F>(f)](Emitter<T> emitter, const std::decay_t<Args>&... a) mutable {
        try {
          std::invoke(fn, emitter, a...);
        } catch (...) {
          emitter.fail(std::current_exception());
          throw;
        }
      },
      std::move(out), std::forward<Args>(args)...);
  return std::move(s);
}
/// As stream(StreamOptions, f, args...) with default options (max_ahead 16).
template <class T, class F, class... Args>
  requires(!std::is_same_v<std::decay_t<F>, StreamOptions>)
Stream<T> stream(F&& f, Args&&... args) {
  return stream<T>(StreamOptions{}, std::forward<F>(f), std::forward<Args>(args)...);
}

}  // namespace lumen
