/// @file
/// pipeline: items flow from a source through a chain of stages into a sink, with a bound on
/// how many items are in flight at once (as tbb::parallel_pipeline).
///
/// @code
///   using enum lumen::stage_mode;
///   std::size_t total = 0;
///   lumen::pipeline(/*tokens=*/16)
///       .source([&](lumen::flow_control& fc) -> std::string {
///         std::string line;
///         if (!std::getline(in, line)) fc.stop();
///         return line;
///       })
///       .stage(parallel, [](std::string line) { return count_words(line); })
///       .sink(serial_in_order, [&](std::size_t words) { total += words; })
///       .run();
/// @endcode
///
/// Types: each stage takes what the previous one returns (checked at compile time); the sink
/// returns void. The source is either `T(flow_control&)` (call fc.stop() to end the stream;
/// the value returned with that call is dropped) or `std::optional<T>()` (nullopt ends it).
///
/// Stage modes:
/// @code
///   serial_in_order  one item at a time, in the order the source produced them
///   serial           one item at a time, in any order
///   parallel         any number of items at once (the callable must allow concurrent calls)
/// @endcode
/// The source is called one item at a time; its order defines "source order".
///
/// Tokens: at most `tokens` items are between the source and the end of the sink. When all
/// tokens are taken the source is simply not called until an item leaves the sink: no thread
/// waits for a token. Items that reach a serial stage while it is busy (or, in order, early)
/// wait in that stage's buffer, not on a thread.
///
/// Running: run() makes the calling task (or thread) take part: it runs the source and carries
/// the first item through the stages, then waits as task_group::wait does (it runs the
/// pipeline's tasks still queued on its own worker, then parks its fiber). A pipeline may run
/// inside tasks, task_group children and other pipelines' stages. Items go to other workers
/// only when they carry enough work to pay for the hand-off (about 1 µs in their stages,
/// measured on every 64th item as the run goes); lighter items are carried one after another
/// by one task (the caller's, as a rule), which is many times faster than spreading them.
///
/// Exceptions: the first exception from the source or a stage cancels the pipeline (the source
/// is not called again; later stages are skipped for items in flight) and run() rethrows it
/// with its type once every item has left. Values of skipped items are destroyed.
///
/// Cost: per item, one compare-and-swap on the token count and a short lock per serial stage,
/// plus one spawn to let another worker call the source when items are spread; every 64th
/// item also reads the clock twice per stage. Nothing is allocated per item (the
/// `tokens` item buffers are allocated once per run). A closed pipeline can run many times, one
/// run at a time. A token count whose buffers do not fit in memory makes run() throw
/// usage_error (their size overflows) or resource_error (they cannot be allocated) before any
/// stage runs.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "lumen/error.h"

namespace lumen {

/// How a stage takes its items: serial_in_order, serial or parallel, as the top of this file
/// describes.
enum class stage_mode : unsigned char { serial_in_order, serial, parallel };

/// Handed to a source that takes it: stop() ends the stream.
class flow_control {
 public:
  /// Ends the stream: the value the source returns with this call is dropped, and the source is not
  /// called again.
  void stop() noexcept { stopped_ = true; }
  /// Whether stop() was called.
  bool stopped() const noexcept { return stopped_; }

 private:
  bool stopped_ = false;
};

namespace detail {

// The type-erased form run_pipeline() works on. Values of every stage live in item buffers
// of value_size bytes: stage k reads buffer k % 2 and writes buffer (k + 1) % 2.
struct PipelineStage {
  stage_mode mode;
  void* fn;
  // Calls the stage on the value at `in`, constructs its result at `out`, and destroys the
  // value at `in`, also when the stage throws.
  void (*invoke)(void* fn, void* in, void* out);
  // Destroys the value at `in` without calling the stage (a cancelled pipeline).
  void (*discard)(void* in) noexcept;
};

struct PipelineShape {
  void* source;
  bool (*produce)(void* source, void* out);  // false: the stream ended, nothing was written
  const PipelineStage* stages;               // the last one is the sink
  std::size_t stage_count;
  std::size_t value_size, value_align;
  std::size_t tokens;
};

// Runs the pipeline to its end; rethrows the first exception.
void run_pipeline(const PipelineShape& shape);

template <class F>
constexpr bool takes_flow_control = std::is_invocable_v<F&, flow_control&>;

template <class T>
struct optional_value {};
template <class T>
struct optional_value<std::optional<T>> {
  using type = T;
};

template <class F, bool = takes_flow_control<F>>
struct source_value {
  using type = std::invoke_result_t<F&, flow_control&>;
};
template <class F>
struct source_value<F, false> {
  static_assert(std::is_invocable_v<F&>, "lumen::pipeline: a source is T(lumen::flow_control&) or std::optional<T>()");
  using type = typename optional_value<std::invoke_result_t<F&>>::type;
};

template <class F>
bool produce_into(void* source, void* out) {
  using T = typename source_value<F>::type;
  F& f = *static_cast<F*>(source);
  if constexpr (takes_flow_control<F>) {
    flow_control fc;
    T value = std::invoke(f, fc);
    if (fc.stopped()) return false;
    ::new (out) T(std::move(value));
    return true;
  } else {
    std::optional<T> value = std::invoke(f);
    if (!value) return false;
    ::new (out) T(std::move(*value));
    return true;
  }
}

// A stage's callable may take its input by value, by rvalue or by (const) lvalue reference.
template <class F, class In>
decltype(auto) call_stage(F& f, In& v) {
  if constexpr (std::is_invocable_v<F&, In&&>) {
    return std::invoke(f, std::move(v));
  } else {
    return std::invoke(f, v);
  }
}

template <class F, class In>
using stage_result_t = decltype(call_stage(std::declval<F&>(), std::declval<In&>()));

template <class In, class F>
struct TypedStage {
  using input = In;
  using output = std::decay_t<stage_result_t<F, In>>;

