#include "lumen/serve/detail/deployment_core.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "lumen/error.h"
#include "serve/controller.h"

namespace lumen::serve::detail {

namespace {

// Names of live deployments: a name is taken from start() until shutdown() or destruction.
std::mutex g_names_mu;
std::set<std::string> g_names;

// Seeds each deployment's routing choices differently.
std::uint64_t next_deployment_id() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

std::size_t bucket_of(std::size_t n) {
  std::size_t i = 0;
  while (i + 1 < std::size(kBatchBuckets) && n > static_cast<std::size_t>(kBatchBuckets[i])) ++i;
  return i;
}

std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

// Hands src's outcome to p once src resolves.
void forward_into(const ObjectRef<Response>& src, Promise<Response> p) {
  on_resolved(src, [src, p = std::move(p)]() mutable noexcept {
    try {
      if (auto e = error_of(src)) {
        p.set_exception(e->cause());
      } else {
        p.set_value(lumen::get(src));
      }
    } catch (...) {  // the copy failed: the promise carries that error
    }
  });
}

void refuse_quietly(Promise<Response>& p, std::exception_ptr why) noexcept {
  try {
    if (!p.resolved()) p.set_exception(std::move(why));
  } catch (...) {
  }
}

int int_of(std::chrono::milliseconds d) { return static_cast<int>(d.count()); }

}  // namespace

bool failed_as_actor_death(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const actor_died&) {
    return true;
  } catch (...) {
    return false;
  }
}

void validate(const DeploymentOptions& o, bool has_reconfigure, bool has_batch_entry) {
  auto bad = [&](const std::string& why) { throw usage_error("lumen::serve: deployment '" + o.name + "': " + why); };
  if (o.name.empty()) throw usage_error("lumen::serve: DeploymentOptions::name is required");
  if (o.name.size() > 200 || o.name.find_first_of("\"\\\n\r{}") != std::string::npos)
    bad("name must be at most 200 characters, without quotes, backslashes, braces or line breaks");
  if (o.num_replicas < 1 && !o.autoscaling) bad("num_replicas must be at least 1, got " + std::to_string(o.num_replicas));
  if (o.num_replicas > 4096) bad("num_replicas must be at most 4096, got " + std::to_string(o.num_replicas));
  if (o.autoscaling) {
    const auto& a = *o.autoscaling;
    if (a.min_replicas < 0) bad("autoscaling.min_replicas must be at least 0");
    if (a.max_replicas < std::max(1, a.min_replicas) || a.max_replicas > 4096)
      bad("autoscaling.max_replicas must be from max(1, min_replicas) to 4096, got " + std::to_string(a.max_replicas));
    if (a.initial_replicas != -1 && (a.initial_replicas < a.min_replicas || a.initial_replicas > a.max_replicas))
      bad("autoscaling.initial_replicas must be -1 or within [min_replicas, max_replicas]");
    if (!(a.target_ongoing_requests > 0) || !std::isfinite(a.target_ongoing_requests))
      bad("autoscaling.target_ongoing_requests must be a positive number");
    if (a.upscale_delay.count() < 0 || a.downscale_delay.count() < 0 || a.look_back.count() < 0)
      bad("autoscaling delays must not be negative");
  }
  if (o.batch.max_batch_size > 65536) bad("batch.max_batch_size must be at most 65536");
  if (o.batch.max_batch_size > 0) {
    if (o.batch.batch_wait_timeout.count() < 0) bad("batch.batch_wait_timeout must not be negative");
    if (!has_batch_entry) bad("batching needs operator()(std::vector<Request>) returning one response per request");
    if (o.max_ongoing_requests != 0 && static_cast<std::size_t>(o.max_ongoing_requests) < o.batch.max_batch_size)
      bad("max_ongoing_requests (" + std::to_string(o.max_ongoing_requests) + ") is below batch.max_batch_size (" +
          std::to_string(o.batch.max_batch_size) + "): batches could never fill");
  }
  if (o.max_ongoing_requests < 0 || o.max_ongoing_requests > 1000000)
    bad("max_ongoing_requests must be from 0 (the default) to 1000000");
  if (o.max_queued_requests < -1) bad("max_queued_requests must be -1 (no limit) or more");
  if (o.max_concurrency < 1 || o.max_concurrency > 1000000) bad("max_concurrency must be from 1 to 1000000");
  if (o.max_models_per_replica < 0 || o.max_models_per_replica > 1000000)
    bad("max_models_per_replica must be from 0 (no multiplexing) to 1000000");
  if (!o.user_config.is_null() && !has_reconfigure) bad("user_config needs a reconfigure(const nlohmann::json&) member");
  if (o.health_check_period.count() <= 0) bad("health_check_period must be positive");
  if (o.health_check_timeout.count() <= 0) bad("health_check_timeout must be positive");
  if (o.graceful_shutdown_timeout.count() < 0) bad("graceful_shutdown_timeout must not be negative");
}

