#include "lumen/tune/scheduler.h"

#include "lumen/error.h"

namespace lumen::tune {

void TrialScheduler::set_search_properties(const std::string& metric, Mode mode) {
  // A scheduler keeps its experiment's trials: given to a second one, it would decide there by
  // the first one's.
  if (in_use_)
    throw usage_error("lumen::tune: this " + name() + " scheduler already serves an experiment; make one per Tuner");
  in_use_ = true;
  if (metric_.empty()) metric_ = metric;
  if (!mode_) mode_ = mode;
}

void TrialScheduler::on_trial_add(TrialControl&, const Trial&) {}
void TrialScheduler::on_trial_complete(TrialControl&, const Trial&, const Result*) {}
void TrialScheduler::on_trial_error(TrialControl&, const Trial&) {}

std::vector<const Trial*> TrialControl::waiting() const {
  std::vector<const Trial*> out;
  for (const Trial* t : trials())
    if (t->status == TrialStatus::pending || t->status == TrialStatus::paused) out.push_back(t);
  return out;
}

const Trial* TrialScheduler::choose_trial_to_run(TrialControl& run) {
  const std::vector<const Trial*> waiting = run.waiting();
  for (const Trial* t : waiting)
    if (t->status == TrialStatus::pending) return t;
  return waiting.empty() ? nullptr : waiting.front();
}

std::optional<double> TrialScheduler::score(const Result& r) const {
  const std::optional<double> v = r.find(metric_);
  if (!v) return std::nullopt;
  return mode_ == Mode::max ? *v : -*v;
}

void TrialScheduler::take_objective(const char* who, const std::string& time_attr, const std::string& metric,
                                    const std::string& mode) {
  if (time_attr.empty()) throw usage_error(std::string(who) + ": time_attr must not be empty");
  if (!mode.empty()) {
    if (mode != "min" && mode != "max")
      throw usage_error(std::string(who) + ": mode must be \"min\" or \"max\" (or empty), got \"" + mode + "\"");
    mode_ = parse_mode(mode);
  }
  metric_ = metric;
}

void TrialScheduler::require_metric() const {
  if (metric_.empty() || !mode_)
    throw usage_error("lumen::tune: the " + name() +
                      " scheduler needs a metric and a mode: set TuneConfig's metric and mode, or the scheduler's own");
}

}  // namespace lumen::tune
