#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <deque>

#include "lumen/error.h"
#include "lumen/tune/stopper.h"

namespace lumen::tune {

void Stopper::set_search_properties(const std::string&, Mode) {}

namespace {

double stddev(const std::deque<double>& v) {
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean);
  return std::sqrt(var / static_cast<double>(v.size()));
}

class MaxIterations final : public Stopper {
 public:
  explicit MaxIterations(std::int64_t n) : n_(n) {
    if (n < 1) throw usage_error("lumen::tune::max_iterations: n must be at least 1, got " + std::to_string(n));
  }
  bool stop_trial(const std::string&, const Result& r) override { return r.training_iteration >= n_; }

 private:
  std::int64_t n_;
};

class MetricReaches final : public Stopper {
 public:
  MetricReaches(std::string metric, double threshold) : metric_(std::move(metric)), threshold_(threshold) {
    if (metric_.empty()) throw usage_error("lumen::tune::metric_reaches: the metric is empty");
    if (std::isnan(threshold)) throw usage_error("lumen::tune::metric_reaches: the threshold is NaN");
  }
  void set_search_properties(const std::string& metric, Mode mode) override {
    // Another metric than the experiment's has no mode of its own: it is reached from below,
    // as Ray's {"metric": value} stop rule.
    maximize_ = metric != metric_ || mode == Mode::max;
  }
  bool stop_trial(const std::string&, const Result& r) override {
    const auto v = r.find(metric_);
    return v && (maximize_ ? *v >= threshold_ : *v <= threshold_);
  }

 private:
  std::string metric_;
  double threshold_;
  bool maximize_ = true;
};

class TrialPlateau final : public Stopper {
 public:
  TrialPlateau(std::string metric, double std, int num_results, int grace_period)
      : metric_(std::move(metric)), std_(std), num_results_(num_results), grace_(grace_period) {
    if (!(std >= 0)) throw usage_error("lumen::tune::trial_plateau: std must be >= 0");
    if (num_results < 2) throw usage_error("lumen::tune::trial_plateau: num_results must be at least 2");
    if (grace_period < 0) throw usage_error("lumen::tune::trial_plateau: grace_period must be >= 0");
  }
  void set_search_properties(const std::string& metric, Mode) override {
    if (metric_.empty()) metric_ = metric;
    if (metric_.empty()) throw usage_error("lumen::tune::trial_plateau: no metric (give one, or set TuneConfig's)");
  }
  bool stop_trial(const std::string& id, const Result& r) override {
    const auto v = r.find(metric_);
    if (!v) return false;
    auto& seen = seen_[id];
    seen.count++;
    seen.last.push_back(*v);
    if (seen.last.size() > static_cast<std::size_t>(num_results_)) seen.last.pop_front();
    return seen.count >= grace_ && seen.last.size() == static_cast<std::size_t>(num_results_) && stddev(seen.last) <= std_;
  }

 private:
  struct Seen {
    int count = 0;
    std::deque<double> last;
  };
  std::string metric_;
  double std_;
  int num_results_, grace_;
  std::unordered_map<std::string, Seen> seen_;
};

class ExperimentPlateau final : public Stopper {
 public:
  ExperimentPlateau(std::string metric, int top, double std, int patience)
      : metric_(std::move(metric)), top_(top), std_(std), patience_(patience) {
    if (top < 2) throw usage_error("lumen::tune::experiment_plateau: top must be at least 2");
    if (!(std >= 0)) throw usage_error("lumen::tune::experiment_plateau: std must be >= 0");
    if (patience < 0) throw usage_error("lumen::tune::experiment_plateau: patience must be >= 0");
  }
  void set_search_properties(const std::string& metric, Mode mode) override {
    if (metric_.empty()) metric_ = metric;
    if (metric_.empty()) throw usage_error("lumen::tune::experiment_plateau: no metric (give one, or set TuneConfig's)");
    max_ = mode == Mode::max;
  }
  bool stop_trial(const std::string&, const Result& r) override {
    const auto v = r.find(metric_);
    if (!v) return false;
    best_.push_back(max_ ? *v : -*v);
    std::sort(best_.begin(), best_.end(), std::greater<>());
    if (best_.size() > static_cast<std::size_t>(top_)) best_.resize(top_);
    if (best_.size() == static_cast<std::size_t>(top_) && stddev({best_.begin(), best_.end()}) <= std_) {
      ++flat_;
    } else {
      flat_ = 0;
    }
    return false;
  }
  bool stop_all() override { return flat_ > patience_; }

