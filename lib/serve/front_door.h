// The front door's shared state: the listener, the I/O threads, the route table, the
// sessions to close on stop, per-client rate limits and per-route metrics. Sessions (one per
// connection) live in front_door.cpp.
#pragma once

#include <utility>  // before Asio: Boost 1.74's asio needs std::exchange declared under C++20

#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "lumen/serve/detail/deployment_core.h"
#include "lumen/serve/server.h"

namespace lumen::serve::detail {

// Requests answered on one route: a latency histogram per status code (as Ray Serve labels
// its latency by route and code), so that the latency of requests served and of those
// refused read apart.
struct RouteMetrics {
  static constexpr std::array<double, 16> kBounds{0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0,  30.0};
  struct Latency {
    std::array<std::uint64_t, kBounds.size() + 1> buckets{};  // the last: above every bound
    std::uint64_t count = 0;
    std::uint64_t sum_ns = 0;
  };
  std::mutex mu;
  std::map<int, Latency> by_code;

  void record(int code, std::chrono::nanoseconds took);
};

struct Route {
  std::shared_ptr<DeploymentCore> deployment;
  std::shared_ptr<RouteMetrics> metrics;
  bool streams = false;  // the answer goes out in parts (chunked transfer)
};

// A model served under the Open Inference Protocol (/v2/models/{name}).
struct ServedModel {
  ModelInfo info;
  std::shared_ptr<DeploymentCore> deployment;
  ModelInvoker infer;
  std::shared_ptr<RouteMetrics> metrics;
};

// What a /v2 request gets: an answer now, or one from a replica later.
struct V2Answer {
  std::optional<Response> now;
  ObjectRef<Response> later;
  std::shared_ptr<RouteMetrics> metrics;
};

// JSON nested deeper than this is refused (400) before it is parsed: parsing, copying and
// printing a JSON value recurse once per level, on a replica's fiber stack too.
inline constexpr int kMaxJsonDepth = 128;
// Whether no array or object in `text` nests deeper than `limit` (strings are skipped).
bool json_depth_within(std::string_view text, int limit) noexcept;

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void close_soon() = 0;  // from any thread: closes the connection on its I/O thread
};

class FrontDoor : public std::enable_shared_from_this<FrontDoor> {
 public:
  explicit FrontDoor(ServerOptions o);
  ~FrontDoor();

  void add_route(const std::string& prefix, std::shared_ptr<DeploymentCore> d, bool streams);
  void add_model(ModelInfo info, std::shared_ptr<DeploymentCore> d, ModelInvoker infer);
  bool serves_models() const noexcept { return serves_models_.load(std::memory_order_acquire); }
  // Answers a request under /v2 (inference_protocol.cpp). Throws http_error for a body that
  // is not a valid inference request, back_pressure or shutdown_error from the deployment.
  V2Answer answer_v2(std::string_view method, const std::string& path, const std::string& body);
  // The route whose prefix is the longest that matches path, and that prefix.
  std::optional<std::pair<std::string, Route>> find_route(std::string_view path) const;
  void start();
  void stop(std::chrono::milliseconds drain);
  std::uint16_t port() const noexcept { return port_.load(std::memory_order_acquire); }

  std::string metrics_text() const;
  nlohmann::json status_json() const;
  nlohmann::json routes_json() const;
  // Routes, then models as routes named /v2/models/{name}.
  std::vector<std::pair<std::string, Route>> all_routes() const;

  // For sessions.
  const ServerOptions& options() const noexcept { return options_; }
  bool draining() const noexcept { return draining_.load(std::memory_order_acquire); }
  // Takes one token from the client's bucket; false when it is empty (429).
  bool admit_client(const std::string& address);
  void register_session(SessionBase* key, std::weak_ptr<SessionBase> s);
  void unregister_session(SessionBase* key);
  // Runs f on `executor` unless the server has stopped (then f is dropped here).
  template <class Executor, class F>
  void post_to(const Executor& executor, F&& f);
  void request_started() noexcept { in_flight_.fetch_add(1, std::memory_order_relaxed); }
  void request_finished() noexcept;
  RouteMetrics& unrouted_metrics() noexcept { return *unrouted_; }
  std::string make_request_id();
  boost::asio::ssl::context* tls() noexcept { return tls_ ? &*tls_ : nullptr; }

 private:
  void accept_next();

  const ServerOptions options_;
  // One io_context per I/O thread, a connection on one of them for its life: the threads share
  // no scheduler lock. (One io_context run by several threads takes one mutex for every post,
  // and replicas' answers are posted from lumen's workers too.)
  std::vector<std::unique_ptr<boost::asio::io_context>> ios_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::size_t next_io_ = 0;  // where the next connection goes; touched by the accept handler only
  std::optional<boost::asio::ssl::context> tls_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  std::atomic<std::uint16_t> port_{0};
  std::atomic<bool> draining_{false};
  bool started_ = false;
  bool stopped_ = false;
  std::mutex lifecycle_mu_;  // start and stop

  mutable std::shared_mutex routes_mu_;
  std::map<std::string, Route, std::less<>> routes_;
  std::shared_ptr<RouteMetrics> unrouted_ = std::make_shared<RouteMetrics>();
  std::map<std::string, std::shared_ptr<const ServedModel>, std::less<>> models_;  // guarded by routes_mu_
  std::atomic<bool> serves_models_{false};

  std::mutex sessions_mu_;
  std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions_;

  std::atomic<int> in_flight_{0};  // requests read and not yet answered
  std::mutex idle_mu_;
  std::condition_variable idle_;

  std::shared_mutex post_mu_;
  bool posts_closed_ = false;  // guarded by post_mu_

  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point last;
  };
  std::mutex clients_mu_;
  std::unordered_map<std::string, Bucket> clients_;

  std::atomic<std::uint64_t> request_counter_{0};
  std::uint64_t request_id_prefix_;
};

template <class Executor, class F>
void FrontDoor::post_to(const Executor& executor, F&& f) {
  std::shared_lock lock(post_mu_);
  if (posts_closed_) return;
  boost::asio::post(executor, std::forward<F>(f));
}

}  // namespace lumen::serve::detail
