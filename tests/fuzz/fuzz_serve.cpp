// A libFuzzer target for lumen-serve's HTTP request path (lib/serve/front_door.cpp).
//
// Two real Servers listen on 127.0.0.1 (port 0) for the whole run, with their Runtime (two
// workers) and six small deployments: an echo of the request and its JSON body that can be
// asked for a status of its own (/echo), one that throws (/throw, /echo/thrower), one that
// batches (/batch), one that is slow (/slow: longer than request_timeout, with a tiny queue),
// one that streams its answer in parts (/stream), and a model under the Open Inference
// Protocol (/v2/models/fz with declared tensors, /v2/models/any without). Limits are small
// (max_body_bytes 8 KiB, max_header_bytes 2 KiB, read_timeout 200 ms, request_timeout 100 ms)
// so that every limit is within reach of a 64 KiB input and nothing waits long.
//
// Each input is the raw bytes of one or more HTTP requests. A first byte of 0x01 to 0x03 is
// taken off and chooses how they are sent: bit 0 sends them to the second server (bearer_token
// "s3cret", 50 requests per second, burst 20), bit 1 keeps the write side open after them (the
// server has to end the exchange by itself, through read_timeout). Otherwise they go to the
// first server (no token, no rate limit) and the write side is shut down after them.
//
// The target writes the bytes on a fresh connection and reads until the server closes it; a
// server that sends nothing and does not close for 2 s (or takes over 20 s in all) is a hang:
// abort with a message. Then it checks what came back, as server.h promises it:
//   - it is a sequence of whole responses, each "HTTP/1.1 NNN ..." with a Content-Length (and
//     that many bytes of body, or none for an answer to HEAD), or
//     chunked (a streamed answer), nothing else between them; nothing is cut short, except the
//     last chunked body when its stream failed after the first part (server.h, route());
//   - NNN is one the front door promises (200 400 401 404 408 413 429 431 500 503), 405 (a
//     /v2 endpoint asked with the wrong method), or one a model was asked for (201 202 204
//     206 299 302 304 418 451 599 from the echo, 422 from the v2 model); never 1xx: server.h
//     says a model's status reaches the client when it is 2xx-5xx;
//   - every response carries exactly one X-Request-ID, 1 to 128 of [A-Za-z0-9._:-]; the front
//     door's own errors ({"error": ..., "request_id": ...}) carry the same id in their body.
// After the exchange every request a deployment took must resolve: within 5 s no deployment
// may have requests ongoing or queued (deployment.h: "every accepted request resolves"), and
// every object made for them must be gone from lumen's object table (Stats::objects_live back
// to 0: the servers hold none between requests). So the next input starts from a quiet server,
// and LeakSanitizer's checks between inputs (libFuzzer runs them when an input allocates more
// than it frees) see nothing in flight: what a live object owns (a failure, the callbacks
// waiting on it) is reachable only through the table's slots, which live in mmap'd memory that
// LeakSanitizer does not scan, so in flight it would read as a leak; an object never freed is
// caught here instead.
//
// Every 64 inputs (and on the first) both servers must still answer GET /-/healthz with 200.
// The v2 model checks what reaches it: inference.h promises that an input whose shape and data
// disagree gets 400 before it reaches a replica; one that gets through aborts the run.
//
// FUZZ_SERVE_IGNORE=request-id,status (either or both) turns failures of those checks into a
// report on stderr (the first of each kind in full, then a count at exit) instead of an abort,
// so that fuzzing can go on past a known bug until it is fixed.
//
// The servers, deployments and runtime are torn down at exit (a static's destructor), so
// LeakSanitizer's report at exit names only real leaks.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <lumen/lumen.h>
#include <lumen/serve/deployment.h>
#include <lumen/serve/http.h>
#include <lumen/serve/options.h>
#include <lumen/serve/server.h>

// Options are written with designated initializers naming only what changes.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace {

namespace serve = lumen::serve;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxInput = 64 << 10;
constexpr auto kQuiet = 2s;     // no byte and no close for this long: a hang
constexpr auto kOverall = 20s;  // one input's whole exchange (libFuzzer's -timeout is 30)
constexpr int kHealthEvery = 64;
constexpr std::string_view kToken = "s3cret";

