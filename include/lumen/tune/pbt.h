/// @file
/// PopulationBasedTraining: trials that fall behind take over a leader's checkpoint and a
/// perturbed copy of its config, as Ray Tune's PopulationBasedTraining (asynchronous mode).
///
/// @code
///   PbtOptions{.perturbation_interval = 5,
///              .hyperparam_mutations = {{"lr", loguniform(1e-4, 1e-1)}, {"batch", choice({32, 64, 128})}},
///              .seed = 7}
/// @endcode
///
/// Each trial is ranked by the metric of its latest report. When a trial's time reaches its
/// next perturbation point (perturbation_interval after its last one, and not before
/// burn_in_period), the live trials that have reported are sorted: the top and bottom
/// quantile_fraction of them (rounded up, at most half) are the leaders and the laggards. A
/// laggard exploits: of the leaders that have a checkpoint one is picked at random, and the
/// laggard is reset (TrialControl::reset_trial) to that leader's checkpoint and to the leader's
/// config explored, then paused so that the tuner resumes it so; choose_trial_to_run returns such
/// trials first. Otherwise, and when no leader has a checkpoint, the trial goes on. The trainable
/// must therefore save checkpoints for anything to be exploited.
///
/// Explore, key by key of hyperparam_mutations (nested spaces give "a/b" keys): with
/// resample_probability, or when the config's value cannot be perturbed, a fresh draw from the
/// key's Domain; otherwise a choice (or grid_search) moves to the value next to the current one
/// in its list, left or right at random (at either end of the list it may stay), and a number is
/// multiplied by one of perturbation_factors picked at random, rounded to the nearest integer
/// when it was an integer. Perturbed numbers are not clamped to the Domain's bounds (as in Ray),
/// but one that would leave what its type holds (inf, or an integer past 2^63) is drawn afresh.
///
/// After an exploit the trial's next perturbation point is counted from the leader's last one,
/// since it continues the leader's training. Draws come from one generator (std::mt19937_64):
/// with a seed, the same sequence of reports gives the same exploits. Reports without the metric
/// or the time attribute (or with NaN in either) are passed over.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lumen/tune/scheduler.h"
#include "lumen/tune/search_space.h"

namespace lumen::tune {

/// PopulationBasedTraining's settings; the constructor checks them (usage_error naming the field).
struct PbtOptions {
  /// The time axis: a field of Result (training_iteration, time_total_s, time_this_iter_s) or a
  /// reported metric that grows with training.
  std::string time_attr = "training_iteration";
  /// What to compare, and whether it is minimized ("min") or maximized ("max"); empty: the
  /// experiment's (TuneConfig's metric and mode).
  std::string metric{};
  std::string mode{};  ///< "min" or "max"; empty: the experiment's
  /// Time (time_attr's units) between a trial's perturbation points. > 0.
  double perturbation_interval = 60;
  /// No perturbation before this much time. >= 0.
  double burn_in_period = 0;
  /// The keys explore changes and how (see above): Domains only, not constants; not empty.
  ParamSpace hyperparam_mutations{};
  /// The share of trials in each of the top and bottom quantiles. In [0, 0.5].
  double quantile_fraction = 0.25;
  /// The chance that explore draws a key afresh instead of perturbing it. In [0, 1].
  double resample_probability = 0.25;
  /// What explore multiplies numbers by, one picked at random. Not empty; each > 0.
  std::vector<double> perturbation_factors = {1.2, 0.8};
  /// The generator's seed; none: a fresh one from std::random_device.
  std::optional<std::uint64_t> seed{};
};

/// One exploit: which trial took which one's place, and with what config.
struct PbtExploit {
  std::string trial_id;  ///< the laggard, reset
  std::string donor_id;  ///< the leader whose checkpoint and config it took
  double time = 0;       ///< the laggard's time (time_attr) when it happened
  std::int64_t training_iteration = 0;  ///< the laggard's iteration when it happened
  std::int64_t checkpoint_iteration = 0;  ///< of the donor's checkpoint it resumes from
  Config old_config;                      ///< the laggard's, before
  Config donor_config;                    ///< the leader's
  Config new_config;                      ///< the leader's, explored
  /// Per mutated key, what explore did: "resample", "* 1.2", "shift left", "shift right".
  std::vector<std::pair<std::string, std::string>> operations;
};

/// Population based training, asynchronous; see the top of this file.
class PopulationBasedTraining final : public TrialScheduler {
 public:
  /// Throws usage_error naming the option for an invalid one.
  explicit PopulationBasedTraining(PbtOptions options);

  void set_search_properties(const std::string& metric, Mode mode) override;
  void on_trial_add(TrialControl& run, const Trial& t) override;
  Decision on_trial_result(TrialControl& run, const Trial& t, const Result& r) override;
  void on_trial_complete(TrialControl& run, const Trial& t, const Result* last) override;
  void on_trial_error(TrialControl& run, const Trial& t) override;
  /// A trial reset by an exploit, first; else the oldest pending, else the oldest paused trial.
  const Trial* choose_trial_to_run(TrialControl& run) override;
  std::string name() const override { return "PopulationBasedTraining"; }

  /// Every exploit so far, oldest first.
  const std::vector<PbtExploit>& exploits() const noexcept { return exploits_; }

 private:
  struct TrialState {
    std::optional<double> score;  // signed, of its latest report with the metric
    double last_perturbation = 0;
    bool ended = false;
  };

  // The donor's config with the mutated keys explored; the operations go to `log`.
  Config explore(const Config& donor, std::vector<std::pair<std::string, std::string>>& log);

  PbtOptions options_;
  Rng rng_;
  std::map<std::string, TrialState> trials_;
  std::vector<std::string> order_;      // trial ids in the order added (ties rank by it)
  std::vector<std::string> to_resume_;  // reset by an exploit, not resumed yet
  std::vector<PbtExploit> exploits_;
};

}  // namespace lumen::tune