DeploymentCore::DeploymentCore(DeploymentOptions options, bool has_health_check, bool has_reconfigure, bool is_batched)
    : options_(std::move(options)),
      has_health_check_(has_health_check),
      has_reconfigure_(has_reconfigure),
      batched_(is_batched && options_.batch.max_batch_size > 0),
      max_ongoing_(options_.max_ongoing_requests != 0 ? options_.max_ongoing_requests
                   : batched_ ? static_cast<int>(2 * options_.batch.max_batch_size)
                              : 5),
      user_config_(options_.user_config),
      rng_(static_cast<std::minstd_rand::result_type>(next_deployment_id() * 2654435761u + 1)),
      batch_sizes_(std::size(kBatchBuckets), 0) {}

DeploymentCore::~DeploymentCore() {
  if (!stopped_) {
    std::lock_guard lock(g_names_mu);
    g_names.erase(options_.name);
  }
  // Replicas go with their handles; their actors end once their queued calls have run.
}

void DeploymentCore::start() {
  {
    std::lock_guard lock(g_names_mu);
    if (!g_names.insert(options_.name).second)
      throw usage_error("lumen::serve: a live deployment is already named '" + options_.name + "'");
  }
  Deferred after;
  try {
    std::lock_guard lock(mu_);
    sentinel_ = lumen::actor<RuntimeSentinel>();
    if (options_.autoscaling) {
      const auto& a = *options_.autoscaling;
      target_ = a.initial_replicas >= 0 ? a.initial_replicas : std::max(1, a.min_replicas);
    } else {
      target_ = options_.num_replicas;
    }
    for (int i = 0; i < target_; ++i) add_replica_locked(after);
  } catch (...) {
    std::lock_guard lock(g_names_mu);
    g_names.erase(options_.name);
    throw;
  }
  for (auto& f : after) f();
  Controller::instance().watch(shared_from_this());
}

void DeploymentCore::add_replica_locked(Deferred& after) {
  auto r = make_replica();
  r->id = next_replica_id_++;
  r->state = ReplicaState::starting;
  replicas_.push_back(r);
  ObjectRef<bool> ready = call_ready(*r, user_config_);
  after.push_back([self = shared_from_this(), r, ready] {
    on_resolved(ready, [self, r, ready]() noexcept {
      Routed run;
      Deferred after;
      std::deque<std::unique_ptr<Job>> refused;
      std::string why;
      try {
        std::lock_guard lock(self->mu_);
        if (r->state != ReplicaState::starting) return;
        if (auto e = error_of(ready)) {
          self->last_error_ = "replica " + std::to_string(r->id) + " failed to start: " + describe(e->cause());
          ++self->consecutive_start_failures_;
          self->retire_locked(r, ReplicaState::unhealthy, after);
          if (self->unavailable_locked()) {
            // No replica will take them soon: they get an answer now instead of waiting.
            refused.swap(self->queue_);
            self->in_flight_ -= static_cast<int>(refused.size());
            why = self->unavailable_message_locked();
          }
        } else {
          self->consecutive_start_failures_ = 0;
          r->state = ReplicaState::running;
          r->last_check = Clock::now();
          self->dispatch_queue_locked(run);
        }
      } catch (...) {  // no memory for the deferred work: the control loop retires it later
      }
      for (auto& f : after) f();
      for (auto& [job, rep] : run) job->run(rep);
      if (!refused.empty()) {
        auto error = std::make_exception_ptr(back_pressure(why));
        for (auto& job : refused) job->refuse(error);
      }
    });
  });
}

