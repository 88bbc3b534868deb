#include "scaling.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace bench {
namespace {

template <class T>
void add_unique(std::vector<T>& v, const T& x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}

// What the table and the plot share: workloads, systems and thread counts in the order they
// ran, and each point's speed-up over the same system at the fewest threads.
struct Scaling {
  std::vector<std::string> workloads, systems;
  std::vector<unsigned> threads;
  std::map<std::string, std::vector<std::string>> systems_of;  // by workload
  std::map<std::tuple<std::string, std::string, unsigned>, double> speedup;

  explicit Scaling(const std::vector<ScalingPoint>& points) {
    for (const auto& p : points) {
      add_unique(workloads, p.workload);
      add_unique(systems, p.system);
      add_unique(systems_of[p.workload], p.system);
      add_unique(threads, p.threads);
    }
    std::sort(threads.begin(), threads.end());
    for (const auto& p : points) {
      // The system's own time at the fewest threads it ran with on this workload.
      const ScalingPoint* base = nullptr;
      for (const auto& q : points)
        if (q.workload == p.workload && q.system == p.system && (base == nullptr || q.threads < base->threads)) base = &q;
      if (p.median_s > 0 && base->median_s > 0) speedup[{p.workload, p.system, p.threads}] = base->median_s / p.median_s;
    }
  }

