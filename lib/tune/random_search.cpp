#include "lumen/tune/random_search.h"

#include <algorithm>
#include <limits>
#include <random>
#include <string>

#include "lumen/error.h"

namespace lumen::tune {

namespace {

// SplitMix64's finalizer: nearby inputs (consecutive indexes) give unrelated seeds.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

RandomSearch::RandomSearch(RandomSearchOptions options) : options_(std::move(options)) {
  for (const auto& p : options_.points_to_evaluate)
    if (!p.is_object())
      throw usage_error("lumen::tune::RandomSearch: each of points_to_evaluate must be a JSON object, got " + p.dump());
  seed_ = options_.seed ? *options_.seed : (std::uint64_t{std::random_device{}()} << 32 | std::random_device{}());
}

void RandomSearch::setup(const SearchSetup& s) {
  if (s.space == nullptr) throw usage_error("lumen::tune::RandomSearch: no search space");
  if (space_ != nullptr)
    throw usage_error("lumen::tune::RandomSearch: it already serves an experiment; make one per Tuner");
  space_ = s.space;
  grid_size_ = space_->grid_size();
  if (s.num_samples < 1) throw usage_error("lumen::tune::RandomSearch: num_samples must be at least 1");
  const auto samples = static_cast<std::size_t>(s.num_samples);
  if (grid_size_ > std::numeric_limits<std::size_t>::max() / samples)
    throw usage_error("lumen::tune::RandomSearch: num_samples (" + std::to_string(samples) + ") times the grid's " +
                      std::to_string(grid_size_) + " points overflows");
  total_ = std::max(options_.points_to_evaluate.size(), samples * grid_size_);
}

Config RandomSearch::draw(std::size_t index) {
  // Each trial's draws come from a generator of its own, seeded by its index: a trial's config
  // depends only on the seed and its place, which is also what makes restore() exact.
  Rng rng(mix(seed_ ^ mix(index)));
  const std::size_t points = options_.points_to_evaluate.size();
  if (index < points) {
    const Config point(options_.points_to_evaluate[index]);
    return space_->resolve(rng, 0, [&](const std::string& key, const Domain&) -> std::optional<nlohmann::json> {
      if (const nlohmann::json* v = point.find(key)) return *v;
      return std::nullopt;
    });
  }
  return space_->resolve(rng, (index - points) % grid_size_);
}

Suggestion RandomSearch::suggest(const std::string&) {
  if (space_ == nullptr) throw usage_error("lumen::tune::RandomSearch: suggest() before setup()");
  if (given_ >= total_) return Suggestion::done();
  return Suggestion::run(draw(given_++));
}

nlohmann::json RandomSearch::save() const { return {{"given", given_}, {"seed", seed_}}; }

void RandomSearch::restore(const nlohmann::json& state) {
  if (!state.is_object() || !state.contains("given") || !state.contains("seed"))
    throw usage_error("lumen::tune::RandomSearch::restore: the saved state is not RandomSearch's: " + state.dump());
  given_ = state.at("given").get<std::size_t>();
  seed_ = state.at("seed").get<std::uint64_t>();
}

}  // namespace lumen::tune
