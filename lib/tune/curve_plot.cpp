// ResultGrid::write_svg: a learning-curve chart written by hand, so that tune needs no plotting
// library. The file is built in memory and written at once; with thousands of trials it stays
// small because coordinates carry one decimal and the trials share their styling through groups.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "lumen/error.h"
#include "lumen/tune/result_grid.h"

namespace lumen::tune {

namespace {

// The canvas: the plot area on the left, a legend column on the right.
constexpr double kWidth = 960, kHeight = 540;
constexpr double kPlotLeft = 78, kPlotRight = 730, kPlotTop = 56, kPlotBottom = 480;
constexpr double kLegendLeft = 752;

constexpr const char* kBestColour = "#d62728";
constexpr const char* kCrowdColour = "#4c78a8";
// Distinct colours for experiments small enough to tell trials apart (none is kBestColour's red).
constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
                                    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79"};
constexpr std::size_t kPaletteSize = std::size(kPalette);

struct Curve {
  const Trial* trial;
  std::vector<std::pair<double, double>> points;  // (training_iteration, value), finite values only
  bool cut_short = false;                         // ends in a cross
};

// An axis whose ends and ticks are round numbers: 1, 2 or 5 times a power of ten apart.
struct Axis {
  double low, high, step;

  static Axis nice(double lo, double hi, bool integral) {
    // Keeps hi - lo finite for values near the ends of the double range.
    lo = std::max(lo, -1e300);
    hi = std::min(hi, 1e300);
    if (hi - lo <= 0) {
      const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
      lo -= pad;
      hi += pad;
    }
    const double rough = (hi - lo) / 5;
    const double power = std::pow(10.0, std::floor(std::log10(rough)));
    double step = power * 10;
    for (double m : {1.0, 2.0, 5.0})
      if (rough <= m * power * 1.5) {
        step = m * power;
        break;
      }
    if (integral) step = std::max(step, 1.0);
    return {std::floor(lo / step) * step, std::ceil(hi / step) * step, step};
  }

  // By index rather than by adding steps, which stall when the step is tiny beside the values.
  std::vector<double> ticks() const {
    const long long count = std::min(50LL, std::llround((high - low) / step));
    std::vector<double> out;
    for (long long i = 0; i <= count; ++i) {
      const double v = low + static_cast<double>(i) * step;
      out.push_back(std::abs(v) < step * 1e-9 ? 0 : v);
    }
    return out;
  }

  std::string label(double v) const {
    char buf[32];
    if (std::abs(v) >= 1e6 || step < 1e-4) {
      std::snprintf(buf, sizeof buf, "%g", v);
    } else {
      const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
      std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    }
    return buf;
  }
};

// A coordinate with at most one decimal, without a trailing ".0": the bulk of the file.
void append_coordinate(std::string& out, double v) {
  if (!(v > -1e6)) v = -1e6;  // NaN too: far off the canvas rather than undefined
  if (!(v < 1e6)) v = 1e6;
  long long tenths = std::llround(v * 10);
  if (tenths < 0) {
    out += '-';
    tenths = -tenths;
  }
  char buf[24];
  auto end = std::to_chars(buf, buf + sizeof buf, tenths / 10).ptr;
  out.append(buf, end);
  if (tenths % 10 != 0) {
    out += '.';
    out += static_cast<char>('0' + tenths % 10);
  }
}

void append_point(std::string& out, double x, double y) {
  append_coordinate(out, x);
  out += ',';
  append_coordinate(out, y);
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string shorten(std::string s, std::size_t max) {
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

std::string format_value(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// The config's leaves as "key=value", nested keys joined with '/'.
void config_lines(const nlohmann::json& node, const std::string& prefix, std::vector<std::string>& out) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = prefix + it.key();
    if (it->is_object() && !it->empty()) {
      config_lines(*it, key + "/", out);
    } else if (it->is_number_float()) {
      out.push_back(key + "=" + format_value(it->get<double>()));
    } else {
      out.push_back(key + "=" + (it->is_string() ? it->get<std::string>() : it->dump()));
    }
  }
}

void text(std::string& out, double x, double y, const std::string& s, const char* attributes = "") {
  out += "<text x=\"";
  append_coordinate(out, x);
  out += "\" y=\"";
  append_coordinate(out, y);
  out += "\"";
  out += attributes;
  out += '>';
  out += escape(s);
  out += "</text>\n";
}

}  // namespace

void ResultGrid::write_svg(const std::string& path, const std::string& metric) const {
  const std::string& m = metric.empty() ? metric_ : metric;
  if (m.empty()) throw usage_error("lumen::tune::ResultGrid::write_svg: no metric given, and the experiment has none");

  std::vector<Curve> curves;
  std::size_t stopped_early = 0;
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const auto& t : trials_) {
    Curve c{&t, {}};
    for (const auto& r : t.results)
      if (auto v = r.find(m); v && std::isfinite(*v)) c.points.emplace_back(static_cast<double>(r.training_iteration), *v);
    if (c.points.empty()) continue;
    for (const auto& [x, y] : c.points) {
      x_lo = std::min(x_lo, x);
      x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, y);
      y_hi = std::max(y_hi, y);
    }
    curves.push_back(std::move(c));
  }
  // A trial stopped where the longest one ended (by max_iterations, or at ASHA's max_t) ran the
  // whole course: only those stopped before it are marked.
  for (auto& c : curves) {
    c.cut_short = c.trial->stopped_early && c.points.back().first < x_hi;
    stopped_early += c.cut_short;
  }
  // Any finite report makes best() find a trial, and the same one the caller's best() names.
  const Trial* best = curves.empty() ? nullptr : &this->best(m, "", Scope::last);