// Up to `max` bytes of s, printable, for messages.
std::string escaped(std::string_view s, std::size_t max = 2048) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n\n    ";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max) out += "... (" + std::to_string(s.size()) + " bytes in all)";
  return out;
}

void vreport(const char* format, std::va_list args) {
  std::fputs("fuzz_serve: ", stderr);
  std::vfprintf(stderr, format, args);
  std::fputc('\n', stderr);
}

[[noreturn]] __attribute__((format(printf, 1, 2))) void fail(const char* format, ...) {
  std::va_list args;
  va_start(args, format);
  vreport(format, args);
  va_end(args);
  std::abort();
}

// Checks that FUZZ_SERVE_IGNORE may name, and how often each failed while ignored.
enum Check { kRequestId, kStatus, kChecks };
constexpr const char* kCheckNames[kChecks] = {"request-id", "status"};
struct Ignored {
  bool ignored[kChecks] = {};
  unsigned long long failures[kChecks] = {};
  Ignored() {
    const char* env = std::getenv("FUZZ_SERVE_IGNORE");
    for (std::string_view rest = env != nullptr ? env : ""; !rest.empty();) {
      const auto comma = rest.find(',');
      std::string_view name = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      bool known = false;
      for (int c = 0; c < kChecks; ++c)
        if (name == kCheckNames[c]) ignored[c] = known = true;
      if (!known && !name.empty())
        fail("FUZZ_SERVE_IGNORE names '%.*s'; it takes request-id and status", static_cast<int>(name.size()), name.data());
    }
  }
  ~Ignored() {
    for (int c = 0; c < kChecks; ++c)
      if (failures[c] > 0)
        std::fprintf(stderr, "fuzz_serve: the %s check failed %llu times (FUZZ_SERVE_IGNORE)\n", kCheckNames[c], failures[c]);
  }
};
Ignored ignored_checks;

// Aborts, unless FUZZ_SERVE_IGNORE names the check: then reports the first failure of its kind.
__attribute__((format(printf, 2, 3))) void fail_check(Check c, const char* format, ...) {
  std::va_list args;
  va_start(args, format);
  if (!ignored_checks.ignored[c]) {
    vreport(format, args);
    std::abort();
  }
  if (ignored_checks.failures[c]++ == 0) {
    std::fprintf(stderr, "fuzz_serve: [ignored, FUZZ_SERVE_IGNORE=%s; later ones only counted] ", kCheckNames[c]);
    vreport(format, args);
  }
  va_end(args);
}

// ---------------------------------------------------------------------------------------
// The deployments.

std::optional<std::string_view> query_param(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == key) return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
  }
  return std::nullopt;
}

// Statuses the echo model answers with when asked (?status=N, or ?throw=N for an http_error):
// N itself when it is one of these, else the one at N modulo their count, so that any number
// the fuzzer writes there picks one. A path with /status/C or /raise/C in it asks the same with
// the byte C (modulo the count): one changed byte picks another status. The 2xx-5xx ones may reach the client as they are; 1xx
// ones must not (server.h: "2xx-5xx from the model"), and those out of range become 500.
constexpr int kModelStatuses[] = {200, 201, 202, 204, 206, 299, 302, 304, 418, 451, 599,
                                  100, 101, 199, 0, 99, 600, 1000, -1};
constexpr int kModelStatusesOnWire[] = {201, 202, 204, 206, 299, 302, 304, 418, 451, 599,
                                        422};  // the v2 model's http_error
constexpr int kPromised[] = {200, 400, 401, 404, 408, 413, 429, 431, 500, 503,
                             405};  // a /v2 endpoint asked with a method it does not take

std::optional<int> asked_status(std::string_view query, std::string_view key) {
  auto v = query_param(query, key);
  if (!v) return std::nullopt;
  int n = 0;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc{} || end != v->data() + v->size()) return std::nullopt;
  if (std::find(std::begin(kModelStatuses), std::end(kModelStatuses), n) != std::end(kModelStatuses)) return n;
  constexpr long long count = std::size(kModelStatuses);
  return kModelStatuses[((static_cast<long long>(n) % count) + count) % count];
}

