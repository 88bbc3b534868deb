#include "lumen/tune/pbt.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string_view>
#include <unordered_map>

#include "lumen/error.h"

namespace lumen::tune {

namespace {

constexpr const char* kClass = "lumen::tune::PopulationBasedTraining";

[[noreturn]] void bad(const std::string& why) { throw usage_error(std::string(kClass) + ": " + why); }

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void reject_constants(const ParamSpace& space, const std::string& prefix) {
  for (const auto& [key, p] : space.entries()) {
    const std::string path = prefix.empty() ? key : prefix + "/" + key;
    if (p.nested() != nullptr) {
      reject_constants(*p.nested(), path);
    } else if (p.domain() == nullptr) {
      bad("hyperparam_mutations: \"" + path + "\" is a constant (" + p.constant_value().dump() +
          "); give a Domain (uniform, randint, choice, ...) for a key to mutate");
    }
  }
}

std::size_t pick(Rng& rng, std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); }

}  // namespace

PopulationBasedTraining::PopulationBasedTraining(PbtOptions options) : options_(std::move(options)) {
  const PbtOptions& o = options_;
  take_objective(kClass, o.time_attr, o.metric, o.mode);
  if (!std::isfinite(o.perturbation_interval) || o.perturbation_interval <= 0)
    bad("perturbation_interval must be > 0, got " + number(o.perturbation_interval));
  if (!std::isfinite(o.burn_in_period) || o.burn_in_period < 0)
    bad("burn_in_period must be >= 0, got " + number(o.burn_in_period));
  reject_constants(o.hyperparam_mutations, "");
  if (o.hyperparam_mutations.dimensions().empty())
    bad("hyperparam_mutations must not be empty: give the keys to mutate and their Domains");
  if (!(o.quantile_fraction >= 0 && o.quantile_fraction <= 0.5))
    bad("quantile_fraction must be in [0, 0.5], got " + number(o.quantile_fraction));
  if (!(o.resample_probability >= 0 && o.resample_probability <= 1))
    bad("resample_probability must be in [0, 1], got " + number(o.resample_probability));
  if (o.perturbation_factors.empty()) bad("perturbation_factors must not be empty");
  for (double f : o.perturbation_factors)
    if (!std::isfinite(f) || f <= 0) bad("perturbation_factors must be > 0, got " + number(f));
  rng_.seed(o.seed ? *o.seed : (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}());
}

void PopulationBasedTraining::set_search_properties(const std::string& metric, Mode mode) {
  TrialScheduler::set_search_properties(metric, mode);
  require_metric();
}

void PopulationBasedTraining::on_trial_add(TrialControl&, const Trial& t) {
  if (trials_.emplace(t.id, TrialState{}).second) order_.push_back(t.id);
}

Decision PopulationBasedTraining::on_trial_result(TrialControl& run, const Trial& t, const Result& r) {
  on_trial_add(run, t);
  TrialState& st = trials_[t.id];
  const std::optional<double> time = r.find(options_.time_attr);
  const std::optional<double> s = score(r);
  if (!time || !s || std::isnan(*time) || std::isnan(*s)) return Decision::keep_going;
  st.score = s;
  if (*time < options_.burn_in_period || *time - st.last_perturbation < options_.perturbation_interval)
    return Decision::keep_going;
  st.last_perturbation = *time;

  std::vector<std::string> ranked;  // worst first
  for (const std::string& id : order_)
    if (!trials_[id].ended && trials_[id].score) ranked.push_back(id);
  std::stable_sort(ranked.begin(), ranked.end(),
                   [&](const std::string& a, const std::string& b) { return *trials_[a].score < *trials_[b].score; });
  const std::size_t n = ranked.size();
  if (n <= 1) return Decision::keep_going;
  auto k = static_cast<std::size_t>(std::ceil(static_cast<double>(n) * options_.quantile_fraction - 1e-9));
  k = std::min(k, n / 2);
  if (std::find(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(k), t.id) ==
      ranked.begin() + static_cast<std::ptrdiff_t>(k))
    return Decision::keep_going;

  std::unordered_map<std::string_view, const Trial*> by_id;
  for (const Trial* other : run.trials()) by_id.emplace(other->id, other);
  std::vector<const Trial*> donors;
  for (std::size_t i = n - k; i < n; ++i) {
    const auto d = by_id.find(ranked[i]);
    if (d != by_id.end() && d->second->checkpoint != nullptr) donors.push_back(d->second);
  }
  if (donors.empty()) return Decision::keep_going;
  const Trial& donor = *donors[pick(rng_, donors.size())];

  PbtExploit e{.trial_id = t.id,
               .donor_id = donor.id,
               .time = *time,
               .training_iteration = r.training_iteration,
               .checkpoint_iteration = donor.checkpoint->training_iteration,
               .old_config = t.config,
               .donor_config = donor.config,
               .new_config = {},
               .operations = {}};
  e.new_config = explore(donor.config, e.operations);
  run.reset_trial(t, e.new_config, donor.checkpoint);
  st.last_perturbation = trials_[donor.id].last_perturbation;
  exploits_.push_back(std::move(e));
  if (std::find(to_resume_.begin(), to_resume_.end(), t.id) == to_resume_.end()) to_resume_.push_back(t.id);
  return Decision::pause;
}

