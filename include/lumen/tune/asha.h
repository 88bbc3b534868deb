/// @file
/// AshaScheduler: asynchronous successive halving (ASHA), Ray Tune's AsyncHyperBandScheduler.
///
/// @code
///   TuneConfig{.metric = "loss", .mode = "min", .num_samples = 64,
///              .scheduler = std::make_shared<AshaScheduler>(AshaOptions{.max_t = 81, .reduction_factor = 3})}
/// @endcode
///
/// Each bracket has rungs: milestones on the time axis at grace_period * reduction_factor^(k + s)
/// for bracket s = 0, 1, ... and k = 0, 1, ..., up to and including max_t. Trials are dealt to
/// the brackets in turn as they are added (trial i to bracket i % brackets), so a restored
/// experiment that replays its trials rebuilds the same assignment.
///
/// Stopping rule (promotion = false, the default, as in Ray): when a report's time reaches a
/// rung this trial has not been recorded at yet (the highest such rung, if one report passes
/// several), the trial's metric is recorded there and compared with the values recorded there
/// before it: below the (1 - 1/reduction_factor) quantile of those (linear interpolation, as
/// numpy's percentile), the trial stops; otherwise it goes on. Trials never wait for one
/// another.
///
/// Promotion rule (promotion = true, the ASHA paper's variant): a trial pauses at each rung
/// below max_t, its metric recorded there. When a slot is free, choose_trial_to_run resumes
/// ("promotes") a paused trial that ranks within the best floor(n / reduction_factor) of the n
/// trials recorded at its rung and has not been promoted from it yet, looking at the highest
/// rungs first and taking the best candidate there; with none, a pending trial; with none,
/// null, so that a new trial starts. Once the searcher is finished no new trial will fill the
/// rungs, so the quota becomes max(1, floor(n / reduction_factor)): the best trial of every rung
/// climbs on, and when nothing is promotable the tuner stops the paused rest.
///
/// Either way a report at time >= max_t stops the trial when stop_last_trials, and reports
/// without the metric or the time attribute (or with NaN in either) are passed over: the trial
/// goes on.
#pragma once

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "lumen/tune/scheduler.h"

namespace lumen::tune {

/// AshaScheduler's settings; the constructor checks them (usage_error naming the field).
struct AshaOptions {
  /// The time axis: a field of Result (training_iteration, time_total_s, time_this_iter_s) or a
  /// reported metric that grows with training.
  std::string time_attr = "training_iteration";
  /// What to compare, and whether it is minimized ("min") or maximized ("max"); empty: the
  /// experiment's (TuneConfig's metric and mode).
  std::string metric{};
  std::string mode{};  ///< "min" or "max"; empty: the experiment's
  /// The most time (in time_attr's units) a trial runs: at this point it stops, if
  /// stop_last_trials. Must be >= grace_period.
  double max_t = 100;
  /// The first rung: no trial is stopped (or paused) before this much time. > 0.
  double grace_period = 1;
  /// Rungs are this factor apart; about 1/reduction_factor of the trials pass each. > 1.
  double reduction_factor = 4;
  /// Number of brackets (each one's rungs shifted up by one more factor); >= 1, and the last
  /// must still have a rung at or below max_t.
  int brackets = 1;
  /// Whether trials that reach max_t stop; false lets them run until they return.
  bool stop_last_trials = true;
  /// false: Ray's stopping rule; true: the ASHA paper's promotion rule (see above).
  bool promotion = false;
};

/// Asynchronous successive halving; see the top of this file.
class AshaScheduler final : public TrialScheduler {
 public:
  /// Throws usage_error naming the option for an invalid one.
  explicit AshaScheduler(AshaOptions options = {});

  void set_search_properties(const std::string& metric, Mode mode) override;
  void on_trial_add(TrialControl& run, const Trial& t) override;
  Decision on_trial_result(TrialControl& run, const Trial& t, const Result& r) override;
  void on_trial_complete(TrialControl& run, const Trial& t, const Result* last) override;
  void on_trial_error(TrialControl& run, const Trial& t) override;
  const Trial* choose_trial_to_run(TrialControl& run) override;
  std::string name() const override { return "ASHA"; }

  /// Each bracket's rung milestones, lowest first.
  std::vector<std::vector<double>> milestones() const;
  /// The bracket a trial was dealt to; throws usage_error for an unknown trial.
  std::size_t bracket_of(const std::string& trial_id) const;

 private:
  // A recorded score (signed: larger is better); best first, ties in the order recorded.
  struct Entry {
    double score = 0;
    std::size_t seq = 0;
    std::string trial_id;
    bool operator<(const Entry& o) const { return score != o.score ? score > o.score : seq < o.seq; }
  };
  struct Rung {
    double milestone = 0;
    std::set<Entry> ranked;
    std::vector<double> ascending;  // the same scores, sorted for the cutoff
    std::unordered_set<std::string> recorded;
    // promotion: trials paused here and not promoted yet.
    std::unordered_set<std::string> waiting;
  };
  struct TrialState {
    std::size_t bracket = 0;
    // promotion: the rung the trial is paused at, waiting to be promoted; -1 when none.
    int waiting_at = -1;
  };

  TrialState& state_of(const std::string& trial_id);
  // The highest rung of the bracket at or below `time` (and below max_t when `below_max_t`);
  // -1 when none.
  int rung_at(std::size_t bracket, double time, bool below_max_t) const;
  // Records the score at the rung; false when the trial was recorded there already.
  bool record(Rung& rung, const std::string& trial_id, double score);
  // Marks the trial as no longer waiting at a rung (promoted, or ended).
  void stop_waiting(TrialState& st, const std::string& trial_id);
  Decision stopping_rule(TrialState& st, const std::string& trial_id, double time, double score);
  Decision promotion_rule(TrialState& st, const std::string& trial_id, double time, double score);

  AshaOptions options_;
  std::vector<std::vector<Rung>> brackets_;  // per bracket, rungs lowest first
  std::map<std::string, TrialState> trials_;
  std::size_t added_ = 0;
  std::size_t recorded_ = 0;
};

}  // namespace lumen::tune