std::optional<int> asked_status_in_path(std::string_view path, std::string_view marker) {
  const auto at = path.find(marker);
  if (at == std::string_view::npos || at + marker.size() >= path.size()) return std::nullopt;
  return kModelStatuses[static_cast<unsigned char>(path[at + marker.size()]) % std::size(kModelStatuses)];
}

// Echoes what it got, JSON body included, as the example in http.h does.
struct Echo {
  serve::Response operator()(const serve::Request& r) {
    auto raise = asked_status(r.query, "throw");
    if (!raise) raise = asked_status_in_path(r.path, "/raise/");
    if (raise) throw serve::http_error(*raise, "asked to throw " + std::to_string(*raise));
    auto asked = asked_status(r.query, "status");
    if (!asked) asked = asked_status_in_path(r.path, "/status/");
    const int status = asked.value_or(200);
    if (query_param(r.query, "empty")) return serve::Response{.status = status, .body = ""};
    nlohmann::json headers = nlohmann::json::array();
    for (const auto& [k, v] : r.headers) headers.push_back({k, v});
    nlohmann::json out{{"method", r.method}, {"path", r.path},     {"query", r.query},
                       {"route", r.route},   {"body", r.body},     {"request_id", r.request_id},
                       {"you_sent", r.json}, {"headers", headers}, {"model_id", std::string(r.model_id())}};
    return serve::Response::json(out, status);
  }
};

struct Thrower {
  serve::Response operator()(const serve::Request& r) {
    if (r.path.ends_with("/int")) throw 42;  // not a std::exception
    throw std::runtime_error("the model failed on " + r.path + " with body " + r.body);
  }
};

struct Batcher {
  std::vector<nlohmann::json> operator()(std::vector<serve::Request> rs) {
    std::vector<nlohmann::json> out;
    bool short_answer = false;
    for (const auto& r : rs) {
      out.push_back({{"batch", rs.size()}, {"path", r.path}, {"you_sent", r.json}});
      if (query_param(r.query, "short")) short_answer = true;
    }
    if (short_answer) out.pop_back();  // fewer answers than requests: every request fails (500)
    return out;
  }
};

struct Slow {
  std::string operator()(const serve::Request&) {
    std::this_thread::sleep_for(150ms);  // past request_timeout (100 ms)
    return "slept";
  }
};

// Streams the body (or, without one, the path) in up to four parts; /early fails before the
// first part, /late after the last; ?empty emits an empty part too (the front door skips it).
struct Streamer {
  void operator()(const serve::Request& r, lumen::Emitter<std::string>& out) {
    if (r.path.ends_with("/early")) throw std::runtime_error("failed before the first part");
    const std::string_view text = r.body.empty() ? std::string_view(r.path) : std::string_view(r.body);
    const std::size_t step = (text.size() + 3) / 4;
    for (std::size_t i = 0; i < text.size(); i += step) out.emit(std::string(text.substr(i, step)));
    if (query_param(r.query, "empty")) out.emit(std::string());
    if (r.path.ends_with("/late")) throw std::runtime_error("failed after its parts");
  }
};

// A model under the Open Inference Protocol: answers each input x with an output y_x, the same
// tensor. It first checks what the front door let through (inference.h): every input's data
// holds as many values as its shape says, each of its datatype.
struct Tensors {
  serve::InferResponse infer(const serve::InferRequest& r) {
    serve::InferResponse out;
    for (const auto& t : r.inputs) {
      unsigned __int128 n = 1;
      for (auto d : t.shape) {
        if (d < 0) fail("v2: input '%s' reached the model with a negative size in its shape", t.name.c_str());
        n *= static_cast<unsigned __int128>(d);
        if (n >= (static_cast<unsigned __int128>(1) << 64)) break;
      }
      if (n != t.data.size() || !t.data.is_array())
        fail("v2: input '%s' reached the model with shape %s (%s values) but %zu values in its data", t.name.c_str(),
             nlohmann::json(t.shape).dump().c_str(),
             n >= (static_cast<unsigned __int128>(1) << 64) ? "2^64 or more" : std::to_string(static_cast<std::uint64_t>(n)).c_str(),
             t.data.size());
      for (const auto& v : t.data) {
        const bool fits = t.datatype == "BOOL"    ? v.is_boolean()
                          : t.datatype == "BYTES" ? v.is_string()
                          : t.datatype.starts_with("FP") ? v.is_number()
                          : t.datatype.starts_with("UINT") ? v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0)
                                                           : v.is_number_integer();
        if (!fits) fail("v2: input '%s' reached the model with a value that is not %s: %s", t.name.c_str(), t.datatype.c_str(), v.dump().c_str());
      }
      out.outputs.push_back(serve::Tensor{"y_" + t.name, t.datatype, t.shape, t.data, {}});
    }
    if (r.id == "bad-output" && !out.outputs.empty()) out.outputs[0].shape.push_back(2);  // disagrees: 500
    if (r.id == "raise") throw serve::http_error(422, "asked to raise");                // the model's own status
    return out;
  }
};