bool DeploymentCore::unavailable_locked() const {
  if (consecutive_start_failures_ < kFailuresBeforeUnavailable) return false;
  for (const auto& r : replicas_)
    if (r->state == ReplicaState::running) return false;
  return true;
}

std::string DeploymentCore::unavailable_message_locked() const {
  return "lumen::serve: deployment '" + options_.name + "' has no running replica (" + last_error_ + ")";
}

bool DeploymentCore::accepts_locked(Replica& r) noexcept {
  return r.state == ReplicaState::running && r.ongoing < max_ongoing_ && !dead(r);
}

std::shared_ptr<Replica> DeploymentCore::pick_locked() {
  std::size_t eligible = 0;
  for (const auto& r : replicas_)
    if (accepts_locked(*r)) ++eligible;
  if (eligible == 0) return nullptr;
  auto nth = [&](std::size_t k) -> const std::shared_ptr<Replica>& {
    for (const auto& r : replicas_)
      if (accepts_locked(*r) && k-- == 0) return r;
    return replicas_.front();  // unreachable: k < eligible
  };
  if (eligible == 1) return nth(0);
  std::size_t a = rng_() % eligible;
  std::size_t b = rng_() % (eligible - 1);
  if (b >= a) ++b;
  const auto& ra = nth(a);
  const auto& rb = nth(b);
  return rb->ongoing < ra->ongoing ? rb : ra;
}

// Multiplexing: a request for a model goes where that model was sent last, if that replica
// has room (the least loaded of those that have it), so that replicas load each model once
// and keep it; the router remembers the max_models_per_replica models it sent to each.
std::shared_ptr<Replica> DeploymentCore::pick_for_model_locked(std::string_view model) {
  std::shared_ptr<Replica> best;
  for (const auto& r : replicas_) {
    if (!accepts_locked(*r)) continue;
    if (std::find(r->models.begin(), r->models.end(), model) == r->models.end()) continue;
    if (best == nullptr || r->ongoing < best->ongoing) best = r;
  }
  if (best == nullptr) best = pick_locked();
  if (best != nullptr) {
    auto it = std::find(best->models.begin(), best->models.end(), model);
    if (it != best->models.end()) best->models.erase(it);
    best->models.emplace_back(model);
    if (best->models.size() > static_cast<std::size_t>(options_.max_models_per_replica)) best->models.pop_front();
  }
  return best;
}

void DeploymentCore::check_runtime_locked() const {
  if (sentinel_.dead())
    throw shutdown_error("lumen::serve: deployment '" + options_.name + "': the runtime it was deployed on has shut down");
  if (stopping_) throw shutdown_error("lumen::serve: deployment '" + options_.name + "' is shutting down");
}

bool DeploymentCore::stop_if_runtime_gone_locked(std::deque<std::unique_ptr<Job>>& refused) {
  if (!sentinel_.dead()) return false;
  stopping_ = true;
  stopped_ = true;
  refused.swap(queue_);
  in_flight_ -= static_cast<int>(refused.size());
  for (auto& r : replicas_) r->state = ReplicaState::stopped;
  replicas_.clear();
  last_error_ = "the runtime it was deployed on has shut down";
  std::lock_guard names(g_names_mu);
  g_names.erase(options_.name);
  return true;
}

std::shared_ptr<Replica> DeploymentCore::reserve(std::string_view model) {
  std::lock_guard lock(mu_);
  check_runtime_locked();
  if (!queue_.empty()) return nullptr;
  auto r = !model.empty() && options_.max_models_per_replica > 0 ? pick_for_model_locked(model) : pick_locked();
  if (r != nullptr) {
    ++r->ongoing;
    ++in_flight_;
    ++requests_;
  }
  return r;
}

