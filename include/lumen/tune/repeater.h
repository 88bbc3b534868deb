/// @file
/// Repeater: runs each config of another searcher several times and hands it back the mean, for
/// noisy objectives (different seeds, different data splits).
///
/// @code
///   auto tpe = std::make_shared<TpeSearch>(TpeOptions{.seed = 1});
///   TuneConfig{.metric = "loss", .mode = "min", .num_samples = 60,   // 20 configs, 3 runs each
///              .searcher = std::make_shared<Repeater>(tpe, 3)}
/// @endcode
///
/// Each config from the inner searcher becomes a group of `repeat` trials, suggested one after
/// the other; with set_index, each trial's config also holds "__trial_index__" = 0 .. repeat - 1
/// (for the trainable to pick its seed, say). The inner searcher knows the group by its first
/// trial's id and sees neither the repeats nor their reports: when the whole group has
/// completed, its on_trial_complete gets a Result with that id whose only metric is the mean of
/// the group's values (training_iteration the largest among them). A trial's value is the metric
/// of its result at completion, or, when that one lacks it, of its last report that had it;
/// errored trials and trials without a value are left out of the mean. A group without any value
/// completes as errored when all of its trials errored, otherwise with a null result.
///
/// After a restore, the groups are rebuilt from the trials made before (add_existing_trial, in
/// creation order): a trial joins the group before it while that group is not full and holds
/// the same config (and, with set_index, the next index).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "lumen/tune/searcher.h"

namespace lumen::tune {

/// Runs each config of another searcher `repeat` times and reports the mean back; see the top of
/// this file.
class Repeater final : public Searcher {
 public:
  /// The key set_index adds to each trial's config.
  static constexpr const char* trial_index_key = "__trial_index__";

  /// Throws usage_error for a null inner searcher or repeat < 1.
  Repeater(std::shared_ptr<Searcher> inner, int repeat, bool set_index = true);

  /// Sets the inner searcher up with num_samples / repeat. Throws usage_error without a metric or
  /// when num_samples is not a multiple of repeat (the last group could not complete).
  void setup(const SearchSetup& s) override;
  Suggestion suggest(const std::string& trial_id) override;
  void on_trial_result(const std::string& trial_id, const Result& r) override;
  void on_trial_complete(const std::string& trial_id, const Result* last, bool errored) override;
  /// {"inner": the inner searcher's state}.
  nlohmann::json save() const override;
  /// Takes save()'s state (JSON null: the inner's state is null too); throws usage_error for
  /// anything else.
  void restore(const nlohmann::json& state) override;
  void add_existing_trial(const std::string& trial_id, const Config& config) override;

  /// Trials per config.
  int repeat() const noexcept { return repeat_; }
  /// The searcher it wraps.
  const Searcher& inner() const noexcept { return *inner_; }

 private:
  struct Group {
    std::string primary;  // the first trial's id: the inner searcher's name for the group
    Config config;        // as the inner searcher gave it
    int made = 0;
    int ended = 0;
    int errored = 0;
    std::vector<double> values;
    std::int64_t iteration = 0;
  };
  Config indexed(const Group& g, int index) const;

  std::shared_ptr<Searcher> inner_;
  int repeat_;
  bool set_index_;
  std::string metric_;
  // The group new trials join, until it is full.
  std::shared_ptr<Group> filling_;
  // The groups of the trials not yet ended, by trial id.
  std::unordered_map<std::string, std::shared_ptr<Group>> group_of_;
  // The latest reported value of the metric, by trial id.
  std::unordered_map<std::string, double> last_metric_;
};

}  // namespace lumen::tune