// ---------------------------------------------------------------------------------------
// The servers, started on the first input and stopped at exit.

struct World {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  serve::DeploymentHandle<Echo> echo;
  serve::DeploymentHandle<Thrower> thrower;
  serve::DeploymentHandle<Batcher> batcher;
  serve::DeploymentHandle<Slow> slow;
  serve::DeploymentHandle<Streamer> streamer;
  serve::DeploymentHandle<Tensors> tensors;
  std::unique_ptr<serve::Server> open;    // no token, no rate limit
  std::unique_ptr<serve::Server> locked;  // bearer token and a rate limit

  World() {
    echo = serve::deploy<Echo>({.name = "fz-echo", .num_replicas = 2, .graceful_shutdown_timeout = 2s});
    thrower = serve::deploy<Thrower>({.name = "fz-throw", .graceful_shutdown_timeout = 2s});
    batcher = serve::deploy<Batcher>(
        {.name = "fz-batch", .graceful_shutdown_timeout = 2s, .batch = {.max_batch_size = 4, .batch_wait_timeout = 1ms}});
    slow = serve::deploy<Slow>(
        {.name = "fz-slow", .max_ongoing_requests = 1, .max_queued_requests = 2, .graceful_shutdown_timeout = 2s});
    streamer = serve::deploy<Streamer>({.name = "fz-stream", .graceful_shutdown_timeout = 2s});
    tensors = serve::deploy<Tensors>({.name = "fz-tensors", .graceful_shutdown_timeout = 2s});
    const serve::ModelInfo declared{.name = "fz",
                                    .inputs = {{"x", "FP32", {-1, 2}}, {"flags", "BOOL", {-1}}},
                                    .outputs = {{"y_x", "FP32", {-1, 2}}, {"y_flags", "BOOL", {-1}}}};

    serve::ServerOptions o{.host = "127.0.0.1",
                           .port = 0,
                           .io_threads = 2,
                           .max_body_bytes = 8 << 10,
                           .max_header_bytes = 2 << 10,
                           .read_timeout = 200ms,
                           .request_timeout = 100ms};
    open = std::make_unique<serve::Server>(o);
    open->route("/echo", echo);
    open->route("/echo/thrower", thrower);  // longer prefix inside another route
    open->route("/throw", thrower);
    open->route("/batch", batcher);
    open->route("/slow", slow);
    open->route("/stream", streamer);
    open->model(declared, tensors);
    open->model({.name = "any", .version = "2"}, tensors);
    open->start();

    o.bearer_token = std::string(kToken);
    o.max_requests_per_second = 50;
    o.client_burst = 20;
    locked = std::make_unique<serve::Server>(o);
    locked->route("/echo", echo);
    locked->route("/throw", thrower);
    locked->route("/stream", streamer);
    locked->model(declared, tensors);
    locked->start();
  }

  ~World() {
    // Servers first (they route to the deployments), then the deployments, then the runtime.
    open->stop(2s);
    locked->stop(2s);
    open.reset();
    locked.reset();
    for (auto shut : {+[](World& w) { w.echo.shutdown(2s); }, +[](World& w) { w.thrower.shutdown(2s); },
                      +[](World& w) { w.batcher.shutdown(2s); }, +[](World& w) { w.slow.shutdown(2s); },
                      +[](World& w) { w.streamer.shutdown(2s); }, +[](World& w) { w.tensors.shutdown(2s); }}) {
      try {
        shut(*this);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz_serve: shutting a deployment down at exit: %s\n", e.what());
      }
    }
    echo = {};
    thrower = {};
    batcher = {};
    slow = {};
    streamer = {};
    tensors = {};
  }
};

