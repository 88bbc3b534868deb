#include "progress_table.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <optional>

namespace lumen::tune::detail {

namespace {

// Running trials shown in the table; the rest are counted.
constexpr std::size_t kRowsShown = 20;

std::string format_value(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.5g", v);
  return buf;
}

}  // namespace

ProgressTable::ProgressTable(Progress mode, std::chrono::duration<double> interval, std::FILE* out)
    : mode_(mode), interval_(interval), out_(out != nullptr ? out : stderr) {
  if (mode_ == Progress::automatic) mode_ = isatty(fileno(out_)) ? Progress::table : Progress::lines;
  if (interval_.count() <= 0) interval_ = std::chrono::duration<double>(mode_ == Progress::table ? 1.0 : 30.0);
}

bool ProgressTable::due(std::chrono::steady_clock::time_point now) const noexcept {
  return mode_ != Progress::silent && now - last_ >= interval_;
}

std::string ProgressTable::render(const std::vector<const Trial*>& trials, const std::string& metric, Mode mode,
                                  double elapsed_s, bool final) const {
  std::size_t by_status[5] = {};
  const Trial* best = nullptr;
  double best_value = 0;
  for (const Trial* t : trials) {
    ++by_status[static_cast<int>(t->status)];
    if (metric.empty()) continue;
    const Result* r = t->last_result();
    const std::optional<double> v = r != nullptr ? r->find(metric) : std::nullopt;
    if (!v || !std::isfinite(*v)) continue;
    if (best == nullptr || (mode == Mode::max ? *v > best_value : *v < best_value)) {
      best = t;
      best_value = *v;
    }
  }
  std::string status;
  for (int s = 0; s < 5; ++s)
    if (by_status[s] > 0) {
      status += status.empty() ? "" : ", ";
      status += std::to_string(by_status[s]) + " " + to_string(static_cast<TrialStatus>(s));
    }
  char head[160];
  std::snprintf(head, sizeof head, "== lumen::tune %s %.1f s: %zu trials (%s)", final ? "finished in" : "running for",
                elapsed_s, trials.size(), status.c_str());
  std::string out = head;
  if (best != nullptr)
    out += " | best " + metric + " " + format_value(best_value) + " (trial " + best->id + ": " + best->config.brief() + ")";
  out += "\n";
  if (mode_ == Progress::lines) return out;
  char row[96];
  std::snprintf(row, sizeof row, "%-8s %-10s %6s %12s  %s\n", "trial", "status", "iter", metric.empty() ? "" : metric.c_str(),
                "config");
  out += row;
  std::size_t shown = 0, running = 0;
  for (const Trial* t : trials) {
    if (t->status != TrialStatus::running) continue;
    ++running;
    if (shown == kRowsShown) continue;
    ++shown;
    const Result* r = t->last_result();
    const std::optional<double> v = r != nullptr && !metric.empty() ? r->find(metric) : std::nullopt;
    std::snprintf(row, sizeof row, "%-8s %-10s %6lld %12s  ", t->id.c_str(), to_string(t->status),
                  static_cast<long long>(r != nullptr ? r->training_iteration : 0), v ? format_value(*v).c_str() : "-");
    std::string brief = t->config.brief();
    if (brief.size() > 80) brief = brief.substr(0, 77) + "...";
    out += row + brief + "\n";
  }
  if (running > shown) out += "... and " + std::to_string(running - shown) + " more running\n";
  return out;
}

void ProgressTable::print(const std::string& text, std::chrono::steady_clock::time_point now) {
  last_ = now;
  if (mode_ == Progress::silent) return;
  std::string out;
  // On a terminal, move up over the previous table and clear it: the table stays in place.
  if (mode_ == Progress::table && lines_drawn_ > 0) out = "\x1b[" + std::to_string(lines_drawn_) + "F\x1b[J";
  out += text;
  lines_drawn_ = static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  std::fwrite(out.data(), 1, out.size(), out_);
  std::fflush(out_);
}

}  // namespace lumen::tune::detail
