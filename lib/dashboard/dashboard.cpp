// The dashboard's server (Boost.Beast on one thread of its own), its sampler thread, and the
// JSON it answers with. The page itself is in page.cpp.
#include "lumen/dashboard/dashboard.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <system_error>
#include <thread>
#include <vector>

#include "dashboard/page.h"
#include "lumen/error.h"
#include "lumen/metrics.h"
#include "lumen/state.h"
#include "lumen/timeline.h"

namespace lumen {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

DashboardOptions checked(DashboardOptions o) {
  using std::chrono::milliseconds;
  if (o.sample_interval < milliseconds(10) || o.sample_interval > milliseconds(60000))
    throw usage_error("lumen: DashboardOptions::sample_interval is " + std::to_string(o.sample_interval.count()) +
                      " ms; it must be between 10 ms and 60 s");
  if (o.history < 1 || o.history > 100000)
    throw usage_error("lumen: DashboardOptions::history is " + std::to_string(o.history) + "; it must be between 1 and 100000");
  if (o.timeline_window < milliseconds(100) || o.timeline_window > milliseconds(60000))
    throw usage_error("lumen: DashboardOptions::timeline_window is " + std::to_string(o.timeline_window.count()) +
                      " ms; it must be between 100 ms and 60 s");
  if (o.timeline_events_per_thread < 1 || o.timeline_events_per_thread > (std::size_t{1} << 30))
    throw usage_error("lumen: DashboardOptions::timeline_events_per_thread is " + std::to_string(o.timeline_events_per_thread) +
                      "; it must be between 1 and 2^30");
  if (o.max_connections < 1 || o.max_connections > 10000)
    throw usage_error("lumen: DashboardOptions::max_connections is " + std::to_string(o.max_connections) +
                      "; it must be between 1 and 10000");
  return o;
}

net::ip::address checked_address(const std::string& host) {
  boost::system::error_code ec;
  auto a = net::ip::make_address(host, ec);
  if (ec) throw usage_error("lumen: DashboardOptions::host '" + host + "' is not an IPv4 or IPv6 address");
  return a;
}

struct Sample {
  double time_s;
  std::vector<double> busy;
  std::uint64_t tasks_run, tasks_pending, object_bytes;
};

}  // namespace

struct Dashboard::State {
  State(Runtime& rt, DashboardOptions o) : options(checked(std::move(o))), observer(rt), acceptor(io) {}

  const DashboardOptions options;
  const RuntimeObserver observer;
  const std::int64_t started = steady_ns();
  // Sessions hold a plain pointer to this state: stop() ends them all and joins the I/O
  // thread before the state can go.
  std::atomic<std::size_t> connections{0};
  net::io_context io{1};
  tcp::acceptor acceptor;
  unsigned short port = 0;
  std::string host;
  std::thread io_thread, sampler;

  std::mutex mutex;  // guards what follows
  std::condition_variable wake;
  bool stopping = false;
  bool runtime_ended = false;
  Stats last;
  std::deque<Sample> history;
  std::shared_ptr<TimelineRecording> current, previous;  // the timeline windows
  std::string timeline_note;                            // why there is none, if so
  Clock::time_point next_rotation;                      // the sampler's

  // ---- sampling -----------------------------------------------------------------------------

  void sample_loop() {
    std::vector<std::uint64_t> idle_before;
    std::int64_t at_before = 0;
    std::unique_lock lock(mutex);
    while (!stopping) {
      lock.unlock();
      Stats s;
      const bool alive = observer.use([&](Runtime& rt) {
        s = rt.stats();
        if (options.timeline && Clock::now() >= next_rotation) {
          rotate_timeline(rt);
          next_rotation = Clock::now() + options.timeline_window;
        }
      });
      const std::int64_t at = steady_ns();
      lock.lock();
      if (!alive) {
        runtime_ended = true;
        if (current != nullptr) current->stop();
        break;
      }
      Sample sample{static_cast<double>(at - started) * 1e-9, {}, s.tasks_run, s.tasks_pending, s.object_bytes};
      for (std::size_t i = 0; i < s.idle_ns.size(); ++i) {
        double busy = 0;
        if (idle_before.size() == s.idle_ns.size() && at > at_before) {
          const double idle = static_cast<double>(s.idle_ns[i] - std::min(s.idle_ns[i], idle_before[i]));
          busy = std::clamp(1.0 - idle / static_cast<double>(at - at_before), 0.0, 1.0);
        }
        sample.busy.push_back(busy);
      }
      idle_before = s.idle_ns;
      at_before = at;
      last = std::move(s);
      history.push_back(std::move(sample));
      while (history.size() > options.history) history.pop_front();
      wake.wait_for(lock, options.sample_interval, [&] { return stopping; });
    }
  }