  stage_mode mode;
  F fn;

  static void invoke(void* fn, void* in, void* out) {
    In* v = std::launder(static_cast<In*>(in));
    struct Consume {
      In* v;
      ~Consume() { v->~In(); }
    } consume{v};
    if constexpr (std::is_void_v<output>) {
      call_stage(*static_cast<F*>(fn), *v);
    } else {
      ::new (out) output(call_stage(*static_cast<F*>(fn), *v));
    }
  }
  static void discard(void* in) noexcept { std::launder(static_cast<In*>(in))->~In(); }
};

template <class... Stages>
constexpr std::size_t max_value_size() {
  return std::max({sizeof(typename Stages::input)...});
}
template <class... Stages>
constexpr std::size_t max_value_align() {
  return std::max({alignof(typename Stages::input)...});
}

}  // namespace detail

/// A pipeline with its source and every stage, closed by its sink: ready to run.
template <class Source, class... Stages>
class closed_pipeline {
 public:
  /// Made by open_pipeline::sink(); not meant to be built directly.
  closed_pipeline(std::size_t tokens, Source source, std::tuple<Stages...> stages)
      : tokens_(tokens), source_(std::move(source)), stages_(std::move(stages)) {}

  /// Runs until the source ends and every item has left the sink; see the top of this file.
  /// One run at a time; the callables keep their state from one run to the next.
  void run() {
    auto erased = std::apply(
        [](Stages&... s) {
          return std::array<detail::PipelineStage, sizeof...(Stages)>{
              detail::PipelineStage{s.mode, &s.fn, &Stages::invoke, &Stages::discard}...};
        },
        stages_);
    detail::PipelineShape shape{&source_,
                                &detail::produce_into<Source>,
                                erased.data(),
                                erased.size(),
                                detail::max_value_size<Stages...>(),
                                detail::max_value_align<Stages...>(),
                                tokens_};
    detail::run_pipeline(shape);
  }

 private:
  std::size_t tokens_;
  Source source_;
  std::tuple<Stages...> stages_;
};

/// A pipeline whose last stage (or source) produces Out: add stages, then close it with sink().
template <class Out, class Source, class... Stages>
class open_pipeline {
 public:
  /// Made by pipeline::source() and open_pipeline::stage(); not meant to be built directly.
  open_pipeline(std::size_t tokens, Source source, std::tuple<Stages...> stages)
      : tokens_(tokens), source_(std::move(source)), stages_(std::move(stages)) {}

  /// f(Out) -> U; the next stage (or the sink) takes U.
  template <class F>
  auto stage(stage_mode mode, F&& f) && {
    using Next = detail::TypedStage<Out, std::decay_t<F>>;
    static_assert(std::is_invocable_v<std::decay_t<F>&, Out&&> || std::is_invocable_v<std::decay_t<F>&, Out&>,
                  "lumen::pipeline: a stage must accept what the stage before it returns");
    static_assert(!std::is_void_v<typename Next::output>,
                  "lumen::pipeline: only the sink returns void; close the pipeline with sink()");
    return open_pipeline<typename Next::output, Source, Stages..., Next>(
        tokens_, std::move(source_),
        std::tuple_cat(std::move(stages_), std::tuple<Next>(Next{mode, std::forward<F>(f)})));
  }

  /// f(Out) -> void: the last stage.
  template <class F>
  auto sink(stage_mode mode, F&& f) && {
    using Last = detail::TypedStage<Out, std::decay_t<F>>;
    static_assert(std::is_invocable_v<std::decay_t<F>&, Out&&> || std::is_invocable_v<std::decay_t<F>&, Out&>,
                  "lumen::pipeline: the sink must accept what the stage before it returns");
    static_assert(std::is_void_v<typename Last::output>, "lumen::pipeline: the sink returns void");
    return closed_pipeline<Source, Stages..., Last>(
        tokens_, std::move(source_),
        std::tuple_cat(std::move(stages_), std::tuple<Last>(Last{mode, std::forward<F>(f)})));
  }

 private:
  std::size_t tokens_;
  Source source_;
  std::tuple<Stages...> stages_;
};

/// Where a pipeline starts: the number of tokens (items in flight at most), then source().
class pipeline {
 public:
  /// A pipeline that keeps at most `tokens` items in flight; 0 throws usage_error.
  explicit pipeline(std::size_t tokens) : tokens_(tokens) {
    if (tokens == 0) throw usage_error("lumen::pipeline: tokens must be at least 1");
  }

  /// The source: `T(flow_control&)` or `std::optional<T>()`, as the top of this file describes.
  /// Gives the open_pipeline to add stages to.
  template <class F>
  auto source(F&& f) && {
    using T = typename detail::source_value<std::decay_t<F>>::type;
    static_assert(!std::is_void_v<T> && !std::is_reference_v<T>, "lumen::pipeline: a source returns values");
    return open_pipeline<T, std::decay_t<F>>(tokens_, std::forward<F>(f), std::tuple<>());
  }

 private:
  std::size_t tokens_;
};

}  // namespace lumen