void DeploymentCore::enqueue(std::unique_ptr<Job> job) {
  std::shared_ptr<Replica> now;
  {
    std::lock_guard lock(mu_);
    check_runtime_locked();
    if (queue_.empty()) now = pick_locked();
    if (now == nullptr && unavailable_locked()) {
      ++refused_;
      throw back_pressure(unavailable_message_locked());
    }
    if (now == nullptr && options_.max_queued_requests >= 0 &&
        queue_.size() >= static_cast<std::size_t>(options_.max_queued_requests)) {
      ++refused_;
      throw back_pressure("lumen::serve: deployment '" + options_.name + "' has " + std::to_string(queue_.size()) +
                          " requests queued (max_queued_requests); try again later");
    }
    ++in_flight_;
    ++requests_;
    if (now != nullptr) {
      ++now->ongoing;
    } else {
      queue_.push_back(std::move(job));
      return;
    }
  }
  job->run(now);
}

void DeploymentCore::dispatch_queue_locked(Routed& out) {
  while (!queue_.empty()) {
    auto r = pick_locked();
    if (r == nullptr) return;
    ++r->ongoing;
    out.emplace_back(std::move(queue_.front()), std::move(r));
    queue_.pop_front();
  }
}

void DeploymentCore::finished(const std::shared_ptr<Replica>& r, int n, bool replica_died) noexcept {
  Routed run;
  Deferred after;
  try {
    std::lock_guard lock(mu_);
    r->ongoing -= n;
    in_flight_ -= n;
    if (replica_died && (r->state == ReplicaState::running || r->state == ReplicaState::starting)) {
      last_error_ = "replica " + std::to_string(r->id) + " died";
      ++replicas_replaced_;
      retire_locked(r, ReplicaState::unhealthy, after);
    }
    if (r->state == ReplicaState::stopping && r->ongoing == 0) retire_locked(r, ReplicaState::stopping, after);
    dispatch_queue_locked(run);
    if (in_flight_ == 0) idle_.notify_all();
  } catch (...) {  // no memory for the deferred work: the control loop retires it later
  }
  for (auto& f : after) f();
  for (auto& [job, rep] : run) job->run(rep);
}

// Takes r out of routing. An unhealthy replica is stopped at once (requests it holds fail,
// or are retried); a stopping one drains first, and finished() stops it when it is empty.
// Killing runs outside the lock (in `after`): the calls it fails resolve on this thread, and
// their callbacks take the lock.
void DeploymentCore::retire_locked(const std::shared_ptr<Replica>& r, ReplicaState why, Deferred& after) {
  r->state = why;
  if (!r->batch.empty()) flush_batch_locked(r, after);
  if (why == ReplicaState::unhealthy || (why == ReplicaState::stopping && r->ongoing == 0)) {
    if (why == ReplicaState::stopping) r->state = ReplicaState::stopped;
    std::erase(replicas_, r);
    after.push_back([self = shared_from_this(), r] { self->kill(*r); });
  }
}

struct DeploymentCore::IngressJob final : Job {
  IngressJob(std::shared_ptr<DeploymentCore> c, Request r, std::optional<Emitter<std::string>> out)
      : core(std::move(c)), req(std::move(r)), chunks(std::move(out)) {}
  void run(const std::shared_ptr<Replica>& r) noexcept override {
    try {
      if (core->batched_) {
        core->add_to_batch(r, std::move(req), std::move(promise));
      } else {
        core->send_ingress(r, std::move(req), std::move(chunks), &promise, nullptr);
      }
    } catch (...) {
      core->finished(r, 1, false);
      refuse(std::current_exception());
    }
  }
  void refuse(std::exception_ptr why) noexcept override { refuse_quietly(promise, std::move(why)); }

  std::shared_ptr<DeploymentCore> core;
  Request req;
  std::optional<Emitter<std::string>> chunks;
  Promise<Response> promise;
};

