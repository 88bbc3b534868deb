/// @file
/// Tuner: runs an experiment. Trials are lumen tasks, started as resources allow, their
/// configs from a searcher, their fates decided by a scheduler and stoppers at each report.
///
/// @code
///   using namespace lumen::tune;
///   Tuner tuner(train, ParamSpace{{"lr", loguniform(1e-4, 1e-1)}},
///               TuneConfig{.metric = "loss", .mode = "min", .num_samples = 50,
///                          .scheduler = std::make_shared<AshaScheduler>()},
///               RunConfig{.name = "mnist", .storage_path = "runs", .stop = max_iterations(20)});
///   ResultGrid grid = tuner.fit();
/// @endcode
///
/// fit() is called from a thread that is not one of lumen's workers (a task's wait would hold a
/// worker a trial needs); from a task it throws usage_error. The runtime in scope runs the
/// trials; each holds `cpus_per_trial` of its "CPU" resource (and `resources_per_trial`), and at
/// most workers / cpus_per_trial run at once.
///
/// Storage (when storage_path is set): storage_path/name/ holds experiment.json (settings),
/// trials.jsonl (one line per trial start and end, appended as it happens), curves.svg (each
/// trial's metric by iteration), and per trial a folder with params.json, result.json (one
/// JSON line per report), progress.csv and its checkpoints (checkpoint_NNNNNN.bin, the newest
/// num_to_keep kept). Tuner::restore continues such an experiment after its process died:
/// ended trials are not run again, unfinished ones resume from their latest checkpoint.
///
/// Errors in the setup (an empty space, a mode that is neither "min" nor "max", a scheduler that
/// needs a metric without one, a storage path that cannot be written, num_samples < 1) throw
/// usage_error from fit() before any trial runs. A metric that no trial reports throws
/// usage_error from the ResultGrid's best().
#pragma once

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lumen/tune/result_grid.h"
#include "lumen/tune/scheduler.h"
#include "lumen/tune/search_space.h"
#include "lumen/tune/searcher.h"
#include "lumen/tune/stopper.h"
#include "lumen/tune/trainable.h"

namespace lumen::tune {

namespace detail {
class Controller;
}

/// What the experiment searches for and how: metric and mode, trials, scheduler, searcher,
/// resources per trial.
struct TuneConfig {
  std::string metric{};    ///< what schedulers, searchers and best() compare
  std::string mode{};      ///< "min" or "max" (required with a metric)
  int num_samples = 1;     ///< trials to draw (RandomSearch: times the grid)
  int max_concurrent_trials = 0;  ///< 0: as many as the resources allow
  std::shared_ptr<TrialScheduler> scheduler{};  ///< null: FifoScheduler
  std::shared_ptr<Searcher> searcher{};         ///< null: RandomSearch (unseeded)
  double cpus_per_trial = 1;                    ///< whole units of the runtime's "CPU" resource
  std::vector<std::pair<std::string, double>> resources_per_trial{};  ///< other resources
  /// The whole experiment's budget: trials still running then are stopped; 0: none.
  std::chrono::duration<double> time_budget{0};
};

/// How the tuner shows progress while fit() runs.
enum class Progress {
  automatic,  ///< a table redrawn in place on a terminal, otherwise plain lines every 30 s
  table,      ///< the table redrawn in place (ANSI escapes), each `progress_interval`
  lines,      ///< a plain summary line each `progress_interval`
  silent,
};

/// How the experiment runs: its name and files, stoppers, failures, progress.
struct RunConfig {
  std::string name{};          ///< the experiment's folder under storage_path (a folder name:
                               ///< no '/', not . or ..); empty: "tune_<time>"
  std::string storage_path{};  ///< empty: nothing is written
  std::shared_ptr<Stopper> stop{};  ///< ends trials or the experiment; null: none
  int max_failures = 0;       ///< retries of a failing trial (from its latest checkpoint); -1: no
                              ///< limit (a trial that always fails then runs until a stopper or
                              ///< the time budget ends the experiment)
  int checkpoints_to_keep = 0;  ///< on disk, per trial; 0: all
  Progress progress = Progress::automatic;  ///< how progress is shown while fit() runs
  std::chrono::duration<double> progress_interval{0};  ///< 0: 1 s for a table, 30 s for lines
  std::FILE* progress_out = nullptr;  ///< null: stderr
};

/// What Tuner::restore does with trials that had failed for good.
struct RestoreOptions {
  bool resume_errored = false;   ///< errored trials run again from their latest checkpoint
  bool restart_errored = false;  ///< errored trials run again from scratch
};

/// Runs an experiment: a trainable over a search space, see the top of this file.
class Tuner {
 public:
  /// An experiment of `trainable` over `space`; nothing runs before fit().
  Tuner(TrainFunction trainable, ParamSpace space, TuneConfig tune = {}, RunConfig run = {});
  ~Tuner();
  /// Takes over o's experiment; o can no longer fit().
  Tuner(Tuner&&) noexcept;
  /// Takes over o's experiment; o can no longer fit().
  Tuner& operator=(Tuner&&) noexcept;

  /// Continues the experiment stored at `path` (storage_path/name). The trainable, space,
  /// scheduler, searcher and stoppers are code and come again from the caller; metric, mode,
  /// num_samples, the trials and the searcher's state come from the folder. Throws usage_error
  /// when `path` holds no experiment.
  static Tuner restore(const std::string& path, TrainFunction trainable, ParamSpace space, TuneConfig tune = {},
                       RunConfig run = {}, RestoreOptions options = {});

  /// Runs the experiment to its end and returns every trial. Call it once (a second call, from
  /// any thread, throws usage_error).
  ResultGrid fit();

 private:
  explicit Tuner(std::unique_ptr<detail::Controller> c);
  std::unique_ptr<detail::Controller> controller_;
};

}  // namespace lumen::tune
