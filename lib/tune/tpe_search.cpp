#include "lumen/tune/tpe_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <utility>

#include "lumen/error.h"

namespace lumen::tune {

namespace {

[[noreturn]] void bad(const std::string& why) { throw usage_error("lumen::tune::TpeSearch: " + why); }

// In [0, 1), from the generator's top 53 bits.
double uniform01(Rng& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

// Where a numeric domain's values live for the model: an axis (log space for log scales), with
// the prior component that stands for the domain's own distribution.
struct Axis {
  bool bounded = true;
  double low = 0, high = 0;  // bounded only
  double prior_mu = 0, prior_sigma = 1;
};

// The allowed integers of an integer domain that is not on a log scale: the multiples of step
// in [first, last]. randint's upper bound is excluded; qrandint's values are its bounds rounded
// to multiples of q, and contains() tells the two apart.
struct IntegerSpan {
  std::int64_t first, last, step;
};

IntegerSpan integer_span(const Domain& d) {
  const auto q = static_cast<std::int64_t>(d.q());
  const std::int64_t top = std::llround(d.high() / d.q()) * q;
  if (d.contains(nlohmann::json(top))) return {std::llround(d.low() / d.q()) * q, top, q};
  return {static_cast<std::int64_t>(d.low()), static_cast<std::int64_t>(d.high()) - 1, 1};
}

Axis axis_of(const Domain& d) {
  Axis a;
  switch (d.kind()) {
    case Domain::Kind::real:
      a.low = d.log_scale() ? std::log(d.low()) : d.low();
      a.high = d.log_scale() ? std::log(d.high()) : d.high();
      break;
    case Domain::Kind::integer:
      if (d.log_scale()) {
        a.low = std::log(d.low());
        a.high = std::log(d.high());
      } else {
        // Half a step either side, so that every allowed integer owns an equal share.
        const IntegerSpan s = integer_span(d);
        a.low = static_cast<double>(s.first) - static_cast<double>(s.step) / 2;
        a.high = static_cast<double>(s.last) + static_cast<double>(s.step) / 2;
      }
      break;
    case Domain::Kind::normal:
      a.bounded = false;
      a.prior_mu = d.mean();
      a.prior_sigma = d.sd();
      return a;
    default:
      break;
  }
  a.prior_mu = (a.low + a.high) / 2;
  a.prior_sigma = a.high - a.low;
  return a;
}

// An observed value on the axis; nullopt for a value the domain could not have given (a
// config from an older space, say), which the model then leaves out.
std::optional<double> to_axis(const Domain& d, const Axis& a, const nlohmann::json& v) {
  if (!v.is_number()) return std::nullopt;
  const double x = v.get<double>();
  if (!std::isfinite(x)) return std::nullopt;
  switch (d.kind()) {
    case Domain::Kind::real:
      return d.log_scale() ? std::log(std::clamp(x, d.low(), d.high())) : std::clamp(x, a.low, a.high);
    case Domain::Kind::integer:
      // lograndint's value v stands for exp(t) in [v, v + 1): the middle of that stretch.
      if (d.log_scale()) return std::log(std::clamp(x + 0.5, d.low(), d.high()));
      return std::clamp(x, a.low, a.high);
    default:
      return x;
  }
}

double quantize(double v, double q) { return q > 0 ? std::round(v / q) * q : v; }

nlohmann::json from_axis(const Domain& d, double t) {
  switch (d.kind()) {
    case Domain::Kind::real:
      return quantize(d.log_scale() ? std::clamp(std::exp(t), d.low(), d.high()) : t, d.q());
    case Domain::Kind::integer: {
      if (d.log_scale()) {
        const auto v = static_cast<std::int64_t>(std::floor(std::exp(t)));
        return std::clamp(v, static_cast<std::int64_t>(d.low()), static_cast<std::int64_t>(d.high()) - 1);
      }
      const IntegerSpan s = integer_span(d);
      const std::int64_t v = std::llround(t / static_cast<double>(s.step)) * s.step;
      return std::clamp(v, s.first, s.last);
    }
    default:
      return quantize(t, d.q());
  }
}

// A mixture of Gaussians, each truncated to the axis's bounds when it has them.
class Parzen {
 public:
  Parzen(const Axis& axis, std::vector<double> points) : axis_(axis) {
    std::sort(points.begin(), points.end());
    const std::size_t n = points.size() + 1;
    const double max_sigma = axis.prior_sigma;
    const double min_sigma = axis.prior_sigma / std::min(100.0, static_cast<double>(n));
    // Each observation's width: the larger gap to its neighbours in the sorted points with
    // the prior's centre among them, so that lone points get wide bumps and clusters narrow ones.
    std::vector<double> all = points;
    all.insert(std::lower_bound(all.begin(), all.end(), axis.prior_mu), axis.prior_mu);
    bool prior_seen = false;
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (!prior_seen && all[i] == axis.prior_mu) {
        prior_seen = true;
        add(axis.prior_mu, axis.prior_sigma);
        continue;
      }
      const double left = i > 0 ? all[i] - all[i - 1] : (axis.bounded ? all[i] - axis.low : 0);
      const double right = i + 1 < all.size() ? all[i + 1] - all[i] : (axis.bounded ? axis.high - all[i] : 0);
      add(all[i], std::clamp(std::max(left, right), min_sigma, max_sigma));
    }
  }

  double sample(Rng& rng) const {
    const double pick = uniform01(rng) * static_cast<double>(mu_.size());
    const std::size_t i = std::min(mu_.size() - 1, static_cast<std::size_t>(pick));
    std::normal_distribution<double> normal(mu_[i], sigma_[i]);
    if (!axis_.bounded) return normal(rng);
    // Every centre lies within the bounds and every width is at most the range, so each try
    // lands inside with probability above 1/3; the cap only guards against degenerate floats.
    for (int tries = 0; tries < 1000; ++tries) {
      const double t = normal(rng);
      if (t >= axis_.low && t <= axis_.high) return t;
    }
    return std::clamp(mu_[i], axis_.low, axis_.high);
  }

  double log_pdf(double t) const {
    // Log-sum-exp over the components, equally weighted.
    double peak = -std::numeric_limits<double>::infinity();
    std::vector<double> terms(mu_.size());
    for (std::size_t i = 0; i < mu_.size(); ++i) {
      const double z = (t - mu_[i]) / sigma_[i];
      terms[i] = -0.5 * z * z - std::log(sigma_[i]) - log_mass_[i];
      peak = std::max(peak, terms[i]);
    }
    double sum = 0;
    for (double term : terms) sum += std::exp(term - peak);
    return peak + std::log(sum / static_cast<double>(mu_.size()));
  }

 private:
  void add(double mu, double sigma) {
    mu_.push_back(mu);
    sigma_.push_back(sigma);
    double mass = 1;
    if (axis_.bounded) mass = normal_cdf((axis_.high - mu) / sigma) - normal_cdf((axis_.low - mu) / sigma);
    log_mass_.push_back(std::log(std::max(mass, 1e-300)));
  }

  Axis axis_;
  std::vector<double> mu_, sigma_, log_mass_;
};

// Category probabilities: counts plus a prior of 1 spread evenly.
std::vector<double> category_weights(std::size_t k, const std::vector<std::size_t>& seen) {
  std::vector<double> w(k, 1.0 / static_cast<double>(k));
  for (std::size_t i : seen) w[i] += 1;
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  for (double& x : w) x /= total;
  return w;
}

// Whether some dimension's key lies inside the object at `path` ("path/...").
bool is_prefix_of_dimension(const std::vector<std::pair<std::string, const Domain*>>& dims, const std::string& path) {
  return std::any_of(dims.begin(), dims.end(), [&](const auto& d) {
    return d.first.size() > path.size() && d.first.compare(0, path.size(), path) == 0 && d.first[path.size()] == '/';
  });
}

void check_point(const std::vector<std::pair<std::string, const Domain*>>& dims, const nlohmann::json& node,
                 const std::string& prefix) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string path = prefix.empty() ? it.key() : prefix + "/" + it.key();
    const bool drawn = std::any_of(dims.begin(), dims.end(), [&](const auto& d) { return d.first == path; });
    if (drawn) continue;
    if (it->is_object() && is_prefix_of_dimension(dims, path)) {
      check_point(dims, *it, path);
      continue;
    }
    bad("points_to_evaluate names \"" + path + "\", which is not a drawn key of the space");
  }
}

}  // namespace

