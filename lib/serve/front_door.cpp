#include "serve/front_door.h"

#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fcntl.h>

#include <algorithm>
#include <bit>
#include <memory>
#include <random>
#include <system_error>

#include "lumen/error.h"
#include "lumen/on_resolved.h"
#include "lumen/stream.h"
#include "lumen/task.h"
#include "lumen/cancel.h"
#include "serve/response_head.h"

namespace lumen::serve::detail {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

std::string_view sv(beast::string_view v) noexcept { return {v.data(), v.size()}; }

// Asio opens sockets without close-on-exec: a child process (a model that runs a tool) would
// keep the listening socket, and connections would still be accepted into it after stop().
void close_on_exec(int fd) noexcept { ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC); }

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' || c == '-')) return false;
  return true;
}

bool is_json_type(std::string_view type) {
  auto semi = type.find(';');
  std::string t(type.substr(0, semi));
  for (auto& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (!t.empty() && t.back() == ' ') t.pop_back();
  return t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"));
}

// Compares without stopping at the first difference, so the time taken says nothing of
// where a guessed token went wrong.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0 && !b.empty();
}

// A status a model may answer with: a final one (2xx to 5xx). 1xx would tell the client that
// another response follows; anything else is not HTTP. Either becomes 500.
int final_status(int status) noexcept { return status >= 200 && status <= 599 ? status : 500; }

// A model's answer as it goes out: with a final status.
Response from_response(Response r) {
  r.status = final_status(r.status);
  return r;
}