World& world() {
  static World w;
  return w;
}

// ---------------------------------------------------------------------------------------
// One exchange over a fresh connection.

struct Exchange {
  std::string received;
  std::size_t written = 0;
};

Exchange exchange(std::uint16_t port, std::string_view out, bool half_close, const char* what) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket(): %s", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  if (connected != 0 && errno == EINTR) {
    // A signal (libFuzzer's own timer is one) interrupted the connect; the connection goes on
    // by itself, and its outcome is known once the socket is writable.
    pollfd p{fd, POLLOUT, 0};
    int ready;
    do {
      ready = ::poll(&p, 1, 5000);
    } while (ready < 0 && errno == EINTR);
    int error = ETIMEDOUT;
    socklen_t length = sizeof error;
    if (ready == 1) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    connected = error == 0 ? 0 : -1;
    errno = error;
  }
  if (connected != 0)
    fail("%s: cannot connect to the server on port %u: %s (it stopped listening)", what, port, std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);

  Exchange ex;
  bool writing = true, shut = false;
  const auto start = Clock::now();
  auto last_progress = start;
  auto finish_writing = [&] {
    writing = false;
    if (half_close && !shut) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
  };
  if (out.empty()) finish_writing();
  char buf[16384];
  for (;;) {
    const auto now = Clock::now();
    if (now - last_progress >= kQuiet || now - start >= kOverall) {
      fail("%s: the server neither answered nor closed the connection within %lld ms%s (port %u, wrote %zu of "
           "%zu bytes, %s; received %zu bytes:\n    %s)",
           what, static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(now - last_progress).count()),
           now - start >= kOverall ? " (overall limit)" : "", port, ex.written, out.size(),
           half_close ? "write side shut down" : "write side left open", ex.received.size(),
           escaped(ex.received).c_str());
    }
    pollfd p{fd, static_cast<short>(POLLIN | (writing ? POLLOUT : 0)), 0};
    const auto left = std::min(kQuiet - (now - last_progress), kOverall - (now - start));
    const int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(left).count()) + 1;
    const int n = ::poll(&p, 1, ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("poll(): %s", std::strerror(errno));
    }
    if (n == 0) continue;
    if (writing && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t w = ::send(fd, out.data() + ex.written, out.size() - ex.written, MSG_NOSIGNAL);
      if (w > 0) {
        ex.written += static_cast<std::size_t>(w);
        last_progress = Clock::now();
        if (ex.written == out.size()) finish_writing();
      } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        writing = false;  // the server closed its side (EPIPE, ECONNRESET): read what it sent
      }
    }
    if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
      const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r > 0) {
        ex.received.append(buf, static_cast<std::size_t>(r));
        last_progress = Clock::now();
      } else if (r == 0) {
        break;  // closed
      } else if (errno == ECONNRESET || errno == EPIPE) {
        break;  // closed with our unread bytes in its buffer: a reset, after what it sent
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        fail("%s: recv(): %s", what, std::strerror(errno));
      }
    }
  }
  ::close(fd);
  return ex;
}

// ---------------------------------------------------------------------------------------
// What came back.

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' || c == '-';
  });
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

struct Parsed {
  int status;
  std::string_view head;
  std::string_view body;
};

