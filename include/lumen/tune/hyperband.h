/// @file
/// HyperBandScheduler: synchronous HyperBand, as Ray Tune's HyperBandScheduler.
///
/// @code
///   TuneConfig{.metric = "accuracy", .mode = "max", .num_samples = 143,
///              .scheduler = std::make_shared<HyperBandScheduler>(HyperBandOptions{.max_t = 81})}
/// @endcode
///
/// With s_max = floor(log_rf(max_t)) (rf: reduction_factor), bracket s = 0 .. s_max holds
/// n(s) = ceil((s_max + 1) / (s + 1) * rf^s) trials that first run to r(s) = max_t / rf^s; for
/// max_t = 81, rf = 3 that is 5 trials to 81, 8 to 27, 15 to 9, 34 to 3 and 81 to 1. Trials fill
/// the brackets in that order, as Ray does (smallest bracket first; the paper's HyperBand runs
/// the largest first), one after another as they are added; after the last, a new round of
/// brackets begins.
///
/// Within a bracket, a trial pauses when its time reaches the bracket's milestone. Once every
/// live trial of the bracket has reached it, and the bracket is full (or the searcher is
/// finished, so it never will be), the bracket cuts: of its m live trials the best
/// max(1, floor(m / rf)) survive and the rest stop; the milestone grows by rf (to max_t after s
/// cuts), and choose_trial_to_run resumes the survivors. Trials that end on their own (return,
/// or fail) leave the bracket and are not waited for. At max_t a trial stops when
/// stop_last_trials. A trial ranks by its latest value of the metric, below the others if none;
/// reports without the time attribute (or with NaN as time or metric) are passed over.
///
/// Milestones are real numbers: with a max_t that is not a power of rf, a training_iteration
/// axis pauses at the first iteration at or past max_t / rf^s.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lumen/tune/scheduler.h"

namespace lumen::tune {

/// HyperBandScheduler's settings; the constructor checks them (usage_error naming the field).
struct HyperBandOptions {
  /// The time axis: a field of Result (training_iteration, time_total_s, time_this_iter_s) or a
  /// reported metric that grows with training.
  std::string time_attr = "training_iteration";
  /// What to compare, and whether it is minimized ("min") or maximized ("max"); empty: the
  /// experiment's (TuneConfig's metric and mode).
  std::string metric{};
  std::string mode{};  ///< "min" or "max"; empty: the experiment's
  /// The most time (in time_attr's units) a trial runs. > 0.
  double max_t = 81;
  /// How many times fewer trials each cut keeps, and how many times longer they run. > 1.
  double reduction_factor = 3;
  /// Whether trials that reach max_t stop; false lets them run until they return.
  bool stop_last_trials = true;
};

/// Synchronous HyperBand; see the top of this file.
class HyperBandScheduler final : public TrialScheduler {
 public:
  /// One bracket of a round.
  struct BracketShape {
    int s = 0;               ///< how many cuts it makes
    std::size_t trials = 0;  ///< n(s)
    double milestone = 0;    ///< r(s), its first milestone
  };

  /// Throws usage_error naming the option for an invalid one.
  explicit HyperBandScheduler(HyperBandOptions options = {});

  void set_search_properties(const std::string& metric, Mode mode) override;
  void on_trial_add(TrialControl& run, const Trial& t) override;
  Decision on_trial_result(TrialControl& run, const Trial& t, const Result& r) override;
  void on_trial_complete(TrialControl& run, const Trial& t, const Result* last) override;
  void on_trial_error(TrialControl& run, const Trial& t) override;
  /// A survivor of a cut, in the order they survived; else a pending trial; else null (a new
  /// trial).
  /// Once the searcher is finished, first cuts the brackets that were left unfilled.
  const Trial* choose_trial_to_run(TrialControl& run) override;
  std::string name() const override { return "HyperBand"; }

  /// The brackets of one round, in the order trials fill them.
  const std::vector<BracketShape>& round() const noexcept { return round_; }
  /// Which bracket a trial is in: its index in the order of creation (round after round: the
  /// second round's first bracket is round().size()), and that bracket's current milestone.
  std::size_t bracket_of(const std::string& trial_id) const;
  /// The current milestone (time_attr's units) of the bracket with this index.
  double milestone_of(std::size_t bracket) const;

 private:
  struct Bracket {
    BracketShape shape;
    int cuts = 0;
    double milestone = 0;
    std::vector<std::string> members;  // in the order added
  };
  struct TrialState {
    std::size_t bracket = 0;
    std::optional<double> time;   // of its last report
    std::optional<double> score;  // signed, of its last report with the metric
    bool live = true;             // not ended, not cut
    bool resume = false;          // survived a cut and waits to be resumed
  };

  TrialState& state_of(const std::string& trial_id);
  bool final_stage(const Bracket& b) const { return b.cuts >= b.shape.s; }
  bool reached_max_t(const TrialState& st) const;
  // Cuts the bracket as often as it is ready to; `current` is the trial whose report is being
  // handled (its fate is the caller's answer), or empty.
  void cut_while_ready(TrialControl& run, std::size_t bracket, const std::string& current);
  // Ends a trial the scheduler cut or that reached max_t, other than the current one.
  void end_other(TrialControl& run, const std::unordered_map<std::string_view, const Trial*>& waiting,
                 const std::string& trial_id);

  HyperBandOptions options_;
  std::vector<BracketShape> round_;
  std::vector<Bracket> brackets_;
  std::map<std::string, TrialState> trials_;
  std::vector<std::string> to_resume_;  // survivors of cuts, in the order they survived
  bool cutting_ = false;
};

}  // namespace lumen::tune
