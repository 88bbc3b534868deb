// What the front door tells monitors: /metrics in Prometheus's text format, /-/status and
// /-/routes as JSON.
#include <map>
#include <set>
#include <sstream>

#include "serve/front_door.h"

namespace lumen::serve::detail {

namespace {

// A label value with \, " and line breaks escaped, as the text format asks.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void route_lines(std::ostringstream& requests, std::ostringstream& latency, const std::string& route, RouteMetrics& m) {
  std::map<int, RouteMetrics::Latency> by_code;
  {
    std::lock_guard lock(m.mu);
    by_code = m.by_code;
  }
  for (const auto& [code, l] : by_code) {
    const std::string labels = "route=\"" + label(route) + "\",code=\"" + std::to_string(code) + "\"";
    requests << "lumen_serve_requests_total{" << labels << "} " << l.count << '\n';
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < RouteMetrics::kBounds.size(); ++i) {
      cumulative += l.buckets[i];
      latency << "lumen_serve_request_duration_seconds_bucket{" << labels << ",le=\"" << RouteMetrics::kBounds[i]
              << "\"} " << cumulative << '\n';
    }
    latency << "lumen_serve_request_duration_seconds_bucket{" << labels << ",le=\"+Inf\"} " << l.count << '\n';
    latency << "lumen_serve_request_duration_seconds_sum{" << labels << "} " << static_cast<double>(l.sum_ns) / 1e9
            << '\n';
    latency << "lumen_serve_request_duration_seconds_count{" << labels << "} " << l.count << '\n';
  }
}

nlohmann::json status_of(const DeploymentStatus& s) {
  nlohmann::json replicas = nlohmann::json::array();
  for (const auto& r : s.replicas)
    replicas.push_back({{"id", r.id}, {"state", to_string(r.state)}, {"ongoing_requests", r.ongoing_requests}});
  return {{"name", s.name},
          {"state", to_string(s.state)},
          {"message", s.message},
          {"target_replicas", s.target_replicas},
          {"replicas", replicas},
          {"queued_requests", s.queued_requests},
          {"ongoing_requests", s.ongoing_requests},
          {"requests", s.requests},
          {"refused_requests", s.refused_requests},
          {"replicas_replaced", s.replicas_replaced}};
}

}  // namespace

std::string FrontDoor::metrics_text() const {
  std::vector<std::pair<std::string, Route>> routes = all_routes();
  std::ostringstream requests, latency;
  requests.imbue(std::locale::classic());
  latency.imbue(std::locale::classic());
  for (auto& [p, r] : routes) route_lines(requests, latency, p, *r.metrics);
  route_lines(requests, latency, "", *unrouted_);

  std::ostringstream out;
  out.imbue(std::locale::classic());
  out << "# HELP lumen_serve_requests_total HTTP requests answered, by route prefix (\"\" for none) and status code.\n"
         "# TYPE lumen_serve_requests_total counter\n"
      << requests.str()
      << "# HELP lumen_serve_request_duration_seconds Time from a request read to its answer written.\n"
         "# TYPE lumen_serve_request_duration_seconds histogram\n"
      << latency.str();

  std::set<DeploymentCore*> seen;
  std::vector<DeploymentStatus> statuses;
  for (auto& [p, r] : routes)
    if (seen.insert(r.deployment.get()).second) statuses.push_back(r.deployment->status());
  out << "# HELP lumen_serve_queued_requests Requests waiting for a replica with room.\n"
         "# TYPE lumen_serve_queued_requests gauge\n";
  for (const auto& s : statuses) out << "lumen_serve_queued_requests{deployment=\"" << label(s.name) << "\"} " << s.queued_requests << '\n';
  out << "# HELP lumen_serve_ongoing_requests Requests on replicas (running or in their mailboxes).\n"
         "# TYPE lumen_serve_ongoing_requests gauge\n";
  for (const auto& s : statuses)
    out << "lumen_serve_ongoing_requests{deployment=\"" << label(s.name) << "\"} " << s.ongoing_requests << '\n';
  out << "# HELP lumen_serve_refused_requests_total Requests refused because the queue was full.\n"
         "# TYPE lumen_serve_refused_requests_total counter\n";
  for (const auto& s : statuses)
    out << "lumen_serve_refused_requests_total{deployment=\"" << label(s.name) << "\"} " << s.refused_requests << '\n';
  out << "# HELP lumen_serve_replicas Replicas by state.\n"
         "# TYPE lumen_serve_replicas gauge\n";
  for (const auto& s : statuses)
    for (auto st : {ReplicaState::starting, ReplicaState::running, ReplicaState::unhealthy, ReplicaState::stopping})
      out << "lumen_serve_replicas{deployment=\"" << label(s.name) << "\",state=\"" << to_string(st) << "\"} "
          << s.replicas_in(st) << '\n';
  out << "# HELP lumen_serve_batch_size Requests per batch sent to a replica.\n"
         "# TYPE lumen_serve_batch_size histogram\n";
  for (const auto& s : statuses) {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i + 1 < std::size(kBatchBuckets); ++i) {
      cumulative += s.batch_sizes[i];
      out << "lumen_serve_batch_size_bucket{deployment=\"" << label(s.name) << "\",le=\"" << kBatchBuckets[i] << "\"} "
          << cumulative << '\n';
    }
    cumulative += s.batch_sizes.back();
    out << "lumen_serve_batch_size_bucket{deployment=\"" << label(s.name) << "\",le=\"+Inf\"} " << cumulative << '\n';
    out << "lumen_serve_batch_size_sum{deployment=\"" << label(s.name) << "\"} " << s.batched_requests << '\n';
    out << "lumen_serve_batch_size_count{deployment=\"" << label(s.name) << "\"} " << cumulative << '\n';
  }
  return out.str();
}

nlohmann::json FrontDoor::status_json() const {
  std::vector<std::pair<std::string, Route>> routes = all_routes();
  // An application is what a route (or a model) serves: its ingress deployment; it is as
  // healthy as that deployment. (Deployments it calls through handles show on their own
  // routes, or through their handles' status().)
  std::set<DeploymentCore*> seen;
  nlohmann::json deployments = nlohmann::json::object();
  nlohmann::json applications = nlohmann::json::object();
  for (auto& [p, r] : routes) {
    DeploymentStatus st = r.deployment->status();
    applications[p] = {{"deployment", st.name}, {"state", to_string(st.state)}};
    if (seen.insert(r.deployment.get()).second) deployments[st.name] = status_of(st);
  }
  return {{"proxy", {{"state", draining() ? "draining" : "running"}, {"port", port()}}},
          {"applications", applications},
          {"deployments", deployments}};
}

nlohmann::json FrontDoor::routes_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [p, r] : all_routes()) j[p] = r.deployment->name();
  return j;
}

std::vector<std::pair<std::string, Route>> FrontDoor::all_routes() const {
  std::vector<std::pair<std::string, Route>> routes;
  std::shared_lock lock(routes_mu_);
  for (const auto& [p, r] : routes_) routes.emplace_back(p, r);
  for (const auto& [name, m] : models_) routes.emplace_back("/v2/models/" + name, Route{m->deployment, m->metrics});
  return routes;
}

}  // namespace lumen::serve::detail
