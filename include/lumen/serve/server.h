/// @file
/// Server: the HTTP front door. It routes requests by path prefix to deployments, and guards
/// them: authentication, limits, time-outs, back-pressure, and a status code for every way a
/// request can fail.
///
/// @code
///   lumen::serve::Server server({.port = 8000, .bearer_token = "s3cret"});
///   server.route("/classify", classifier);   // POST /classify, /classify/anything
///   server.start();                          // listening when it returns
///   ...
///   server.stop();                           // finishes requests in flight, then closes
/// @endcode
///
/// What a client gets back:
/// @code
///   2xx-5xx from the model    its Response, or the status of an http_error it threw (any other
///                             status becomes 500; 204 and 304 go without a body)
///   400  malformed request line or headers, or a JSON body that does not parse (or nests
///        deeper than 128 levels)
///   401  bearer_token set and the Authorization header does not carry it
///   404  no route's prefix matches the path
///   405  a method the path does not take (/v2 endpoints; HEAD on a streamed answer)
///   408  the request took longer than read_timeout to arrive, or request_timeout to answer
///   413  body over max_body_bytes        431  headers over max_header_bytes
///   429  the client sent more than max_requests_per_second (Retry-After)
///   500  the model threw, or its replica died (the replica is replaced)
///   503  the deployment's queue is full or it is shutting down (Retry-After)
/// @endcode
/// Every response carries X-Request-ID: the client's own (up to 128 of [A-Za-z0-9._:-]) or
/// one the server made. Connections are kept alive (HTTP/1.1) until idle for read_timeout.
///
/// Models under the Open Inference Protocol (KServe v2): Server::model, lumen/serve/inference.h.
///
/// Built in: GET /-/healthz (200 while serving; no token needed), GET /-/routes (prefix to
/// deployment, JSON), GET /-/status (deployments and replicas, JSON), GET /metrics (Prometheus
/// text format: requests and a latency histogram by route and code, queue lengths,
/// ongoing requests, replicas by state, batch sizes).
///
/// Bound to 127.0.0.1 unless `host` says otherwise. With tls_certificate_file and
/// tls_private_key_file (PEM) it speaks HTTPS only.
///
/// Thread safety: every member may be called from any thread except a replica's own (stop
/// waits for requests, which a replica would be serving).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "lumen/serve/deployment.h"
#include "lumen/serve/inference.h"

namespace lumen::serve {

/// The front door's settings; every field is checked by Server's constructor.
struct ServerOptions {
  std::string host = "127.0.0.1";  ///< an IPv4 or IPv6 address to bind to
  std::uint16_t port = 8000;  ///< 0: any free port (see Server::port())
  int io_threads = 2;         ///< threads that parse and write HTTP, 1 to 256
  std::string bearer_token{}; ///< empty: no authentication
  std::string tls_certificate_file{};  ///< PEM; with tls_private_key_file, HTTPS only
  std::string tls_private_key_file{};  ///< PEM; with tls_certificate_file
  std::size_t max_body_bytes = 1 << 20;   ///< larger bodies get 413
  std::size_t max_header_bytes = 16 << 10;  ///< larger header blocks get 431
  std::chrono::milliseconds read_timeout{10000};     ///< to receive a request; also the idle keep-alive
  std::chrono::milliseconds request_timeout{60000};  ///< from a request received to its answer
  /// Requests per second one client address may send (a token bucket holding `client_burst`
  /// requests); 0: no limit.
  double max_requests_per_second = 0;
  double client_burst = 0;  ///< 0: max_requests_per_second (at least 1)
  std::size_t max_connections = 10000;  ///< more are closed at once
  int retry_after_seconds = 1;          ///< Retry-After sent with 429 and 503
};

namespace detail {
class FrontDoor;
// Calls a model's infer() on a replica: (request, model name, version) -> the JSON answer.
using ModelInvoker = std::function<ObjectRef<Response>(InferRequest, std::string, std::string)>;
}

/// The HTTP front door: routes paths to deployments, serves the Open Inference Protocol and status
/// endpoints, guards limits, as the top of this file describes.
class Server {
 public:
  /// Checks the options (usage_error naming the field) and loads the TLS files
  /// (usage_error naming the file and what is wrong). Does not listen yet.
  explicit Server(ServerOptions options = {});
  ~Server();  ///< stop() with no wait
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Sends requests whose path is `prefix` or starts with `prefix` + "/" to d's HTTP entry; the
  /// longest matching prefix wins. prefix is "/" or starts with "/" and does not end with it.
  /// Routes may be added while serving. Throws usage_error for a bad or taken prefix.
  /// A streaming deployment's answer goes out with chunked transfer, part by part, as
  /// text/plain; request_timeout then bounds the wait for its first part only.
  template <class T>
  void route(const std::string& prefix, const DeploymentHandle<T>& d) {
    constexpr bool streams = detail::has_stream_ingress<T> && !detail::has_ingress<T> && !detail::has_batch_ingress<T>;
    static_assert(streams || detail::has_ingress<T> || detail::has_batch_ingress<T>,
                  "Server::route needs a deployment whose class has an HTTP entry: operator()(const Request&), "
                  "operator()(std::vector<Request>) or operator()(const Request&, lumen::Emitter<std::string>&)");
    add_route(prefix, d.core(), streams);
  }

  /// Serves d under the Open Inference Protocol (KServe v2) as model info.name: see
  /// lumen/serve/inference.h. T needs infer(const InferRequest&) returning InferResponse.
  /// Throws usage_error for a bad or taken name.
  template <class T>
  void model(ModelInfo info, const DeploymentHandle<T>& d) {
    static_assert(requires(T& t, const InferRequest& r) {
      { t.infer(r) } -> std::convertible_to<InferResponse>;
    }, "Server::model needs a deployment whose class has InferResponse infer(const InferRequest&)");
    add_model(std::move(info), d.core(), [d](InferRequest req, std::string name, std::string version) {
      return d.call(
          [](T& t, InferRequest r, const std::string& m, const std::string& v) {
            return detail::infer_response(t.infer(std::as_const(r)), m, v, r.id, r.outputs);
          },
          std::move(req), std::move(name), std::move(version));
    });
  }

  /// Binds and listens; returns once connections are accepted. Throws std::system_error when
  /// the address cannot be bound (in use, not local, ...).
  void start();
  /// The port listened on (the chosen one when ServerOptions::port was 0); 0 before start().
  std::uint16_t port() const noexcept;
  /// Stops accepting, lets requests in flight finish for up to `drain` (their connections
  /// close after their answer), then closes every connection and joins the I/O threads.
  /// Deployments are not shut down: they may serve other servers and handles. Idempotent.
  void stop(std::chrono::milliseconds drain = std::chrono::seconds(10));

  std::string metrics() const;     ///< what GET /metrics returns
  nlohmann::json status() const;   ///< what GET /-/status returns
  nlohmann::json routes() const;   ///< what GET /-/routes returns

 private:
  void add_route(const std::string& prefix, std::shared_ptr<detail::DeploymentCore> d, bool streams);
  void add_model(ModelInfo info, std::shared_ptr<detail::DeploymentCore> d, detail::ModelInvoker infer);
  std::shared_ptr<detail::FrontDoor> door_{};
};

}  // namespace lumen::serve
