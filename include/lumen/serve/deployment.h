/// @file
/// Deployments: a C++ class served by a set of replicas, each replica a lumen actor.
///
/// @code
///   struct Classifier {
///     explicit Classifier(std::string weights);
///     lumen::serve::Response operator()(const lumen::serve::Request& r);   // the HTTP entry
///     int predict(std::vector<float> pixels);                             // any other method
///   };
///   auto clf = lumen::serve::deploy<Classifier>({.name = "clf", .num_replicas = 2}, "w.bin");
///   lumen::ObjectRef<int> label = clf.call(&Classifier::predict, pixels);  // in process
///   server.route("/classify", clf);                                         // over HTTP
/// @endcode
///
/// Routing: every request (HTTP or handle) goes to a running replica with room (fewer than
/// max_ongoing_requests), chosen by the power of two choices: two replicas drawn at random,
/// the one with fewer requests wins. When none has room the request waits in the deployment's
/// queue, first come first served; when the queue holds max_queued_requests, the caller gets
/// back_pressure at once (HTTP 503). Nothing waits unbounded, and nothing is dropped
/// silently: every accepted request resolves, with a value or an error.
///
/// The class: the HTTP entry is operator()(const Request&) (or taking Request by value)
/// returning Response, nlohmann::json (sent as JSON), std::string (plain text) or any value
/// nlohmann::json converts. A batched deployment (DeploymentOptions::batch) has instead
/// operator()(std::vector<Request>) returning a vector of one of those, one per request, in
/// order. A streaming deployment has operator()(const Request&, lumen::Emitter<std::string>&)
/// and emits the body in parts as they are ready (HTTP chunked transfer). Optional members: reconfigure(const nlohmann::json&) (user_config), check_health()
/// (void that throws, or bool). An exception from the entry fails that request only (HTTP 500,
/// or the status of an http_error); the replica keeps serving.
///
/// Lifetime: a deployment lives while a handle to it (or a server route) exists; shutdown()
/// drains it. Deploy it on a live Runtime and shut it down (or drop it) before that Runtime
/// ends. Thread safety: every member of DeploymentHandle may be called from any thread,
/// inside tasks and replicas too (deployments may call each other: composition).
#pragma once

#include <chrono>
#include <concepts>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "lumen/actor.h"
#include "lumen/error.h"
#include "lumen/object_ref.h"
#include "lumen/on_resolved.h"
#include "lumen/promise.h"
#include "lumen/stream.h"
#include "lumen/serve/detail/deployment_core.h"
#include "lumen/serve/http.h"
#include "lumen/serve/options.h"
#include "lumen/serve/status.h"

namespace lumen::serve {

namespace detail {

template <class V>
Response to_response(V&& v) {
  using D = std::remove_cvref_t<V>;
  if constexpr (std::is_same_v<D, Response>) {
    return std::forward<V>(v);
  } else if constexpr (std::is_same_v<D, nlohmann::json>) {
    return Response::json(v);
  } else if constexpr (std::is_convertible_v<V, std::string> && !std::is_same_v<D, std::nullptr_t>) {
    return Response::text(std::string(std::forward<V>(v)));
  } else {
    return Response::json(nlohmann::json(std::forward<V>(v)));
  }
}

template <class T>
concept has_ingress = requires(T& t, const Request& r) { to_response(t(r)); };
template <class T>
concept has_batch_ingress = requires(T& t, std::vector<Request> r) {
  { t(std::move(r)).size() } -> std::convertible_to<std::size_t>;
  to_response(t(std::move(r))[0]);
};
template <class T>
concept has_stream_ingress = requires(T& t, const Request& r, Emitter<std::string> out) { t(r, out); };
template <class T>
concept has_check_health = requires(T& t) { t.check_health(); };
template <class T>
concept has_reconfigure = requires(T& t, const nlohmann::json& j) { t.reconfigure(j); };

template <class T>
struct TypedReplica final : Replica {
  ActorHandle<T> actor;
};

template <class T>
ActorHandle<T>& actor_of(Replica& r) {
  return static_cast<TypedReplica<T>&>(r).actor;
}

void validate(const DeploymentOptions& o, bool has_reconfigure, bool has_batch_entry);

template <class T, class... CtorArgs>
class TypedDeployment final : public DeploymentCore {
 public:
  template <class... A>
  explicit TypedDeployment(DeploymentOptions o, A&&... a)
      : DeploymentCore(std::move(o), has_check_health<T>, has_reconfigure<T>, has_batch_ingress<T>),
        ctor_args_(std::forward<A>(a)...) {}

