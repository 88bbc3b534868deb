/// @file
/// What a trial reports: metrics once per iteration, and checkpoints of its state.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lumen::tune {

/// The numbers a trial reports for one iteration: {{"loss", 0.31}, {"accuracy", 0.88}}.
using Metrics = std::vector<std::pair<std::string, double>>;

/// One report of one trial. Besides the trial's own metrics, get() knows
/// "training_iteration" (1 for the first report), "time_this_iter_s" and "time_total_s"
/// (seconds of the trial's running time, across restarts), which schedulers and stoppers may
/// use as their time axis.
struct Result {
  std::string trial_id;  ///< the trial that reported it
  std::int64_t training_iteration = 0;  ///< 1 for the first report, across restarts
  double time_this_iter_s = 0;  ///< seconds this iteration took
  double time_total_s = 0;  ///< seconds of the trial's running time so far, across restarts
  Metrics metrics;  ///< the trial's own metrics, as reported

  /// The metric's value, or nullopt if this report has none.
  std::optional<double> find(std::string_view name) const noexcept;
  /// The metric's value; throws usage_error naming the metric and the trial if it is missing.
  double get(std::string_view name) const;
};

/// A snapshot of a trial's state, taken by the trainable: opaque bytes that the trainable can
/// load again. A trial resumes from its latest checkpoint after a failure, a pause, a
/// restore of the experiment, or (under PBT) another trial's exploit.
struct Checkpoint {
  std::string bytes;  ///< the trainable's state, as it saved it
  std::int64_t training_iteration = 0;  ///< the iteration it was taken at
};

}  // namespace lumen::tune