  // Called with the runtime held: the window that ends becomes `previous`.
  void rotate_timeline(Runtime& rt) {
    std::shared_ptr<TimelineRecording> ending;
    {
      std::lock_guard lock(mutex);
      ending = current;
    }
    if (ending != nullptr) ending->stop();
    std::shared_ptr<TimelineRecording> next;
    std::string note;
    try {
      next = std::make_shared<TimelineRecording>(rt, options.timeline_events_per_thread);
    } catch (const usage_error&) {
      note = "the program records the timeline itself";
    }
    std::lock_guard lock(mutex);
    previous = std::move(ending);
    current = std::move(next);
    timeline_note = std::move(note);
  }

  // ---- answers ------------------------------------------------------------------------------

  std::string stats_json() {
    std::lock_guard lock(mutex);
    const Stats& s = last;
    json j = {{"time_s", static_cast<double>(steady_ns() - started) * 1e-9},
              {"runtime_ended", runtime_ended},
              {"workers", s.workers},
              {"tasks_run", s.tasks_run},
              {"tasks_pending", s.tasks_pending},
              {"task_retries", s.task_retries},
              {"steals", s.steals},
              {"parks", s.parks},
              {"fibers_created", s.fibers_created},
              {"fibers_pooled", s.fibers_pooled},
              {"objects_live", s.objects_live},
              {"object_bytes", s.object_bytes},
              {"object_table_bytes", s.object_table_bytes},
              {"queue_lengths", s.queue_lengths},
              {"blocking_threads", s.blocking_threads},
              {"actors_alive", s.actors_alive},
              {"actor_calls_queued", s.actor_calls_queued},
              {"actor_calls_executed", s.actor_calls_executed},
              {"worker_busy", history.empty() ? std::vector<double>{} : history.back().busy}};
    json h = {{"interval_s", std::chrono::duration<double>(options.sample_interval).count()},
              {"time_s", json::array()},
              {"worker_busy", json::array()},
              {"tasks_run", json::array()},
              {"tasks_pending", json::array()},
              {"object_bytes", json::array()}};
    for (const Sample& x : history) {
      h["time_s"].push_back(x.time_s);
      h["worker_busy"].push_back(x.busy);
      h["tasks_run"].push_back(x.tasks_run);
      h["tasks_pending"].push_back(x.tasks_pending);
      h["object_bytes"].push_back(x.object_bytes);
    }
    j["history"] = std::move(h);
    return j.dump();
  }

  // One window of the timeline, as the page draws it: the longest slices on workers, and every
  // task by name. A busy runtime records tens of thousands of slices a second, more than a page
  // can draw or a client should download, so only the kEventsShown longest travel.
  static constexpr std::size_t kEventsShown = 4000;
  struct Event {
    std::uint32_t worker;
    bool idle;
    double ts_us, dur_us;  // since the dashboard started
    std::string name;
  };
  struct Window {
    std::int64_t start = 0;  // steady ns
    std::uint64_t dropped = 0;
    std::uint64_t total = 0;    // slices recorded
    std::vector<Event> longest;  // at most kEventsShown
    std::map<std::string, std::pair<std::uint64_t, double>> by_name;  // count, total ms
  };

  static void keep_longest(std::vector<Event>& events) {
    if (events.size() <= kEventsShown) return;
    std::nth_element(events.begin(), events.begin() + kEventsShown - 1, events.end(),
                     [](const Event& a, const Event& b) { return a.dur_us > b.dur_us; });
    events.resize(kEventsShown);
  }