ObjectRef<Response> DeploymentCore::request(Request req, std::optional<Emitter<std::string>> chunks) {
  if (chunks && batched_)
    throw usage_error("lumen::serve: deployment '" + options_.name + "' batches: it cannot stream a response");
  if (auto r = reserve(req.model_id())) {
    try {
      if (batched_) {
        Promise<Response> p;
        auto ref = p.ref();
        add_to_batch(r, std::move(req), std::move(p));
        return ref;
      }
      ObjectRef<Response> out;
      if (options_.retry_on_replica_death && !chunks) {
        Promise<Response> p;
        out = p.ref();
        send_ingress(r, std::move(req), std::nullopt, &p, nullptr);
      } else {
        send_ingress(r, std::move(req), std::move(chunks), nullptr, &out);
      }
      return out;
    } catch (...) {
      finished(r, 1, false);
      throw;
    }
  }
  auto job = std::make_unique<IngressJob>(shared_from_this(), std::move(req), std::move(chunks));
  auto ref = job->promise.ref();
  enqueue(std::move(job));
  return ref;
}

// Sends one request to r. The result goes to *into (a promise the caller already handed
// out) or, without one, is returned through *out.
// A streamed request is not retried: its replica may have emitted parts already.
void DeploymentCore::send_ingress(const std::shared_ptr<Replica>& r, Request req, std::optional<Emitter<std::string>> chunks,
                                  Promise<Response>* into, ObjectRef<Response>* out) {
  std::optional<Request> again;
  if (options_.retry_on_replica_death && into != nullptr && !chunks) again = req;
  ObjectRef<Response> ref = call_ingress(*r, std::move(req), std::move(chunks));
  if (into == nullptr) {
    *out = ref;
    release_when_done(r, ref);
    return;
  }
  on_resolved(ref, [self = shared_from_this(), r, ref, p = std::move(*into), again = std::move(again)]() mutable noexcept {
    bool died = false;
    auto e = error_of(ref);
    if (e) died = failed_as_actor_death(e->cause());
    self->finished(r, 1, died);
    if (died && again) {
      // Once more, on another replica; a second death fails the request.
      try {
        auto second = self->reserve();
        if (second != nullptr) {
          ObjectRef<Response> second_ref;
          self->send_ingress(second, std::move(*again), std::nullopt, nullptr, &second_ref);
          forward_into(second_ref, std::move(p));
        } else {
          auto job = std::make_unique<IngressJob>(self, std::move(*again), std::nullopt);
          forward_into(job->promise.ref(), std::move(p));
          self->enqueue(std::move(job));
        }
      } catch (...) {
        refuse_quietly(p, std::current_exception());
      }
      return;
    }
    try {
      if (e) {
        p.set_exception(e->cause());
      } else {
        p.set_value(lumen::get(ref));
      }
    } catch (...) {
    }
  });
}

void DeploymentCore::add_to_batch(const std::shared_ptr<Replica>& r, Request req, Promise<Response> p) {
  Deferred after;
  std::uint64_t arm = 0;
  {
    std::lock_guard lock(mu_);
    if (r->batch.empty()) arm = ++r->batches_opened;
    r->batch.push_back(std::move(req));
    r->batch_promises.push_back(std::move(p));
    if (r->batch.size() >= options_.batch.max_batch_size || (r->batch_due && !holds_batch_locked(*r))) {
      flush_batch_locked(r, after);
      arm = 0;
    }
  }
  if (arm != 0) arm_batch_timer(r, arm);
  for (auto& f : after) f();
}

