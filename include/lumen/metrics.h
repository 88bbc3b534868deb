/// @file
/// Metrics in Prometheus's text format: the runtime's own (tasks, queues, steals, parks,
/// fibers, objects, actors, idle time per worker) and the program's own counters, gauges and
/// histograms.
///
/// @code
///   lumen::Counter requests{"app_requests_total", "Requests handled", {{"route", "/predict"}}};
///   lumen::Histogram latency{"app_latency_seconds", "Time per request", {0.001, 0.01, 0.1, 1}};
///   requests.inc();
///   latency.observe(0.004);
///   std::string text = lumen::metrics_text(rt);   // serve it at /metrics (lumen-dashboard does)
/// @endcode
///
/// A metric is a handle on one series (a name and a set of label values) in a process-wide
/// registry: constructing a handle with a name and labels already registered gives the same
/// series, so handles may be made wherever they are needed. Series live until the process ends.
///
/// Names follow Prometheus: [a-zA-Z_:][a-zA-Z0-9_:]*, labels [a-zA-Z_][a-zA-Z0-9_]* (not
/// starting with "__"); names starting with "lumen_" are the runtime's. A bad name, a name
/// registered before as another type or with another help text, or a histogram with bounds
/// that are not finite and strictly increasing, throws usage_error naming it.
///
/// Thread safety: every member may be called from any thread at once; updates are lock-free
/// (an atomic add or store), so they may sit on hot paths. Registration takes a lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lumen {

class Runtime;
namespace detail {
struct MetricSeries;
}

/// A series' labels, as (name, value) pairs: {{"route", "/classify"}, {"code", "200"}}.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

/// Only goes up: things done, bytes sent.
class Counter {
 public:
  /// Registers the series (name, labels), or finds it if it exists; `help` is Prometheus' HELP
  /// text.
  Counter(const std::string& name, const std::string& help, const MetricLabels& labels = {});
  /// Adds v; v < 0 or NaN throws usage_error.
  void inc(double v = 1.0);
  /// The total so far.
  double value() const noexcept;

 private:
  std::shared_ptr<detail::MetricSeries> series_;
};

/// Goes up and down: things in flight, a size.
class Gauge {
 public:
  /// Registers the series (name, labels), or finds it if it exists; `help` is Prometheus' HELP
  /// text.
  Gauge(const std::string& name, const std::string& help, const MetricLabels& labels = {});
  /// Replaces the value.
  void set(double v) noexcept;
  /// Adds v (which may be negative).
  void inc(double v = 1.0) noexcept;
  /// Subtracts v.
  void dec(double v = 1.0) noexcept;
  /// The current value.
  double value() const noexcept;

 private:
  std::shared_ptr<detail::MetricSeries> series_;
};

/// Counts observations into buckets by upper bound (cumulative, as Prometheus reads them), with
/// their sum and count.
class Histogram {
 public:
  /// Registers the series with the bucket bounds (finite, strictly increasing; +Inf is implied), or
  /// finds it if it exists.
  Histogram(const std::string& name, const std::string& help, std::vector<double> upper_bounds,
            const MetricLabels& labels = {});
  /// A NaN observation throws usage_error.
  void observe(double v);
  /// Observations so far.
  std::uint64_t count() const noexcept;
  /// The sum of the observations so far.
  double sum() const noexcept;

 private:
  std::shared_ptr<detail::MetricSeries> series_;
};

/// The text exposition format (version 0.0.4, what Prometheus scrapes): rt's own metrics
/// (lumen_*), then every metric the program registered, each family with its HELP and TYPE.
std::string metrics_text(const Runtime& rt);

}  // namespace lumen
