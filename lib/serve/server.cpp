#include "lumen/serve/server.h"

#include "lumen/error.h"
#include "serve/front_door.h"

namespace lumen::serve {

namespace {
ServerOptions checked(ServerOptions o) {
  auto bad = [](const std::string& why) { throw usage_error("lumen::serve: ServerOptions::" + why); };
  if (o.io_threads < 1 || o.io_threads > 256) bad("io_threads must be from 1 to 256");
  if (o.max_body_bytes == 0) bad("max_body_bytes must be positive");
  if (o.max_header_bytes < 512 || o.max_header_bytes > (1u << 30)) bad("max_header_bytes must be from 512 to 1 GiB");
  if (o.read_timeout.count() <= 0) bad("read_timeout must be positive");
  if (o.request_timeout.count() <= 0) bad("request_timeout must be positive");
  if (!(o.max_requests_per_second >= 0) || !(o.client_burst >= 0)) bad("max_requests_per_second and client_burst must not be negative");
  if (o.max_connections == 0) bad("max_connections must be positive");
  if (o.retry_after_seconds < 0) bad("retry_after_seconds must not be negative");
  if (o.tls_certificate_file.empty() != o.tls_private_key_file.empty())
    bad("tls_certificate_file and tls_private_key_file go together");
  if (o.bearer_token.find_first_of(" \r\n\t") != std::string::npos) bad("bearer_token must not hold spaces or line breaks");
  return o;
}
}  // namespace

Server::Server(ServerOptions options) : door_(std::make_shared<detail::FrontDoor>(checked(std::move(options)))) {}

Server::~Server() { stop(std::chrono::milliseconds(0)); }

void Server::add_route(const std::string& prefix, std::shared_ptr<detail::DeploymentCore> d, bool streams) {
  door_->add_route(prefix, std::move(d), streams);
}
void Server::add_model(ModelInfo info, std::shared_ptr<detail::DeploymentCore> d, detail::ModelInvoker infer) {
  door_->add_model(std::move(info), std::move(d), std::move(infer));
}
void Server::start() { door_->start(); }
std::uint16_t Server::port() const noexcept { return door_->port(); }
void Server::stop(std::chrono::milliseconds drain) { door_->stop(drain); }
std::string Server::metrics() const { return door_->metrics_text(); }
nlohmann::json Server::status() const { return door_->status_json(); }
nlohmann::json Server::routes() const { return door_->routes_json(); }

}  // namespace lumen::serve