 protected:
  std::shared_ptr<Replica> make_replica() override {
    auto r = std::make_shared<TypedReplica<T>>();
    ActorOptions ao{.max_concurrency = options().max_concurrency};
    r->actor = std::apply([&](const auto&... a) { return lumen::actor<T>(ao, a...); }, ctor_args_);
    return r;
  }
  ObjectRef<Response> call_ingress(Replica& r, Request req, std::optional<Emitter<std::string>> chunks) override {
    if (chunks) {
      if constexpr (has_stream_ingress<T>) {
        return actor_of<T>(r).call(
            [](T& t, Request q, Emitter<std::string> out) -> Response {
              t(std::as_const(q), out);
              return Response{};
            },
            std::move(req), std::move(*chunks));
      } else {
        throw usage_error("lumen::serve: deployment '" + name() + "' has no operator()(const Request&, Emitter<std::string>&)");
      }
    }
    if constexpr (has_ingress<T>) {
      return actor_of<T>(r).call([](T& t, Request q) -> Response { return to_response(t(std::as_const(q))); },
                                 std::move(req));
    } else {
      throw usage_error("lumen::serve: deployment '" + name() + "' has no operator()(const Request&)");
    }
  }
  ObjectRef<std::vector<Response>> call_batch(Replica& r, std::vector<Request> reqs) override {
    if constexpr (has_batch_ingress<T>) {
      return actor_of<T>(r).call(
          [](T& t, std::vector<Request> q) -> std::vector<Response> {
            const std::size_t n = q.size();
            auto out = t(std::move(q));
            if (out.size() != n)
              throw usage_error("lumen::serve: a batch of " + std::to_string(n) + " requests got " +
                                std::to_string(out.size()) + " responses");
            std::vector<Response> responses;
            responses.reserve(n);
            for (auto& v : out) responses.push_back(to_response(std::move(v)));
            return responses;
          },
          std::move(reqs));
    } else {
      throw usage_error("lumen::serve: deployment '" + name() + "' has no operator()(std::vector<Request>)");
    }
  }
  ObjectRef<bool> call_ready(Replica& r, const nlohmann::json& config) override {
    return actor_of<T>(r).call(
        [](T& t, const nlohmann::json& c) {
          if constexpr (has_reconfigure<T>) {
            if (!c.is_null()) t.reconfigure(c);
          }
          return true;
        },
        config);
  }
  ObjectRef<bool> call_check_health(Replica& r) override {
    return actor_of<T>(r).call([](T& t) -> bool {
      if constexpr (has_check_health<T>) {
        if constexpr (std::is_convertible_v<decltype(t.check_health()), bool>) {
          return static_cast<bool>(t.check_health());
        } else {
          t.check_health();
          return true;
        }
      } else {
        return true;
      }
    });
  }
  bool dead(Replica& r) noexcept override { return actor_of<T>(r).dead(); }
  void kill(Replica& r) noexcept override {
    try {
      actor_of<T>(r).kill();
    } catch (...) {  // an actor whose runtime is gone has nothing left to kill
    }
  }

 private:
  std::tuple<CtorArgs...> ctor_args_;
};

// A method call waiting in the queue: made on the replica that takes it, its result handed to
// the ref the caller already holds.
template <class T, class R, class M, class... A>
struct CallJob final : Job {
  template <class MM, class... AA>
  CallJob(std::shared_ptr<DeploymentCore> c, MM&& m, AA&&... a)
      : core(std::move(c)), method(std::forward<MM>(m)), args(std::forward<AA>(a)...) {}

  void run(const std::shared_ptr<Replica>& r) noexcept override {
    try {
      auto ref = std::apply(
          [&](auto&... a) { return actor_of<T>(*r).call(method, std::move(a)...); }, args);
      core->release_when_done(r, ref);
      on_resolved(ref, [ref, p = std::move(promise)]() mutable noexcept {
        try {
          if (auto e = error_of(ref)) {
            p.set_exception(e->cause());
          } else if constexpr (std::is_void_v<R>) {
            p.set_value();
          } else {
            p.set_value(lumen::get(std::move(ref)));
          }
        } catch (...) {  // the value could not be copied: the promise failed with that error
        }
      });
    } catch (...) {
      core->finished(r, 1, false);
      refuse(std::current_exception());
    }
  }
  void refuse(std::exception_ptr why) noexcept override {
    try {
      if (!promise.resolved()) promise.set_exception(std::move(why));
    } catch (...) {
    }
  }