// Splits `got` into responses, checking each; `input` is for the messages.
std::vector<Parsed> check_responses(std::string_view got, std::string_view input, const char* what) {
  std::vector<Parsed> all;
  constexpr const char* kFormat = "%s: %s, response %zu at byte %zu of %zu.\n  input (%zu bytes):\n    %s\n  received:\n    %s";
  auto bad = [&](std::size_t at, const char* why) {
    fail(kFormat, what, why, all.size() + 1, at, got.size(), input.size(), escaped(input).c_str(), escaped(got, 8192).c_str());
  };
  auto bad_check = [&](Check c, std::size_t at, const char* why) {
    fail_check(c, kFormat, what, why, all.size() + 1, at, got.size(), input.size(), escaped(input).c_str(),
               escaped(got, 8192).c_str());
  };
  std::size_t pos = 0;
  while (pos < got.size()) {
    std::string_view rest = got.substr(pos);
    if (!rest.starts_with("HTTP/1.1 ")) bad(pos, "a response does not start with \"HTTP/1.1 \"");
    const auto head_end = rest.find("\r\n\r\n");
    if (head_end == std::string_view::npos) bad(pos, "a response was cut short in its header block");
    std::string_view head = rest.substr(0, head_end + 2);  // each line ends with \r\n
    if (head.size() < 14 || !std::isdigit(static_cast<unsigned char>(head[9])) ||
        !std::isdigit(static_cast<unsigned char>(head[10])) || !std::isdigit(static_cast<unsigned char>(head[11])) ||
        (head[12] != ' ' && head[12] != '\r'))
      bad(pos, "a status line without a 3-digit status");
    const int status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
    if (status < 200) bad_check(kStatus, pos, "a 1xx status as a final response (server.h: a model's status reaches the client when it is 2xx-5xx)");
    if (std::find(std::begin(kPromised), std::end(kPromised), status) == std::end(kPromised) &&
        std::find(std::begin(kModelStatusesOnWire), std::end(kModelStatusesOnWire), status) == std::end(kModelStatusesOnWire))
      bad_check(kStatus, pos, "a status that is neither one the front door promises nor one the model was asked for");

    std::size_t ids = 0;
    std::string_view id;
    std::optional<std::size_t> content_length;
    bool chunked = false;
    std::size_t line = head.find("\r\n") + 2;
    while (line < head.size()) {
      const auto eol = head.find("\r\n", line);
      std::string_view field = head.substr(line, eol - line);
      line = eol + 2;
      const auto colon = field.find(':');
      if (colon == std::string_view::npos || colon == 0) bad(pos, "a header line without a name and a colon");
      std::string_view name = field.substr(0, colon), value = field.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
      if (iequals(name, "X-Request-ID")) {
        ++ids;
        id = value;
      } else if (iequals(name, "Content-Length")) {
        std::size_t n = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec != std::errc{} || end != value.data() + value.size() || content_length) bad(pos, "a bad or repeated Content-Length");
        content_length = n;
      } else if (iequals(name, "Transfer-Encoding")) {
        chunked = true;
      }
    }
    if (ids != 1) bad_check(kRequestId, pos, ids == 0 ? "a response without X-Request-ID" : "a response with more than one X-Request-ID");
    if (ids == 1 && !valid_request_id(id)) bad_check(kRequestId, pos, "an X-Request-ID that is not 1 to 128 of [A-Za-z0-9._:-]");
    if (chunked) {
      // A streamed answer: 200, chunks, then the last chunk ("0\r\n\r\n"); a stream that failed
      // after its first part ends the connection instead (the last response only).
      if (content_length) bad(pos, "a response with both Content-Length and Transfer-Encoding");
      if (status != 200) bad(pos, "a chunked response whose status is not 200");
      std::size_t at = head_end + 4;
      for (;;) {
        const auto eol = rest.find("\r\n", at);
        if (eol == std::string_view::npos) {
          if (pos + rest.size() != got.size()) bad(pos, "a chunked body cut short before another response");
          at = rest.size();  // cut off: the stream failed after its first part
          break;
        }
        std::size_t size = 0;
        auto [end, ec] = std::from_chars(rest.data() + at, rest.data() + eol, size, 16);
        if (ec != std::errc{} || end != rest.data() + eol) bad(pos + at, "a chunk size that is not hexadecimal");
        if (size == 0) {
          if (rest.substr(eol + 2, 2) != "\r\n") bad(pos + at, "a last chunk without its final CRLF");
          at = eol + 4;
          break;
        }
        if (eol + 2 + size + 2 > rest.size()) {
          at = rest.size();  // cut off inside a chunk
          break;
        }
        if (rest.substr(eol + 2 + size, 2) != "\r\n") bad(pos + at, "a chunk not followed by CRLF");
        at = eol + 2 + size + 2;
      }
      all.push_back({status, head, rest.substr(head_end + 4, at - head_end - 4)});
      pos += at;
      continue;
    }
    std::size_t body_len = 0;
    // An answer to HEAD states its body's length and sends none: the head is followed at once
    // by the next response or by the end. (This target does not pair answers with requests;
    // no body the models here send starts with "HTTP/1.1 ".)
    const std::string_view after_head = rest.substr(head_end + 4);
    const bool head_answer = after_head.empty() || after_head.starts_with("HTTP/1.1 ");
    if (status != 204 && status != 304) {
      if (!content_length) bad(pos, "a response without Content-Length");
      body_len = head_answer ? 0 : *content_length;
    } else if (content_length && *content_length != 0) {
      bad(pos, "a 204 or 304 response with a body length");
    }
    const std::size_t total = head_end + 4 + body_len;
    if (total > rest.size()) bad(pos, "a response was cut short in its body");
    std::string_view body = rest.substr(head_end + 4, body_len);
    // The front door's own errors name their request in the body too: the same id.
    if (ids == 1 && body.starts_with("{\"error\":")) {
      auto j = nlohmann::json::parse(body, nullptr, false);
      if (j.is_object() && j.contains("error") && j.contains("request_id") && j["request_id"].is_string() &&
          j["request_id"].get<std::string>() != id)
        bad_check(kRequestId, pos, "an error whose X-Request-ID is not the request_id in its body");
    }
    all.push_back({status, head, body});
    pos += total;
  }
  return all;
}

