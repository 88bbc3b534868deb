// The part of a deployment that does not depend on the class: its replicas' states and load,
// the routing (power of two choices), the queue in front of the replicas, batches, and what
// the control loop (health checks, replacement, autoscaling, drain) decides. TypedDeployment
// adds the calls on the class's actors.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "lumen/actor.h"
#include "lumen/object_ref.h"
#include "lumen/on_resolved.h"
#include "lumen/promise.h"
#include "lumen/stream.h"
#include "lumen/serve/http.h"
#include "lumen/serve/options.h"
#include "lumen/serve/status.h"

namespace lumen::serve::detail {

using Clock = std::chrono::steady_clock;

// One replica: an actor and what routing needs to know of it. Fields are guarded by the
// deployment's mutex; the actor handle lives in the typed subclass.
struct Replica {
  virtual ~Replica() = default;
  std::uint64_t id = 0;
  ReplicaState state = ReplicaState::starting;
  int ongoing = 0;  // requests routed here that have not finished
  bool check_in_flight = false;
  Clock::time_point check_started{};
  Clock::time_point last_check{};
  // The batch being gathered (batching only), and how many batches were opened, so that a
  // timer set for an earlier batch does not send a later one early. A batch whose timer fires
  // while the replica runs as many batches as it may at once (max_concurrency) is `batch_due`:
  // it keeps gathering and leaves when one of them ends (it would only wait in the replica's
  // mailbox otherwise).
  std::vector<Request> batch;
  std::vector<Promise<Response>> batch_promises;
  std::uint64_t batches_opened = 0;
  int batches_running = 0;
  bool batch_due = false;
  std::deque<std::string> models;  // multiplexed models sent here, least recent first
};

// A request that waits in the queue: run on a replica that has room (counted in its
// `ongoing` already), or refused with an error.
struct Job {
  virtual ~Job() = default;
  virtual void run(const std::shared_ptr<Replica>& r) noexcept = 0;
  virtual void refuse(std::exception_ptr why) noexcept = 0;
};

// An actor with nothing to do: it dies with its runtime, so a deployment learns from it that
// the runtime its replicas ran on has shut down (and stops, instead of starting replicas on
// whatever runtime is in scope then).
struct RuntimeSentinel {};

using Deferred = std::vector<std::function<void()>>;  // work to run once the lock is let go
using Routed = std::vector<std::pair<std::unique_ptr<Job>, std::shared_ptr<Replica>>>;

class DeploymentCore : public std::enable_shared_from_this<DeploymentCore> {
 public:
  DeploymentCore(DeploymentOptions options, bool has_health_check, bool has_reconfigure, bool is_batched);
  virtual ~DeploymentCore();
  DeploymentCore(const DeploymentCore&) = delete;
  DeploymentCore& operator=(const DeploymentCore&) = delete;

  // Starts the first replicas and the control loop; called once, after construction.
  void start();

  // The HTTP-style entry: routed, batched when the deployment batches. With `chunks`, the
  // streaming entry, which emits the body's parts there (the ref then resolves when it
  // returns). Throws back_pressure when the queue is full and lumen::shutdown_error once
  // shutdown() began.
  ObjectRef<Response> request(Request req, std::optional<Emitter<std::string>> chunks = std::nullopt);

  // A replica with room, chosen by the power of two choices on `ongoing` (or, for a
  // multiplexed model, one that has it), with one more request counted on it; nullptr when
  // every accepting replica is full or others wait in the queue already (they go first).
  // Throws shutdown_error once shutdown() began.
  std::shared_ptr<Replica> reserve(std::string_view model = {});
  // Queues job for the next replica with room (or runs it now, if one freed meanwhile).
  // Throws back_pressure when the queue is full, shutdown_error once shutdown() began.
  void enqueue(std::unique_ptr<Job> job);
  // `n` requests on r finished; `replica_died` when the replica's actor ended under them.
  void finished(const std::shared_ptr<Replica>& r, int n, bool replica_died) noexcept;
  // Counts r's requests down once `ref` resolves, and notes when its actor died under it.
  template <class R>
  void release_when_done(const std::shared_ptr<Replica>& r, const ObjectRef<R>& ref);

  void reconfigure(const nlohmann::json& config);
  DeploymentStatus status() const;
  // Stops taking requests, waits up to `timeout` for those in flight, then stops replicas.
  // Requests still queued then fail with shutdown_error. Idempotent.
  void shutdown(std::chrono::milliseconds timeout);
  // One step of the control loop: health checks, replacement, autoscaling. Runs on the
  // controller's thread.
  void control_tick() noexcept;

