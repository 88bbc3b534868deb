#include "lumen/tune/trial.h"

#include <string>

#include "lumen/error.h"
#include "lumen/tune/result.h"

namespace lumen::tune {

Mode parse_mode(std::string_view text) {
  if (text == "min") return Mode::min;
  if (text == "max") return Mode::max;
  throw usage_error("lumen::tune: mode must be \"min\" or \"max\", not \"" + std::string(text) + "\"");
}

const char* to_string(Mode m) noexcept { return m == Mode::min ? "min" : "max"; }

const char* to_string(TrialStatus s) noexcept {
  switch (s) {
    case TrialStatus::pending: return "PENDING";
    case TrialStatus::running: return "RUNNING";
    case TrialStatus::paused: return "PAUSED";
    case TrialStatus::terminated: return "TERMINATED";
    case TrialStatus::error: return "ERROR";
  }
  return "?";
}

std::optional<double> Result::find(std::string_view name) const noexcept {
  for (const auto& [k, v] : metrics)
    if (k == name) return v;
  if (name == "training_iteration") return static_cast<double>(training_iteration);
  if (name == "time_total_s") return time_total_s;
  if (name == "time_this_iter_s") return time_this_iter_s;
  return std::nullopt;
}

double Result::get(std::string_view name) const {
  if (auto v = find(name)) return *v;
  throw usage_error("lumen::tune: trial " + trial_id + " reported no metric \"" + std::string(name) + "\" at iteration " +
                    std::to_string(training_iteration));
}

}  // namespace lumen::tune