// Waits until no deployment has a request ongoing or queued and lumen's object table is empty
// again; 5 s is a request that never resolves, or an object that is never freed.
void settle(World& w, std::string_view input, const char* what) {
  const auto start = Clock::now();
  for (;;) {
    const serve::DeploymentStatus st[] = {w.echo.status(),  w.thrower.status(),  w.batcher.status(),
                                          w.slow.status(), w.streamer.status(), w.tensors.status()};
    const bool idle =
        std::all_of(std::begin(st), std::end(st), [](const auto& s) { return s.ongoing_requests == 0 && s.queued_requests == 0; });
    const std::uint64_t live = idle ? w.rt.stats().objects_live : 0;
    if (idle && live == 0) return;
    if (Clock::now() - start > 5s) {
      std::string load;
      for (const auto& s : st)
        load += " " + s.name + ": " + std::to_string(s.ongoing_requests) + " ongoing, " + std::to_string(s.queued_requests) + " queued;";
      if (idle)
        fail("%s: %llu objects still live in lumen's object table 5 s after the connection closed and every deployment "
             "went idle (a leak)\n  input (%zu bytes):\n    %s",
             what, static_cast<unsigned long long>(live), input.size(), escaped(input).c_str());
      fail("%s: requests still unresolved 5 s after the connection closed:%s\n  input (%zu bytes):\n    %s", what, load.c_str(),
           input.size(), escaped(input).c_str());
    }
    std::this_thread::sleep_for(1ms);
  }
}

void check_health(World& w, unsigned long long inputs) {
  constexpr std::string_view kHealthz = "GET /-/healthz HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
  for (serve::Server* s : {w.open.get(), w.locked.get()}) {
    const char* which = s == w.open.get() ? "GET /-/healthz (open server)" : "GET /-/healthz (server with a token)";
    Exchange ex = exchange(s->port(), kHealthz, true, which);
    auto rs = check_responses(ex.received, kHealthz, which);
    if (rs.size() != 1 || rs[0].status != 200)
      fail("%s after %llu inputs: expected one 200, got %zu responses:\n    %s", which, inputs, rs.size(),
           escaped(ex.received).c_str());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > kMaxInput) return -1;  // not added to the corpus
  World& w = world();
  static unsigned long long inputs = 0;
  if (inputs++ % kHealthEvery == 0) check_health(w, inputs - 1);

  std::string_view in(reinterpret_cast<const char*>(data), size);
  bool locked = false, half_close = true;
  if (!in.empty() && in[0] >= 1 && in[0] <= 3) {
    locked = (in[0] & 1) != 0;
    half_close = (in[0] & 2) == 0;
    in.remove_prefix(1);
  }
  const char* what = locked ? "the server with a token" : "the open server";
  Exchange ex = exchange((locked ? w.locked : w.open)->port(), in, half_close, what);
  check_responses(ex.received, in, what);
  settle(w, in, what);
  return 0;
}