void DeploymentCore::flush_batch_locked(const std::shared_ptr<Replica>& r, Deferred& after) {
  struct Batch {
    std::vector<Request> requests;
    std::vector<Promise<Response>> promises;
  };
  // Everything that allocates comes before the batch leaves r: out of memory, it stays there.
  auto b = std::make_shared<Batch>();
  std::function<void()> send = [self = shared_from_this(), r, b] {
    const int n = static_cast<int>(b->promises.size());
    auto fail = [&](std::exception_ptr why) {
      self->batch_ended(r);
      self->finished(r, n, false);
      for (auto& p : b->promises) refuse_quietly(p, why);
    };
    ObjectRef<std::vector<Response>> ref;
    try {
      ref = self->call_batch(*r, std::move(b->requests));
    } catch (...) {
      return fail(std::current_exception());
    }
    try {
      on_resolved(ref, [self, r, b, ref, n]() noexcept {
        auto e = error_of(ref);
        self->batch_ended(r);
        self->finished(r, n, e && failed_as_actor_death(e->cause()));
        if (e) {
          for (auto& p : b->promises) refuse_quietly(p, e->cause());
          return;
        }
        const std::vector<Response>& out = lumen::get(ref);
        for (std::size_t i = 0; i < b->promises.size(); ++i) {
          try {
            b->promises[i].set_value(out[i]);
          } catch (...) {
          }
        }
      });
    } catch (...) {  // no memory to learn of the answer: the batch fails rather than hang
      fail(std::current_exception());
    }
  };
  after.reserve(after.size() + 1);
  b->requests.swap(r->batch);
  b->promises.swap(r->batch_promises);
  ++r->batches_running;
  r->batch_due = false;
  ++batch_sizes_[bucket_of(b->requests.size())];
  batched_requests_ += b->requests.size();
  after.push_back(std::move(send));
}

// A replica that runs as many batches as it may at once keeps a due batch gathering; one
// that is being stopped or replaced sends it at once (its calls fail there, and no running
// batch, however long, holds them back).
bool DeploymentCore::holds_batch_locked(const Replica& r) const noexcept {
  return r.state == ReplicaState::running && r.batches_running >= options_.max_concurrency;
}

void DeploymentCore::arm_batch_timer(const std::shared_ptr<Replica>& r, std::uint64_t batch) {
  std::weak_ptr<DeploymentCore> weak = shared_from_this();
  Controller::instance().after(options_.batch.batch_wait_timeout, [weak, r, batch] {
    auto self = weak.lock();
    if (self == nullptr) return;
    Deferred after;
    {
      std::lock_guard lock(self->mu_);
      if (r->batches_opened != batch || r->batch.empty()) return;
      if (self->holds_batch_locked(*r)) {
        r->batch_due = true;
        return;
      }
      self->flush_batch_locked(r, after);
    }
    for (auto& f : after) f();
  });
}

void DeploymentCore::batch_ended(const std::shared_ptr<Replica>& r) {
  Deferred after;
  try {
    std::lock_guard lock(mu_);
    --r->batches_running;
    if (r->batch_due && !r->batch.empty() && !holds_batch_locked(*r)) flush_batch_locked(r, after);
  } catch (...) {  // no memory to send it now: the next request it gathers, or the next control tick, sends it
  }
  for (auto& f : after) f();
}

void DeploymentCore::reconfigure(const nlohmann::json& config) {
  if (!has_reconfigure_)
    throw usage_error("lumen::serve: deployment '" + options_.name + "' has no reconfigure(const nlohmann::json&)");
  std::vector<std::shared_ptr<Replica>> targets;
  {
    std::lock_guard lock(mu_);
    user_config_ = config;
    for (auto& r : replicas_)
      if (r->state == ReplicaState::running || r->state == ReplicaState::starting) targets.push_back(r);
  }
  for (auto& r : targets) call_ready(*r, config);
}

int DeploymentCore::target_replicas_locked(Clock::time_point now) {
  if (!options_.autoscaling) return options_.num_replicas;
  const auto& a = *options_.autoscaling;
  load_samples_.emplace_back(now, in_flight_);
  while (load_samples_.size() > 1 && now - load_samples_.front().first > a.look_back) load_samples_.pop_front();
  double sum = 0;
  for (const auto& s : load_samples_) sum += s.second;
  const double load = sum / static_cast<double>(load_samples_.size());
  const int wanted = std::clamp(static_cast<int>(std::ceil(load / a.target_ongoing_requests)), a.min_replicas, a.max_replicas);
  if (wanted > target_) {
    want_fewer_since_ = {};
    if (want_more_since_ == Clock::time_point{}) want_more_since_ = now;
    if (now - want_more_since_ >= a.upscale_delay) {
      want_more_since_ = {};
      return wanted;
    }
  } else if (wanted < target_) {
    want_more_since_ = {};
    if (want_fewer_since_ == Clock::time_point{}) want_fewer_since_ = now;
    if (now - want_fewer_since_ >= a.downscale_delay) {
      want_fewer_since_ = {};
      return wanted;
    }
  } else {
    want_more_since_ = {};
    want_fewer_since_ = {};
  }
  return target_;
}

