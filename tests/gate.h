// Gate: a task result that stays pending until the test opens it, for tests that need an
// object to be not ready for as long as they choose.
#pragma once

#include <lumen/lumen.h>

#include <atomic>
#include <future>

// The task waits inside lumen::blocking, so its worker stays free for other work.
class Gate {
 public:
  Gate() {
    std::shared_future<int> f = future_;
    ref = lumen::submit([f] { return lumen::blocking([f] { return f.get(); }); });
  }
  ~Gate() { open(0); }
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  void open(int value) {
    if (!opened_.exchange(true)) promise_.set_value(value);
  }
  lumen::ObjectRef<int> ref;

 private:
  std::promise<int> promise_;
  std::shared_future<int> future_ = promise_.get_future().share();
  std::atomic<bool> opened_{false};
};