Config PopulationBasedTraining::explore(const Config& donor, std::vector<std::pair<std::string, std::string>>& log) {
  Config out = donor;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (const auto& [key, domain] : options_.hyperparam_mutations.dimensions()) {
    const nlohmann::json* current = donor.find(key);
    const bool resample = unit(rng_) < options_.resample_probability;
    const Domain::Kind kind = domain->kind();
    if (kind == Domain::Kind::categorical || kind == Domain::Kind::grid) {
      const auto& values = domain->values();
      const auto at = current != nullptr ? std::find(values.begin(), values.end(), *current) : values.end();
      if (resample || at == values.end()) {
        out.set(key, values[pick(rng_, values.size())]);
        log.emplace_back(key, "resample");
        continue;
      }
      const bool left = pick(rng_, 2) == 0;
      const auto index = static_cast<std::size_t>(at - values.begin());
      const std::size_t next = left ? (index == 0 ? 0 : index - 1) : std::min(index + 1, values.size() - 1);
      out.set(key, values[next]);
      log.emplace_back(key, left ? "shift left" : "shift right");
      continue;
    }
    if (resample || current == nullptr || !current->is_number()) {
      out.set(key, domain->sample(rng_, out));
      log.emplace_back(key, "resample");
      continue;
    }
    const double factor = options_.perturbation_factors[pick(rng_, options_.perturbation_factors.size())];
    const double scaled = current->get<double>() * factor;
    // A value perturbed past what its type holds is drawn afresh, as one that cannot be perturbed.
    if (!std::isfinite(scaled) || (current->is_number_integer() && std::fabs(scaled) >= 9.2e18)) {
      out.set(key, domain->sample(rng_, out));
      log.emplace_back(key, "resample");
      continue;
    }
    if (current->is_number_integer()) {
      out.set(key, static_cast<std::int64_t>(std::llround(scaled)));
    } else {
      out.set(key, scaled);
    }
    log.emplace_back(key, "* " + number(factor));
  }
  return out;
}

void PopulationBasedTraining::on_trial_complete(TrialControl&, const Trial& t, const Result*) {
  trials_[t.id].ended = true;
  std::erase(to_resume_, t.id);
}

void PopulationBasedTraining::on_trial_error(TrialControl& run, const Trial& t) { on_trial_complete(run, t, nullptr); }

const Trial* PopulationBasedTraining::choose_trial_to_run(TrialControl& run) {
  const std::vector<const Trial*> waiting = run.waiting();
  for (auto it = to_resume_.begin(); it != to_resume_.end(); ++it) {
    const auto w = std::find_if(waiting.begin(), waiting.end(), [&](const Trial* t) { return t->id == *it; });
    if (w != waiting.end() && (*w)->status == TrialStatus::paused) {
      to_resume_.erase(it);
      return *w;
    }
  }
  return TrialScheduler::choose_trial_to_run(run);
}

}  // namespace lumen::tune
