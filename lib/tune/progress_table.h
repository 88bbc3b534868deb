// The progress an experiment prints while it runs: a table redrawn in place on a terminal,
// plain summary lines elsewhere.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "lumen/tune/trial.h"
#include "lumen/tune/tuner.h"

namespace lumen::tune::detail {

class ProgressTable {
 public:
  ProgressTable(Progress mode, std::chrono::duration<double> interval, std::FILE* out);

  // Whether it is time to print again.
  bool due(std::chrono::steady_clock::time_point now) const noexcept;
  // The text for the trials now (called under the tuner's lock: it only formats).
  std::string render(const std::vector<const Trial*>& trials, const std::string& metric, Mode mode, double elapsed_s,
                     bool final) const;
  // Prints text made by render (outside the lock), over the previous table on a terminal.
  void print(const std::string& text, std::chrono::steady_clock::time_point now);
  bool silent() const noexcept { return mode_ == Progress::silent; }

 private:
  Progress mode_;
  std::chrono::duration<double> interval_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point last_{};
  int lines_drawn_ = 0;
};

}  // namespace lumen::tune::detail