TpeSearch::TpeSearch(TpeOptions options) : options_(std::move(options)) {
  if (options_.n_startup_trials < 0)
    bad("n_startup_trials must be >= 0, got " + std::to_string(options_.n_startup_trials));
  if (!(options_.gamma > 0 && options_.gamma <= 1))
    bad("gamma must lie in (0, 1], got " + std::to_string(options_.gamma));
  if (options_.n_ei_candidates < 1)
    bad("n_ei_candidates must be >= 1, got " + std::to_string(options_.n_ei_candidates));
  for (const auto& p : options_.points_to_evaluate)
    if (!p.is_object()) bad("each of points_to_evaluate must be a JSON object, got " + p.dump());
  rng_.seed(options_.seed ? *options_.seed : (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}());
}

void TpeSearch::setup(const SearchSetup& s) {
  if (s.space == nullptr) bad("setup without a search space");
  if (setup_.space != nullptr) bad("it already serves an experiment; make one per Tuner");
  if (s.metric.empty()) bad("needs a metric to model (TuneConfig::metric)");
  if (s.num_samples < 1) bad("num_samples must be >= 1, got " + std::to_string(s.num_samples));
  std::vector<std::pair<std::string, const Domain*>> dims = s.space->dimensions();
  for (const auto& [key, d] : dims)
    if (d->kind() == Domain::Kind::grid)
      bad("the key \"" + key + "\" is a grid_search, which TPE cannot walk: it models distributions to draw from; " +
          "use choice() for it, or RandomSearch to run a grid");
  for (const auto& p : options_.points_to_evaluate) check_point(dims, p, "");
  setup_ = s;
  dimensions_ = std::move(dims);
}

