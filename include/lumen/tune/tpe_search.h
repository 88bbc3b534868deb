/// @file
/// TpeSearch: the Tree-structured Parzen Estimator (Bergstra, Bardenet, Bengio and Kegl,
/// "Algorithms for Hyper-Parameter Optimization", NeurIPS 2011), a model-based searcher.
///
/// @code
///   TuneConfig{.metric = "loss", .mode = "min", .num_samples = 100,
///              .searcher = std::make_shared<TpeSearch>(TpeOptions{.seed = 7})}
/// @endcode
///
/// After n_startup_trials random trials, each suggestion splits the trials seen so far into the
/// best gamma fraction ("good") and the rest ("bad"), fits a density l(x) to the good values
/// and g(x) to the bad ones, draws n_ei_candidates values from l and keeps the one with the
/// largest l(x) / g(x), which maximises the expected improvement under the model. Each key of
/// the space has a model of its own (the independent TPE of the paper and of Hyperopt's and
/// Optuna's defaults):
///
///   - uniform, quniform, loguniform, qloguniform: a mixture of Gaussians truncated to the
///     bounds, one per observed value plus a prior component at the centre of the range with
///     the range as its width; log scales are modelled in log space. Each observation's width
///     is the larger distance to its neighbours (a bound counts as one), clipped to
///     [range / min(100, components), range], the paper's rule. q rounds the chosen value.
///   - randint, qrandint, lograndint: as the real case on the integers' span (lograndint in log
///     space), then rounded to an allowed integer.
///   - randn, qrandn: an untruncated mixture with the distribution itself as the prior
///     component, widths clipped to [sd / min(100, components), sd].
///   - choice: each value's count among the observations plus a prior of 1 spread evenly.
///   - sample_from: not modelled; it runs on the chosen values as usual.
///   - grid_search: refused by setup() with usage_error: TPE draws values, it cannot walk a grid
///     (use choice, or RandomSearch for a grid).
///
/// Observations are the trials that completed without error and have a value of the metric:
/// the metric of the result given at completion, or, when that one lacks it, of the trial's last
/// report that had it. Trials still running are not modelled. Suggestions stop (done()) after
/// num_samples, points_to_evaluate included.
///
/// With a seed, the same sequence of calls gives the same suggestions on every run of one build.
/// save() keeps the number of suggestions given and the generator's state; the observations
/// come back through add_existing_trial and on_trial_complete, which the tuner replays.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "lumen/tune/searcher.h"

namespace lumen::tune {

/// TpeSearch's settings.
struct TpeOptions {
  /// The draws' seed; none: a fresh one from std::random_device.
  std::optional<std::uint64_t> seed{};
  /// Suggestions are random until this many observations have come in (at least one is needed).
  int n_startup_trials = 10;
  /// The good fraction: the best min(ceil(gamma * n), 25) of n observations (Optuna's split;
  /// the cap keeps l(x) sharp in long runs). In (0, 1].
  double gamma = 0.25;
  /// Values drawn from l(x) per key and suggestion; the best ratio l(x) / g(x) wins. At least 1.
  int n_ei_candidates = 24;
  /// Configs to run first, as JSON objects (nested objects for nested keys); keys they leave out
  /// are drawn. They are the first of the num_samples suggestions and are observed like any other.
  std::vector<nlohmann::json> points_to_evaluate{};
};

/// The Tree-structured Parzen Estimator; see the top of this file.
class TpeSearch final : public Searcher {
 public:
  /// Throws usage_error for options out of range or a point that is not a JSON object.
  explicit TpeSearch(TpeOptions options = {});

  /// Throws usage_error without a space or a metric, for num_samples < 1, for a grid_search key,
  /// and for a point_to_evaluate naming a key that the space does not draw.
  void setup(const SearchSetup& s) override;
  Suggestion suggest(const std::string& trial_id) override;
  void on_trial_result(const std::string& trial_id, const Result& r) override;
  void on_trial_complete(const std::string& trial_id, const Result* last, bool errored) override;
  /// {"given": suggestions so far, "rng": the generator's state}.
  nlohmann::json save() const override;
  /// Takes save()'s state; throws usage_error for anything else.
  void restore(const nlohmann::json& state) override;
  void add_existing_trial(const std::string& trial_id, const Config& config) override;

  /// Suggestions given so far: restored ones and existing trials included.
  std::size_t given() const noexcept { return given_ > existing_ ? given_ : existing_; }
  /// Completed trials the model learns from.
  std::size_t observations() const noexcept { return observations_.size(); }

 private:
  struct Observation {
    Config config;
    double score;  // the metric, negated under Mode::max: lower is better
  };
  Config model_config();

  TpeOptions options_;
  Rng rng_;
  SearchSetup setup_;
  std::vector<std::pair<std::string, const Domain*>> dimensions_;
  std::size_t given_ = 0;
  std::size_t existing_ = 0;  // add_existing_trial's count: a floor under given_ without saved state
  // By trial id, until the trial completes.
  std::unordered_map<std::string, Config> configs_;
  // The latest reported value of the metric, by trial id.
  std::unordered_map<std::string, double> last_metric_;
  std::vector<Observation> observations_;
};

}  // namespace lumen::tune
