/// @file
/// ResultGrid: what Tuner::fit returns. Every trial's config, reports, status and error, and
/// the best trial by a metric.
///
/// @code
///   auto grid = tuner.fit();
///   const auto& best = grid.best();                          // TuneConfig's metric and mode
///   std::cout << best.config.dump() << best.last_result()->get("loss");
///   grid.best("accuracy", "max", Scope::avg);
///   grid.write_csv("trials.csv");
/// @endcode
#pragma once

#include <cstddef>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "lumen/tune/trial.h"

namespace lumen::tune {

/// Which of a trial's results count when trials are compared.
enum class Scope {
  last,        ///< the last report
  all,         ///< the best report
  avg,         ///< the mean over every report
  last_n_avg,  ///< the mean over the last n reports (n = 0: all of them)
};

/// Every trial of an experiment after Tuner::fit(), in creation order, with ways to pick the best
/// and to write them out.
class ResultGrid {
 public:
  ResultGrid() = default;
  /// For lumen's own code (the tuner): the trials, and the metric and mode that best() uses by
  /// default.
  ResultGrid(std::vector<Trial> trials, std::string metric, Mode mode, std::string path);

  /// Number of trials.
  std::size_t size() const noexcept { return trials_.size(); }
  /// Trial i in creation order; throws std::out_of_range past size().
  const Trial& operator[](std::size_t i) const { return trials_.at(i); }
  /// Iteration over the trials in creation order.
  /// @{
  auto begin() const noexcept { return trials_.begin(); }
  auto end() const noexcept { return trials_.end(); }
  /// @}
  /// Trials that failed for good.
  std::size_t num_errors() const noexcept;
  /// Trials that finished (TrialStatus::terminated).
  std::size_t num_terminated() const noexcept;

  /// The best trial by `metric` (empty: TuneConfig's) and mode ("min" or "max"; empty:
  /// TuneConfig's), over the scope's results. Values that are NaN or infinite do not count
  /// (a diverged trial's -inf is not a best loss), nor do trials that never reported the
  /// metric; when no trial counts, throws usage_error naming the metric.
  const Trial& best(const std::string& metric = "", const std::string& mode = "", Scope scope = Scope::last,
                    std::size_t n = 5) const;
  /// The trial's value under the scope, or nullopt when it reported none.
  std::optional<double> value(const Trial& t, const std::string& metric, Scope scope = Scope::last,
                              std::size_t n = 5) const;

  /// One row per trial: id, status, iterations, error, every config key ("config/lr"), and the
  /// last result's metrics. RFC 4180 quoting. Throws usage_error when the stream fails.
  void write_csv(std::ostream& out) const;
  /// As write_csv(std::ostream&), into the file at path (created or truncated).
  void write_csv(const std::string& path) const;
  /// An SVG chart of every trial's `metric` (empty: the experiment's) against its
  /// training_iteration: trials a scheduler or stopper ended early end in a cross, the best
  /// trial is drawn on top in its own colour. Throws usage_error when the file cannot be written.
  void write_svg(const std::string& path, const std::string& metric = "") const;

  /// The experiment's folder (storage_path/name), empty when it stored nothing.
  const std::string& path() const noexcept { return path_; }
  /// The experiment's metric (TuneConfig::metric).
  const std::string& metric() const noexcept { return metric_; }
  /// The experiment's mode.
  Mode mode() const noexcept { return mode_; }

 private:
  std::vector<Trial> trials_;
  std::string metric_;
  Mode mode_ = Mode::min;
  std::string path_;
};

}  // namespace lumen::tune