Response error_outcome(int status, std::string_view message, const std::string& request_id) {
  nlohmann::json j{{"error", message}, {"request_id", request_id}};
  return {status, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json", {}};
}

// What a request that failed gets, whether it failed before a replica took it (refused) or
// on the replica (the model threw, the replica died).
Response answer_for(const std::exception_ptr& e, const std::string& request_id, int retry_after) {
  auto retry_later = [&](const char* what) {
    auto o = error_outcome(503, what, request_id);
    o.headers.emplace_back("Retry-After", std::to_string(retry_after));
    return o;
  };
  try {
    std::rethrow_exception(e);
  } catch (const http_error& x) {
    return error_outcome(final_status(x.status()), x.what(), request_id);
  } catch (const back_pressure& x) {
    return retry_later(x.what());
  } catch (const shutdown_error& x) {
    return retry_later(x.what());
  } catch (const actor_died& x) {
    return error_outcome(500, std::string("the replica serving the request died: ") + x.what(), request_id);
  } catch (const std::exception& x) {
    return error_outcome(500, x.what(), request_id);
  } catch (...) {
    return error_outcome(500, "an exception that is not a std::exception", request_id);
  }
}

// What a finished request sends back: its response, or a status for its error.
Response outcome_of(const ObjectRef<Response>& ref, const std::string& request_id, int retry_after) {
  if (auto e = error_of(ref)) return answer_for(e->cause(), request_id, retry_after);
  return from_response(lumen::get(ref));
}

// A deadline that moves with every request without re-arming its timer each time: the timer,
// armed for an earlier deadline, sleeps again until the one now in force, then calls
// `expired`. Re-arming an Asio timer on every request would cost a timerfd system call.
class LazyDeadline {
 public:
  template <class Executor>
  explicit LazyDeadline(const Executor& ex) : timer_(ex) {}

  // `expired(self)` runs on the connection's thread once `at` passes, unless moved later meanwhile;
  // `owner` is held weakly, so a pending wait keeps nothing alive.
  template <class Owner, class Expired>
  void set(Clock::time_point at, const std::shared_ptr<Owner>& owner, Expired expired) {
    at_ = at;
    if (!armed_) wait(std::weak_ptr<Owner>(owner), expired);
  }
  void cancel() { timer_.cancel(); }

 private:
  template <class Owner, class Expired>
  void wait(std::weak_ptr<Owner> weak, Expired expired) {
    armed_ = true;
    timer_.expires_at(at_);
    timer_.async_wait([this, weak, expired](beast::error_code ec) {
      auto self = weak.lock();
      if (self == nullptr) return;  // the owner, and this timer with it, is gone
      armed_ = false;
      if (ec) return;
      if (Clock::now() < at_) return wait(weak, expired);
      expired(*self);
    });
  }

  net::steady_timer timer_;
  Clock::time_point at_{};
  bool armed_ = false;
};

template <class Socket>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Socket>> {
 public:
  template <class... A>
  Session(std::shared_ptr<FrontDoor> door, tcp::socket&& socket, A&&... a)
      : door_(std::move(door)),
        stream_(std::move(socket), std::forward<A>(a)...),
        read_deadline_(stream_.get_executor()),
        request_deadline_(stream_.get_executor()) {
    beast::error_code ec;
    auto ep = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    client_ = ec ? "unknown" : ep.address().to_string();
    beast::get_lowest_layer(stream_).socket().set_option(tcp::no_delay(true), ec);
  }
  ~Session() override { door_->unregister_session(this); }

  void start() {
    door_->register_session(this, this->weak_from_this());
    if constexpr (kTls) {
      arm_read_timer();
      stream_.async_handshake(net::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        self->reading_ = false;
        if (ec) return self->close();
        self->read_next();
      });
    } else {
      read_next();
    }
  }

  void close_soon() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] { self->close(); });
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Socket, beast::tcp_stream>;
  static constexpr std::size_t kSmallAnswer = 64 * 1024;

  void arm_read_timer() {
    timed_out_ = false;
    reading_ = true;
    read_deadline_.set(Clock::now() + door_->options().read_timeout, this->shared_from_this(), [](Session& self) {
      if (self.closed_ || !self.reading_) return;
      self.timed_out_ = true;
      beast::error_code ignored;
      beast::get_lowest_layer(self.stream_).socket().cancel(ignored);
    });
  }

  void read_next() {
    if (closed_) return;
    parser_.emplace();
    parser_->body_limit(door_->options().max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(door_->options().max_header_bytes, UINT32_MAX)));
    arm_read_timer();
    http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_read(ec);
    });
  }

  void on_read(beast::error_code ec) {
    reading_ = false;
    if (closed_) return;
    if (ec) {
      const bool started = parser_->got_some() || buffer_.size() > 0;
      // A request that never arrived whole: an answer of its own, under no route.
      begin_request();
      request_id_ = fresh_id();
      if (timed_out_) {
        if (started) return reply_and_close(error_outcome(408, "the request did not arrive within read_timeout", request_id_));
        return close();
      }
      if (ec == http::error::body_limit)
        return reply_and_close(error_outcome(413, "the body is over max_body_bytes (" +
                                                      std::to_string(door_->options().max_body_bytes) + ")", request_id_));
      if (ec == http::error::header_limit)
        return reply_and_close(error_outcome(431, "the header block is over max_header_bytes", request_id_));
      if (ec.category() == http::make_error_code(http::error::body_limit).category() &&
          ec != http::error::end_of_stream && ec != http::error::partial_message)
        return reply_and_close(error_outcome(400, "malformed HTTP request: " + ec.message(), request_id_));
      return close();
    }
    try {
      handle(parser_->release());
    } catch (...) {  // out of memory building the request: the connection goes
      close();
    }
  }

  void begin_request() {
    head_request_ = false;
    ++generation_;
    answered_ = false;
    started_ = Clock::now();
    metrics_ = nullptr;
  }

  // A request counted in the server's in-flight requests (stop() drains them) stays counted
  // until its answer is written or its connection closes, whichever comes first.
  void count_in_flight() {
    door_->request_started();
    counted_ = true;
  }
  void uncount() {
    if (std::exchange(counted_, false)) door_->request_finished();
  }

  std::string fresh_id() { return door_->make_request_id(); }

  void handle(http::request<http::string_body> msg) {
    begin_request();
    head_request_ = msg.method() == http::verb::head;
    keep_alive_ = msg.keep_alive() && !door_->draining();
    {
      std::string_view sent = sv(msg["X-Request-ID"]);
      request_id_ = valid_request_id(sent) ? std::string(sent) : fresh_id();
    }
    const ServerOptions& o = door_->options();
    std::string_view target = sv(msg.target());
    // absolute-form (RFC 7230 5.3.2): the path starts after the scheme and the authority.
    for (std::string_view scheme : {"http://", "https://"}) {
      if (target.size() > scheme.size() && std::equal(scheme.begin(), scheme.end(), target.begin(), [](char a, char b) {
            return a == std::tolower(static_cast<unsigned char>(b));
          })) {
        auto slash = target.find('/', scheme.size());
        target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
        break;
      }
    }
    if (target.empty() || target.front() != '/') return reply(error_outcome(400, "the request target must start with '/'", request_id_));
    auto qpos = target.find('?');
    std::string path(target.substr(0, qpos));
    std::string query(qpos == std::string_view::npos ? std::string_view{} : target.substr(qpos + 1));

    const bool v2 = door_->serves_models() && (path == "/v2" || path.starts_with("/v2/"));
    if (path == "/-/healthz") return reply({200, "success", "text/plain; charset=utf-8", {}});
    if (v2 && path.starts_with("/v2/health/")) return reply(from_response(*door_->answer_v2(sv(msg.method_string()), path, "").now));
    if (!o.bearer_token.empty()) {
      std::string_view auth = sv(msg[http::field::authorization]);
      constexpr std::string_view kBearer = "Bearer ";
      if (!auth.starts_with(kBearer) || !same_secret(auth.substr(kBearer.size()), o.bearer_token)) {
        auto out = error_outcome(401, "a valid bearer token is required (Authorization: Bearer <token>)", request_id_);
        out.headers.emplace_back("WWW-Authenticate", "Bearer");
        return reply(std::move(out));
      }
    }
    if (o.max_requests_per_second > 0 && !door_->admit_client(client_)) {
      auto out = error_outcome(429, "too many requests from " + client_, request_id_);
      out.headers.emplace_back("Retry-After", std::to_string(o.retry_after_seconds));
      return reply(std::move(out));
    }
    if (path == "/metrics") return reply({200, door_->metrics_text(), "text/plain; version=0.0.4; charset=utf-8", {}});
    if (path == "/-/routes") return reply({200, door_->routes_json().dump(), "application/json", {}});
    if (path == "/-/status") return reply({200, door_->status_json().dump(), "application/json", {}});

    if (v2) {
      ObjectRef<Response> ref;
      try {
        auto answer = door_->answer_v2(sv(msg.method_string()), path, msg.body());
        metrics_ = answer.metrics;
        if (answer.now) return reply(from_response(std::move(*answer.now)));
        ref = std::move(answer.later);
      } catch (...) {
        return reply(refusal(std::current_exception()));
      }
      return await(std::move(ref));
    }

    auto found = door_->find_route(path);
    if (!found) return reply(error_outcome(404, "no route matches " + path, request_id_));
    auto& [prefix, route] = *found;
    metrics_ = route.metrics;

    Request req;
    req.method = std::string(sv(msg.method_string()));
    req.path = std::move(path);
    req.query = std::move(query);
    req.route = prefix;
    req.request_id = request_id_;
    for (const auto& f : msg) {
      std::string name(sv(f.name_string()));
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers.emplace_back(std::move(name), std::string(sv(f.value())));
    }
    req.body = std::move(msg.body());
    if (!req.body.empty() && is_json_type(sv(msg[http::field::content_type]))) {
      if (!json_depth_within(req.body, kMaxJsonDepth))
        return reply(error_outcome(400, "the JSON body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels",
                                   request_id_));
      req.json = nlohmann::json::parse(req.body, nullptr, false);
      if (req.json.is_discarded()) {
        req.json = nullptr;
        return reply(error_outcome(400, "the body is not valid JSON", request_id_));
      }
    }

    if (route.streams) {
      if (head_request_) return reply(error_outcome(405, "a streamed answer has no HEAD; use GET or POST", request_id_));
      return stream(route.deployment, std::move(req));
    }
    ObjectRef<Response> ref;
    try {
      ref = route.deployment->request(std::move(req));
    } catch (...) {
      return reply(refusal(std::current_exception()));
    }
    await(std::move(ref));
  }

  // A streamed answer: a task on a worker takes the parts as the replica emits them and has
  // each written here, one at a time (a slow client slows the replica, never the reverse
  // unbounded). The head goes out with the first part, so a method that fails before it
  // still gets a plain error response; one that fails later ends the connection without the
  // last chunk, which clients read as a cut-off body.
  void stream(const std::shared_ptr<DeploymentCore>& d, Request req) {
    auto [parts, out] = make_stream<std::string>();
    ObjectRef<Response> done;
    try {
      done = d->request(std::move(req), std::move(out));
    } catch (...) {
      return reply(refusal(std::current_exception()));
    }
    await_timeout();
    count_in_flight();
    try {
      lumen::submit([self = this->shared_from_this(), gen = generation_, parts = std::move(parts), done]() mutable {
        pump(self, gen, parts, done);
      });
    } catch (...) {
      reply(refusal(std::current_exception()));
    }
  }

  static void pump(const std::shared_ptr<Session>& self, std::uint64_t gen, lumen::Stream<std::string>& parts,
                   const ObjectRef<Response>& done) {
    bool head_sent = false;
    for (;;) {
      std::optional<ObjectRef<std::string>> item = parts.next();
      if (!item) break;
      std::string chunk;
      try {
        chunk = lumen::get(std::move(*item));
      } catch (...) {
        break;  // the stream failed: `done` says how
      }
      if (chunk.empty()) continue;  // an empty chunk would end the body
      Promise<bool> written;
      auto ok = written.ref();
      self->door_->post_to(self->stream_.get_executor(),
                           [self, gen, chunk = std::move(chunk), written = std::move(written), head_sent]() mutable {
                             self->write_part(gen, std::move(chunk), std::move(written), !head_sent);
                           });
      head_sent = true;
      bool wrote = false;
      try {
        wrote = lumen::get(ok);
      } catch (...) {  // the server stopped: the post was dropped with its promise
      }
      if (!wrote) {
        lumen::cancel(parts);  // the client is gone: the replica's next emit() stops it
        return;
      }
    }
    lumen::wait(std::vector{done}, 1);
    self->door_->post_to(self->stream_.get_executor(), [self, gen, done, head_sent] { self->end_stream(gen, done, head_sent); });
  }

  void write_part(std::uint64_t gen, std::string chunk, Promise<bool> written, bool first) {
    if (gen != generation_ || closed_ || (first && answered_)) {
      written.set_value(false);
      return;
    }
    part_ = std::move(chunk);
    auto send_part = [self = this->shared_from_this(), written = std::move(written)]() mutable {
      net::async_write(self->stream_, http::make_chunk(net::buffer(self->part_)),
                       [self, written = std::move(written)](beast::error_code ec, std::size_t) mutable {
                         if (ec) self->close();
                         written.set_value(!ec);
                       });
    };
    if (!first) return send_part();
    answered_ = true;
    head_.emplace();
    head_->version(11);
    head_->result(http::status::ok);
    head_->set(http::field::server, "lumen");
    head_->set(http::field::content_type, "text/plain; charset=utf-8");
    head_->set("X-Request-ID", request_id_);
    if (door_->draining()) keep_alive_ = false;
    head_->keep_alive(keep_alive_);
    head_->chunked(true);
    head_serializer_.emplace(*head_);
    http::async_write_header(stream_, *head_serializer_,
                             [self = this->shared_from_this(), send_part = std::move(send_part)](beast::error_code ec, std::size_t) mutable {
                               if (ec) return self->close();
                               send_part();
                             });
  }

  void end_stream(std::uint64_t gen, const ObjectRef<Response>& done, bool head_sent) {
    if (gen != generation_ || closed_) return;
    if (!head_sent) {
      if (!answered_) reply(outcome_of(done, request_id_, door_->options().retry_after_seconds));
      return;
    }
    const bool failed = error_of(done).has_value();
    (metrics_ != nullptr ? *metrics_ : door_->unrouted_metrics()).record(failed ? 500 : 200, Clock::now() - started_);
    if (failed) return close();
    net::async_write(stream_, http::make_chunk_last(), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->uncount();
      if (ec || !self->keep_alive_) return self->close();
      self->read_next();
    });
  }

  // What a request refused before it reached a replica gets.
  Response refusal(std::exception_ptr e) {
    return answer_for(e, request_id_, door_->options().retry_after_seconds);
  }

  // Answers with 408 once request_timeout passes, unless answered first.
  void await_timeout() {
    request_deadline_.set(Clock::now() + door_->options().request_timeout, this->shared_from_this(), [](Session& self) {
      if (self.closed_ || self.answered_) return;
      self.reply(error_outcome(
          408, "no answer within request_timeout (" + std::to_string(self.door_->options().request_timeout.count()) + " ms)",
          self.request_id_));
    });
  }

  // Answers once ref resolves, or with 408 once request_timeout passes, whichever is first.
  void await(ObjectRef<Response> ref) {
    count_in_flight();
    const std::uint64_t gen = generation_;
    await_timeout();
    on_resolved(ref, [self = this->shared_from_this(), gen, ref]() noexcept {
      try {
        self->door_->post_to(self->stream_.get_executor(), [self, gen, ref] { self->on_result(gen, ref); });
      } catch (...) {  // no memory to post: the request timer answers 408
      }
    });
  }

  void on_result(std::uint64_t gen, const ObjectRef<Response>& ref) {
    if (gen != generation_ || answered_ || closed_) return;  // answered 408 already, or gone
    reply(outcome_of(ref, request_id_, door_->options().retry_after_seconds));
  }

  void reply_and_close(Response out) {
    keep_alive_ = false;
    reply(std::move(out));
  }

  // No exception may leave a handler: it would end the I/O thread's run() and the process.
  // One that cannot answer (out of memory, a header a model set that HTTP cannot carry)
  // closes the connection.
  void reply(Response out) noexcept {
    try {
      write_answer(std::move(out));
    } catch (...) {
      close();
    }
  }

  void write_answer(Response out) {
    answered_ = true;
    if (auto bad = field_http_cannot_carry(out.content_type, out.headers)) {
      out = error_outcome(500, "the answer has a header field HTTP cannot carry: '" + *bad +
                                   "' (names are tokens; values hold no line break or other control character)",
                          request_id_);
    }
    const auto took = Clock::now() - started_;
    (metrics_ != nullptr ? *metrics_ : door_->unrouted_metrics()).record(out.status, took);
    // 204 and 304 have no body and say no length; a HEAD answer says the body's length and
    // sends none.
    const bool bodiless = out.status == 204 || out.status == 304;
    if (door_->draining()) keep_alive_ = false;
    write_response_head(head_text_, {.status = out.status,
                                     .content_type = out.content_type,
                                     .request_id = request_id_,
                                     .fields = &out.headers,
                                     .content_length = bodiless ? std::nullopt : std::optional(out.body.size()),
                                     .keep_alive = keep_alive_});
    body_ = head_request_ || bodiless ? std::string() : std::move(out.body);
    // A client that stops reading would hold a large answer's write for ever: such writes get
    // read_timeout to finish. A small answer goes into the socket's buffer at once and needs
    // no timer (arming one costs system calls on every request).
    const bool large = body_.size() > kSmallAnswer;
    if (large) beast::get_lowest_layer(stream_).expires_after(door_->options().read_timeout);
    const std::array<net::const_buffer, 2> answer{net::buffer(head_text_), net::buffer(body_)};
    net::async_write(stream_, answer, [self = this->shared_from_this(), large](beast::error_code ec, std::size_t) {
      if (large) beast::get_lowest_layer(self->stream_).expires_never();
      self->uncount();
      if (ec || !self->keep_alive_) return self->close();
      self->read_next();
    });
  }

  void close() {
    uncount();
    if (closed_) return;
    closed_ = true;
    read_deadline_.cancel();
    request_deadline_.cancel();
    beast::error_code ec;
    if constexpr (kTls) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(1));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        beast::error_code ignored;
        beast::get_lowest_layer(self->stream_).socket().close(ignored);
      });
    } else {
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
      stream_.socket().close(ec);
    }
  }

  std::shared_ptr<FrontDoor> door_;
  Socket stream_;
  LazyDeadline read_deadline_;     // for the request being read (slow senders, idle keep-alive)
  LazyDeadline request_deadline_;  // for the answer (request_timeout)
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string head_text_;  // the head of the answer being written
  std::string body_;       // and its body
  std::optional<http::response<http::empty_body>> head_;  // of a streamed answer
  std::optional<http::response_serializer<http::empty_body>> head_serializer_;
  std::string part_;  // the part being written
  std::string client_;
  std::string request_id_;
  std::shared_ptr<RouteMetrics> metrics_;
  Clock::time_point started_{};
  std::uint64_t generation_ = 0;
  bool answered_ = true;
  bool keep_alive_ = true;
  bool timed_out_ = false;
  bool closed_ = false;
  bool reading_ = false;
  bool counted_ = false;  // in the server's in-flight requests
  bool head_request_ = false;
};

}  // namespace