void DeploymentCore::control_tick() noexcept {
  const auto now = Clock::now();
  Deferred after;
  Routed run;
  std::deque<std::unique_ptr<Job>> refused;
  bool gone = false;
  try {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    gone = stop_if_runtime_gone_locked(refused);
    if (!gone) tick_locked(now, after, run);
  } catch (...) {
    // Out of memory for a new replica or a check: the next tick tries again.
  }
  if (gone) {
    auto why = std::make_exception_ptr(
        shutdown_error("lumen::serve: deployment '" + options_.name + "': the runtime it was deployed on has shut down"));
    for (auto& job : refused) job->refuse(why);
    return;
  }
  for (auto& f : after) f();
  for (auto& [job, rep] : run) job->run(rep);
}

void DeploymentCore::tick_locked(Clock::time_point now, Deferred& after, Routed& run) {
  // Health: checks that took too long, replicas whose actor ended, checks that are due.
  for (auto r : std::vector(replicas_)) {
    if (r->batch_due && !r->batch.empty() && !holds_batch_locked(*r)) flush_batch_locked(r, after);
    if (r->state != ReplicaState::running) continue;
    if (dead(*r)) {
      last_error_ = "replica " + std::to_string(r->id) + " died";
      ++replicas_replaced_;
      retire_locked(r, ReplicaState::unhealthy, after);
      continue;
    }
    if (!has_health_check_) continue;
    if (r->check_in_flight) {
      if (now - r->check_started > options_.health_check_timeout) {
        last_error_ = "replica " + std::to_string(r->id) + " did not answer its health check within " +
                      std::to_string(int_of(options_.health_check_timeout)) + " ms";
        ++replicas_replaced_;
        retire_locked(r, ReplicaState::unhealthy, after);
      }
    } else if (now - r->last_check >= options_.health_check_period) {
      r->check_in_flight = true;
      r->check_started = now;
      ObjectRef<bool> check = call_check_health(*r);
      after.push_back([self = shared_from_this(), r, check] {
        on_resolved(check, [self, r, check]() noexcept {
          Deferred later;
          try {
            std::lock_guard lock(self->mu_);
            r->check_in_flight = false;
            r->last_check = Clock::now();
            auto e = error_of(check);
            if (r->state == ReplicaState::running && (e || !lumen::get(check))) {
              self->last_error_ = "replica " + std::to_string(r->id) + " failed its health check" +
                                  (e ? ": " + describe(e->cause()) : std::string(": check_health() returned false"));
              ++self->replicas_replaced_;
              self->retire_locked(r, ReplicaState::unhealthy, later);
            }
          } catch (...) {  // no memory: the timeout path retires it later
          }
          for (auto& f : later) f();
        });
      });
    }
  }
  // Scale: the target, then replicas started or drained toward it.
  target_ = target_replicas_locked(now);
  int live = 0;
  for (const auto& r : replicas_)
    if (r->state == ReplicaState::starting || r->state == ReplicaState::running) ++live;
  // A class whose replicas keep failing to start is retried ever more slowly (up to 5 s).
  const auto backoff = std::chrono::milliseconds(std::min(5000, 50 << std::min(consecutive_start_failures_, 7)));
  const bool may_start = consecutive_start_failures_ == 0 || now - last_start_attempt_ >= backoff;
  if (live < target_ && may_start) {
    last_start_attempt_ = now;
    for (; live < target_; ++live) add_replica_locked(after);
  }
  while (live > target_) {
    // Drain the replica that holds the least: starting ones first.
    std::shared_ptr<Replica> victim;
    for (const auto& r : replicas_) {
      if (r->state != ReplicaState::starting && r->state != ReplicaState::running) continue;
      if (victim == nullptr || (r->state == ReplicaState::starting && victim->state != ReplicaState::starting) ||
          (r->state == victim->state && r->ongoing < victim->ongoing))
        victim = r;
    }
    retire_locked(victim, ReplicaState::stopping, after);
    --live;
  }
  dispatch_queue_locked(run);
}

