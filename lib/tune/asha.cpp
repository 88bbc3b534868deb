#include "lumen/tune/asha.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <unordered_map>

#include "lumen/error.h"

namespace lumen::tune {

namespace {

constexpr const char* kClass = "lumen::tune::AshaScheduler";

[[noreturn]] void bad(const std::string& why) { throw usage_error(std::string(kClass) + ": " + why); }

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Milestones computed as grace * rf^k carry rounding error; one that lands this close to max_t
// is max_t.
bool at_most(double a, double b) { return a <= b * (1 + 1e-9); }

// numpy's percentile (linear interpolation between closest ranks) of sorted values, q in [0, 1].
double quantile(const std::vector<double>& ascending, double q) {
  const double pos = q * static_cast<double>(ascending.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, ascending.size() - 1);
  return ascending[lo] + (ascending[hi] - ascending[lo]) * (pos - static_cast<double>(lo));
}

}  // namespace

AshaScheduler::AshaScheduler(AshaOptions options) : options_(std::move(options)) {
  const AshaOptions& o = options_;
  take_objective(kClass, o.time_attr, o.metric, o.mode);
  if (!std::isfinite(o.max_t) || o.max_t <= 0) bad("max_t must be > 0, got " + number(o.max_t));
  if (!std::isfinite(o.grace_period) || o.grace_period <= 0)
    bad("grace_period must be > 0, got " + number(o.grace_period));
  if (o.grace_period > o.max_t)
    bad("grace_period (" + number(o.grace_period) + ") must not exceed max_t (" + number(o.max_t) + ")");
  if (!std::isfinite(o.reduction_factor) || o.reduction_factor <= 1)
    bad("reduction_factor must be > 1, got " + number(o.reduction_factor));
  if (o.brackets < 1) bad("brackets must be >= 1, got " + std::to_string(o.brackets));
  // Each rung keeps the values recorded at it: a reduction factor barely above 1 would make
  // millions of them.
  constexpr double kMaxRungs = 64;
  if (std::log(o.max_t / o.grace_period) / std::log(o.reduction_factor) + 1 > kMaxRungs)
    bad("reduction_factor " + number(o.reduction_factor) + " from grace_period " + number(o.grace_period) +
        " to max_t " + number(o.max_t) + " makes more than 64 rungs");
  if (!at_most(o.grace_period * std::pow(o.reduction_factor, o.brackets - 1), o.max_t))
    bad("brackets (" + std::to_string(o.brackets) + ") is too many: bracket " + std::to_string(o.brackets - 1) +
        " would start above max_t (" + number(o.max_t) + ")");

  for (int s = 0; s < o.brackets; ++s) {
    std::vector<Rung> rungs;
    for (int k = s;; ++k) {
      const double m = o.grace_period * std::pow(o.reduction_factor, k);
      if (!at_most(m, o.max_t)) break;
      rungs.push_back(
          Rung{.milestone = std::min(m, o.max_t), .ranked = {}, .ascending = {}, .recorded = {}, .waiting = {}});
    }
    brackets_.push_back(std::move(rungs));
  }
}

void AshaScheduler::set_search_properties(const std::string& metric, Mode mode) {
  TrialScheduler::set_search_properties(metric, mode);
  require_metric();
}

std::vector<std::vector<double>> AshaScheduler::milestones() const {
  std::vector<std::vector<double>> out;
  for (const auto& rungs : brackets_) {
    std::vector<double> ms;
    for (const Rung& r : rungs) ms.push_back(r.milestone);
    out.push_back(std::move(ms));
  }
  return out;
}

std::size_t AshaScheduler::bracket_of(const std::string& trial_id) const {
  const auto it = trials_.find(trial_id);
  if (it == trials_.end()) bad("no trial \"" + trial_id + "\" has been added");
  return it->second.bracket;
}

AshaScheduler::TrialState& AshaScheduler::state_of(const std::string& trial_id) {
  const auto it = trials_.find(trial_id);
  if (it != trials_.end()) return it->second;
  // A trial the scheduler was not told about is dealt like a new one rather than refused.
  TrialState& st = trials_[trial_id];
  st.bracket = added_++ % brackets_.size();
  return st;
}

void AshaScheduler::on_trial_add(TrialControl&, const Trial& t) { state_of(t.id); }

int AshaScheduler::rung_at(std::size_t bracket, double time, bool below_max_t) const {
  const auto& rungs = brackets_[bracket];
  for (int k = static_cast<int>(rungs.size()) - 1; k >= 0; --k) {
    const double m = rungs[static_cast<std::size_t>(k)].milestone;
    if (below_max_t && m >= options_.max_t) continue;
    if (time >= m) return k;
  }
  return -1;
}

bool AshaScheduler::record(Rung& rung, const std::string& trial_id, double score) {
  if (!rung.recorded.insert(trial_id).second) return false;
  rung.ranked.insert(Entry{.score = score, .seq = recorded_++, .trial_id = trial_id});
  rung.ascending.insert(std::upper_bound(rung.ascending.begin(), rung.ascending.end(), score), score);
  return true;
}

void AshaScheduler::stop_waiting(TrialState& st, const std::string& trial_id) {
  if (st.waiting_at < 0) return;
  brackets_[st.bracket][static_cast<std::size_t>(st.waiting_at)].waiting.erase(trial_id);
  st.waiting_at = -1;
}

Decision AshaScheduler::stopping_rule(TrialState& st, const std::string& trial_id, double time, double score) {
  Decision d = Decision::keep_going;
  const int k = rung_at(st.bracket, time, false);
  if (k >= 0) {
    Rung& rung = brackets_[st.bracket][static_cast<std::size_t>(k)];
    // The cutoff is taken over the values recorded before this one.
    const bool first = rung.ascending.empty();
    const double cutoff = first ? 0 : quantile(rung.ascending, 1 - 1 / options_.reduction_factor);
    if (record(rung, trial_id, score) && !first && score < cutoff) d = Decision::stop;
  }
  if (time >= options_.max_t && options_.stop_last_trials) d = Decision::stop;
  return d;
}

Decision AshaScheduler::promotion_rule(TrialState& st, const std::string& trial_id, double time, double score) {
  if (time >= options_.max_t) return options_.stop_last_trials ? Decision::stop : Decision::keep_going;
  const int k = rung_at(st.bracket, time, true);
  if (k < 0) return Decision::keep_going;
  Rung& rung = brackets_[st.bracket][static_cast<std::size_t>(k)];
  // Already recorded at the rung: the trial was promoted from it and runs on to the next one.
  if (!record(rung, trial_id, score)) return Decision::keep_going;
  rung.waiting.insert(trial_id);
  st.waiting_at = k;
  return Decision::pause;
}

Decision AshaScheduler::on_trial_result(TrialControl&, const Trial& t, const Result& r) {
  TrialState& st = state_of(t.id);
  // Reporting again means it was resumed: promoted (also how a replayed experiment learns it).
  stop_waiting(st, t.id);
  const std::optional<double> time = r.find(options_.time_attr);
  const std::optional<double> s = score(r);
  if (!time || !s || std::isnan(*time) || std::isnan(*s)) return Decision::keep_going;
  return options_.promotion ? promotion_rule(st, t.id, *time, *s) : stopping_rule(st, t.id, *time, *s);
}

void AshaScheduler::on_trial_complete(TrialControl&, const Trial& t, const Result* last) {
  TrialState& st = state_of(t.id);
  stop_waiting(st, t.id);
  if (last == nullptr) return;
  const std::optional<double> time = last->find(options_.time_attr);
  const std::optional<double> s = score(*last);
  if (!time || !s || std::isnan(*time) || std::isnan(*s)) return;
  // Its last value still counts at its rung, for the trials that come after it.
  const int k = rung_at(st.bracket, *time, options_.promotion);
  if (k >= 0) record(brackets_[st.bracket][static_cast<std::size_t>(k)], t.id, *s);
}

void AshaScheduler::on_trial_error(TrialControl&, const Trial& t) { stop_waiting(state_of(t.id), t.id); }

const Trial* AshaScheduler::choose_trial_to_run(TrialControl& run) {
  if (!options_.promotion) return TrialScheduler::choose_trial_to_run(run);
  std::unordered_map<std::string_view, const Trial*> paused;
  const Trial* pending = nullptr;
  for (const Trial* t : run.waiting()) {
    if (t->status == TrialStatus::paused) paused.emplace(t->id, t);
    if (t->status == TrialStatus::pending && pending == nullptr) pending = t;
  }
  const bool no_new_trials = run.searcher_finished();
  const Trial* chosen = nullptr;
  double chosen_milestone = 0;
  for (const auto& rungs : brackets_) {
    for (auto k = rungs.size(); k-- > 0;) {
      const Rung& rung = rungs[k];
      if (chosen != nullptr && rung.milestone <= chosen_milestone) break;
      if (rung.waiting.empty()) continue;
      const std::size_t n = rung.ranked.size();
      auto quota = static_cast<std::size_t>(std::floor(static_cast<double>(n) / options_.reduction_factor + 1e-9));
      if (no_new_trials) quota = std::max<std::size_t>(quota, 1);
      const Trial* found = nullptr;
      auto it = rung.ranked.begin();
      for (std::size_t i = 0; i < quota && found == nullptr; ++i, ++it) {
        if (!rung.waiting.contains(it->trial_id)) continue;
        if (const auto p = paused.find(it->trial_id); p != paused.end()) found = p->second;
      }
      if (found != nullptr) {
        chosen = found;
        chosen_milestone = rung.milestone;
        break;
      }
    }
  }
  if (chosen == nullptr) return pending;
  stop_waiting(trials_[chosen->id], chosen->id);
  return chosen;
}

}  // namespace lumen::tune
