/// @file
/// Trial: one run of the trainable with one config, as schedulers, searchers and results see it.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "lumen/tune/config.h"
#include "lumen/tune/result.h"

namespace lumen::tune {

/// Whether a metric is minimized or maximized.
enum class Mode { min, max };
/// "min" or "max"; anything else throws usage_error naming the text.
Mode parse_mode(std::string_view text);
/// "min" or "max".
const char* to_string(Mode m) noexcept;

/// Where a trial is in its life.
enum class TrialStatus {
  pending,     ///< made, not started yet (or waiting to be retried)
  running,     ///< its task runs the trainable
  paused,      ///< stopped by its scheduler for now, resumes from its latest checkpoint
  terminated,  ///< finished: the trainable returned, or a scheduler or stopper ended it
  error,       ///< failed more than max_failures times
};
/// The status' name: "PENDING", "RUNNING", ... as Ray Tune prints them.
const char* to_string(TrialStatus s) noexcept;

/// A trial's record. The tuner owns and changes it (under its lock); schedulers and searchers
/// only read it during their callbacks, and results read it after fit().
struct Trial {
  std::string id;                ///< "00000", "00001", ... in creation order
  Config config;  ///< the config it runs with (changed by a PBT exploit)
  TrialStatus status = TrialStatus::pending;  ///< where it is in its life
  std::vector<Result> results;   ///< every report, in order (after a restart from a checkpoint,
                                 ///< the reports past it are replaced)
  std::shared_ptr<const Checkpoint> checkpoint;  ///< the latest, or null
  int failures = 0;              ///< times the trainable threw
  std::string error;             ///< the last failure's message
  bool stopped_early = false;    ///< ended by its scheduler (ASHA's cut, say) or by the end of the
                                 ///< experiment (its time budget, a stopper's stop_all), rather
                                 ///< than by returning or by a stopper's rule for trials

  /// The last report, or null before the first.
  const Result* last_result() const noexcept { return results.empty() ? nullptr : &results.back(); }
};

}  // namespace lumen::tune