void DeploymentCore::shutdown(std::chrono::milliseconds timeout) {
  std::deque<std::unique_ptr<Job>> left;
  std::vector<std::shared_ptr<Replica>> victims;
  Deferred batches;
  {
    std::unique_lock lock(mu_);
    if (stopped_) return;
    stopping_ = true;
    idle_.wait_for(lock, timeout, [&] { return in_flight_ == 0; });
    left.swap(queue_);
    in_flight_ -= static_cast<int>(left.size());
    for (auto& r : replicas_) {
      r->state = ReplicaState::stopped;
      try {
        // Batches still gathering go to their replica's mailbox now, where the kill below
        // fails them, rather than wait for their timers or for a batch that never ends.
        if (!r->batch.empty()) flush_batch_locked(r, batches);
      } catch (...) {  // no memory: the batch's timer sends it (the replica is stopped, so nothing holds it)
      }
    }
    victims.swap(replicas_);
    stopped_ = true;
  }
  {
    std::lock_guard lock(g_names_mu);
    g_names.erase(options_.name);
  }
  auto why = std::make_exception_ptr(
      shutdown_error("lumen::serve: deployment '" + options_.name + "' shut down before the request was served"));
  for (auto& job : left) job->refuse(why);
  for (auto& r : victims) kill(*r);
  for (auto& f : batches) f();
}

DeploymentStatus DeploymentCore::status() const {
  std::lock_guard lock(mu_);
  DeploymentStatus s;
  s.name = options_.name;
  s.target_replicas = target_;
  s.queued_requests = static_cast<int>(queue_.size());
  for (const auto& r : replicas_) {
    s.replicas.push_back({r->id, r->state, r->ongoing});
    s.ongoing_requests += r->ongoing;
  }
  s.requests = requests_;
  s.refused_requests = refused_;
  s.replicas_replaced = replicas_replaced_;
  s.batch_sizes = batch_sizes_;
  s.batched_requests = batched_requests_;
  s.message = last_error_;
  const int running = s.replicas_in(ReplicaState::running);
  const int live = running + s.replicas_in(ReplicaState::starting);
  if (stopped_) {
    s.state = DeploymentState::stopped;
  } else if (stopping_) {
    s.state = DeploymentState::stopping;
  } else if (consecutive_start_failures_ >= kFailuresBeforeUnavailable) {
    s.state = DeploymentState::unhealthy;
  } else if (running == target_ && live == target_) {
    s.state = DeploymentState::healthy;
  } else if (options_.autoscaling && live < target_) {
    s.state = DeploymentState::upscaling;
  } else if (options_.autoscaling && live > target_) {
    s.state = DeploymentState::downscaling;
  } else {
    s.state = DeploymentState::updating;
  }
  return s;
}

}  // namespace lumen::serve::detail

namespace lumen::serve {

int DeploymentStatus::replicas_in(ReplicaState st) const noexcept {
  int n = 0;
  for (const auto& r : replicas)
    if (r.state == st) ++n;
  return n;
}

std::string_view to_string(ReplicaState s) noexcept {
  switch (s) {
    case ReplicaState::starting: return "starting";
    case ReplicaState::running: return "running";
    case ReplicaState::unhealthy: return "unhealthy";
    case ReplicaState::stopping: return "stopping";
    case ReplicaState::stopped: return "stopped";
  }
  return "unknown";
}

std::string_view to_string(DeploymentState s) noexcept {
  switch (s) {
    case DeploymentState::updating: return "updating";
    case DeploymentState::healthy: return "healthy";
    case DeploymentState::upscaling: return "upscaling";
    case DeploymentState::downscaling: return "downscaling";
    case DeploymentState::unhealthy: return "unhealthy";
    case DeploymentState::stopping: return "stopping";
    case DeploymentState::stopped: return "stopped";
  }
  return "unknown";
}

}  // namespace lumen::serve