void RouteMetrics::record(int code, std::chrono::nanoseconds took) {
  const double s = std::chrono::duration<double>(took).count();
  std::size_t i = 0;
  while (i < kBounds.size() && s > kBounds[i]) ++i;
  std::lock_guard lock(mu);
  Latency& l = by_code[code];
  ++l.buckets[i];
  ++l.count;
  l.sum_ns += static_cast<std::uint64_t>(took.count());
}

namespace {

std::vector<std::unique_ptr<net::io_context>> io_contexts(int n) {
  std::vector<std::unique_ptr<net::io_context>> ios;
  for (int i = 0; i < std::max(n, 1); ++i) ios.push_back(std::make_unique<net::io_context>(1));
  return ios;
}

}  // namespace

FrontDoor::FrontDoor(ServerOptions o)
    : options_(std::move(o)), ios_(io_contexts(options_.io_threads)), acceptor_(*ios_.front()) {
  std::random_device rd;
  request_id_prefix_ = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  if (!options_.tls_certificate_file.empty()) {
    tls_.emplace(net::ssl::context::tls_server);
    tls_->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                      net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1);
    beast::error_code ec;
    tls_->use_certificate_chain_file(options_.tls_certificate_file, ec);
    if (ec)
      throw usage_error("lumen::serve: cannot use tls_certificate_file '" + options_.tls_certificate_file + "': " + ec.message());
    tls_->use_private_key_file(options_.tls_private_key_file, net::ssl::context::pem, ec);
    if (ec)
      throw usage_error("lumen::serve: cannot use tls_private_key_file '" + options_.tls_private_key_file + "': " + ec.message());
  }
}

