#include "serve/controller.h"

#include "lumen/serve/detail/deployment_core.h"

namespace lumen::serve::detail {

Controller& Controller::instance() {
  static Controller* c = new Controller();  // never destroyed: see controller.h
  return *c;
}

Controller::Controller() : work_(io_.get_executor()), tick_(io_) {
  thread_ = std::thread([this] { io_.run(); });
  thread_.detach();
}

void Controller::watch(const std::shared_ptr<DeploymentCore>& d) {
  std::lock_guard lock(mu_);
  watched_.push_back(d);
  if (!ticking_) arm_tick();
}

void Controller::after(std::chrono::microseconds delay, std::function<void()> f) {
  auto timer = std::make_shared<boost::asio::steady_timer>(io_, delay);
  timer->async_wait([timer, f = std::move(f)](const boost::system::error_code& ec) {
    if (!ec) f();
  });
}

void Controller::arm_tick() {
  ticking_ = true;
  tick_.expires_after(kTick);
  tick_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    std::vector<std::shared_ptr<DeploymentCore>> live;
    {
      std::lock_guard lock(mu_);
      std::erase_if(watched_, [&](const std::weak_ptr<DeploymentCore>& w) {
        auto d = w.lock();
        if (d == nullptr) return true;
        live.push_back(std::move(d));
        return false;
      });
    }
    for (auto& d : live) d->control_tick();
    live.clear();
    std::lock_guard lock(mu_);
    if (watched_.empty()) {
      ticking_ = false;
    } else {
      arm_tick();
    }
  });
}

}  // namespace lumen::serve::detail
