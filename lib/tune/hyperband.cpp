#include "lumen/tune/hyperband.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <unordered_map>

#include "lumen/error.h"

namespace lumen::tune {

namespace {

constexpr const char* kClass = "lumen::tune::HyperBandScheduler";

[[noreturn]] void bad(const std::string& why) { throw usage_error(std::string(kClass) + ": " + why); }

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// The pending and paused trials by id.
std::unordered_map<std::string_view, const Trial*> waiting_by_id(const TrialControl& run) {
  std::unordered_map<std::string_view, const Trial*> out;
  for (const Trial* t : run.waiting()) out.emplace(t->id, t);
  return out;
}

// More brackets than this (or a bracket of more trials) comes from a reduction factor barely
// above 1 or an absurd max_t, never from a useful setting.
constexpr int kMaxBrackets = 40;
constexpr double kMaxBracketTrials = 1e9;

}  // namespace

HyperBandScheduler::HyperBandScheduler(HyperBandOptions options) : options_(std::move(options)) {
  const HyperBandOptions& o = options_;
  take_objective(kClass, o.time_attr, o.metric, o.mode);
  if (!std::isfinite(o.max_t) || o.max_t <= 0) bad("max_t must be > 0, got " + number(o.max_t));
  if (!std::isfinite(o.reduction_factor) || o.reduction_factor <= 1)
    bad("reduction_factor must be > 1, got " + number(o.reduction_factor));

  // s_max = floor(log_rf(max_t)), counted rather than computed with log so that exact powers
  // (81 = 3^4) are not lost to rounding.
  int s_max = 0;
  while (std::pow(o.reduction_factor, s_max + 1) <= o.max_t * (1 + 1e-9)) {
    if (++s_max >= kMaxBrackets)
      bad("max_t (" + number(o.max_t) + ") and reduction_factor (" + number(o.reduction_factor) + ") give more than " +
          std::to_string(kMaxBrackets) + " brackets");
  }
  for (int s = 0; s <= s_max; ++s) {
    const double rf_s = std::pow(o.reduction_factor, s);
    // The tolerance keeps 5/3 * 9 = 15.000000000000002 from rounding up to 16.
    const double n = std::ceil(static_cast<double>(s_max + 1) / (s + 1) * rf_s - 1e-9);
    if (n > kMaxBracketTrials) bad("max_t and reduction_factor give a bracket of " + number(n) + " trials");
    round_.push_back(BracketShape{.s = s, .trials = static_cast<std::size_t>(n), .milestone = o.max_t / rf_s});
  }
}

void HyperBandScheduler::set_search_properties(const std::string& metric, Mode mode) {
  TrialScheduler::set_search_properties(metric, mode);
  require_metric();
}

std::size_t HyperBandScheduler::bracket_of(const std::string& trial_id) const {
  const auto it = trials_.find(trial_id);
  if (it == trials_.end()) bad("no trial \"" + trial_id + "\" has been added");
  return it->second.bracket;
}

double HyperBandScheduler::milestone_of(std::size_t bracket) const {
  if (bracket >= brackets_.size())
    bad("no bracket " + std::to_string(bracket) + " (there are " + std::to_string(brackets_.size()) + ")");
  return brackets_[bracket].milestone;
}

HyperBandScheduler::TrialState& HyperBandScheduler::state_of(const std::string& trial_id) {
  const auto it = trials_.find(trial_id);
  if (it != trials_.end()) return it->second;
  if (brackets_.empty() || brackets_.back().members.size() >= brackets_.back().shape.trials) {
    const BracketShape& shape = round_[brackets_.size() % round_.size()];
    brackets_.push_back(Bracket{.shape = shape, .cuts = 0, .milestone = shape.milestone, .members = {}});
  }
  brackets_.back().members.push_back(trial_id);
  TrialState& st = trials_[trial_id];
  st.bracket = brackets_.size() - 1;
  return st;
}

bool HyperBandScheduler::reached_max_t(const TrialState& st) const { return st.time && *st.time >= options_.max_t; }

void HyperBandScheduler::on_trial_add(TrialControl&, const Trial& t) { state_of(t.id); }

Decision HyperBandScheduler::on_trial_result(TrialControl& run, const Trial& t, const Result& r) {
  TrialState& st = state_of(t.id);
  st.resume = false;
  if (!st.live) return Decision::stop;
  const std::optional<double> time = r.find(options_.time_attr);
  if (!time || std::isnan(*time)) return Decision::keep_going;
  st.time = time;
  if (const std::optional<double> s = score(r); s && !std::isnan(*s)) st.score = s;

  const std::size_t bi = st.bracket;
  if (!final_stage(brackets_[bi]) && *time >= brackets_[bi].milestone) cut_while_ready(run, bi, t.id);
  if (!st.live) return Decision::stop;
  const Bracket& b = brackets_[bi];
  if (final_stage(b)) {
    if (reached_max_t(st) && options_.stop_last_trials) {
      st.live = false;
      return Decision::stop;
    }
    return Decision::keep_going;
  }
  return *time >= b.milestone ? Decision::pause : Decision::keep_going;
}

void HyperBandScheduler::on_trial_complete(TrialControl& run, const Trial& t, const Result*) {
  TrialState& st = state_of(t.id);
  st.live = false;
  st.resume = false;
  cut_while_ready(run, st.bracket, "");
}

void HyperBandScheduler::on_trial_error(TrialControl& run, const Trial& t) { on_trial_complete(run, t, nullptr); }

void HyperBandScheduler::end_other(TrialControl& run, const std::unordered_map<std::string_view, const Trial*>& waiting,
                                   const std::string& trial_id) {
  TrialState& st = trials_[trial_id];
  st.live = false;
  st.resume = false;
  // One that is not waiting was running (a trial that ended has left the bracket already): no
  // longer live, it is stopped at its next report.
  if (const auto it = waiting.find(trial_id); it != waiting.end()) run.stop_trial(*it->second);
}

void HyperBandScheduler::cut_while_ready(TrialControl& run, std::size_t bracket, const std::string& current) {
  // stop_trial may report the stopped trial's end back before it returns.
  if (cutting_) return;
  cutting_ = true;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{cutting_};

  std::optional<std::unordered_map<std::string_view, const Trial*>> waiting;
  for (;;) {
    Bracket& b = brackets_[bracket];
    if (final_stage(b)) return;
    if (b.members.size() < b.shape.trials && !run.searcher_finished()) return;
    std::vector<std::string> live;
    for (const std::string& id : b.members) {
      const TrialState& st = trials_[id];
      if (!st.live) continue;
      if (!st.time || *st.time < b.milestone) return;
      live.push_back(id);
    }
    if (live.empty()) return;
    if (!waiting) waiting = waiting_by_id(run);

    std::stable_sort(live.begin(), live.end(), [&](const std::string& x, const std::string& y) {
      const std::optional<double>& sx = trials_[x].score;
      const std::optional<double>& sy = trials_[y].score;
      return sx && (!sy || *sx > *sy);
    });
    const auto keep = std::max<std::size_t>(
        1, static_cast<std::size_t>(std::floor(static_cast<double>(live.size()) / options_.reduction_factor + 1e-9)));
    for (std::size_t i = keep; i < live.size(); ++i) {
      if (live[i] == current) {
        trials_[current].live = false;
      } else {
        end_other(run, *waiting, live[i]);
      }
    }
    live.resize(keep);

    ++b.cuts;
    b.milestone = final_stage(b)
                      ? options_.max_t
                      : std::min(options_.max_t, b.shape.milestone * std::pow(options_.reduction_factor, b.cuts));
    for (const std::string& id : live) {
      if (id == current) continue;
      TrialState& st = trials_[id];
      if (final_stage(b)) {
        if (reached_max_t(st) && options_.stop_last_trials) {
          end_other(run, *waiting, id);
        } else {
          st.resume = true;
        }
      } else {
        // One already past the new milestone waits for the next cut where it is.
        st.resume = *st.time < b.milestone;
      }
      if (st.resume) to_resume_.push_back(id);
    }
  }
}

const Trial* HyperBandScheduler::choose_trial_to_run(TrialControl& run) {
  // No trial will come to fill them: cut the brackets with what they hold.
  if (run.searcher_finished())
    for (std::size_t i = 0; i < brackets_.size(); ++i) cut_while_ready(run, i, "");
  std::erase_if(to_resume_, [&](const std::string& id) { return !trials_[id].resume; });
  const auto waiting = waiting_by_id(run);
  for (auto it = to_resume_.begin(); it != to_resume_.end(); ++it) {
    const auto w = waiting.find(*it);
    if (w == waiting.end() || w->second->status != TrialStatus::paused) continue;
    trials_[*it].resume = false;
    to_resume_.erase(it);
    return w->second;
  }
  for (const Trial* t : run.waiting())
    if (t->status == TrialStatus::pending) return t;
  return nullptr;
}

}  // namespace lumen::tune
