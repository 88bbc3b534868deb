/// @file
/// What a deployment receives and returns: Request, Response, and http_error for a model that
/// wants to answer with a status of its own choosing.
///
/// @code
///   struct Echo {
///     lumen::serve::Response operator()(const lumen::serve::Request& r) {
///       return lumen::serve::Response::json({{"you_sent", r.json}});
///     }
///   };
/// @endcode
///
/// A Request is a plain value: the front door builds one per HTTP request, an in-process caller
/// builds its own (DeploymentHandle::request). Values cross to replicas by copy or move, never
/// by serialization.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace lumen::serve {

/// An HTTP request as a deployment sees it.
struct Request {
  std::string method = "POST";  ///< as sent: "GET", "POST", ...
  std::string path = "/";       ///< the target without its query: "/classify/v1"
  std::string query{};          ///< after '?', undecoded: "top=3&verbose"
  std::string route{};          ///< the route prefix that matched: "/classify"
  /// Header fields as sent (names in lower case), in order.
  std::vector<std::pair<std::string, std::string>> headers{};
  std::string body{};  ///< the body as sent
  /// The body parsed, when it was sent as JSON (Content-Type application/json or +json);
  /// null otherwise. A body that is not valid JSON never reaches a replica (400).
  nlohmann::json json{};
  /// The X-Request-ID the client sent, or one the front door made; returned with the response.
  std::string request_id{};

  /// The first header with this name (any case), or "" when absent.
  std::string_view header(std::string_view name) const noexcept;
  /// The model a multiplexed deployment should use: the serve_multiplexed_model_id header.
  std::string_view model_id() const noexcept { return header("serve_multiplexed_model_id"); }
};

/// What a deployment answers over HTTP; its status and headers go out as they are.
///
/// Header fields: each goes out in order, a repeated name repeated (two Set-Cookie fields
/// stay two); one named Server, Content-Type or X-Request-ID replaces the server's; Content-Length,
/// Transfer-Encoding and Connection are dropped (framing is the server's). A name that is not
/// an HTTP token, or a value (or content_type) holding a line break or another control
/// character but tab, turns the answer into 500: it could end the head early.
struct Response {
  int status = 200;  ///< 2xx to 5xx; 204 and 304 go without a body
  std::string body{};  ///< sent as it is
  std::string content_type = "text/plain; charset=utf-8";  ///< the Content-Type field
  std::vector<std::pair<std::string, std::string>> headers{};  ///< extra fields to send (see above)

  /// A JSON answer: value serialized, Content-Type application/json.
  static Response json(const nlohmann::json& value, int status = 200);
  /// A plain-text answer (text/plain; charset=utf-8).
  static Response text(std::string body, int status = 200);
};

/// Thrown by a model to answer with this status and message instead of 500.
class http_error : public std::runtime_error {
 public:
  /// Answers with `status` (4xx or 5xx) and `message` as the body.
  http_error(int status, const std::string& message) : std::runtime_error(message), status_(status) {}
  /// The status to answer with.
  int status() const noexcept { return status_; }

 private:
  int status_;
};

/// The error a caller gets when a deployment refuses a request because its queue is full
/// (max_queued_requests), or because its replicas keep failing to start and none runs; HTTP
/// callers get 503 with Retry-After. Nothing was started.
class back_pressure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace lumen::serve