  Window window_of(const TimelineRecording& rec) const {
    Window w;
    w.start = rec.start_steady_ns();
    w.dropped = rec.dropped();
    std::vector<TimelineRecording::Slice> slices = rec.slices();
    w.total = slices.size();
    for (const TimelineRecording::Slice& x : slices) {
      if (x.idle) continue;
      auto& n = w.by_name[x.name];
      n.first += 1;
      n.second += x.duration_us / 1000.0;
    }
    if (slices.size() > kEventsShown)
      std::nth_element(slices.begin(), slices.begin() + kEventsShown - 1, slices.end(),
                       [](const auto& a, const auto& b) { return a.duration_us > b.duration_us; });
    const double offset_us = static_cast<double>(w.start - started) / 1000.0;
    for (std::size_t i = 0; i < std::min(slices.size(), kEventsShown); ++i) {
      TimelineRecording::Slice& x = slices[i];
      w.longest.push_back({static_cast<std::uint32_t>(x.worker), x.idle, offset_us + x.start_us, x.duration_us, std::move(x.name)});
    }
    return w;
  }

  // The previous window no longer changes: it is read once.
  std::shared_ptr<TimelineRecording> cached_recording;
  std::shared_ptr<const Window> cached_window;

  std::string timeline_json() {
    std::shared_ptr<TimelineRecording> older, newer;
    std::shared_ptr<const Window> cached;
    std::string note;
    {
      std::lock_guard lock(mutex);
      older = previous;
      newer = current;
      if (older != nullptr && older == cached_recording) cached = cached_window;
      note = options.timeline ? timeline_note : "the dashboard was started without a timeline";
    }
    if (older != nullptr && cached == nullptr) {
      cached = std::make_shared<const Window>(window_of(*older));
      std::lock_guard lock(mutex);
      cached_recording = older;
      cached_window = cached;
    }
    const std::int64_t now = steady_ns();
    std::vector<Event> longest;
    std::map<std::string, std::pair<std::uint64_t, double>> by_name;
    std::uint64_t dropped = 0, total = 0;
    std::int64_t window_start = now;  // the start of the older window shown
    auto add = [&](const Window& w) {
      window_start = std::min(window_start, w.start);
      dropped += w.dropped;
      total += w.total;
      longest.insert(longest.end(), w.longest.begin(), w.longest.end());
      for (const auto& [name, v] : w.by_name) {
        by_name[name].first += v.first;
        by_name[name].second += v.second;
      }
    };
    if (cached != nullptr) add(*cached);
    if (newer != nullptr) add(window_of(*newer));
    keep_longest(longest);  // the longest of both windows are among each one's longest
    json events = json::array();
    for (const Event& e : longest)
      events.push_back({{"worker", e.worker}, {"name", e.name}, {"cat", e.idle ? "idle" : "task"}, {"ts_us", e.ts_us}, {"dur_us", e.dur_us}});
    json names = json::array();
    for (const auto& [name, v] : by_name) names.push_back({{"name", name}, {"count", v.first}, {"total_ms", v.second}});
    json j = {{"window_ms", static_cast<double>(now - window_start) / 1e6},
              {"now_us", static_cast<double>(now - started) / 1000.0},
              {"dropped", dropped},
              {"events_total", total},
              {"events", std::move(events)},
              {"tasks_by_name", std::move(names)}};
    if (!note.empty()) j["note"] = note;
    return j.dump();
  }

