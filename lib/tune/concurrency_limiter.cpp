#include "lumen/tune/concurrency_limiter.h"

#include <string>

#include "lumen/error.h"

namespace lumen::tune {

ConcurrencyLimiter::ConcurrencyLimiter(std::shared_ptr<Searcher> inner, int max_concurrent, bool batch)
    : inner_(std::move(inner)), max_concurrent_(max_concurrent), batch_(batch) {
  if (inner_ == nullptr) throw usage_error("lumen::tune::ConcurrencyLimiter: the inner searcher is null");
  if (max_concurrent_ < 1)
    throw usage_error("lumen::tune::ConcurrencyLimiter: max_concurrent must be >= 1, got " +
                      std::to_string(max_concurrent_));
}

void ConcurrencyLimiter::setup(const SearchSetup& s) { inner_->setup(s); }

Suggestion ConcurrencyLimiter::suggest(const std::string& trial_id) {
  if (live_.size() >= static_cast<std::size_t>(max_concurrent_) || batch_closed_) return Suggestion::later();
  Suggestion s = inner_->suggest(trial_id);
  if (s.kind == Suggestion::Kind::config) {
    live_.insert(trial_id);
    if (batch_ && live_.size() >= static_cast<std::size_t>(max_concurrent_)) batch_closed_ = true;
    return s;
  }
  // The inner searcher has nothing now: the batch cannot grow, and one whose trials have all
  // completed goes to it, which may be what it waits for.
  if (batch_ && !live_.empty()) {
    batch_closed_ = true;
    if (completed_.size() == live_.size()) {
      flush_batch();
      // The inner searcher has seen the batch: ask it again, so the caller need not poll.
      return suggest(trial_id);
    }
  }
  return s;
}

void ConcurrencyLimiter::on_trial_result(const std::string& trial_id, const Result& r) {
  if (live_.contains(trial_id)) inner_->on_trial_result(trial_id, r);
}

void ConcurrencyLimiter::on_trial_complete(const std::string& trial_id, const Result* last, bool errored) {
  if (!live_.contains(trial_id)) return;
  if (!batch_ || existing_.erase(trial_id) > 0) {
    live_.erase(trial_id);
    inner_->on_trial_complete(trial_id, last, errored);
  } else {
    for (const Completion& c : completed_)
      if (c.trial_id == trial_id) return;
    completed_.push_back({trial_id, last != nullptr ? std::optional<Result>(*last) : std::nullopt, errored});
  }
  // A closed batch goes to the inner searcher once nothing else is alive, trials from before a
  // restore included.
  if (batch_closed_ && completed_.size() == live_.size()) flush_batch();
}

void ConcurrencyLimiter::flush_batch() {
  std::vector<Completion> done = std::move(completed_);
  completed_.clear();
  for (const Completion& c : done) live_.erase(c.trial_id);
  batch_closed_ = false;
  for (const Completion& c : done) inner_->on_trial_complete(c.trial_id, c.last ? &*c.last : nullptr, c.errored);
}

nlohmann::json ConcurrencyLimiter::save() const { return {{"inner", inner_->save()}}; }

void ConcurrencyLimiter::restore(const nlohmann::json& state) {
  if (state.is_null()) {
    inner_->restore(nullptr);
    return;
  }
  if (!state.is_object() || !state.contains("inner"))
    throw usage_error("lumen::tune::ConcurrencyLimiter: restore takes the state save() gave, not " + state.dump());
  inner_->restore(state["inner"]);
}

void ConcurrencyLimiter::add_existing_trial(const std::string& trial_id, const Config& config) {
  live_.insert(trial_id);
  existing_.insert(trial_id);
  inner_->add_existing_trial(trial_id, config);
}

}  // namespace lumen::tune