  std::string out;
  out.reserve(4096 + curves.size() * 256);
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" "
                "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n",
                kWidth, kHeight, kWidth, kHeight);
  out += buf;
  out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  const std::string title = m + " by training iteration: " + std::to_string(curves.size()) +
                            (curves.size() == 1 ? " trial" : " trials") +
                            (stopped_early > 0 ? ", " + std::to_string(stopped_early) + " stopped early" : "");
  text(out, kPlotLeft, 30, title, " font-size=\"16\" font-weight=\"bold\"");

  if (curves.empty()) {
    text(out, (kPlotLeft + kPlotRight) / 2, (kPlotTop + kPlotBottom) / 2,
         "no trial reported " + m + " (of " + std::to_string(trials_.size()) + ")",
         " text-anchor=\"middle\" fill=\"#666\"");
  } else {
    const Axis xa = Axis::nice(x_lo, x_hi, true);
    const Axis ya = Axis::nice(y_lo, y_hi, false);
    auto px = [&](double x) { return kPlotLeft + (x - xa.low) / (xa.high - xa.low) * (kPlotRight - kPlotLeft); };
    auto py = [&](double y) { return kPlotBottom - (y - ya.low) / (ya.high - ya.low) * (kPlotBottom - kPlotTop); };

    out += "<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n";
    for (double v : xa.ticks()) {
      std::snprintf(buf, sizeof buf, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\"/>\n", px(v), kPlotTop, px(v), kPlotBottom);
      out += buf;
    }
    for (double v : ya.ticks()) {
      std::snprintf(buf, sizeof buf, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\"/>\n", kPlotLeft, py(v), kPlotRight, py(v));
      out += buf;
    }
    out += "</g>\n";
    std::snprintf(buf, sizeof buf, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#333\"/>\n",
                  kPlotLeft, kPlotTop, kPlotRight - kPlotLeft, kPlotBottom - kPlotTop);
    out += buf;
    out += "<g fill=\"#333\">\n";
    for (double v : xa.ticks()) text(out, px(v), kPlotBottom + 18, xa.label(v), " text-anchor=\"middle\"");
    for (double v : ya.ticks()) text(out, kPlotLeft - 8, py(v) + 4, ya.label(v), " text-anchor=\"end\"");
    text(out, (kPlotLeft + kPlotRight) / 2, kPlotBottom + 42, "training_iteration", " text-anchor=\"middle\"");
    std::snprintf(buf, sizeof buf, " text-anchor=\"middle\" transform=\"rotate(-90 %g %g)\"", 20.0,
                  (kPlotTop + kPlotBottom) / 2);
    text(out, 20, (kPlotTop + kPlotBottom) / 2, m, buf);
    out += "</g>\n";

    // Few trials get a colour each; many share one faint colour, so that their density shows.
    const bool palette = curves.size() <= kPaletteSize + 1;
    const double width = curves.size() <= 50 ? 1.5 : curves.size() <= 1000 ? 1.0 : 0.6;
    const double opacity = palette ? 0.85 : std::clamp(4 / std::sqrt(static_cast<double>(curves.size())), 0.08, 0.6);
    std::map<std::string, std::string> crosses;  // colour -> path of every cross in it
    std::map<std::string, std::string> dots;     // colour -> circles of trials with a single point
    auto draw_curve = [&](const Curve& c, const std::string& colour, std::string& lines) {
      const auto [last_x, last_y] = c.points.back();
      if (c.points.size() == 1 && !c.cut_short) {
        dots[colour] += "<circle cx=\"";
        append_coordinate(dots[colour], px(last_x));
        dots[colour] += "\" cy=\"";
        append_coordinate(dots[colour], py(last_y));
        dots[colour] += "\" r=\"2\"/>";
      } else if (c.points.size() > 1) {
        lines += "<polyline points=\"";
        for (std::size_t i = 0; i < c.points.size(); ++i) {
          if (i > 0) lines += ' ';
          append_point(lines, px(c.points[i].first), py(c.points[i].second));
        }
        lines += palette ? "\" stroke=\"" + colour + "\"/>\n" : "\"/>\n";
      }
      if (c.cut_short) {
        std::string& d = crosses[colour];
        d += 'M';
        append_point(d, px(last_x) - 3.5, py(last_y) - 3.5);
        d += "l7,7m0,-7l-7,7";
      }
    };

    std::string lines;
    std::size_t colour_index = 0;
    for (const auto& c : curves)
      if (c.trial != best) draw_curve(c, palette ? kPalette[colour_index++ % kPaletteSize] : kCrowdColour, lines);
    std::snprintf(buf, sizeof buf,
                  "<g fill=\"none\" stroke=\"%s\" stroke-width=\"%g\" stroke-opacity=\"%.2f\" stroke-linejoin=\"round\">\n",
                  kCrowdColour, width, opacity);
    out += buf + lines + "</g>\n";
    lines.clear();
    for (const auto& c : curves)
      if (c.trial == best) draw_curve(c, kBestColour, lines);
    std::snprintf(buf, sizeof buf, "<g fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\" stroke-linejoin=\"round\">\n",
                  kBestColour);
    out += buf + lines + "</g>\n";
    for (const auto& [colour, circles] : dots)
      out += "<g fill=\"" + colour + "\" fill-opacity=\"" + (colour == kBestColour ? "1" : format_value(opacity)) + "\">" +
             circles + "</g>\n";
    const std::string cross_opacity = palette ? "1" : format_value(std::min(1.0, 3 * opacity));
    for (const auto& [colour, d] : crosses)
      out += "<path fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"1.2\" stroke-opacity=\"" +
             (colour == kBestColour ? "1" : cross_opacity) + "\" d=\"" + d + "\"/>\n";

    double y = kPlotTop + 8;
    auto legend_line = [&](const char* colour, double stroke_width, const std::string& label) {
      std::snprintf(buf, sizeof buf, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"%g\"/>\n",
                    kLegendLeft, y, kLegendLeft + 24, y, colour, stroke_width);
      out += buf;
      text(out, kLegendLeft + 32, y + 4, label);
      y += 20;
    };
    legend_line(kBestColour, 2.5, "best: trial " + best->id);
    if (curves.size() > 1)
      legend_line(palette ? "#888" : kCrowdColour, 1.5,
                  "other trials (" + std::to_string(curves.size() - 1) + ")");
    if (stopped_early > 0) {
      std::snprintf(buf, sizeof buf, "<path fill=\"none\" stroke=\"#333\" stroke-width=\"1.2\" d=\"M%g,%gl6,6m0,-6l-6,6\"/>\n",
                    kLegendLeft + 9, y - 3);
      out += buf;
      text(out, kLegendLeft + 32, y + 4, "stopped early (" + std::to_string(stopped_early) + ")");
      y += 20;
    }
    y += 12;
    text(out, kLegendLeft, y, "best trial " + best->id, " font-weight=\"bold\"");
    y += 18;
    text(out, kLegendLeft, y, m + " = " + format_value(*value(*best, m, Scope::last)) + " (" + to_string(mode_) + ")");
    y += 18;
    std::vector<std::string> config;
    config_lines(best->config.json(), "", config);
    constexpr std::size_t kMaxConfigLines = 16;
    for (std::size_t i = 0; i < config.size() && i < kMaxConfigLines; ++i, y += 16)
      text(out, kLegendLeft, y, shorten(config[i], 30), " fill=\"#444\" font-size=\"11\"");
    if (config.size() > kMaxConfigLines)
      text(out, kLegendLeft, y, std::to_string(config.size() - kMaxConfigLines).insert(0, 1, '(').append(" more)"),
           " fill=\"#444\" font-size=\"11\"");
  }
  out += "</svg>\n";

  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw usage_error("lumen::tune::ResultGrid::write_svg: cannot open " + path + " for writing");
  f.write(out.data(), static_cast<std::streamsize>(out.size()));
  f.close();
  if (!f) throw usage_error("lumen::tune::ResultGrid::write_svg: writing " + path + " failed");
}

}  // namespace lumen::tune