Suggestion TpeSearch::suggest(const std::string& trial_id) {
  if (setup_.space == nullptr) bad("suggest before setup");
  const std::size_t index = given();
  if (index >= static_cast<std::size_t>(setup_.num_samples)) return Suggestion::done();
  Config config;
  if (index < options_.points_to_evaluate.size()) {
    const Config point(options_.points_to_evaluate[index]);
    config =
        setup_.space->resolve(rng_, 0, [&](const std::string& key, const Domain&) -> std::optional<nlohmann::json> {
          if (const nlohmann::json* v = point.find(key)) return *v;
          return std::nullopt;
        });
  } else if (observations_.empty() || observations_.size() < static_cast<std::size_t>(options_.n_startup_trials)) {
    config = setup_.space->resolve(rng_);
  } else {
    config = model_config();
  }
  given_ = index + 1;
  configs_[trial_id] = config;
  return Suggestion::run(std::move(config));
}

Config TpeSearch::model_config() {
  // The good set: the best ceil(gamma * n) observations, at most 25; ties keep completion order.
  std::vector<std::size_t> order(observations_.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return observations_[a].score < observations_[b].score; });
  const auto n = static_cast<double>(order.size());
  const std::size_t n_good = std::clamp<std::size_t>(static_cast<std::size_t>(std::ceil(options_.gamma * n)), 1, 25);

  std::unordered_map<std::string, nlohmann::json> chosen;
  for (const auto& [key, d] : dimensions_) {
    if (d->kind() == Domain::Kind::function) continue;
    if (d->kind() == Domain::Kind::categorical) {
      const auto& values = d->values();
      std::vector<std::size_t> good, rest;
      for (std::size_t rank = 0; rank < order.size(); ++rank) {
        const nlohmann::json* v = observations_[order[rank]].config.find(key);
        if (v == nullptr) continue;
        const auto at = std::find(values.begin(), values.end(), *v);
        if (at == values.end()) continue;
        (rank < n_good ? good : rest).push_back(static_cast<std::size_t>(at - values.begin()));
      }
      const std::vector<double> l = category_weights(values.size(), good);
      const std::vector<double> g = category_weights(values.size(), rest);
      std::size_t best = 0;
      double best_ratio = -std::numeric_limits<double>::infinity();
      for (int c = 0; c < options_.n_ei_candidates; ++c) {
        double u = uniform01(rng_);
        std::size_t i = 0;
        while (i + 1 < l.size() && u >= l[i]) u -= l[i++];
        const double ratio = std::log(l[i]) - std::log(g[i]);
        if (ratio > best_ratio) {
          best_ratio = ratio;
          best = i;
        }
      }
      chosen[key] = values[best];
      continue;
    }
    const Axis axis = axis_of(*d);
    std::vector<double> good, rest;
    for (std::size_t rank = 0; rank < order.size(); ++rank) {
      const nlohmann::json* v = observations_[order[rank]].config.find(key);
      if (v == nullptr) continue;
      if (const auto t = to_axis(*d, axis, *v)) (rank < n_good ? good : rest).push_back(*t);
    }
    const Parzen l(axis, std::move(good));
    const Parzen g(axis, std::move(rest));
    double best = 0;
    double best_ratio = -std::numeric_limits<double>::infinity();
    for (int c = 0; c < options_.n_ei_candidates; ++c) {
      const double t = l.sample(rng_);
      const double ratio = l.log_pdf(t) - g.log_pdf(t);
      if (ratio > best_ratio) {
        best_ratio = ratio;
        best = t;
      }
    }
    chosen[key] = from_axis(*d, best);
  }
  return setup_.space->resolve(rng_, 0, [&](const std::string& key, const Domain&) -> std::optional<nlohmann::json> {
    const auto it = chosen.find(key);
    if (it == chosen.end()) return std::nullopt;
    return it->second;
  });
}