  const double* at(const std::string& w, const std::string& s, unsigned t) const {
    auto it = speedup.find({w, s, t});
    return it == speedup.end() ? nullptr : &it->second;
  }
};

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// A step of 1, 2 or 5 times a power of ten that cuts [0, top] into at most 5 parts.
double tick_step(double top) {
  double raw = top / 5;
  double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

void print_scaling_table(const std::vector<ScalingPoint>& points) {
  Scaling sc(points);
  std::printf("\nscaling: each system's speed-up over its own time at the fewest threads\n");
  std::printf("%-10s %-28s", "workload", "system");
  for (unsigned t : sc.threads) std::printf(" %7s", ("t=" + std::to_string(t)).c_str());
  std::printf("\n");
  for (const auto& w : sc.workloads) {
    for (const auto& s : sc.systems_of[w]) {
      std::printf("%-10s %-28s", w.c_str(), s.c_str());
      for (unsigned t : sc.threads) {
        const double* v = sc.at(w, s, t);
        if (v == nullptr) std::printf(" %7s", "-");
        else std::printf(" %7.2f", *v);
      }
      std::printf("\n");
    }
  }
}

void write_scaling_svg(const std::string& path, const std::vector<ScalingPoint>& points, unsigned hardware_threads) {
  Scaling sc(points);
  static const char* const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                        "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};
  std::map<std::string, std::string> color;
  for (std::size_t i = 0; i < sc.systems.size(); ++i) color[sc.systems[i]] = palette[i % std::size(palette)];

  const int cols = std::min<int>(3, static_cast<int>(std::max<std::size_t>(1, sc.workloads.size())));
  const int rows = static_cast<int>((sc.workloads.size() + cols - 1) / cols);
  const int pw = 320, ph = 240;                     // one panel
  const int ml = 44, mr = 12, mt = 28, mb = 34;     // its margins around the plot area
  const int legend_h = 22 + 18 * static_cast<int>((sc.systems.size() + 4) / 5);
  const int width = cols * pw + 20, height = legend_h + std::max(rows, 1) * ph + 10;

  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" font-family=\"sans-serif\" font-size=\"11\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"10\" y=\"16\" font-size=\"13\" font-weight=\"bold\">lumen-bench: each system's speed-up "
         "over its own time at the fewest threads, against threads ("
      << hardware_threads << " hardware threads; dashed: linear)</text>\n";
  for (std::size_t i = 0; i < sc.systems.size(); ++i) {
    const int x = 10 + static_cast<int>(i % 5) * 190, y = 34 + static_cast<int>(i / 5) * 18;
    svg << "<line x1=\"" << x << "\" y1=\"" << y - 4 << "\" x2=\"" << x + 22 << "\" y2=\"" << y - 4
        << "\" stroke=\"" << color[sc.systems[i]] << "\" stroke-width=\"2.5\"/>"
        << "<text x=\"" << x + 28 << "\" y=\"" << y << "\">" << xml_escape(sc.systems[i]) << "</text>\n";
  }

  const double tmin = sc.threads.empty() ? 1 : sc.threads.front();
  const double tmax = sc.threads.empty() ? 1 : sc.threads.back();
  for (std::size_t k = 0; k < sc.workloads.size(); ++k) {
    const std::string& w = sc.workloads[k];
    const int ox = 10 + static_cast<int>(k % cols) * pw, oy = legend_h + static_cast<int>(k / cols) * ph;
    const double x0 = ox + ml, x1 = ox + pw - mr, y0 = oy + ph - mb, y1 = oy + mt;
    double top = 1;
    for (const auto& s : sc.systems_of[w])
      for (unsigned t : sc.threads)
        if (const double* v = sc.at(w, s, t)) top = std::max(top, *v);
    const double step = tick_step(top * 1.1);
    top = std::ceil(top * 1.1 / step) * step;
    auto X = [&](double t) {
      if (tmax <= tmin) return (x0 + x1) / 2;
      return x0 + (x1 - x0) * (std::log2(t) - std::log2(tmin)) / (std::log2(tmax) - std::log2(tmin));
    };
    auto Y = [&](double v) { return y0 - (y0 - y1) * v / top; };

    svg << "<text x=\"" << x0 << "\" y=\"" << oy + 16 << "\" font-size=\"12\" font-weight=\"bold\">"
        << xml_escape(w) << "</text>\n";
    svg << "<clipPath id=\"panel" << k << "\"><rect x=\"" << x0 << "\" y=\"" << y1 << "\" width=\"" << x1 - x0
        << "\" height=\"" << y0 - y1 << "\"/></clipPath>\n";
    for (double v = 0; v <= top + step / 2; v += step) {
      svg << "<line x1=\"" << x0 << "\" y1=\"" << Y(v) << "\" x2=\"" << x1 << "\" y2=\"" << Y(v)
          << "\" stroke=\"#e4e4e4\"/><text x=\"" << x0 - 4 << "\" y=\"" << Y(v) + 4 << "\" text-anchor=\"end\">"
          << num(v) << "</text>\n";
    }
    for (unsigned t : sc.threads)
      svg << "<text x=\"" << X(t) << "\" y=\"" << y0 + 14 << "\" text-anchor=\"middle\">" << t << "</text>\n";
    svg << "<text x=\"" << (x0 + x1) / 2 << "\" y=\"" << y0 + 28 << "\" text-anchor=\"middle\" fill=\"#555\">threads</text>\n";
    svg << "<rect x=\"" << x0 << "\" y=\"" << y1 << "\" width=\"" << x1 - x0 << "\" height=\"" << y0 - y1
        << "\" fill=\"none\" stroke=\"#999\"/>\n";
    svg << "<g clip-path=\"url(#panel" << k << ")\">\n";
    if (sc.threads.size() > 1) {
      svg << "<polyline fill=\"none\" stroke=\"#aaa\" stroke-dasharray=\"4 3\" points=\"";
      for (unsigned t : sc.threads) svg << X(t) << "," << Y(t / tmin) << " ";
      svg << "\"/>\n";
    }
    for (const auto& s : sc.systems_of[w]) {
      std::string pts;
      for (unsigned t : sc.threads)
        if (const double* v = sc.at(w, s, t)) pts += num(X(t)) + "," + num(Y(*v)) + " ";
      if (pts.empty()) continue;
      svg << "<polyline fill=\"none\" stroke=\"" << color[s] << "\" stroke-width=\"2\" points=\"" << pts << "\"/>\n";
      for (unsigned t : sc.threads)
        if (const double* v = sc.at(w, s, t))
          svg << "<circle cx=\"" << X(t) << "\" cy=\"" << Y(*v) << "\" r=\"2.5\" fill=\"" << color[s] << "\"><title>"
              << xml_escape(s) << " t=" << t << ": " << num(*v) << "x</title></circle>\n";
    }
    svg << "</g>\n";
  }
  svg << "</svg>\n";

  std::ofstream out(path);
  out << svg.str();
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace bench
