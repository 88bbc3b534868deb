#include "lumen/tune/median_stopping.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <limits>

#include "lumen/error.h"

namespace lumen::tune {

namespace {

constexpr const char* kClass = "lumen::tune::MedianStoppingRule";

[[noreturn]] void bad(const std::string& why) { throw usage_error(std::string(kClass) + ": " + why); }

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

}  // namespace

MedianStoppingRule::MedianStoppingRule(MedianStoppingOptions options) : options_(std::move(options)) {
  const MedianStoppingOptions& o = options_;
  take_objective(kClass, o.time_attr, o.metric, o.mode);
  if (!std::isfinite(o.grace_period) || o.grace_period < 0)
    bad("grace_period must be >= 0, got " + number(o.grace_period));
  if (o.min_samples_required < 1)
    bad("min_samples_required must be >= 1, got " + std::to_string(o.min_samples_required));
  if (!std::isfinite(o.min_time_slice) || o.min_time_slice < 0)
    bad("min_time_slice must be >= 0, got " + number(o.min_time_slice));
}

void MedianStoppingRule::set_search_properties(const std::string& metric, Mode mode) {
  TrialScheduler::set_search_properties(metric, mode);
  require_metric();
}

bool MedianStoppingRule::better(double a, double b) const { return mode_ == Mode::max ? a > b : a < b; }

bool MedianStoppingRule::add(const std::string& trial_id, const Result& r) {
  const std::optional<double> time = r.find(options_.time_attr);
  const std::optional<double> value = r.find(metric_);
  if (!time || !value || std::isnan(*time) || std::isnan(*value)) return false;
  std::vector<Point>& curve = curves_[trial_id];
  while (!curve.empty() && curve.back().iteration >= r.training_iteration) curve.pop_back();
  Point p{.iteration = r.training_iteration, .time = *time, .best = *value, .sum_from_grace = 0, .count_from_grace = 0};
  if (!curve.empty()) {
    const Point& prev = curve.back();
    if (better(prev.best, p.best)) p.best = prev.best;
    p.sum_from_grace = prev.sum_from_grace;
    p.count_from_grace = prev.count_from_grace;
  }
  if (*time >= options_.grace_period) {
    p.sum_from_grace += *value;
    ++p.count_from_grace;
  }
  curve.push_back(p);
  return true;
}

Decision MedianStoppingRule::on_trial_result(TrialControl& run, const Trial& t, const Result& r) {
  if (!add(t.id, r) || judged_.contains(t.id)) return Decision::keep_going;
  const double time = curves_[t.id].back().time;
  if (time < options_.grace_period) return Decision::keep_going;

  std::vector<double> averages;
  for (const auto& [id, curve] : curves_) {
    if (id == t.id || curve.back().time < time) continue;
    // The last report at or before `time`.
    const auto after =
        std::upper_bound(curve.begin(), curve.end(), time, [](double x, const Point& p) { return x < p.time; });
    if (after == curve.begin()) continue;
    const Point& p = *std::prev(after);
    if (p.count_from_grace > 0) averages.push_back(p.sum_from_grace / p.count_from_grace);
  }

  if (averages.size() < static_cast<std::size_t>(options_.min_samples_required)) {
    // Not judged yet: let waiting trials catch up, so that there is something to compare with.
    const bool others_wait = !run.waiting().empty();
    const auto last = last_yield_.find(t.id);
    const double since = last == last_yield_.end() ? std::numeric_limits<double>::infinity() : time - last->second;
    if (others_wait && since > options_.min_time_slice) {
      last_yield_[t.id] = time;
      return Decision::pause;
    }
    return Decision::keep_going;
  }

  if (!better(median(std::move(averages)), curves_[t.id].back().best)) return Decision::keep_going;
  if (options_.hard_stop) return Decision::stop;
  judged_.insert(t.id);
  return Decision::pause;
}

void MedianStoppingRule::on_trial_complete(TrialControl&, const Trial& t, const Result* last) {
  // Usually already seen through on_trial_result; add() replaces a repeat of the same iteration.
  if (last != nullptr) add(t.id, *last);
}

}  // namespace lumen::tune
