/// @file
/// The dashboard: a web page that shows what a runtime is doing while it runs.
///
/// @code
///   lumen::Runtime rt;
///   lumen::Dashboard dashboard{rt, {.port = 8265}};   // http://127.0.0.1:8265/
/// @endcode
///
/// The page (one document, no build step, nothing fetched from elsewhere) shows worker
/// utilization over time, tasks run and pending, queues per worker, actors and their calls,
/// objects and memory, tasks by name, and the recent timeline per worker. Its data comes from
/// a JSON API that scripts may use too:
/// @code
///   GET /api/stats     the runtime's Stats, each worker's busy fraction, and the history of
///                      samples (one per sample_interval, `history` of them)
///   GET /api/timeline  the last one to two timeline_windows of the timeline: the 4000
///                      longest slices, on their workers' lanes (events_total says how many
///                      there were), and every task run in them, by name
///   GET /api/state     the state API (lumen/state.h): tasks by name and state (when the
///                      runtime tracks state), actors with their mailboxes, largest objects
///   GET /metrics       lumen::metrics_text(rt), for Prometheus to scrape
/// @endcode
///
/// It runs on threads of its own (one for HTTP, one that samples), never on the runtime's
/// workers, so a saturated runtime still answers. With `timeline` on it records the runtime's
/// timeline while it is up (lumen/timeline.h; a runtime records one timeline at a time, so a
/// recording of the program's own then takes precedence and the page shows no timeline), in
/// windows of timeline_window, keeping the last two.
///
/// Security: it binds to 127.0.0.1 unless told otherwise and serves only GET and HEAD; it
/// shows task and actor names, so bind it elsewhere only on a network you trust.
///
/// Lifetime: the dashboard and its runtime may be destroyed in either order; once the runtime
/// has ended, the API reports its last sample and `runtime_ended`.
///
/// Thread safety: port(), url() and stop() may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include <lumen/runtime.h>

namespace lumen {

/// Every field is checked when the dashboard starts; a value out of range throws usage_error.
struct DashboardOptions {
  std::string host = "127.0.0.1";  ///< an IPv4 or IPv6 address to bind to
  unsigned short port = 8265;      ///< 0: a free port (see port())
  std::chrono::milliseconds sample_interval{250};  ///< 10 ms to 60 s
  std::size_t history = 240;                       ///< samples kept, 1 to 100000
  bool timeline = true;  ///< record the timeline in windows of timeline_window for /api/timeline; off: that endpoint says there is none
  std::chrono::milliseconds timeline_window{2000};  ///< 100 ms to 60 s
  std::size_t timeline_events_per_thread = 20000;   ///< per window, 1 to 2^30
  std::size_t max_connections = 64;                 ///< beyond: closed at once; 1 to 10000
};

/// A live dashboard of one runtime: samples it and serves the page and the JSON API from threads of
/// its own until stop() or destruction.
class Dashboard {
 public:
  /// Starts serving. Throws usage_error for bad options, std::system_error when the address
  /// cannot be bound (in use, not local).
  explicit Dashboard(Runtime& rt, DashboardOptions options = {});
  ~Dashboard();  ///< stop()
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  unsigned short port() const noexcept;  ///< the bound port
  std::string url() const;               ///< http://HOST:PORT/
  /// Closes the listening socket and every connection and stops sampling. Idempotent.
  void stop() noexcept;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace lumen
