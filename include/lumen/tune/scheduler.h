/// @file
/// Trial schedulers: decide at each report whether a trial goes on, pauses or stops, and which
/// paused trial runs next. FifoScheduler lets every trial run to its end; asha.h, hyperband.h,
/// median_stopping.h and pbt.h stop (or exploit) the weak ones early.
///
/// The tuner calls a scheduler under its own lock, one callback at a time: a scheduler needs no
/// locking of its own, and must not block or call back into the tuner except through the
/// TrialControl it is given.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lumen/tune/trial.h"

namespace lumen::tune {

/// What the tuner lets a scheduler do besides answering.
class TrialControl {
 public:
  /// Every trial so far, in creation order.
  virtual const std::vector<const Trial*>& trials() const = 0;
  /// The pending and paused trials, in creation order. The default scans trials(); the tuner
  /// keeps this list as trials change state, so that choosing costs O(waiting), not O(trials).
  virtual std::vector<const Trial*> waiting() const;
  /// Gives a trial that is paused (or that the scheduler is pausing now, from its result) a new
  /// config and the checkpoint to resume from: PBT's exploit. The checkpoint may be another
  /// trial's.
  virtual void reset_trial(const Trial& t, Config config, std::shared_ptr<const Checkpoint> from) = 0;
  /// Ends a paused or pending trial, as terminated. (A running trial ends by the decision on its
  /// result.)
  virtual void stop_trial(const Trial& t) = 0;
  /// Whether no new trial will come from the searcher.
  virtual bool searcher_finished() const = 0;
  /// The experiment's metric and mode (TuneConfig).
  virtual const std::string& metric() const = 0;
  /// The experiment's mode (TuneConfig).
  virtual Mode mode() const = 0;

 protected:
  ~TrialControl() = default;
};

/// A scheduler's answer to a trial's report.
enum class Decision {
  keep_going,  ///< the trial runs on
  pause,       ///< its task ends; it resumes from its latest checkpoint when chosen to run
  stop,        ///< it ends, as terminated
};

/// The base of trial schedulers: what the tuner calls at each event of a trial. Override
/// on_trial_result, and name for tables and logs; the other callbacks have defaults.
class TrialScheduler {
 public:
  virtual ~TrialScheduler() = default;

  /// Called once before the first trial with the experiment's metric and mode. A scheduler made
  /// with its own metric or mode keeps them; one that needs a metric and has none from either
  /// throws usage_error.
  virtual void set_search_properties(const std::string& metric, Mode mode);

  /// A new trial was made (pending, not started yet). The default does nothing.
  virtual void on_trial_add(TrialControl& run, const Trial& t);
  /// A report of a running trial: whether it goes on, pauses or stops.
  virtual Decision on_trial_result(TrialControl& run, const Trial& t, const Result& r) = 0;
  /// The trial ended (returned, or was stopped); `last` is its last result, or null.
  virtual void on_trial_complete(TrialControl& run, const Trial& t, const Result* last);
  /// The trial failed for good (after its retries).
  virtual void on_trial_error(TrialControl& run, const Trial& t);
  /// The pending or paused trial to run next, or null to start a new one from the searcher.
  /// The default: the oldest pending trial, else the oldest paused one.
  virtual const Trial* choose_trial_to_run(TrialControl& run);

  /// The scheduler's name, for the progress table and the experiment's files.
  virtual std::string name() const = 0;

 protected:
  /// The metric and mode in force (set by the constructor or by set_search_properties).
  std::string metric_;
  std::optional<Mode> mode_;  ///< nullopt: the experiment's, once set_search_properties has run
  /// r's metric, signed so that larger is better; nullopt when r does not report it.
  std::optional<double> score(const Result& r) const;
  /// For set_search_properties of schedulers that need a metric: throws usage_error naming the
  /// scheduler when none is known.
  void require_metric() const;
  /// For constructors: checks a scheduler's own time axis (not empty) and mode ("min", "max"
  /// or empty for the experiment's), and keeps its metric and mode; usage_error names `who`.
  void take_objective(const char* who, const std::string& time_attr, const std::string& metric, const std::string& mode);

 private:
  bool in_use_ = false;
};

/// Every trial runs until its trainable returns or a stopper ends it.
class FifoScheduler final : public TrialScheduler {
 public:
  Decision on_trial_result(TrialControl&, const Trial&, const Result&) override { return Decision::keep_going; }
  std::string name() const override { return "FIFO"; }
};

}  // namespace lumen::tune
