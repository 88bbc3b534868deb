// The thread that runs deployments' control loops (health checks, replacement, autoscaling)
// and batch timers. One per process, started by the first deployment and kept to the end:
// a thread that sleeps costs nothing, and a controller that outlives every deployment never
// has to stop under one of its own callbacks.
#pragma once

#include <utility>  // before Asio: Boost 1.74's asio needs std::exchange declared under C++20

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace lumen::serve::detail {

class DeploymentCore;

class Controller {
 public:
  static Controller& instance();

  // control_tick() on `d` every kTick while it lives.
  void watch(const std::shared_ptr<DeploymentCore>& d);
  // Runs f on the controller's thread once `delay` has passed.
  void after(std::chrono::microseconds delay, std::function<void()> f);

  static constexpr std::chrono::milliseconds kTick{20};

 private:
  Controller();
  void arm_tick();  // with mu_ held

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  boost::asio::steady_timer tick_;
  std::mutex mu_;
  std::vector<std::weak_ptr<DeploymentCore>> watched_;
  bool ticking_ = false;  // the tick runs only while something is watched
  std::thread thread_;
};

}  // namespace lumen::serve::detail
