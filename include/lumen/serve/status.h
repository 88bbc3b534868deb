/// @file
/// What a deployment is doing, for people and for monitors: its state, its replicas by state,
/// its load. DeploymentHandle::status() returns it; the front door serves it as JSON at
/// /-/status.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lumen::serve {

/// Where a replica is in its life.
enum class ReplicaState {
  starting,   ///< its actor is being built (and reconfigured); no traffic yet
  running,    ///< takes traffic
  unhealthy,  ///< failed a health check or died: no traffic, being replaced
  stopping,   ///< draining (scaled down or shut down): no new traffic, finishing what it holds
  stopped,    ///< gone
};

/// Where a deployment is as a whole.
enum class DeploymentState {
  updating,     ///< replicas are starting toward the target
  healthy,      ///< every wanted replica runs
  upscaling,    ///< autoscaling is adding replicas
  downscaling,  ///< autoscaling is draining replicas
  unhealthy,    ///< replicas keep failing to start or to pass health checks
  stopping,     ///< shutdown() is draining it
  stopped,
};

/// The state's name, as in the /-/status JSON: "starting", "running", ...
std::string_view to_string(ReplicaState s) noexcept;
/// The state's name, as in the /-/status JSON: "updating", "healthy", ...
std::string_view to_string(DeploymentState s) noexcept;

/// One replica's state and load.
struct ReplicaStatus {
  std::uint64_t id = 0;  ///< unique within the deployment
  ReplicaState state = ReplicaState::starting;  ///< where it is in its life
  int ongoing_requests = 0;  ///< requests it holds: running or waiting in its mailbox
};

/// A deployment's state and load; DeploymentHandle::status() and /-/status give it.
struct DeploymentStatus {
  std::string name{};  ///< DeploymentOptions::name
  DeploymentState state = DeploymentState::updating;  ///< its state as a whole
  std::string message{};  ///< the last problem seen: why a replica was replaced or failed to start
  int target_replicas = 0;  ///< the replicas it aims at now
  std::vector<ReplicaStatus> replicas{};  ///< its replicas, each with its state and load
  int queued_requests = 0;  ///< waiting for a replica with room
  int ongoing_requests = 0;  ///< on replicas
  std::uint64_t requests = 0;          ///< taken since deploy
  std::uint64_t refused_requests = 0;  ///< refused with back_pressure
  std::uint64_t replicas_replaced = 0;  ///< replicas replaced after a failed health check or a death
  /// Batches sent, by size: batch_sizes[i] counts batches of up to kBatchBuckets[i] requests.
  std::vector<std::uint64_t> batch_sizes{};
  std::uint64_t batched_requests = 0;  ///< requests sent in batches (the sum of their sizes)

  /// How many of the replicas are in state s.
  int replicas_in(ReplicaState s) const noexcept;
};

/// Upper bounds of the batch-size buckets in DeploymentStatus::batch_sizes (the last is open).
inline constexpr int kBatchBuckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 65536};

}  // namespace lumen::serve
