// The experiment that tune_child runs and that test_tuner restores after killing it.
#pragma once

#include <lumen/tune/tuner.h>

#include <chrono>
#include <string>
#include <thread>

inline lumen::tune::ParamSpace kill_restore_space() {
  return lumen::tune::ParamSpace{{"x", lumen::tune::uniform(0, 1)}};
}

// 10 iterations of 20 ms; the state (the iteration) checkpointed every second one.
inline void kill_restore_trainable(const lumen::tune::Config& c, lumen::tune::Reporter& r) {
  const double x = c.get<double>("x");
  std::int64_t i = r.checkpoint() != nullptr ? std::stoll(r.checkpoint()->bytes) : 0;
  while (i < 10) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ++i;
    const double loss = (x - 0.5) * (x - 0.5) + 1.0 / static_cast<double>(i);
    if (i % 2 == 0) {
      r.report({{"loss", loss}}, lumen::tune::Checkpoint{std::to_string(i)});
    } else {
      r.report({{"loss", loss}});
    }
  }
}