  // Tasks by name and state (when the runtime tracks state), actors with their mailboxes, and
  // the largest objects: the state API (lumen/state.h), capped for a page.
  static std::string state_json(Runtime& rt) {
    constexpr std::size_t kRows = 50;
    const bool tracked = tracks_tasks(rt);
    json j = {{"tracked", tracked}};
    json tasks = json::array();
    if (tracked) {
      std::vector<TaskSummary> summary = summarize_tasks(rt);
      j["task_names"] = summary.size();
      if (summary.size() > kRows) summary.resize(kRows);
      for (const TaskSummary& t : summary)
        tasks.push_back({{"name", t.name},
                         {"pending", t.pending},
                         {"queued", t.queued},
                         {"running", t.running},
                         {"parked", t.parked},
                         {"finished", t.finished},
                         {"failed", t.failed},
                         {"total_ms", std::chrono::duration<double, std::milli>(t.total_time).count()},
                         {"max_ms", std::chrono::duration<double, std::milli>(t.max_time).count()}});
    }
    j["tasks"] = std::move(tasks);
    std::vector<ActorInfo> actors = list_actors(rt);
    j["actor_count"] = actors.size();
    // The busiest mailboxes first.
    std::stable_sort(actors.begin(), actors.end(), [](const ActorInfo& a, const ActorInfo& b) { return a.calls_queued > b.calls_queued; });
    if (actors.size() > kRows) actors.resize(kRows);
    json a = json::array();
    for (const ActorInfo& x : actors)
      a.push_back({{"id", x.id}, {"name", x.name}, {"type", x.type}, {"alive", x.alive},
                   {"calls_queued", x.calls_queued}, {"calls_executed", x.calls_executed}});
    j["actors"] = std::move(a);
    json o = json::array();
    for (const ObjectInfo& x : list_objects({.order = ObjectOrder::largest, .limit = 10})) {
      const char* status = x.status == ObjectInfo::Status::ready ? "ready" : x.status == ObjectInfo::Status::failed ? "failed" : "pending";
      o.push_back({{"id", x.id.value}, {"status", status}, {"bytes", x.bytes}, {"refs", x.refs},
                   {"age_ms", std::chrono::duration<double, std::milli>(x.age).count()}});
    }
    j["largest_objects"] = std::move(o);
    return j.dump();
  }

