/// @file
/// How a deployment runs: replicas, limits, batching, autoscaling, health checks. Every field
/// is checked by deploy(); a value out of range throws lumen::usage_error naming it.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace lumen::serve {

/// Replicas follow the load: the deployment aims at target_ongoing_requests per replica,
/// counting requests running, waiting in replicas and queued in front of them, averaged over
/// look_back. It adds replicas once the aim has asked for more for upscale_delay, and drains
/// and removes them once it has asked for fewer for downscale_delay.
struct AutoscalingOptions {
  int min_replicas = 1;       ///< >= 0
  int max_replicas = 1;       ///< >= max(1, min_replicas)
  int initial_replicas = -1;  ///< -1: min_replicas (at least 1)
  double target_ongoing_requests = 2.0;  ///< > 0
  std::chrono::milliseconds upscale_delay{30000};  ///< how long the aim must ask for more replicas before they are added
  std::chrono::milliseconds downscale_delay{600000};  ///< how long the aim must ask for fewer replicas before they are drained
  std::chrono::milliseconds look_back{30000};  ///< the window the load is averaged over
};

/// Dynamic batching: requests to one replica are gathered and handed to the deployment's
/// batch method together. A batch leaves when it holds max_batch_size requests or when
/// batch_wait_timeout has passed since its first request, whichever comes first. If the
/// replica is running as many batches as it may at once (max_concurrency) when the timeout
/// passes, the batch goes on gathering (up to max_batch_size) and leaves the moment one of them
/// ends: sent earlier, it would only have waited in the replica's mailbox, and the replica runs
/// fewer, larger batches under load.
struct BatchOptions {
  std::size_t max_batch_size = 0;  ///< 0: no batching; else 1 to 65536
  std::chrono::microseconds batch_wait_timeout{10000};  ///< how long a batch waits for more requests after its first one while its replica is free
};

/// How one deployment runs: its name, replicas, limits, batching, health checks and multiplexing.
struct DeploymentOptions {
  std::string name{};  ///< shown in routes, status and metrics; required, unique among live deployments
  /// Fixed replica count (>= 1); ignored when autoscaling is set.
  int num_replicas = 1;
  std::optional<AutoscalingOptions> autoscaling{};  ///< set: the replica count follows the load, between its bounds
  /// Requests one replica holds at once (running or waiting in its mailbox). 0: 5, or
  /// 2 × max_batch_size when batching (a batch must be able to fill while another runs). An
  /// explicit value below max_batch_size is refused: it would cap batches silently.
  int max_ongoing_requests = 0;
  /// Requests waiting for a replica with room; beyond it callers get back_pressure (HTTP 503
  /// with Retry-After) at once. -1: no limit.
  int max_queued_requests = 1000;
  /// Calls one replica runs at once (its actor's max_concurrency). Above 1 the class guards
  /// its own state.
  int max_concurrency = 1;
  /// Handed to the class's reconfigure(const nlohmann::json&) on every replica before it takes
  /// traffic, and again on DeploymentHandle::reconfigure, without restarting replicas.
  /// null: none (the class need not have reconfigure).
  nlohmann::json user_config{};
  /// A class with check_health() (void: throws when unhealthy; or bool) is checked this often
  /// on every replica; a check that throws, returns false or takes longer than the timeout
  /// marks the replica unhealthy: it gets no more traffic and is replaced.
  std::chrono::milliseconds health_check_period{10000};
  std::chrono::milliseconds health_check_timeout{30000};  ///< a check that takes longer marks the replica unhealthy
  /// shutdown() waits this long for requests in flight to finish before it stops replicas.
  std::chrono::milliseconds graceful_shutdown_timeout{20000};
  BatchOptions batch{};  ///< dynamic batching; off by default
  /// Model multiplexing: requests carrying a model id (the serve_multiplexed_model_id header,
  /// Request::model_id()) go to a replica that was sent that model lately, when one has room,
  /// so that each replica keeps a few models loaded (serve::ModelCache) instead of all of them.
  /// The router remembers this many models per replica; 0: no multiplexing.
  int max_models_per_replica = 0;
  /// A request whose replica died under it is sent once more to another replica (the model
  /// must be safe to run twice); false: it fails (HTTP 500).
  bool retry_on_replica_death = false;
};

}  // namespace lumen::serve
