/// @file
/// Trainables: what a trial runs. A function that reports once per iteration:
///
/// @code
///   void train(const lumen::tune::Config& cfg, lumen::tune::Reporter& r) {
///     Model m(cfg.get<double>("lr"));
///     if (auto c = r.checkpoint()) m.load(c->bytes);        // resuming
///     for (;;) {
///       double loss = m.epoch();
///       r.report({{"loss", loss}}, lumen::tune::Checkpoint{m.save()});
///     }
///   }
/// @endcode
///
/// or a class with setup / step / save / load, made into a function by from_class<T>().
/// A trial runs as a lumen task holding its resources (one CPU unless TuneConfig says
/// otherwise), so it may use parallel_for, task groups and the rest of lumen inside.
///
/// report() is where the experiment's scheduler and stoppers decide: when they end or pause the
/// trial, report() throws TrialStopped, which unwinds the trainable (its destructors run) and
/// which the tuner catches. A trainable that returns on its own has finished; one that throws
/// anything else has failed, and is retried from its latest checkpoint up to
/// RunConfig::max_failures times.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "lumen/tune/config.h"
#include "lumen/tune/result.h"

namespace lumen::tune {

namespace detail {
class TrialRun;
}

/// Thrown by Reporter::report when the trial must not go on (stopped, paused, or given another
/// trial's state by PBT). Do not swallow it: a trainable that catches it and reports again gets
/// it again.
class TrialStopped {
 public:
  /// A description for logs.
  const char* what() const noexcept { return "lumen::tune: the trial was stopped"; }
};

/// A trial's line to the experiment. Used by the trial's own task only (not thread-safe).
class Reporter {
 public:
  /// Reports one iteration's metrics (and optionally a checkpoint of the state after it).
  /// Throws TrialStopped when the trial ends here; usage_error for a metric whose name is empty,
  /// is one the tuner sets (training_iteration, time_total_s, time_this_iter_s, trial_id) or
  /// comes twice in one report.
  void report(Metrics metrics);
  /// As report(metrics), with a checkpoint of the trial's state at this iteration: what the trial
  /// resumes from.
  void report(Metrics metrics, Checkpoint checkpoint);

  /// The checkpoint to resume from, or null when the trial starts afresh. Its
  /// training_iteration is the number of iterations already counted: the next report is that
  /// plus one.
  const Checkpoint* checkpoint() const noexcept;
  /// Iterations reported so far (resumed ones included).
  std::int64_t iteration() const noexcept;
  /// The trial's id ("00000", ...).
  const std::string& trial_id() const noexcept;
  /// The trial's config.
  const Config& config() const noexcept;

  /// For lumen's own code: the tuner makes one per run of a trial.
  explicit Reporter(detail::TrialRun& run) noexcept : run_(&run) {}

 private:
  detail::TrialRun* run_;
};

/// A trial's code: called with its config and its reporter.
using TrainFunction = std::function<void(const Config&, Reporter&)>;

/// The class form of a trainable, as in Ray's Trainable: setup() once with the config, step()
/// once per iteration, save() and load() to checkpoint (needed for pauses, PBT and
/// retries to resume rather than restart). A step whose metrics hold "done" != 0 ends the trial.
class Trainable {
 public:
  virtual ~Trainable() = default;
  /// Once per run of the trial, with its config, before load() and the first step().
  virtual void setup(const Config& config) = 0;
  /// One iteration: its metrics, reported for the trial.
  virtual Metrics step() = 0;
  /// The state as bytes; the default has none (the trial then restarts from scratch).
  virtual std::optional<std::string> save() { return std::nullopt; }
  /// Puts the state save() returned back; the default ignores it.
  virtual void load(const std::string& bytes) { (void)bytes; }
};

/// A TrainFunction running a fresh T (default-constructed) for each run of a trial: setup,
/// load of the checkpoint to resume from (if any), then step and report until the trial ends.
/// It saves a checkpoint with the report of every `checkpoint_every`-th iteration (0: never).
template <class T>
TrainFunction from_class(int checkpoint_every = 1) {
  static_assert(std::is_base_of_v<Trainable, T>, "from_class<T>: T must derive from lumen::tune::Trainable");
  return [checkpoint_every](const Config& cfg, Reporter& r) {
    T t;
    Trainable& trainable = t;
    trainable.setup(cfg);
    if (const Checkpoint* c = r.checkpoint()) trainable.load(c->bytes);
    for (;;) {
      Metrics m = trainable.step();
      bool done = false;
      for (const auto& [k, v] : m) done = done || (k == "done" && v != 0);
      std::optional<std::string> saved;
      if (checkpoint_every > 0 && (r.iteration() + 1) % checkpoint_every == 0) saved = trainable.save();
      if (saved) {
        r.report(std::move(m), Checkpoint{std::move(*saved), r.iteration() + 1});
      } else {
        r.report(std::move(m));
      }
      if (done) return;
    }
  };
}

}  // namespace lumen::tune
