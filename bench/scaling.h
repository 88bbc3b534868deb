// lumen-bench --scaling: speed-up against workers, as a table and as an SVG plot.
//
// Speed-up is a system's own time at the fewest threads it ran with (1 unless filtered out)
// over its time at t threads: how well each system uses more cores. Which one is faster
// outright is in lumen-bench's main table.
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
