/// @file
/// ConcurrencyLimiter: caps how many of another searcher's trials are alive at once, so that a
/// model-based searcher learns from some results before it suggests more.
///
/// @code
///   auto tpe = std::make_shared<TpeSearch>(TpeOptions{.seed = 1});
///   TuneConfig{.searcher = std::make_shared<ConcurrencyLimiter>(tpe, 4)}
/// @endcode
///
/// A trial is alive from the suggestion that made it until its on_trial_complete. At the limit,
/// suggest() answers later() without asking the inner searcher. Reports go to the inner
/// searcher as they come, and completions too, except in batch mode.
///
/// Batch mode (as Ray's batch=true): suggestions form batches of max_concurrent trials; a batch
/// is closed when it is full or when the inner searcher answers later() or done(), and no new
/// trial starts until the whole batch has completed. The batch's completions then reach the
/// inner searcher together, in the order they came, so that it updates its model once per batch.
///
/// After a restore, the trials made before count as alive until their (replayed) completion,
/// which goes to the inner searcher at once, batch or not: the batch they belonged to is not
/// kept.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "lumen/tune/searcher.h"

namespace lumen::tune {

/// Caps the trials of another searcher that are alive at once; see the top of this file.
class ConcurrencyLimiter final : public Searcher {
 public:
  /// Throws usage_error for a null inner searcher or max_concurrent < 1.
  ConcurrencyLimiter(std::shared_ptr<Searcher> inner, int max_concurrent, bool batch = false);

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

  /// Trials alive now, completed ones of an unfinished batch included.
  std::size_t live() const noexcept { return live_.size(); }
  /// The cap given to the constructor.
  int max_concurrent() const noexcept { return max_concurrent_; }
  /// The searcher it wraps.
  const Searcher& inner() const noexcept { return *inner_; }

 private:
  struct Completion {
    std::string trial_id;
    std::optional<Result> last;
    bool errored;
  };
  void flush_batch();

  std::shared_ptr<Searcher> inner_;
  int max_concurrent_;
  bool batch_;
  std::unordered_set<std::string> live_;
  std::unordered_set<std::string> existing_;  // alive trials made before a restore
  std::vector<Completion> completed_;         // batch mode: this batch's completions, held back
  bool batch_closed_ = false;
};

}  // namespace lumen::tune
