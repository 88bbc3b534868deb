#include "lumen/tune/result_grid.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <ostream>
#include <set>

#include "lumen/error.h"

namespace lumen::tune {

ResultGrid::ResultGrid(std::vector<Trial> trials, std::string metric, Mode mode, std::string path)
    : trials_(std::move(trials)), metric_(std::move(metric)), mode_(mode), path_(std::move(path)) {}

std::size_t ResultGrid::num_errors() const noexcept {
  std::size_t n = 0;
  for (const auto& t : trials_) n += t.status == TrialStatus::error;
  return n;
}

std::size_t ResultGrid::num_terminated() const noexcept {
  std::size_t n = 0;
  for (const auto& t : trials_) n += t.status == TrialStatus::terminated;
  return n;
}

std::optional<double> ResultGrid::value(const Trial& t, const std::string& metric, Scope scope, std::size_t n) const {
  const std::string& m = metric.empty() ? metric_ : metric;
  std::vector<double> seen;
  for (const auto& r : t.results)
    if (auto v = r.find(m); v && std::isfinite(*v)) seen.push_back(*v);
  if (seen.empty()) return std::nullopt;
  switch (scope) {
    case Scope::last:
      return seen.back();
    case Scope::all:
      // The best report by the grid's mode for its own metric; for another metric, max.
      return (m == metric_ && mode_ == Mode::min) ? *std::min_element(seen.begin(), seen.end())
                                                  : *std::max_element(seen.begin(), seen.end());
    case Scope::avg:
    case Scope::last_n_avg: {
      const std::size_t from = scope == Scope::avg || n == 0 || n >= seen.size() ? 0 : seen.size() - n;
      double sum = 0;
      for (std::size_t i = from; i < seen.size(); ++i) sum += seen[i];
      return sum / static_cast<double>(seen.size() - from);
    }
  }
  return std::nullopt;
}

const Trial& ResultGrid::best(const std::string& metric, const std::string& mode, Scope scope, std::size_t n) const {
  const std::string& m = metric.empty() ? metric_ : metric;
  if (m.empty()) throw usage_error("lumen::tune::ResultGrid::best: no metric given, and the experiment has none");
  const Mode md = mode.empty() ? mode_ : parse_mode(mode);
  const Trial* best = nullptr;
  double best_value = 0;
  for (const auto& t : trials_) {
    std::optional<double> v;
    if (scope == Scope::all) {
      for (const auto& r : t.results)
        if (auto x = r.find(m); x && std::isfinite(*x) && (!v || (md == Mode::max ? *x > *v : *x < *v))) v = x;
    } else {
      v = value(t, m, scope, n);
    }
    if (!v) continue;
    if (best == nullptr || (md == Mode::max ? *v > best_value : *v < best_value)) {
      best = &t;
      best_value = *v;
    }
  }
  if (best == nullptr)
    throw usage_error("lumen::tune::ResultGrid::best: no trial reported the metric \"" + m + "\" (of " +
                      std::to_string(trials_.size()) + " trials)");
  return *best;
}

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

void flatten(const nlohmann::json& node, const std::string& prefix, std::map<std::string, std::string>& out) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = prefix + it.key();
    if (it->is_object() && !it->empty()) {
      flatten(*it, key + "/", out);
    } else {
      out[key] = it->is_string() ? it->get<std::string>() : it->dump();
    }
  }
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

void ResultGrid::write_csv(std::ostream& out) const {
  std::vector<std::map<std::string, std::string>> configs;
  std::set<std::string> config_keys;
  std::vector<std::string> metric_keys;
  std::set<std::string> metric_seen;
  for (const auto& t : trials_) {
    configs.emplace_back();
    flatten(t.config.json(), "config/", configs.back());
    for (const auto& [k, v] : configs.back()) config_keys.insert(k);
    if (const Result* r = t.last_result())
      for (const auto& [k, v] : r->metrics)
        if (metric_seen.insert(k).second) metric_keys.push_back(k);
  }
  out << "trial_id,status,training_iteration,time_total_s,error";
  for (const auto& k : config_keys) out << ',' << csv_field(k);
  for (const auto& k : metric_keys) out << ',' << csv_field(k);
  out << '\n';
  for (std::size_t i = 0; i < trials_.size(); ++i) {
    const Trial& t = trials_[i];
    const Result* r = t.last_result();
    out << csv_field(t.id) << ',' << to_string(t.status) << ',' << (r ? r->training_iteration : 0) << ','
        << (r ? number(r->time_total_s) : "") << ',' << csv_field(t.error);
    for (const auto& k : config_keys) {
      const auto it = configs[i].find(k);
      out << ',' << (it == configs[i].end() ? "" : csv_field(it->second));
    }
    for (const auto& k : metric_keys) {
      std::optional<double> v;
      if (r)
        for (const auto& [name, x] : r->metrics)
          if (name == k) v = x;
      out << ',' << (v ? number(*v) : "");
    }
    out << '\n';
  }
  if (!out) throw usage_error("lumen::tune::ResultGrid::write_csv: writing the stream failed");
}

void ResultGrid::write_csv(const std::string& path) const {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw usage_error("lumen::tune::ResultGrid::write_csv: cannot open " + path + " for writing");
  write_csv(f);
  f.close();
  if (!f) throw usage_error("lumen::tune::ResultGrid::write_csv: writing " + path + " failed");
}

}  // namespace lumen::tune