void TpeSearch::on_trial_result(const std::string& trial_id, const Result& r) {
  if (const auto v = r.find(setup_.metric)) last_metric_[trial_id] = *v;
}

void TpeSearch::on_trial_complete(const std::string& trial_id, const Result* last, bool errored) {
  const auto config = configs_.find(trial_id);
  const auto reported = last_metric_.find(trial_id);
  std::optional<double> value;
  if (last != nullptr) value = last->find(setup_.metric);
  if (!value && reported != last_metric_.end()) value = reported->second;
  if (config != configs_.end() && !errored && value && !std::isnan(*value))
    observations_.push_back({std::move(config->second), setup_.mode == Mode::max ? -*value : *value});
  if (config != configs_.end()) configs_.erase(config);
  if (reported != last_metric_.end()) last_metric_.erase(reported);
}

nlohmann::json TpeSearch::save() const {
  std::ostringstream rng;
  rng << rng_;
  return {{"given", given()}, {"rng", rng.str()}};
}

void TpeSearch::restore(const nlohmann::json& state) {
  if (!state.is_object() || !state.contains("given") || !state["given"].is_number_integer() ||
      state["given"].get<std::int64_t>() < 0 || !state.contains("rng") || !state["rng"].is_string())
    bad("restore takes the state save() gave, not " + state.dump());
  Rng rng;
  std::istringstream in(state["rng"].get<std::string>());
  in >> rng;
  if (!in) bad("restore: the generator's state does not parse");
  rng_ = rng;
  given_ = state["given"].get<std::size_t>();
}

void TpeSearch::add_existing_trial(const std::string& trial_id, const Config& config) {
  if (configs_.emplace(trial_id, config).second) ++existing_;
}

}  // namespace lumen::tune