  const DeploymentOptions& options() const noexcept { return options_; }
  const std::string& name() const noexcept { return options_.name; }
  bool batched() const noexcept { return batched_; }
  int max_ongoing() const noexcept { return max_ongoing_; }

 protected:
  // Starts an actor for a new replica (its constructor runs on a worker afterwards).
  virtual std::shared_ptr<Replica> make_replica() = 0;
  virtual ObjectRef<Response> call_ingress(Replica& r, Request req, std::optional<Emitter<std::string>> chunks) = 0;
  virtual ObjectRef<std::vector<Response>> call_batch(Replica& r, std::vector<Request> reqs) = 0;
  // A call that resolves once the replica is constructed and given `config` (unless null):
  // its readiness, and how a new config reaches a running replica.
  virtual ObjectRef<bool> call_ready(Replica& r, const nlohmann::json& config) = 0;
  virtual ObjectRef<bool> call_check_health(Replica& r) = 0;
  virtual bool dead(Replica& r) noexcept = 0;
  virtual void kill(Replica& r) noexcept = 0;

 private:
  struct IngressJob;
  std::shared_ptr<Replica> pick_locked();
  // Running, below max_ongoing_requests, and its actor alive (a replica that died is
  // replaced at the next tick, and gets nothing meanwhile).
  bool accepts_locked(Replica& r) noexcept;
  std::shared_ptr<Replica> pick_for_model_locked(std::string_view model);
  void send_ingress(const std::shared_ptr<Replica>& r, Request req, std::optional<Emitter<std::string>> chunks,
                    Promise<Response>* into, ObjectRef<Response>* out);
  void add_to_batch(const std::shared_ptr<Replica>& r, Request req, Promise<Response> p);
  void flush_batch_locked(const std::shared_ptr<Replica>& r, Deferred& after);
  void arm_batch_timer(const std::shared_ptr<Replica>& r, std::uint64_t batch);
  void batch_ended(const std::shared_ptr<Replica>& r);
  bool holds_batch_locked(const Replica& r) const noexcept;
  void dispatch_queue_locked(Routed& out);
  void add_replica_locked(Deferred& after);
  void retire_locked(const std::shared_ptr<Replica>& r, ReplicaState why, Deferred& after);
  int target_replicas_locked(Clock::time_point now);
  // Replicas failed to start this many times in a row and none runs: requests are refused
  // (back_pressure, HTTP 503) rather than queued for a replica that may never come.
  static constexpr int kFailuresBeforeUnavailable = 3;
  bool unavailable_locked() const;
  // The runtime has shut down: no replica can run again. Stops the deployment (queued
  // requests fail with shutdown_error); true when it did.
  void tick_locked(Clock::time_point now, Deferred& after, Routed& run);
  bool stop_if_runtime_gone_locked(std::deque<std::unique_ptr<Job>>& refused);
  void check_runtime_locked() const;
  std::string unavailable_message_locked() const;

  const DeploymentOptions options_;
  const bool has_health_check_;
  const bool has_reconfigure_;
  const bool batched_;
  const int max_ongoing_;

  ActorHandle<RuntimeSentinel> sentinel_;
  mutable std::mutex mu_;
  std::condition_variable idle_;  // notified when the last request in flight finishes
  std::vector<std::shared_ptr<Replica>> replicas_;
  std::deque<std::unique_ptr<Job>> queue_;
  nlohmann::json user_config_;
  std::minstd_rand rng_;
  bool stopping_ = false;
  bool stopped_ = false;
  int in_flight_ = 0;  // requests on replicas plus queued ones
  int target_ = 0;     // replicas wanted now
  int consecutive_start_failures_ = 0;
  Clock::time_point last_start_attempt_{};
  std::string last_error_;
  std::uint64_t next_replica_id_ = 1;
  // Autoscaling: samples of the load, and since when the aim has differed from the count.
  std::deque<std::pair<Clock::time_point, int>> load_samples_;
  Clock::time_point want_more_since_{};
  Clock::time_point want_fewer_since_{};
  // Counters for status and metrics.
  std::uint64_t requests_ = 0;
  std::uint64_t refused_ = 0;
  std::uint64_t replicas_replaced_ = 0;
  std::vector<std::uint64_t> batch_sizes_;
  std::uint64_t batched_requests_ = 0;  // histogram: count of batches by size bucket
};

bool failed_as_actor_death(const std::exception_ptr& e) noexcept;

template <class R>
void DeploymentCore::release_when_done(const std::shared_ptr<Replica>& r, const ObjectRef<R>& ref) {
  on_resolved(ref, [self = shared_from_this(), r, ref]() noexcept {
    bool died = false;
    if (auto e = error_of(ref)) died = failed_as_actor_death(e->cause());
    self->finished(r, 1, died);
  });
}

}  // namespace lumen::serve::detail