FrontDoor::~FrontDoor() = default;

void FrontDoor::add_route(const std::string& prefix, std::shared_ptr<DeploymentCore> d, bool streams) {
  if (d == nullptr) throw usage_error("lumen::serve: route '" + prefix + "' to an empty DeploymentHandle");
  if (prefix.empty() || prefix.front() != '/' || (prefix.size() > 1 && prefix.back() == '/') ||
      prefix.find_first_of("?#\"\\ \r\n") != std::string::npos || prefix.starts_with("/-/") || prefix == "/metrics" ||
      prefix == "/-")
    throw usage_error("lumen::serve: bad route prefix '" + prefix +
                      "': it is \"/\" or starts with '/', does not end with '/', has no '?', '#', quotes, spaces or "
                      "backslashes, and is not /-/... or /metrics (built in)");
  std::unique_lock lock(routes_mu_);
  if (routes_.contains(prefix)) throw usage_error("lumen::serve: route '" + prefix + "' is taken");
  routes_.emplace(prefix, Route{std::move(d), std::make_shared<RouteMetrics>(), streams});
}

std::optional<std::pair<std::string, Route>> FrontDoor::find_route(std::string_view path) const {
  std::shared_lock lock(routes_mu_);
  // Longest prefix first: try the path, then each shorter prefix ending before a '/'.
  std::string_view p = path;
  for (;;) {
    auto it = routes_.find(p.empty() ? std::string_view("/") : p);
    if (it != routes_.end()) return std::make_pair(it->first, it->second);
    if (p.empty()) return std::nullopt;
    auto slash = p.rfind('/');
    if (slash == std::string_view::npos) return std::nullopt;
    p = p.substr(0, slash);
  }
}

