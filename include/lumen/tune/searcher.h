/// @file
/// Searchers: where trials' configs come from. RandomSearch (random_search.h) draws from the
/// space and walks its grid; TpeSearch (tpe_search.h) models the results seen so far;
/// ConcurrencyLimiter and Repeater (concurrency_limiter.h, repeater.h) wrap another searcher.
///
/// The tuner calls a searcher under its own lock, one call at a time: a searcher needs no
/// locking of its own.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "lumen/tune/result.h"
#include "lumen/tune/search_space.h"
#include "lumen/tune/trial.h"

namespace lumen::tune {

/// What the tuner tells a searcher before its first suggestion.
struct SearchSetup {
  std::string metric;  ///< TuneConfig::metric
  Mode mode = Mode::min;  ///< TuneConfig::mode
  const ParamSpace* space = nullptr;  ///< lives as long as the experiment
  int num_samples = 1;                ///< TuneConfig::num_samples
};

/// A searcher's answer to "what next?".
struct Suggestion {
  /// What kind of answer this is.
  enum class Kind {
    config,    ///< run a trial with `config`
    wait,      ///< nothing now (at a concurrency limit, waiting for results); ask again later
    finished,  ///< no more trials
  };
  Kind kind = Kind::finished;  ///< run, wait, or no more
  Config config;  ///< the trial's config, for Kind::config

  /// Run a trial with config c.
  static Suggestion run(Config c) { return {Kind::config, std::move(c)}; }
  /// Nothing now; ask again later.
  static Suggestion later() { return {Kind::wait, {}}; }
  /// No more trials.
  static Suggestion done() { return {Kind::finished, {}}; }
};

/// The base of searchers: proposes the configs of new trials and learns from their results. The
/// tuner calls it under its lock, one call at a time.
class Searcher {
 public:
  virtual ~Searcher() = default;
  /// Called once before the first suggestion. Throws usage_error for a space or setup the
  /// searcher cannot work with (naming what is wrong).
  virtual void setup(const SearchSetup& s) = 0;
  /// The config of the trial `trial_id` about to be made, or later() / done(). The tuner asks
  /// until done(): the searcher decides how many trials run (RandomSearch and TpeSearch stop at
  /// num_samples). A searcher serves one experiment: setting one up twice throws usage_error.
  virtual Suggestion suggest(const std::string& trial_id) = 0;
  /// A report of a trial this searcher suggested.
  virtual void on_trial_result(const std::string& trial_id, const Result& r);
  /// The trial ended: `last` is its last result (null if it reported none); `errored` when it
  /// failed for good.
  virtual void on_trial_complete(const std::string& trial_id, const Result* last, bool errored);
  /// State to resume from after the process died (Tuner::restore): what the searcher cannot
  /// rebuild from the trials' records. On a restore the tuner calls setup, then restore with
  /// the state saved last (unless it was null), then add_existing_trial for every trial in
  /// creation order, then on_trial_complete for the ended ones. JSON null when there is none.
  virtual nlohmann::json save() const;
  /// Takes back the state save() returned; see save() for the order of calls on a restore.
  virtual void restore(const nlohmann::json& state);
  /// A trial made before the restore, with the config it was given.
  virtual void add_existing_trial(const std::string& trial_id, const Config& config);
};

}  // namespace lumen::tune
