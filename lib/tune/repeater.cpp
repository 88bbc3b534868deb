#include "lumen/tune/repeater.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <string>
#include <utility>

#include "lumen/error.h"

namespace lumen::tune {

namespace {

[[noreturn]] void bad(const std::string& why) { throw usage_error("lumen::tune::Repeater: " + why); }

}  // namespace

Repeater::Repeater(std::shared_ptr<Searcher> inner, int repeat, bool set_index)
    : inner_(std::move(inner)), repeat_(repeat), set_index_(set_index) {
  if (inner_ == nullptr) bad("the inner searcher is null");
  if (repeat_ < 1) bad("repeat must be >= 1, got " + std::to_string(repeat_));
}

void Repeater::setup(const SearchSetup& s) {
  if (s.metric.empty()) bad("needs a metric to average (TuneConfig::metric)");
  if (s.num_samples % repeat_ != 0)
    bad("num_samples (" + std::to_string(s.num_samples) + ") must be a multiple of repeat (" + std::to_string(repeat_) +
        "), or the last config would run fewer times than the others");
  metric_ = s.metric;
  SearchSetup inner = s;
  inner.num_samples = s.num_samples / repeat_;
  inner_->setup(inner);
}

Config Repeater::indexed(const Group& g, int index) const {
  Config c = g.config;
  if (set_index_) c.set(trial_index_key, index);
  return c;
}

Suggestion Repeater::suggest(const std::string& trial_id) {
  if (filling_ == nullptr || filling_->made == repeat_) {
    Suggestion s = inner_->suggest(trial_id);
    if (s.kind != Suggestion::Kind::config) return s;
    filling_ = std::make_shared<Group>();
    filling_->primary = trial_id;
    filling_->config = std::move(s.config);
  }
  group_of_[trial_id] = filling_;
  return Suggestion::run(indexed(*filling_, filling_->made++));
}

void Repeater::on_trial_result(const std::string& trial_id, const Result& r) {
  if (!group_of_.contains(trial_id)) return;
  if (const auto v = r.find(metric_)) last_metric_[trial_id] = *v;
}

void Repeater::on_trial_complete(const std::string& trial_id, const Result* last, bool errored) {
  const auto it = group_of_.find(trial_id);
  if (it == group_of_.end()) return;
  const std::shared_ptr<Group> g = it->second;
  group_of_.erase(it);
  const auto reported = last_metric_.find(trial_id);
  std::optional<double> value;
  if (last != nullptr) value = last->find(metric_);
  if (!value && reported != last_metric_.end()) value = reported->second;
  if (reported != last_metric_.end()) last_metric_.erase(reported);

  ++g->ended;
  if (errored) {
    ++g->errored;
  } else if (value && !std::isnan(*value)) {
    g->values.push_back(*value);
    if (last != nullptr) g->iteration = std::max(g->iteration, last->training_iteration);
  }
  if (g->ended < repeat_) return;
  if (g->values.empty()) {
    inner_->on_trial_complete(g->primary, nullptr, g->errored == repeat_);
    return;
  }
  Result mean;
  mean.trial_id = g->primary;
  mean.training_iteration = g->iteration;
  mean.metrics = {
      {metric_, std::accumulate(g->values.begin(), g->values.end(), 0.0) / static_cast<double>(g->values.size())}};
  inner_->on_trial_complete(g->primary, &mean, false);
}

nlohmann::json Repeater::save() const { return {{"inner", inner_->save()}}; }

void Repeater::restore(const nlohmann::json& state) {
  if (state.is_null()) {
    inner_->restore(nullptr);
    return;
  }
  if (!state.is_object() || !state.contains("inner")) bad("restore takes the state save() gave, not " + state.dump());
  inner_->restore(state["inner"]);
}

void Repeater::add_existing_trial(const std::string& trial_id, const Config& config) {
  nlohmann::json plain = config.json();
  std::optional<std::int64_t> index;
  if (set_index_) {
    const auto at = plain.find(trial_index_key);
    if (at != plain.end() && at->is_number_integer()) index = at->get<std::int64_t>();
    if (at != plain.end()) plain.erase(at);
  }
  Config base(std::move(plain));
  const bool joins = filling_ != nullptr && filling_->made < repeat_ && filling_->config == base &&
                     (!index || *index == filling_->made);
  if (!joins) {
    filling_ = std::make_shared<Group>();
    filling_->primary = trial_id;
    filling_->config = base;
    inner_->add_existing_trial(trial_id, base);
  }
  ++filling_->made;
  group_of_[trial_id] = filling_;
}

}  // namespace lumen::tune