void FrontDoor::start() {
  std::lock_guard lock(lifecycle_mu_);
  if (stopped_) throw usage_error("lumen::serve: a Server cannot start again once stopped");
  if (started_) throw usage_error("lumen::serve: Server::start called twice");
  beast::error_code ec;
  auto address = net::ip::make_address(options_.host, ec);
  if (ec) throw usage_error("lumen::serve: ServerOptions::host '" + options_.host + "' is not an IP address");
  tcp::endpoint ep(address, options_.port);
  try {
    acceptor_.open(ep.protocol());
    close_on_exec(acceptor_.native_handle());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(net::socket_base::max_listen_connections);
  } catch (const boost::system::system_error& e) {
    // Boost's system_error is not std::system_error; server.h promises the standard one.
    beast::error_code ignored;
    acceptor_.close(ignored);
    throw std::system_error(e.code().value(), std::system_category(),
                            "lumen::serve: cannot listen on " + options_.host + ":" + std::to_string(options_.port));
  }
  port_.store(acceptor_.local_endpoint().port(), std::memory_order_release);
  for (auto& io : ios_) work_.push_back(net::make_work_guard(*io));
  accept_next();
  for (auto& io : ios_) threads_.emplace_back([io = io.get()] { io->run(); });
  started_ = true;
}

