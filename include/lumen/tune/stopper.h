/// @file
/// Stoppers: when trials, or the whole experiment, end regardless of their schedulers.
///
/// @code
///   RunConfig{.stop = any_of({max_iterations(100), trial_plateau("loss"), timeout(10min)})}
/// @endcode
///
/// The tuner asks a stopper after every result (stop_trial) and after every result and at
/// least once a second (stop_all), under its lock: a stopper needs no locking of its own.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lumen/tune/result.h"
#include "lumen/tune/trial.h"

namespace lumen::tune {

/// Ends trials, or the whole experiment, regardless of the scheduler. Implement stop_trial (and
/// stop_all for the experiment); see the top of this file.
class Stopper {
 public:
  virtual ~Stopper() = default;
  /// Called once with the experiment's metric and mode before the first trial.
  virtual void set_search_properties(const std::string& metric, Mode mode);
  /// Whether the trial that reported r ends now.
  virtual bool stop_trial(const std::string& trial_id, const Result& r) = 0;
  /// Whether every trial ends now (the experiment is over).
  virtual bool stop_all() { return false; }
};

/// Ends each trial at its n-th iteration.
std::shared_ptr<Stopper> max_iterations(std::int64_t n);
/// Ends a trial once `metric` reaches `threshold`: >= it when maximized, <= when minimized.
std::shared_ptr<Stopper> metric_reaches(std::string metric, double threshold);
/// Ends a trial whose metric has flattened: the standard deviation of its last `num_results`
/// values is at most `std`, after at least `grace_period` results. Empty metric: the
/// experiment's.
std::shared_ptr<Stopper> trial_plateau(std::string metric = "", double std = 0.01, int num_results = 4, int grace_period = 4);
/// Ends the experiment once the best `top` values of the metric reported so far agree to within
/// a standard deviation of `std`, on more than `patience` reports in a row (once `top` values
/// exist).
std::shared_ptr<Stopper> experiment_plateau(std::string metric = "", int top = 10, double std = 0.001, int patience = 0);
/// Ends the experiment `budget` after its first trial started.
std::shared_ptr<Stopper> timeout(std::chrono::duration<double> budget);
/// Stops a trial (the experiment) when any of the stoppers does.
std::shared_ptr<Stopper> any_of(std::vector<std::shared_ptr<Stopper>> stoppers);
/// A custom rule for trials.
std::shared_ptr<Stopper> stop_trial_when(std::function<bool(const std::string& trial_id, const Result&)> rule);

}  // namespace lumen::tune
