/// @file
/// RandomSearch: Ray's default searcher. Every point of the space's grid, num_samples times
/// over, with the other keys drawn at random; points_to_evaluate first.
///
/// With a seed, the same space gives the same trials in the same order on every run (of one
/// build: the draws come from std::mt19937_64 through the standard library's distributions).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "lumen/tune/searcher.h"

namespace lumen::tune {

/// RandomSearch's settings.
struct RandomSearchOptions {
  /// The draws' seed; none: a fresh one from std::random_device.
  std::optional<std::uint64_t> seed{};
  /// Configs to run first, as written (missing keys are drawn). They are the first of the
  /// num_samples times grid-size trials (all of them run, if there are more).
  std::vector<nlohmann::json> points_to_evaluate{};
};

/// Ray's default searcher: the grid num_samples times, other keys drawn at random; see the top of
/// this file.
class RandomSearch final : public Searcher {
 public:
  /// A searcher with these settings; the space comes with setup().
  explicit RandomSearch(RandomSearchOptions options = {});
  void setup(const SearchSetup& s) override;
  Suggestion suggest(const std::string& trial_id) override;
  nlohmann::json save() const override;
  void restore(const nlohmann::json& state) override;

  /// Trials it gives in all: num_samples times the grid's size, or the points_to_evaluate if
  /// there are more of them.
  std::size_t total() const noexcept { return total_; }

 private:
  Config draw(std::size_t index);
  RandomSearchOptions options_;
  std::uint64_t seed_ = 0;
  const ParamSpace* space_ = nullptr;
  std::size_t grid_size_ = 1;
  std::size_t total_ = 0;
  std::size_t given_ = 0;
};

}  // namespace lumen::tune