  http::response<http::string_body> answer(const http::request<http::string_body>& req) {
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.keep_alive(req.keep_alive());
    res.set(http::field::server, "lumen-dashboard");
    res.set(http::field::cache_control, "no-store");
    res.set("X-Content-Type-Options", "nosniff");
    auto reply = [&](http::status status, const char* type, std::string body) {
      res.result(status);
      res.set(http::field::content_type, type);
      res.body() = std::move(body);
    };
    std::string_view target(req.target().data(), req.target().size());
    target = target.substr(0, target.find('?'));
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res.set(http::field::allow, "GET, HEAD");
      reply(http::status::method_not_allowed, "application/json", R"({"error":"only GET and HEAD"})");
    } else if (target == "/" || target == "/index.html") {
      res.set("Content-Security-Policy",
              "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:");
      reply(http::status::ok, "text/html; charset=utf-8", std::string(dashboard_detail::dashboard_page()));
    } else if (target == "/api/stats") {
      reply(http::status::ok, "application/json", stats_json());
    } else if (target == "/api/timeline") {
      reply(http::status::ok, "application/json", timeline_json());
    } else if (target == "/api/state") {
      std::string text;
      if (observer.use([&](Runtime& rt) { text = state_json(rt); })) {
        reply(http::status::ok, "application/json", std::move(text));
      } else {
        reply(http::status::service_unavailable, "application/json", R"({"error":"the runtime has ended"})");
      }
    } else if (target == "/metrics") {
      std::string text;
      if (observer.use([&](Runtime& rt) { text = metrics_text(rt); })) {
        reply(http::status::ok, "text/plain; version=0.0.4; charset=utf-8", std::move(text));
      } else {
        reply(http::status::service_unavailable, "text/plain; charset=utf-8", "the runtime has ended\n");
      }
    } else {
      reply(http::status::not_found, "application/json", R"({"error":"not found"})");
    }
    res.prepare_payload();
    if (req.method() == http::verb::head) res.body().clear();
    return res;
  }

  // ---- connections --------------------------------------------------------------------------

  struct Session : std::enable_shared_from_this<Session> {
    Session(State* s, tcp::socket socket) : state(s), stream(std::move(socket)) {}
    ~Session() { state->connections.fetch_sub(1); }
    State* state;
    beast::tcp_stream stream;
    beast::flat_buffer buffer{8192};
    std::optional<http::request_parser<http::string_body>> parser;
    http::response<http::string_body> response;

    void read() {
      parser.emplace();
      parser->header_limit(8192);
      parser->body_limit(8192);
      stream.expires_after(std::chrono::seconds(30));  // idle keep-alive and slow senders
      http::async_read(stream, buffer, *parser, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec) return self->close();
        self->respond();
      });
    }
    void respond() {
      try {
        response = state->answer(parser->get());
      } catch (const std::exception& e) {
        response = {http::status::internal_server_error, parser->get().version()};
        response.set(http::field::content_type, "text/plain; charset=utf-8");
        response.body() = std::string("lumen-dashboard: ") + e.what() + "\n";
        response.keep_alive(false);
        response.prepare_payload();
      }
      stream.expires_after(std::chrono::seconds(30));
      http::async_write(stream, response, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec || !self->response.keep_alive()) return self->close();
        self->read();
      });
    }
    void close() {
      beast::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream.close();
    }
  };

  std::vector<std::weak_ptr<Session>> sessions;  // the I/O thread's
  net::steady_timer accept_retry{io};

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
      if (ec) {
        // Out of file descriptors (or memory): accepting again at once would fail at once, in
        // a loop; the connection waits in the backlog until something was freed.
        accept_retry.expires_after(std::chrono::milliseconds(50));
        accept_retry.async_wait([this](beast::error_code timer_ec) {
          if (!timer_ec && acceptor.is_open()) accept();
        });
        return;
      }
      if (connections.fetch_add(1) < options.max_connections) {
        auto session = std::make_shared<Session>(this, std::move(socket));
        std::erase_if(sessions, [](const std::weak_ptr<Session>& w) { return w.expired(); });
        sessions.push_back(session);
        session->read();
      } else {
        connections.fetch_sub(1);
        beast::error_code ignored;
        socket.close(ignored);
      }
      accept();
    });
  }

  void start() {
    const net::ip::address address = checked_address(options.host);
    const tcp::endpoint at{address, options.port};
    boost::system::error_code ec;
    acceptor.open(at.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(at, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec)
      throw std::system_error(ec.value(), std::generic_category(),
                              "lumen: the dashboard cannot listen on " + options.host + ":" + std::to_string(options.port));
    port = acceptor.local_endpoint().port();
    // The first window starts now, so that what runs once the constructor returns is on it.
    if (options.timeline) {
      observer.use([&](Runtime& rt) { rotate_timeline(rt); });
      next_rotation = Clock::now() + options.timeline_window;
    }
    host = address.is_v6() ? "[" + options.host + "]" : options.host;
    accept();
    io_thread = std::thread([this] { io.run(); });
    try {
      sampler = std::thread([this] { sample_loop(); });
    } catch (...) {
      stop();
      throw;
    }
  }

  void stop() noexcept {
    {
      std::lock_guard lock(mutex);
      if (stopping) return;
      stopping = true;
    }
    wake.notify_all();
    // Closing the acceptor and every connection cancels what they wait for; once those
    // handlers have run, nothing is left and the I/O thread's run() returns.
    net::post(io, [this] {
      beast::error_code ignored;
      acceptor.close(ignored);
      accept_retry.cancel();
      for (auto& w : sessions)
        if (auto session = w.lock()) session->close();
      sessions.clear();
    });
    if (io_thread.joinable()) io_thread.join();
    if (sampler.joinable()) sampler.join();
    std::lock_guard lock(mutex);
    if (current != nullptr) current->stop();
  }
};

Dashboard::Dashboard(Runtime& rt, DashboardOptions options) : state_(std::make_shared<State>(rt, std::move(options))) {
  state_->start();
}

Dashboard::~Dashboard() { stop(); }

unsigned short Dashboard::port() const noexcept { return state_->port; }

std::string Dashboard::url() const { return "http://" + state_->host + ":" + std::to_string(state_->port) + "/"; }

void Dashboard::stop() noexcept { state_->stop(); }

}  // namespace lumen
