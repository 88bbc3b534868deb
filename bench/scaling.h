// lumen-bench --scaling: speed-up against workers, as a table and as an SVG plot.
//
// Speed-up is the best one-thread time of any system on the workload (serial code included)
// over a system's time at t threads: a higher line is faster, and its slope shows how the
// system scales.
#pragma once

#include <string>
#include <vector>

namespace bench {

struct ScalingPoint {
  std::string workload;
  std::string system;
  unsigned threads = 0;
  double median_s = 0;
};

// Prints one row per workload and system: speed-up at each thread count.
void print_scaling_table(const std::vector<ScalingPoint>& points);

// Writes the plot (one panel per workload, one line per system) to path; throws
// std::runtime_error when it cannot.
void write_scaling_svg(const std::string& path, const std::vector<ScalingPoint>& points,
                       unsigned hardware_threads);

}  // namespace bench