void FrontDoor::accept_next() {
  // No strand: the connection's event loop has one thread, which serializes its handlers.
  net::io_context& io = *ios_[next_io_];
  acceptor_.async_accept(io.get_executor(), [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !self->acceptor_.is_open()) return;
    if (!ec) {
      self->next_io_ = (self->next_io_ + 1) % self->ios_.size();
      close_on_exec(socket.native_handle());
      std::size_t open;
      {
        std::lock_guard lock(self->sessions_mu_);
        open = self->sessions_.size();
      }
      if (open >= self->options_.max_connections || self->draining()) {
        beast::error_code ignored;
        socket.close(ignored);
      } else if (self->tls_) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(self, std::move(socket), *self->tls_)->start();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(self, std::move(socket))->start();
      }
    } else if (ec == net::error::no_descriptors || ec == net::error::no_buffer_space) {
      // Out of file descriptors: existing connections go on; accepting resumes shortly.
      auto t = std::make_shared<net::steady_timer>(self->acceptor_.get_executor(), std::chrono::milliseconds(50));
      t->async_wait([self, t](beast::error_code) { self->accept_next(); });
      return;
    }
    self->accept_next();
  });
}

void FrontDoor::stop(std::chrono::milliseconds drain) {
  std::lock_guard lock(lifecycle_mu_);
  if (stopped_) return;
  stopped_ = true;
  draining_.store(true, std::memory_order_release);
  if (!started_) return;
  net::post(acceptor_.get_executor(), [self = shared_from_this()] {
    beast::error_code ignored;
    self->acceptor_.close(ignored);
  });
  {
    std::unique_lock idle(idle_mu_);
    idle_.wait_for(idle, drain, [&] { return in_flight_.load(std::memory_order_acquire) == 0; });
  }
  std::vector<std::shared_ptr<SessionBase>> open;
  {
    std::lock_guard s(sessions_mu_);
    for (auto& [k, w] : sessions_)
      if (auto p = w.lock()) open.push_back(std::move(p));
  }
  for (auto& s : open) s->close_soon();
  open.clear();
  work_.clear();
  // Give the closes a moment to run; anything left runs below, on this thread.
  auto all_stopped = [&] { return std::ranges::all_of(ios_, [](const auto& io) { return io->stopped(); }); };
  for (int i = 0; i < 100 && !all_stopped(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (auto& io : ios_) io->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  {
    // No thread runs the I/O loop now: close here, so the port is free when stop() returns
    // even if the posted close did not get its turn.
    beast::error_code ignored;
    acceptor_.close(ignored);
  }
  {
    std::unique_lock posts(post_mu_);
    posts_closed_ = true;
  }
  // What was posted before the gate closed: its sessions see closed sockets and let go.
  for (auto& io : ios_) {
    io->restart();
    io->run();
  }
}

void FrontDoor::request_finished() noexcept {
  if (in_flight_.fetch_sub(1, std::memory_order_acq_rel) == 1 && draining()) {
    std::lock_guard lock(idle_mu_);
    idle_.notify_all();
  }
}

bool FrontDoor::admit_client(const std::string& address) {
  const auto now = Clock::now();
  const double rate = options_.max_requests_per_second;
  const double burst = options_.client_burst > 0 ? options_.client_burst : std::max(1.0, rate);
  std::lock_guard lock(clients_mu_);
  if (clients_.size() > 100000) {
    // Forget clients idle long enough to have a full bucket again.
    std::erase_if(clients_, [&](const auto& kv) {
      return std::chrono::duration<double>(now - kv.second.last).count() * rate >= burst;
    });
  }
  auto [it, fresh] = clients_.try_emplace(address, Bucket{burst, now});
  Bucket& b = it->second;
  if (!fresh) {
    b.tokens = std::min(burst, b.tokens + std::chrono::duration<double>(now - b.last).count() * rate);
    b.last = now;
  }
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

void FrontDoor::register_session(SessionBase* key, std::weak_ptr<SessionBase> s) {
  std::lock_guard lock(sessions_mu_);
  sessions_.emplace(key, std::move(s));
}

void FrontDoor::unregister_session(SessionBase* key) {
  std::lock_guard lock(sessions_mu_);
  sessions_.erase(key);
}

std::string FrontDoor::make_request_id() {
  const std::uint64_t n = request_counter_.fetch_add(1, std::memory_order_relaxed);
  // The prefix in 16 hex digits, a dash, the counter in 8 or more (snprintf took about 1,000
  // instructions a request).
  const int counter_digits = std::max(8, (static_cast<int>(std::bit_width(n)) + 3) / 4);
  std::string id(static_cast<std::size_t>(17 + counter_digits), '-');
  constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) id[static_cast<std::size_t>(15 - i)] = kHex[(request_id_prefix_ >> (4 * i)) & 0xf];
  for (int i = 0; i < counter_digits; ++i) id[id.size() - 1 - static_cast<std::size_t>(i)] = kHex[(n >> (4 * i)) & 0xf];
  return id;
}

}  // namespace lumen::serve::detail
