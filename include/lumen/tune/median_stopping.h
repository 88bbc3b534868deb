/// @file
/// MedianStoppingRule: stops a trial whose best result so far is worse than the median of the
/// other trials' running averages at the same point in time, as Ray Tune's MedianStoppingRule
/// (from Google Vizier).
///
/// @code
///   TuneConfig{.metric = "loss", .mode = "min", .num_samples = 20,
///              .scheduler = std::make_shared<MedianStoppingRule>(MedianStoppingOptions{.grace_period = 30})}
/// @endcode
///
/// At each report of a trial at time t >= grace_period, the other trials compared are those
/// whose latest report is at t or beyond and that reported at some time in [grace_period, t]; a
/// trial's running average at t is the mean of its values reported in [grace_period, t]. With
/// at least min_samples_required such trials, the trial ends (hard_stop) or pauses for good (its
/// later reports are let through) when its best value so far, over all its reports, is strictly
/// worse than the median of those averages. With fewer, it pauses to yield its slot when pending
/// or paused trials wait and it has run more than min_time_slice since it last yielded;
/// otherwise it goes on.
///
/// A report whose training_iteration is not past the trial's previous one (the trial restarted
/// from an earlier checkpoint) replaces the reports from that iteration on. Times must not
/// decrease along a trial's reports (no Result field does; a metric used as time_attr must
/// grow). Reports without the metric or the time attribute (or with NaN in either) are passed
/// over: the trial goes on.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "lumen/tune/scheduler.h"

namespace lumen::tune {

/// MedianStoppingRule's settings; the constructor checks them (usage_error naming the field).
struct MedianStoppingOptions {
  /// The time axis: a field of Result (time_total_s, training_iteration, time_this_iter_s) or a
  /// reported metric that grows with training.
  std::string time_attr = "time_total_s";
  /// What to compare, and whether it is minimized ("min") or maximized ("max"); empty: the
  /// experiment's (TuneConfig's metric and mode).
  std::string metric{};
  std::string mode{};  ///< "min" or "max"; empty: the experiment's
  /// No trial is judged before this much time (time_attr's units). >= 0.
  double grace_period = 60.0;
  /// How many other trials must have reached the time before a trial is judged. >= 1.
  int min_samples_required = 3;
  /// A trial without enough others to compare yields its slot at most once per this much time
  /// (time_attr's units). >= 0.
  double min_time_slice = 0;
  /// true: stop trials below the median; false: pause them.
  bool hard_stop = true;
};

/// Stops trials that do worse than the median of the others; see the top of this file.
class MedianStoppingRule final : public TrialScheduler {
 public:
  /// Throws usage_error naming the option for an invalid one.
  explicit MedianStoppingRule(MedianStoppingOptions options = {});

  void set_search_properties(const std::string& metric, Mode mode) override;
  Decision on_trial_result(TrialControl& run, const Trial& t, const Result& r) override;
  void on_trial_complete(TrialControl& run, const Trial& t, const Result* last) override;
  std::string name() const override { return "MedianStoppingRule"; }

 private:
  // One report, with running totals over the curve up to it, so that a running average is a
  // binary search away.
  struct Point {
    std::int64_t iteration = 0;
    double time = 0;
    double best = 0;            // the best value up to here (metric as reported, not signed)
    double sum_from_grace = 0;  // of the values reported at time >= grace_period, up to here
    int count_from_grace = 0;
  };

  // Adds a report to the trial's curve; false when it has no metric or time.
  bool add(const std::string& trial_id, const Result& r);
  // `a` better than `b` in the mode in force.
  bool better(double a, double b) const;

  MedianStoppingOptions options_;
  std::map<std::string, std::vector<Point>> curves_;
  std::map<std::string, double> last_yield_;
  std::set<std::string> judged_;  // paused below the median (hard_stop = false): not judged again
};

}  // namespace lumen::tune