 private:
  std::string metric_;
  int top_;
  double std_;
  int patience_;
  bool max_ = false;
  std::vector<double> best_;
  int flat_ = 0;
};

class Timeout final : public Stopper {
 public:
  explicit Timeout(std::chrono::duration<double> budget) : budget_(budget) {
    if (!(budget.count() > 0)) throw usage_error("lumen::tune::timeout: the budget must be positive");
  }
  void set_search_properties(const std::string&, Mode) override { start_ = std::chrono::steady_clock::now(); }
  bool stop_trial(const std::string&, const Result&) override { return false; }
  bool stop_all() override { return std::chrono::steady_clock::now() - start_ >= budget_; }

 private:
  std::chrono::duration<double> budget_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

class AnyOf final : public Stopper {
 public:
  explicit AnyOf(std::vector<std::shared_ptr<Stopper>> all) : all_(std::move(all)) {
    for (const auto& s : all_)
      if (!s) throw usage_error("lumen::tune::any_of: a stopper is null");
  }
  void set_search_properties(const std::string& metric, Mode mode) override {
    for (const auto& s : all_) s->set_search_properties(metric, mode);
  }
  bool stop_trial(const std::string& id, const Result& r) override {
    bool stop = false;
    for (const auto& s : all_) stop = s->stop_trial(id, r) || stop;  // every stopper sees every result
    return stop;
  }
  bool stop_all() override {
    for (const auto& s : all_)
      if (s->stop_all()) return true;
    return false;
  }

 private:
  std::vector<std::shared_ptr<Stopper>> all_;
};

class TrialRule final : public Stopper {
 public:
  explicit TrialRule(std::function<bool(const std::string&, const Result&)> rule) : rule_(std::move(rule)) {
    if (!rule_) throw usage_error("lumen::tune::stop_trial_when: the rule is empty");
  }
  bool stop_trial(const std::string& id, const Result& r) override { return rule_(id, r); }

 private:
  std::function<bool(const std::string&, const Result&)> rule_;
};

}  // namespace

std::shared_ptr<Stopper> max_iterations(std::int64_t n) { return std::make_shared<MaxIterations>(n); }
std::shared_ptr<Stopper> metric_reaches(std::string metric, double threshold) {
  return std::make_shared<MetricReaches>(std::move(metric), threshold);
}
std::shared_ptr<Stopper> trial_plateau(std::string metric, double std, int num_results, int grace_period) {
  return std::make_shared<TrialPlateau>(std::move(metric), std, num_results, grace_period);
}
std::shared_ptr<Stopper> experiment_plateau(std::string metric, int top, double std, int patience) {
  return std::make_shared<ExperimentPlateau>(std::move(metric), top, std, patience);
}
std::shared_ptr<Stopper> timeout(std::chrono::duration<double> budget) { return std::make_shared<Timeout>(budget); }
std::shared_ptr<Stopper> any_of(std::vector<std::shared_ptr<Stopper>> stoppers) {
  return std::make_shared<AnyOf>(std::move(stoppers));
}
std::shared_ptr<Stopper> stop_trial_when(std::function<bool(const std::string&, const Result&)> rule) {
  return std::make_shared<TrialRule>(std::move(rule));
}

}  // namespace lumen::tune