  std::shared_ptr<DeploymentCore> core;
  M method;
  std::tuple<A...> args;
  Promise<R> promise;
};

}  // namespace detail

/// A reference to a deployment: cheap to copy, usable from any thread, inside replicas too.
template <class T>
class DeploymentHandle {
 public:
  DeploymentHandle() = default;
  /// For lumen's own code (deploy()): a handle to this deployment.
  explicit DeploymentHandle(std::shared_ptr<detail::DeploymentCore> core) : core_(std::move(core)) {}

  /// Calls method(args...) on a replica chosen as described at the top of this file; the ref
  /// resolves to its result (or its error). ObjectRef arguments (another deployment's answer,
  /// say) are passed on unresolved and waited for by the replica. Throws back_pressure when
  /// the queue is full, lumen::shutdown_error after shutdown().
  template <class M, class... Args>
  auto call(M&& method, Args&&... args) const {
    using Ref = decltype(std::declval<ActorHandle<T>&>().call(method, std::forward<Args>(args)...));
    using R = typename Ref::value_type;
    auto& core = checked();
    if (auto r = core.reserve()) {
      Ref ref = [&] {
        try {
          return detail::actor_of<T>(*r).call(std::forward<M>(method), std::forward<Args>(args)...);
        } catch (...) {
          core.finished(r, 1, false);
          throw;
        }
      }();
      core.release_when_done(r, ref);
      return ref;
    }
    auto job = std::make_unique<detail::CallJob<T, R, std::decay_t<M>, std::decay_t<Args>...>>(
        core_, std::forward<M>(method), std::forward<Args>(args)...);
    Ref ref = job->promise.ref();
    core.enqueue(std::move(job));
    return ref;
  }

  /// The HTTP entry, called in process: the same routing, batching and limits as a request
  /// through the front door, without the HTTP hop.
  ObjectRef<Response> request(Request req) const { return checked().request(std::move(req)); }
  /// The streaming entry, called in process: the parts arrive on the returned Stream as the
  /// replica emits them; the stream ends when the method returns (get() on the stream's
  /// result ref says whether it threw).
  std::pair<Stream<std::string>, ObjectRef<Response>> stream(Request req, StreamOptions options = {}) const {
    auto [parts, out] = make_stream<std::string>(options);
    auto done = checked().request(std::move(req), std::move(out));
    return {std::move(parts), std::move(done)};
  }

  /// Hands config to every replica's reconfigure(), in each replica's call order (calls made
  /// before it see the old config). Replicas started later get it too.
  void reconfigure(const nlohmann::json& config) const { checked().reconfigure(config); }
  /// The deployment's state, replicas and load now.
  DeploymentStatus status() const { return checked().status(); }
  /// Stops taking requests, waits up to `timeout` (default: graceful_shutdown_timeout) for the
  /// requests in flight, then stops the replicas; requests still queued then fail with
  /// lumen::shutdown_error. Call it from outside tasks: it blocks.
  void shutdown() const { checked().shutdown(checked().options().graceful_shutdown_timeout); }
  /// As shutdown(), waiting up to `timeout` for the requests in flight.
  void shutdown(std::chrono::milliseconds timeout) const { checked().shutdown(timeout); }

  /// DeploymentOptions::name. An empty handle is a usage_error.
  const std::string& name() const { return checked().name(); }
  /// False for a default-constructed handle.
  bool valid() const noexcept { return core_ != nullptr; }
  /// For lumen's own code (the front door): the untyped deployment.
  const std::shared_ptr<detail::DeploymentCore>& core() const noexcept { return core_; }

 private:
  detail::DeploymentCore& checked() const {
    if (core_ == nullptr) throw usage_error("lumen::serve: use of an empty DeploymentHandle");
    return *core_;
  }
  std::shared_ptr<detail::DeploymentCore> core_;
};

/// Deploys T on the runtime in scope: starts its replicas (constructor arguments are copied
/// for each) and returns at once; replicas take traffic as they finish starting, and requests
/// meanwhile wait in the queue. Throws usage_error for bad options (naming the field), a name
/// a live deployment has, or a class that lacks what the options need (user_config without
/// reconfigure, batching without a batch entry).
template <class T, class... Args>
DeploymentHandle<T> deploy(DeploymentOptions options, Args&&... args) {
  static_assert((std::is_copy_constructible_v<std::decay_t<Args>> && ...),
                "deploy: constructor arguments are copied for every replica");
  detail::validate(options, detail::has_reconfigure<T>, detail::has_batch_ingress<T>);
  auto core = std::make_shared<detail::TypedDeployment<T, std::decay_t<Args>...>>(std::move(options),
                                                                                  std::forward<Args>(args)...);
  core->start();
  return DeploymentHandle<T>(std::move(core));
}

}  // namespace lumen::serve
