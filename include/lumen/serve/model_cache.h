/// @file
/// ModelCache: the models one replica keeps loaded, for multiplexed deployments
/// (DeploymentOptions::max_models_per_replica): the least recently used one is dropped when
/// a new one would pass the capacity.
///
/// @code
///   struct Forecaster {
///     lumen::serve::ModelCache<Model> models{4};
///     nlohmann::json operator()(const lumen::serve::Request& r) {
///       std::shared_ptr<Model> m = models.get(std::string(r.model_id()), [&](const std::string& id) {
///         return std::make_shared<Model>(load_from_disk(id));
///       });
///       return m->predict(r.json);
///     }
///   };
/// @endcode
///
/// Thread safety: any number of calls at once (a replica with max_concurrency > 1); a model
/// being loaded for one caller is not loaded again for another (the second waits for it).
/// A model handed out stays alive while its holder keeps the shared_ptr, even once evicted.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include "lumen/error.h"

namespace lumen::serve {

/// The models one replica keeps loaded, least recently used dropped first; see the top of this
/// file.
template <class Model>
class ModelCache {
 public:
  /// Keeps at most `capacity` models (at least 1, else usage_error).
  explicit ModelCache(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0) throw usage_error("lumen::serve: a ModelCache needs a capacity of at least 1");
  }

  /// The model with this id, loaded with load(id) if it is not held. If load throws, nothing
  /// is kept and the exception reaches the caller.
  template <class Load>
  std::shared_ptr<Model> get(const std::string& id, Load&& load) {
    std::unique_lock lock(mu_);
    for (;;) {
      for (auto it = held_.begin(); it != held_.end(); ++it) {
        if (it->first != id) continue;
        held_.splice(held_.end(), held_, it);  // now the most recently used
        ++hits_;
        return it->second;
      }
      if (!loading_.contains(id)) break;
      loaded_.wait(lock);
    }
    loading_.insert(id);
    lock.unlock();
    std::shared_ptr<Model> m;
    try {
      m = std::shared_ptr<Model>(load(id));
    } catch (...) {
      lock.lock();
      loading_.erase(id);
      loaded_.notify_all();
      throw;
    }
    lock.lock();
    loading_.erase(id);
    ++loads_;
    held_.emplace_back(id, m);
    if (held_.size() > capacity_) held_.pop_front();
    loaded_.notify_all();
    return m;
  }

  /// Models held now.
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return held_.size();
  }
  /// Models loaded so far, reloads included.
  std::size_t loads() const {
    std::lock_guard lock(mu_);
    return loads_;
  }
  /// Gets answered from the cache.
  std::size_t hits() const {
    std::lock_guard lock(mu_);
    return hits_;
  }

 private:
  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable loaded_;
  std::list<std::pair<std::string, std::shared_ptr<Model>>> held_;  // least recently used first
  std::set<std::string> loading_;
  std::size_t loads_ = 0;
  std::size_t hits_ = 0;
};

}  // namespace lumen::serve
