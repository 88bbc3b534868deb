// The front door over loopback, driven by real clients (curl, openssl) and raw sockets: every
// status code a request can end with, longest-prefix routing and what a model sees of its
// request, X-Request-ID, keep-alive, the built-in endpoints (/-/healthz, /-/routes, /-/status,
// /metrics), HTTPS, hostile clients (garbage, truncated, slow, abrupt), max_connections, a
// graceful stop, and bad options and misuse. Every server listens on 127.0.0.1 with port 0;
// every wait is bounded (curl --max-time, poll deadlines).
#include <doctest/doctest.h>
#include <lumen/lumen.h>
#include <lumen/serve/serve.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

// Options are written with designated initializers naming only what a test changes; GCC 12
// warns about every member left out that has no default member initializer.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

using namespace std::chrono_literals;
namespace serve = lumen::serve;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// ---------------------------------------------------------------------------------------
// A temporary directory for the whole run, and fresh file names in it.

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "lumen-front-door-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

const fs::path& tmp() {
  static TempDir dir;
  return dir.path;
}

fs::path fresh_file(std::string_view what) {
  static std::atomic<int> n{0};
  return tmp() / (std::to_string(n.fetch_add(1)) + "-" + std::string(what));
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, std::string_view text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

// ---------------------------------------------------------------------------------------
// Running a program: argv as given (no shell), stdout and stderr captured to files.

struct Proc {
  int exit = -1;  // the exit status, or 128 + the signal
  std::string out;
  std::string err;
};

Proc run_argv(const std::vector<std::string>& argv, const fs::path& stdin_file = "/dev/null") {
  const fs::path out = fresh_file("stdout"), err = fresh_file("stderr");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, stdin_file.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  // The child gets no other descriptor: the server's sockets are inherited by children
  // otherwise (see "the server's sockets are not inherited by child processes"), and a curl
  // still running would hold a stopped server's listening socket open.
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  Proc p;
  if (rc != 0) {
    p.err = "posix_spawnp failed: " + std::to_string(rc);
    return p;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  p.exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  p.out = read_file(out);
  p.err = read_file(err);
  return p;
}

bool have_program(const std::string& name) {
  return run_argv({"sh", "-c", "command -v " + name}).exit == 0;
}

// ---------------------------------------------------------------------------------------
// curl: one request, its status, headers and body.

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return std::string(s);
}

// The value of the header field `name` in the last header block of `head` (earlier blocks
// are interim responses); nullopt when absent.
std::optional<std::string> header_in(std::string_view head, std::string_view name) {
  std::optional<std::string> found;
  const std::string want = lower(name);
  std::istringstream lines{std::string(head)};
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("HTTP/")) {
      found.reset();
      continue;
    }
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (lower(trim(line.substr(0, colon))) == want && !found) found = trim(line.substr(colon + 1));
  }
  return found;
}

struct Reply {
  int exit = -1;  // curl's exit status: 0 when it got a whole response, whatever its status
  int code = 0;   // the HTTP status; 0 when none arrived
  std::string body;
  std::string head;  // the header blocks as received
  std::string err;

  std::optional<std::string> header(std::string_view name) const { return header_in(head, name); }
  json parsed() const { return json::parse(body, nullptr, false); }
};

std::string url(std::uint16_t port, std::string_view path, std::string_view scheme = "http") {
  return std::string(scheme) + "://127.0.0.1:" + std::to_string(port) + std::string(path);
}

// curl [args...] target, with no proxy, no .curlrc, and at most 5 s.
Reply curl(const std::string& target, const std::vector<std::string>& args = {}) {
  const fs::path body = fresh_file("body"), head = fresh_file("head");
  std::vector<std::string> argv{"curl", "-q", "-s", "-S", "--noproxy", "*", "--max-time", "5",
                                "--connect-timeout", "3", "-o", body.string(), "-D", head.string(),
                                "-w", "%{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(target);
  Proc p = run_argv(argv);
  Reply r;
  r.exit = p.exit;
  r.err = p.err;
  try {
    r.code = std::stoi(p.out);
  } catch (...) {
    r.code = 0;
  }
  r.body = read_file(body);
  r.head = read_file(head);
  return r;
}

Reply get(std::uint16_t port, std::string_view path, const std::vector<std::string>& args = {}) {
  return curl(url(port, path), args);
}

Reply post_json(std::uint16_t port, std::string_view path, const std::string& body,
                std::string content_type = "application/json") {
  return curl(url(port, path), {"-H", "Content-Type: " + content_type, "--data-binary", body});
}

// ---------------------------------------------------------------------------------------
// A raw TCP client with bounded reads.

using Clock = std::chrono::steady_clock;

class Conn {
 public:
  explicit Conn(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      error_ = errno;
      return;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      error_ = errno;
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  Conn(Conn&& o) noexcept : fd_(std::exchange(o.fd_, -1)), error_(o.error_), buf_(std::move(o.buf_)) {}

  bool connected() const noexcept { return fd_ >= 0; }
  int error() const noexcept { return error_; }

  bool send(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // One whole response (headers and Content-Length body), or "" when the connection closed
  // or time ran out first (what did arrive stays in pending()).
  std::string response(std::chrono::milliseconds within) {
    const auto deadline = Clock::now() + within;
    for (;;) {
      auto end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        std::size_t length = 0;
        if (auto cl = header_in(buf_.substr(0, end + 2), "Content-Length")) length = std::stoul(*cl);
        if (buf_.size() >= end + 4 + length) {
          std::string out = buf_.substr(0, end + 4 + length);
          buf_.erase(0, end + 4 + length);
          return out;
        }
      }
      if (fill(deadline) <= 0) return "";
    }
  }

  // True when the peer closes (EOF or reset) within the time; whatever arrives meanwhile is
  // kept in pending().
  bool closed_within(std::chrono::milliseconds within) {
    const auto deadline = Clock::now() + within;
    for (;;) {
      int n = fill(deadline);
      if (n == 0 || n == -1) return true;
      if (n == -2) return false;
    }
  }

  // Waits up to `within` for bytes or a close: >0 bytes arrived, 0 EOF, -1 reset, -2 nothing.
  int fill(Clock::time_point deadline) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left < 0) left = 0;
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) return -2;
      char chunk[65536];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return -1;
      if (n == 0) return 0;
      buf_.append(chunk, static_cast<std::size_t>(n));
      return static_cast<int>(n);
    }
  }

  const std::string& pending() const noexcept { return buf_; }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  // Closes so that the peer sees a reset (SO_LINGER 0), not a FIN.
  void reset() {
    if (fd_ < 0) return;
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  int error_ = 0;
  std::string buf_;
};

int status_of(std::string_view response) {
  // "HTTP/1.1 200 OK"
  if (response.size() < 12 || !response.starts_with("HTTP/")) return 0;
  auto sp = response.find(' ');
  if (sp == std::string_view::npos) return 0;
  return std::atoi(std::string(response.substr(sp + 1, 3)).c_str());
}

std::string body_of(std::string_view response) {
  auto end = response.find("\r\n\r\n");
  return end == std::string_view::npos ? std::string() : std::string(response.substr(end + 4));
}

// ---------------------------------------------------------------------------------------
// Waiting, bounded.

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds within = 5s) {
  const auto deadline = Clock::now() + within;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

template <class T>
bool wait_running(const serve::DeploymentHandle<T>& d, int n) {
  return wait_until([&] { return d.status().replicas_in(serve::ReplicaState::running) >= n; });
}

// ---------------------------------------------------------------------------------------
// The model: what it does depends on the last segment of the path.
//   .../throw      throws std::runtime_error            .../teapot   throws http_error(418)
//   .../custom     201 with a content type and header   .../bad-status  a status of 42
//   .../block      waits until the test opens the gate (at most 10 s)
//   .../big        a 16 MiB text body
//   anything else  echoes what it was given, as JSON

struct Probe {
  std::atomic<int> calls{0};      // entries into operator()
  std::atomic<int> entered{0};    // entries into .../block
  std::atomic<bool> open{false};  // lets .../block return
  std::atomic<int> instances{0};  // replicas built
};

constexpr std::size_t kBigBody = 16u << 20;

class Model {
 public:
  explicit Model(std::shared_ptr<Probe> probe) : probe_(std::move(probe)), instance_(++probe_->instances) {}

  serve::Response operator()(const serve::Request& r) {
    ++probe_->calls;
    const std::string last = r.path.substr(r.path.rfind('/'));
    if (last == "/throw") throw std::runtime_error("the model failed on purpose");
    if (last == "/teapot") throw serve::http_error(418, "short and stout");
    if (last == "/bad-status") return serve::Response{.status = 42, .body = "?"};
    if (last == "/custom")
      return serve::Response{.status = 201, .body = "made", .content_type = "text/x-lumen", .headers = {{"X-Extra", "yes"}}};
    if (last == "/block") {
      ++probe_->entered;
      const auto until = Clock::now() + 10s;
      while (!probe_->open.load() && Clock::now() < until) std::this_thread::sleep_for(1ms);
      return serve::Response::text("released");
    }
    if (last == "/big") return serve::Response::text(std::string(kBigBody, 'x'));
    json headers = json::array();
    for (const auto& [k, v] : r.headers) headers.push_back({k, v});
    json out;
    out["method"] = r.method;
    out["path"] = r.path;
    out["query"] = r.query;
    out["route"] = r.route;
    out["body"] = r.body;
    out["json"] = r.json;
    out["request_id"] = r.request_id;
    out["headers"] = headers;
    out["x_custom"] = std::string(r.header("X-CUSTOM"));
    out["instance"] = instance_;
    return serve::Response::json(out);
  }

 private:
  std::shared_ptr<Probe> probe_;
  int instance_;
};

// Shuts the deployment down when the test ends (after the server that routes to it).
template <class T>
struct Deployed {
  serve::DeploymentHandle<T> h;
  ~Deployed() {
    try {
      h.shutdown(3s);
    } catch (...) {
    }
  }
};

Deployed<Model> deploy_model(serve::DeploymentOptions o, std::shared_ptr<Probe> probe) {
  if (o.graceful_shutdown_timeout == std::chrono::milliseconds(20000)) o.graceful_shutdown_timeout = 3s;
  return Deployed<Model>{serve::deploy<Model>(std::move(o), std::move(probe))};
}

// Opens the gate when the test ends, so no blocked model outlives it (declare it last).
struct OpenOnExit {
  std::shared_ptr<Probe> probe;
  ~OpenOnExit() { probe->open = true; }
};

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' || c == '-';
  });
}

lumen::Config two_workers() { return lumen::Config{.workers = 2}; }

// The usual setting of a test: a runtime, the model (with its probe) deployed on it, and a
// server that routes `prefix` to it, started. Members end in reverse: server, model, runtime.
struct Served {
  Served(serve::DeploymentOptions model, serve::ServerOptions options, const std::string& prefix = "/t")
      : dep(deploy_model(std::move(model), probe)), server(std::move(options)) {
    server.route(prefix, dep.h);
    server.start();
  }
  lumen::Runtime rt{two_workers()};
  std::shared_ptr<Probe> probe = std::make_shared<Probe>();
  Deployed<Model> dep;
  serve::Server server;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// Status codes

// A model's answer reaches the client: a JSON echo, its own status, type and headers.
TEST_CASE("200 with the model's answer, JSON echoed") {
  Served app({.name = "fd-ok"}, {.port = 0});
  const auto port = app.server.port();
  REQUIRE(port != 0);

  Reply r = post_json(port, "/t/echo", R"({"x":[1,2,3],"s":"hi"})");
  REQUIRE(r.exit == 0);
  CHECK(r.code == 200);
  CHECK(r.header("Content-Type").value_or("").starts_with("application/json"));
  json j = r.parsed();
  REQUIRE(j.is_object());
  CHECK(j["json"] == json::parse(R"({"x":[1,2,3],"s":"hi"})"));
  CHECK(j["method"] == "POST");
  CHECK(j["body"] == R"({"x":[1,2,3],"s":"hi"})");

  // +json types are JSON too; other types are passed as bytes, unparsed.
  r = post_json(port, "/t/echo", R"({"y":true})", "application/vnd.lumen+json");
  CHECK(r.code == 200);
  CHECK(r.parsed()["json"] == json::parse(R"({"y":true})"));
  r = post_json(port, "/t/echo", "{not json", "text/plain");
  CHECK(r.code == 200);
  CHECK(r.parsed()["json"].is_null());
  CHECK(r.parsed()["body"] == "{not json");

  // A Response with its own status, content type and header fields.
  r = get(port, "/t/custom");
  CHECK(r.code == 201);
  CHECK(r.body == "made");
  CHECK(r.header("Content-Type") == "text/x-lumen");
  CHECK(r.header("X-Extra") == "yes");

  // Header names reach the model in lower case, in order; Request::header ignores case.
  r = get(port, "/t/echo", {"-H", "X-Custom: one", "-H", "X-Second: two"});
  REQUIRE(r.code == 200);
  j = r.parsed();
  CHECK(j["x_custom"] == "one");
  bool saw_custom = false, in_order = false;
  for (const auto& h : j["headers"]) {
    if (h[0] == "x-custom") saw_custom = true;
    if (h[0] == "x-second") in_order = saw_custom;
  }
  CHECK(saw_custom);
  CHECK(in_order);
  CHECK(j["method"] == "GET");
}

// An exception fails its request only: 500, and the same replica serves the next one.
TEST_CASE("a model that throws gets 500 and its replica keeps serving") {
  Served app({.name = "fd-throw", .num_replicas = 1}, {.port = 0});
  const auto port = app.server.port();

  Reply first = get(port, "/t/echo");
  REQUIRE(first.code == 200);
  const int instance = first.parsed()["instance"].get<int>();

  Reply r = get(port, "/t/throw");
  CHECK(r.code == 500);
  json j = r.parsed();
  REQUIRE(j.is_object());
  CHECK(j["error"].get<std::string>().find("the model failed on purpose") != std::string::npos);
  CHECK(j["request_id"] == r.header("X-Request-ID").value_or("?"));

  Reply again = get(port, "/t/echo");
  CHECK(again.code == 200);
  CHECK(again.parsed()["instance"] == instance);
  CHECK(app.probe->instances == 1);
  CHECK(app.dep.h.status().replicas_replaced == 0);

  // A status out of range from the model is a failure too.
  CHECK(get(port, "/t/bad-status").code == 500);
}

TEST_CASE("a model that throws http_error answers with its status") {
  Served app({.name = "fd-teapot"}, {.port = 0});

  Reply r = get(app.server.port(), "/t/teapot");
  CHECK(r.code == 418);
  json j = r.parsed();
  REQUIRE(j.is_object());
  CHECK(j["error"] == "short and stout");
  CHECK(get(app.server.port(), "/t/echo").code == 200);
}

TEST_CASE("no route matches: 404") {
  Served app({.name = "fd-404"}, {.port = 0});

  for (const char* path : {"/nowhere", "/tt", "/", "/T/echo"}) {
    CAPTURE(path);
    Reply r = get(app.server.port(), path);
    CHECK(r.code == 404);
    CHECK(r.parsed().is_object());
  }
  CHECK(app.probe->calls == 0);
}

// A body sent as JSON that does not parse never reaches a replica.
TEST_CASE("malformed JSON gets 400 and the model is not called") {
  Served app({.name = "fd-badjson"}, {.port = 0});
  const auto port = app.server.port();

  CHECK(post_json(port, "/t/echo", R"({"x":)").code == 400);
  CHECK(post_json(port, "/t/echo", "[1,2", "application/json; charset=utf-8").code == 400);
  CHECK(post_json(port, "/t/echo", "nope", "application/problem+json").code == 400);
  CHECK(post_json(port, "/t/echo", R"({"x":1} trailing)", "Application/JSON").code == 400);
  CHECK(app.probe->calls == 0);
  CHECK(post_json(port, "/t/echo", R"({"x":1})").code == 200);
  CHECK(app.probe->calls == 1);
}

TEST_CASE("a body over max_body_bytes gets 413") {
  Served app({.name = "fd-413"}, {.port = 0, .max_body_bytes = 1024});
  const auto port = app.server.port();

  // At the limit: served.
  const fs::path at = fresh_file("at-limit"), over = fresh_file("over-limit");
  write_file(at, std::string(1024, 'a'));
  write_file(over, std::string(4096, 'b'));
  Reply r = curl(url(port, "/t/echo"), {"--data-binary", "@" + at.string(), "-H", "Content-Type: text/plain"});
  CHECK(r.code == 200);

  // Over it, through curl (which waits for 100-continue and gets the 413 instead).
  r = curl(url(port, "/t/echo"), {"--data-binary", "@" + over.string(), "-H", "Content-Type: text/plain"});
  CHECK(r.code == 413);

  // Over it by the Content-Length alone: answered before any body is sent.
  Conn c(port);
  REQUIRE(c.connected());
  REQUIRE(c.send("POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"));
  std::string resp = c.response(3s);
  CHECK(status_of(resp) == 413);
  CHECK(c.closed_within(3s));
  CHECK(app.probe->calls == 1);
}

TEST_CASE("a header block over max_header_bytes gets 431") {
  Served app({.name = "fd-431"}, {.port = 0, .max_header_bytes = 1024});

  Reply r = get(app.server.port(), "/t/echo", {"-H", "X-Big: " + std::string(2000, 'h')});
  CHECK(r.code == 431);
  CHECK(get(app.server.port(), "/t/echo", {"-H", "X-Small: " + std::string(100, 'h')}).code == 200);
  CHECK(app.probe->calls == 1);
}

TEST_CASE("bearer_token: 401 with WWW-Authenticate without it, 200 with it; healthz needs none") {
  Served app({.name = "fd-auth"}, {.port = 0, .bearer_token = "s3cret-token"});
  const auto port = app.server.port();

  Reply none = get(port, "/t/echo");
  CHECK(none.code == 401);
  CHECK(none.header("WWW-Authenticate").value_or("").starts_with("Bearer"));
  for (const char* auth : {"Bearer wrong", "Bearer s3cret-tokenX", "Bearer s3cret-toke", "Bearer ",
                           "Basic s3cret-token", "bearer-s3cret-token", "s3cret-token"}) {
    CAPTURE(auth);
    Reply r = get(port, "/t/echo", {"-H", std::string("Authorization: ") + auth});
    CHECK(r.code == 401);
    CHECK(r.header("WWW-Authenticate").has_value());
  }
  CHECK(app.probe->calls == 0);

  Reply ok = get(port, "/t/echo", {"-H", "Authorization: Bearer s3cret-token"});
  CHECK(ok.code == 200);
  CHECK(app.probe->calls == 1);

  Reply health = get(port, "/-/healthz");
  CHECK(health.code == 200);
  // The other built-ins are guarded like the routes.
  CHECK(get(port, "/metrics").code == 401);
  CHECK(get(port, "/-/status").code == 401);
  CHECK(get(port, "/-/routes", {"-H", "Authorization: Bearer s3cret-token"}).code == 200);
}

TEST_CASE("a client over max_requests_per_second gets 429 with Retry-After") {
  lumen::Runtime rt{two_workers()};
  auto probe = std::make_shared<Probe>();
  auto dep = deploy_model({.name = "fd-429"}, probe);
  // One token every 10 s, two in the bucket: the third request in a row is refused.
  serve::Server server({.port = 0, .max_requests_per_second = 0.1, .client_burst = 2, .retry_after_seconds = 7});
  server.route("/t", dep.h);
  server.start();
  const auto port = server.port();

  CHECK(get(port, "/t/echo").code == 200);
  CHECK(get(port, "/t/echo").code == 200);
  Reply r = get(port, "/t/echo");
  CHECK(r.code == 429);
  CHECK(r.header("Retry-After") == "7");
  CHECK(r.header("X-Request-ID").has_value());
  CHECK(probe->calls == 2);
  // Health checks are not counted against the client.
  CHECK(get(port, "/-/healthz").code == 200);
}

// A deployment whose one replica is busy and whose queue is full refuses at once.
TEST_CASE("a full queue gets 503 with Retry-After") {
  lumen::Runtime rt{lumen::Config{.workers = 3}};
  auto probe = std::make_shared<Probe>();
  auto dep = deploy_model({.name = "fd-503", .num_replicas = 1, .max_ongoing_requests = 1, .max_queued_requests = 1},
                          probe);
  serve::Server server({.port = 0, .retry_after_seconds = 3});
  server.route("/t", dep.h);
  server.start();
  const auto port = server.port();
  std::vector<std::future<Reply>> clients;
  OpenOnExit open{probe};

  clients.push_back(std::async(std::launch::async, [port] { return get(port, "/t/block"); }));
  REQUIRE(wait_until([&] { return probe->entered == 1; }));
  clients.push_back(std::async(std::launch::async, [port] { return get(port, "/t/block"); }));
  REQUIRE(wait_until([&] { return dep.h.status().queued_requests == 1; }));

  Reply refused = get(port, "/t/echo");
  CHECK(refused.code == 503);
  CHECK(refused.header("Retry-After") == "3");
  CHECK(refused.parsed().is_object());
  CHECK(dep.h.status().refused_requests == 1);

  probe->open = true;
  for (auto& c : clients) {
    Reply r = c.get();
    CHECK(r.code == 200);
    CHECK(r.body == "released");
  }
  CHECK(get(port, "/t/echo").code == 200);
}

TEST_CASE("max_queued_requests 0: 503 as soon as the replica is busy") {
  lumen::Runtime rt{lumen::Config{.workers = 3}};
  auto probe = std::make_shared<Probe>();
  auto dep = deploy_model({.name = "fd-503-zero", .num_replicas = 1, .max_ongoing_requests = 1, .max_queued_requests = 0},
                          probe);
  REQUIRE(wait_running(dep.h, 1));
  serve::Server server({.port = 0});
  server.route("/t", dep.h);
  server.start();
  const auto port = server.port();
  std::vector<std::future<Reply>> clients;
  OpenOnExit open{probe};

  clients.push_back(std::async(std::launch::async, [port] { return get(port, "/t/block"); }));
  REQUIRE(wait_until([&] { return probe->entered == 1; }));
  Reply refused = get(port, "/t/echo");
  CHECK(refused.code == 503);
  CHECK(refused.header("Retry-After") == "1");
  probe->open = true;
  CHECK(clients[0].get().code == 200);
  CHECK(get(port, "/t/echo").code == 200);
}

TEST_CASE("request_timeout: a model slower than it gets 408") {
  lumen::Runtime rt{lumen::Config{.workers = 3}};
  auto probe = std::make_shared<Probe>();
  auto dep = deploy_model({.name = "fd-408-request"}, probe);
  serve::Server server({.port = 0, .request_timeout = 200ms});
  server.route("/t", dep.h);
  server.start();
  const auto port = server.port();
  OpenOnExit open{probe};

  Reply r = get(port, "/t/block");
  CHECK(r.code == 408);
  CHECK(r.parsed().is_object());
  CHECK(probe->entered == 1);
  probe->open = true;  // the late answer is dropped
  CHECK(get(port, "/t/echo").code == 200);
}

TEST_CASE("read_timeout: half a request gets 408; an idle connection is closed without a response") {
  Served app({.name = "fd-408-read"}, {.port = 0, .read_timeout = 300ms});
  const auto port = app.server.port();

  {
    Conn c(port);
    REQUIRE(c.connected());
    REQUIRE(c.send("GET /t/echo HTTP/1.1\r\nHost: x\r\n"));  // no blank line: the headers never end
    std::string resp = c.response(3s);
    CHECK(status_of(resp) == 408);
    CHECK(c.closed_within(3s));
  }
  {
    Conn c(port);  // sends nothing
    REQUIRE(c.connected());
    CHECK(c.closed_within(3s));
    CHECK(c.pending().empty());
  }
  {
    Conn c(port);  // one request answered, then idle on keep-alive
    REQUIRE(c.connected());
    REQUIRE(c.send("GET /t/echo HTTP/1.1\r\nHost: x\r\n\r\n"));
    CHECK(status_of(c.response(3s)) == 200);
    CHECK(c.closed_within(3s));
    CHECK(c.pending().empty());
  }
  CHECK(app.probe->calls == 1);
}

// ---------------------------------------------------------------------------------------
// Routing

TEST_CASE("the longest matching prefix wins; the model sees route, path and query") {
  lumen::Runtime rt{two_workers()};
  auto probe = std::make_shared<Probe>();
  auto dep = deploy_model({.name = "fd-prefix"}, probe);
  serve::Server server({.port = 0});
  server.route("/", dep.h);
  server.route("/a", dep.h);
  server.route("/a/b", dep.h);
  server.start();
  const auto port = server.port();

  struct Case {
    const char* target;
    const char* route;
    const char* path;
    const char* query;
  };
  for (const Case& c : {Case{"/a/b/c", "/a/b", "/a/b/c", ""}, Case{"/a/bc", "/a", "/a/bc", ""},
                        Case{"/x", "/", "/x", ""}, Case{"/a", "/a", "/a", ""}, Case{"/a/b", "/a/b", "/a/b", ""},
                        Case{"/ab", "/", "/ab", ""}, Case{"/a/", "/a", "/a/", ""}, Case{"/", "/", "/", ""},
                        Case{"/a/b/c/d?top=3&verbose", "/a/b", "/a/b/c/d", "top=3&verbose"},
                        Case{"/a?x=%2F", "/a", "/a", "x=%2F"}, Case{"/x/a/b", "/", "/x/a/b", ""}}) {
    CAPTURE(c.target);
    Reply r = get(port, c.target);
    REQUIRE(r.code == 200);
    json j = r.parsed();
    CHECK(j["route"] == c.route);
    CHECK(j["path"] == c.path);
    CHECK(j["query"] == c.query);
  }
  // Other methods reach the model as sent.
  Reply put = curl(url(port, "/a/b"), {"-X", "PUT"});
  CHECK(put.parsed()["method"] == "PUT");
}

TEST_CASE("a route added while serving takes requests") {
  Served app({.name = "fd-late-route"}, {.port = 0}, "/early");
  CHECK(get(app.server.port(), "/late/echo").code == 404);
  app.server.route("/late", app.dep.h);
  Reply r = get(app.server.port(), "/late/echo");
  CHECK(r.code == 200);
  CHECK(r.parsed()["route"] == "/late");
}

// ---------------------------------------------------------------------------------------
// X-Request-ID

TEST_CASE("X-Request-ID: a valid one is kept, an invalid one replaced, a missing one made") {
  Served app({.name = "fd-request-id"}, {.port = 0});
  const auto port = app.server.port();

  for (const std::string& id : {std::string("abc-DEF_1.2:3"), std::string(128, 'k'), std::string("x")}) {
    CAPTURE(id);
    Reply r = get(port, "/t/echo", {"-H", "X-Request-ID: " + id});
    REQUIRE(r.code == 200);
    CHECK(r.header("X-Request-ID") == id);
    CHECK(r.parsed()["request_id"] == id);
  }
  for (const std::string& bad : {std::string(129, 'k'), std::string("bad id"), std::string("a/b"),
                                 std::string("semi;colon"), std::string("\xc3\xbcnicode")}) {
    CAPTURE(bad);
    Reply r = get(port, "/t/echo", {"-H", "X-Request-ID: " + bad});
    REQUIRE(r.code == 200);
    auto id = r.header("X-Request-ID");
    REQUIRE(id.has_value());
    CHECK(*id != trim(bad));
    CHECK(valid_id(*id));
    CHECK(r.parsed()["request_id"] == *id);
  }

  // None sent: one is made, unique per request, on answers and errors alike.
  std::set<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    Reply r = get(port, i % 3 == 0 ? "/nowhere" : (i % 3 == 1 ? "/t/echo" : "/t/teapot"));
    auto id = r.header("X-Request-ID");
    REQUIRE(id.has_value());
    CHECK(valid_id(*id));
    ids.insert(*id);
  }
  CHECK(ids.size() == 12);
}

// Errors found while a request is still being read (413, 431, 408, malformed) come with an
// X-Request-ID like every other response: a fresh one, the same one the JSON body names.
TEST_CASE("errors found while reading a request carry a fresh X-Request-ID") {
  Served app({.name = "fd-request-id-errors"}, {.port = 0, .max_body_bytes = 1024, .max_header_bytes = 1024, .read_timeout = 300ms});
  const auto port = app.server.port();

  auto check_fresh = [](const std::string& resp, int code, const std::string& previous_id) {
    CHECK(status_of(resp) == code);
    auto id = header_in(resp.substr(0, resp.find("\r\n\r\n") + 2), "X-Request-ID");
    REQUIRE(id.has_value());
    CHECK(valid_id(*id));
    CHECK(*id != previous_id);
    json j = json::parse(body_of(resp), nullptr, false);
    REQUIRE(j.is_object());
    CHECK(j["request_id"] == *id);
  };
  {
    Conn c(port);  // 413 as the first request of a connection
    REQUIRE(c.send("POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"));
    check_fresh(c.response(3s), 413, "");
  }
  {
    Conn c(port);  // 431 as the first request of a connection
    REQUIRE(c.send("GET /t/echo HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'h') + "\r\n\r\n"));
    check_fresh(c.response(3s), 431, "");
  }
  {
    Conn c(port);  // 408 after a request with an id of its own on the same connection
    REQUIRE(c.send("GET /t/echo HTTP/1.1\r\nHost: x\r\nX-Request-ID: first-one\r\n\r\n"));
    REQUIRE(status_of(c.response(3s)) == 200);
    REQUIRE(c.send("GET /t/echo HTTP/1.1\r\nHost: x\r\n"));
    check_fresh(c.response(3s), 408, "first-one");
  }
}

// ---------------------------------------------------------------------------------------
// Keep-alive

TEST_CASE("keep-alive: many requests on one connection") {
  Served app({.name = "fd-keep-alive"}, {.port = 0});
  const auto port = app.server.port();

  // curl with several URLs reuses its connection: one connect in all.
  std::vector<std::string> argv{"curl", "-q", "-s", "--noproxy", "*", "--max-time", "5", "-w", "%{http_code} %{num_connects}\\n"};
  for (int i = 0; i < 8; ++i) {
    argv.insert(argv.end(), {"-o", "/dev/null", url(port, i % 2 ? "/t/echo" : "/t/teapot")});
  }
  Proc p = run_argv(argv);
  REQUIRE(p.exit == 0);
  std::istringstream lines(p.out);
  int n = 0, connects = 0;
  for (int code, c; lines >> code >> c; ++n) {
    CHECK(code == (n % 2 ? 200 : 418));
    connects += c;
  }
  CHECK(n == 8);
  CHECK(connects == 1);

  // Two requests written at once (pipelined) on a raw socket: two answers, in order.
  Conn c(port);
  REQUIRE(c.connected());
  REQUIRE(c.send("GET /t/one HTTP/1.1\r\nHost: x\r\n\r\nGET /t/two HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string first = c.response(3s), second = c.response(3s);
  CHECK(status_of(first) == 200);
  CHECK(status_of(second) == 200);
  CHECK(json::parse(body_of(first), nullptr, false)["path"] == "/t/one");
  CHECK(json::parse(body_of(second), nullptr, false)["path"] == "/t/two");
  // A third, later, on the same connection.
  REQUIRE(c.send("GET /t/three HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(json::parse(body_of(c.response(3s)), nullptr, false)["path"] == "/t/three");

  // Connection: close, and HTTP/1.0 without keep-alive: answered, then closed.
  for (const char* req : {"GET /t/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET /t/echo HTTP/1.0\r\n\r\n"}) {
    CAPTURE(req);
    Conn once(port);
    REQUIRE(once.send(req));
    CHECK(status_of(once.response(3s)) == 200);
    CHECK(once.closed_within(3s));
  }
}

// ---------------------------------------------------------------------------------------
// Built-in endpoints

TEST_CASE("/-/healthz, /-/routes and /-/status") {
  lumen::Runtime rt{lumen::Config{.workers = 3}};
  auto probe = std::make_shared<Probe>();
  auto a = deploy_model({.name = "fd-status-a", .num_replicas = 2}, probe);
  auto b = deploy_model({.name = "fd-status-b"}, probe);
  REQUIRE(wait_running(a.h, 2));
  REQUIRE(wait_running(b.h, 1));
  serve::Server server({.port = 0});
  server.route("/a", a.h);
  server.route("/b", b.h);
  server.route("/b/c", a.h);
  server.start();
  const auto port = server.port();

  Reply health = get(port, "/-/healthz");
  CHECK(health.code == 200);

  Reply routes = get(port, "/-/routes");
  REQUIRE(routes.code == 200);
  const json want = {{"/a", "fd-status-a"}, {"/b", "fd-status-b"}, {"/b/c", "fd-status-a"}};
  CHECK(routes.parsed() == want);
  CHECK(server.routes() == want);

  Reply status = get(port, "/-/status");
  REQUIRE(status.code == 200);
  json s = status.parsed();
  REQUIRE(s.is_object());
  CHECK(s["proxy"]["state"] == "running");
  CHECK(s["proxy"]["port"] == port);
  REQUIRE(s["deployments"].is_object());
  CHECK(s["deployments"].size() == 2);
  json da = s["deployments"]["fd-status-a"];
  REQUIRE(da.is_object());
  CHECK(da["name"] == "fd-status-a");
  CHECK(da["state"].is_string());
  CHECK(da["target_replicas"] == 2);
  REQUIRE(da["replicas"].is_array());
  CHECK(da["replicas"].size() == 2);
  for (const auto& r : da["replicas"]) {
    CHECK(r["state"] == "running");
    CHECK(r["id"].is_number_unsigned());
  }
  CHECK(s["deployments"]["fd-status-b"]["replicas"].size() == 1);
  CHECK(server.status()["deployments"]["fd-status-a"]["name"] == "fd-status-a");
}

namespace {

// The value of the sample line that starts with `series` followed by a space, or -1.
double sample(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
  return -1;
}

}  // namespace

TEST_CASE("/metrics counts requests by route and code, with histograms and gauges") {
  lumen::Runtime rt{two_workers()};
  auto probe = std::make_shared<Probe>();
  auto dep = deploy_model({.name = "fd-metrics"}, probe);
  REQUIRE(wait_running(dep.h, 1));
  serve::Server server({.port = 0});
  server.route("/m", dep.h);
  server.start();
  const auto port = server.port();

  for (int i = 0; i < 3; ++i) REQUIRE(get(port, "/m/echo").code == 200);
  for (int i = 0; i < 2; ++i) REQUIRE(get(port, "/m/teapot").code == 418);
  REQUIRE(get(port, "/nowhere").code == 404);

  Reply r = get(port, "/metrics");
  REQUIRE(r.code == 200);
  CHECK(r.header("Content-Type").value_or("").starts_with("text/plain"));
  const std::string& m = r.body;
  CHECK(m.find("# TYPE lumen_serve_requests_total counter") != std::string::npos);
  CHECK(sample(m, R"(lumen_serve_requests_total{route="/m",code="200"})") == 3);
  CHECK(sample(m, R"(lumen_serve_requests_total{route="/m",code="418"})") == 2);
  CHECK(sample(m, R"(lumen_serve_requests_total{route="",code="404"})") == 1);

  // A latency histogram by route and code: buckets count up to +Inf, which equals _count.
  CHECK(m.find("# TYPE lumen_serve_request_duration_seconds histogram") != std::string::npos);
  struct Series {
    const char* labels;
    double count;
  };
  for (const Series& want : {Series{R"(route="/m",code="200")", 3}, Series{R"(route="/m",code="418")", 2},
                             Series{R"(route="",code="404")", 1}}) {
    CAPTURE(want.labels);
    const std::string labels = want.labels;
    CHECK(sample(m, "lumen_serve_request_duration_seconds_bucket{" + labels + R"(,le="+Inf"})") == want.count);
    CHECK(sample(m, "lumen_serve_request_duration_seconds_count{" + labels + "}") == want.count);
    CHECK(sample(m, "lumen_serve_request_duration_seconds_sum{" + labels + "}") >= 0);
    std::istringstream lines(m);
    double last = 0;
    int buckets = 0;
    for (std::string line; std::getline(lines, line);) {
      if (!line.starts_with("lumen_serve_request_duration_seconds_bucket{" + labels + ",le=")) continue;
      double v = std::stod(line.substr(line.rfind(' ') + 1));
      CHECK(v >= last);
      last = v;
      ++buckets;
    }
    CHECK(buckets > 2);
    CHECK(last == want.count);
  }

  CHECK(sample(m, R"(lumen_serve_queued_requests{deployment="fd-metrics"})") == 0);
  CHECK(sample(m, R"(lumen_serve_ongoing_requests{deployment="fd-metrics"})") >= 0);
  CHECK(sample(m, R"(lumen_serve_replicas{deployment="fd-metrics",state="running"})") == 1);
  CHECK(sample(m, R"(lumen_serve_refused_requests_total{deployment="fd-metrics"})") == 0);
  CHECK(sample(m, R"(lumen_serve_batch_size_bucket{deployment="fd-metrics",le="+Inf"})") >= 0);

  // Server::metrics() is the same text (counting the /metrics request just answered too).
  const std::string direct = server.metrics();
  CHECK(sample(direct, R"(lumen_serve_requests_total{route="/m",code="200"})") == 3);
  CHECK(sample(direct, R"(lumen_serve_requests_total{route="",code="200"})") == 1);

  if (have_program("promtool")) {
    const fs::path file = fresh_file("metrics.txt");
    write_file(file, m);
    Proc check = run_argv({"promtool", "check", "metrics"}, file);
    INFO((check.out + check.err));
    CHECK(check.exit == 0);
  } else {
    MESSAGE("promtool is not installed: the exposition format check was skipped");
  }
}

// An error found while reading a request belongs to no route: it must not be counted under the
// route of the previous request on the same connection.
TEST_CASE("/metrics: an error while reading is not counted under the previous request's route") {
  Served app({.name = "fd-metrics-stale"}, {.port = 0, .max_body_bytes = 1024}, "/m");
  const auto port = app.server.port();

  Conn c(port);
  REQUIRE(c.send("GET /m/echo HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(status_of(c.response(3s)) == 200);
  REQUIRE(c.send("POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"));
  REQUIRE(status_of(c.response(3s)) == 413);

  const std::string m = app.server.metrics();
  CHECK(sample(m, R"(lumen_serve_requests_total{route="/m",code="413"})") == -1);
  CHECK(sample(m, R"(lumen_serve_requests_total{route="",code="413"})") == 1);
}

// ---------------------------------------------------------------------------------------
// HTTPS

TEST_CASE("TLS: HTTPS with a self-signed certificate; plain HTTP fails; bad files are refused") {
  const fs::path dir = tmp() / "tls";
  fs::create_directories(dir);
  const fs::path cert = dir / "cert.pem", key = dir / "key.pem", other_key = dir / "other.pem";
  Proc made = run_argv({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key.string(), "-out",
                        cert.string(), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"});
  INFO(made.err);
  REQUIRE(made.exit == 0);

  lumen::Runtime rt{two_workers()};
  auto probe = std::make_shared<Probe>();
  auto dep = deploy_model({.name = "fd-tls"}, probe);
  serve::Server server({.port = 0, .tls_certificate_file = cert.string(), .tls_private_key_file = key.string(),
                        .read_timeout = 500ms});
  server.route("/t", dep.h);
  server.start();
  const auto port = server.port();

  Reply r = curl(url(port, "/t/echo", "https"), {"--cacert", cert.string(), "-H", "Content-Type: application/json",
                                                  "--data-binary", R"({"secure":true})"});
  INFO(r.err);
  CHECK(r.exit == 0);
  CHECK(r.code == 200);
  CHECK(r.parsed()["json"] == json::parse(R"({"secure":true})"));

  // Several requests over one TLS connection.
  Proc many = run_argv({"curl", "-q", "-s", "--noproxy", "*", "--max-time", "5", "--cacert", cert.string(), "-w",
                        "%{http_code} %{num_connects}\\n", "-o", "/dev/null", url(port, "/t/a", "https"), "-o",
                        "/dev/null", url(port, "/t/b", "https")});
  CHECK(many.exit == 0);
  CHECK(many.out == "200 1\n200 0\n");

  // Plain HTTP to an HTTPS-only server gets no HTTP answer.
  Reply plain = get(port, "/t/echo");
  CHECK(plain.code != 200);
  CHECK(plain.exit != 0);
  // A client that never starts the handshake is dropped after read_timeout.
  {
    Conn c(port);
    REQUIRE(c.connected());
    CHECK(c.closed_within(3s));
  }
  // Still serving.
  CHECK(curl(url(port, "/t/echo", "https"), {"--cacert", cert.string()}).code == 200);
  server.stop();

  // Bad files: usage_error from the constructor, naming the file.
  const fs::path garbage = dir / "garbage.pem";
  write_file(garbage, "not a certificate\n");
  Proc other = run_argv({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                         other_key.string()});
  REQUIRE(other.exit == 0);
  auto refused = [](serve::ServerOptions o, const std::string& named) {
    CAPTURE(named);
    try {
      serve::Server s(std::move(o));
      FAIL("the Server was built");
    } catch (const lumen::usage_error& e) {
      CHECK(std::string(e.what()).find(named) != std::string::npos);
    }
  };
  refused({.port = 0, .tls_certificate_file = (dir / "missing.pem").string(), .tls_private_key_file = key.string()},
          "missing.pem");
  refused({.port = 0, .tls_certificate_file = cert.string(), .tls_private_key_file = (dir / "nokey.pem").string()},
          "nokey.pem");
  refused({.port = 0, .tls_certificate_file = garbage.string(), .tls_private_key_file = key.string()}, "garbage.pem");
  refused({.port = 0, .tls_certificate_file = cert.string(), .tls_private_key_file = garbage.string()}, "garbage.pem");
  refused({.port = 0, .tls_certificate_file = cert.string(), .tls_private_key_file = other_key.string()}, "other.pem");
}

// ---------------------------------------------------------------------------------------
// Hostile clients

TEST_CASE("garbage requests get 400 or a closed connection, and the server keeps serving") {
  Served app({.name = "fd-garbage"}, {.port = 0, .read_timeout = 1s});
  const auto port = app.server.port();

  const std::vector<std::string> garbage{
      "GARBAGE\r\n\r\n",
      std::string("\x00\x01\x02\xff\xfe\r\n\r\n", 8),
      "GET /t/echo HTTP/9.9\r\nHost: x\r\n\r\n",
      "GET /t/echo\r\n\r\n",
      "GET /t/echo HTTP/1.1\r\nNoColonHere\r\n\r\n",
      "POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
      "POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "POST /t/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
      "GET t/echo HTTP/1.1\r\nHost: x\r\n\r\n",
      "G\tET / HTTP/1.1\r\n\r\n",
  };
  for (const auto& g : garbage) {
    CAPTURE(g);
    Conn c(port);
    REQUIRE(c.connected());
    REQUIRE(c.send(g));
    std::string resp = c.response(3s);
    if (!resp.empty()) {
      CHECK(status_of(resp) == 400);
    } else {
      CHECK(c.closed_within(3s));
    }
  }
  CHECK(app.probe->calls == 0);
  CHECK(get(port, "/t/echo").code == 200);
}

TEST_CASE("a truncated request neither crashes nor hangs the server") {
  Served app({.name = "fd-truncated"}, {.port = 0});
  const auto port = app.server.port();
  const std::string partial = "POST /t/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789";

  {
    Conn c(port);  // half-closes: the app.server sees the end of the stream mid-body
    REQUIRE(c.send(partial));
    c.shutdown_write();
    CHECK(c.closed_within(3s));
  }
  {
    Conn c(port);  // closes outright
    REQUIRE(c.send(partial));
  }
  {
    Conn c(port);  // resets
    REQUIRE(c.send(partial));
    c.reset();
  }
  CHECK(app.probe->calls == 0);
  CHECK(get(port, "/t/echo").code == 200);
}

TEST_CASE("a client sending one byte per 100 ms gets 408 at read_timeout") {
  Served app({.name = "fd-slow"}, {.port = 0, .read_timeout = 500ms});

  Conn c(app.server.port());
  REQUIRE(c.connected());
  const std::string request = "GET /t/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + std::string(64, 'p') + "\r\n\r\n";
  std::string resp;
  bool closed = false;
  // At most 20 bytes, 100 ms apart: under 2 s in all, far short of the whole request.
  for (std::size_t i = 0; i < 20 && resp.empty() && !closed; ++i) {
    if (!c.send(request.substr(i, 1))) {
      closed = true;
      break;
    }
    int n = c.fill(Clock::now() + 100ms);
    if (n == 0 || n == -1) closed = true;
    if (c.pending().find("\r\n\r\n") != std::string::npos) resp = c.response(1s);
  }
  if (resp.empty() && !closed) resp = c.response(2s);
  if (resp.empty()) resp = c.pending();
  CHECK(status_of(resp) == 408);
  CHECK(app.probe->calls == 0);
}

TEST_CASE("200 connections opened and dropped at once, then a request is served") {
  Served app({.name = "fd-abrupt"}, {.port = 0, .io_threads = 4});
  const auto port = app.server.port();

  std::vector<Conn> conns;
  conns.reserve(200);
  for (int i = 0; i < 200; ++i) {
    conns.emplace_back(port);
    REQUIRE(conns.back().connected());
    if (i % 3 == 1) conns.back().send("GET /t/echo HTTP/1.1\r\nHost: x\r\nX-Half: ");
    if (i % 3 == 2) conns.back().send("GET /t/echo HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  for (std::size_t i = 0; i < conns.size(); ++i) {
    if (i % 2 == 0) conns[i].reset();
  }
  conns.clear();  // the rest close with a FIN

  Reply r = get(port, "/t/echo");
  CHECK(r.code == 200);
  CHECK(get(port, "/-/healthz").code == 200);
}

// Connections are spread over the I/O threads, each with its own event loop: every one of
// them is served, twice on one connection, and stop() closes those left open on every loop.
TEST_CASE("connections spread over several I/O threads are all served, and all closed by stop") {
  Served app({.name = "fd-io-threads"}, {.port = 0, .io_threads = 3});
  const auto port = app.server.port();
  std::vector<Conn> conns;
  conns.reserve(7);
  for (int i = 0; i < 7; ++i) {
    conns.emplace_back(port);
    REQUIRE(conns.back().connected());
  }
  for (int round = 0; round < 2; ++round) {
    for (auto& c : conns) REQUIRE(c.send("GET /t/echo HTTP/1.1\r\nHost: x\r\n\r\n"));
    for (auto& c : conns) CHECK(status_of(c.response(3s)) == 200);
  }
  app.server.stop(1s);
  for (auto& c : conns) CHECK(c.closed_within(3s));
}

TEST_CASE("max_connections: connections past it are closed at once") {
  Served app({.name = "fd-max-connections"}, {.port = 0, .max_connections = 2});
  const auto port = app.server.port();

  {
    Conn a(port), b(port);
    for (Conn* c : {&a, &b}) {  // both accepted and served: their sessions exist
      REQUIRE(c->send("GET /t/echo HTTP/1.1\r\nHost: x\r\n\r\n"));
      REQUIRE(status_of(c->response(3s)) == 200);
    }
    Conn third(port);
    REQUIRE(third.connected());
    third.send("GET /t/echo HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(third.closed_within(3s));
    CHECK(status_of(third.pending()) == 0);
  }
  // Once they close, there is room again.
  CHECK(wait_until([&] { return get(port, "/t/echo").code == 200; }, 4s));
}

// ---------------------------------------------------------------------------------------
// Graceful stop

TEST_CASE("stop(drain): requests in flight are answered, then connections close; new ones are refused") {
  lumen::Runtime rt{lumen::Config{.workers = 4}};
  auto probe = std::make_shared<Probe>();
  auto dep = deploy_model({.name = "fd-drain", .num_replicas = 2, .max_ongoing_requests = 1}, probe);
  REQUIRE(wait_running(dep.h, 2));
  serve::Server server({.port = 0});
  server.route("/t", dep.h);
  server.start();
  const auto port = server.port();
  std::vector<std::future<Reply>> clients;
  std::future<void> stopper;
  OpenOnExit open{probe};

  Conn idle(port);  // a kept-alive connection with nothing in flight
  REQUIRE(idle.send("GET /t/echo HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(status_of(idle.response(3s)) == 200);

  for (int i = 0; i < 2; ++i)
    clients.push_back(std::async(std::launch::async, [port] { return get(port, "/t/block"); }));
  REQUIRE(wait_until([&] { return probe->entered == 2; }));

  stopper = std::async(std::launch::async, [&server] { server.stop(5s); });
  REQUIRE(wait_until([&] { return server.status()["proxy"]["state"] == "draining"; }));
  // New connections are refused once the listener is closed.
  CHECK(wait_until([&] {
    Conn c(port);
    return !c.connected() && c.error() == ECONNREFUSED;
  }, 3s));
  CHECK(stopper.wait_for(0s) == std::future_status::timeout);  // still draining

  probe->open = true;
  for (auto& c : clients) {
    Reply r = c.get();
    CHECK(r.exit == 0);
    CHECK(r.code == 200);
    CHECK(r.body == "released");
    CHECK(lower(r.header("Connection").value_or("")) == "close");
  }
  REQUIRE(stopper.wait_for(5s) == std::future_status::ready);
  stopper.get();
  CHECK(idle.closed_within(3s));
  server.stop();  // again: nothing to do
}

TEST_CASE("stop(drain): a large answer in flight is sent whole before its connection closes") {
  lumen::Runtime rt{lumen::Config{.workers = 3}};
  auto probe = std::make_shared<Probe>();
  auto dep = deploy_model({.name = "fd-drain-big"}, probe);
  REQUIRE(wait_running(dep.h, 1));
  serve::Server server({.port = 0});
  server.route("/t", dep.h);
  server.start();
  const auto port = server.port();
  std::future<Proc> client;
  std::future<void> stopper;
  OpenOnExit open{probe};

  // .../big blocks like .../block first: the gate is shared, the entered count is not. So
  // hold the replica with .../block, queue .../big behind it, and release both.
  auto blocked = std::async(std::launch::async, [port] { return get(port, "/t/block"); });
  REQUIRE(wait_until([&] { return probe->entered == 1; }));
  client = std::async(std::launch::async, [port] {
    return run_argv({"curl", "-q", "-s", "-S", "--noproxy", "*", "--max-time", "8", "-o", "/dev/null", "-w",
                     "%{http_code} %{size_download}", url(port, "/t/big")});
  });
  REQUIRE(wait_until([&] { return dep.h.status().ongoing_requests + dep.h.status().queued_requests >= 2; }));
  stopper = std::async(std::launch::async, [&server] { server.stop(5s); });
  REQUIRE(wait_until([&] { return server.status()["proxy"]["state"] == "draining"; }));
  probe->open = true;

  CHECK(blocked.get().code == 200);
  Proc p = client.get();
  INFO(p.err);
  CHECK(p.exit == 0);
  CHECK(p.out == "200 " + std::to_string(kBigBody));
  REQUIRE(stopper.wait_for(6s) == std::future_status::ready);
}

// ---------------------------------------------------------------------------------------
// Bad options and misuse

TEST_CASE("bad ServerOptions are refused with usage_error naming the field") {
  auto refused = [](serve::ServerOptions o, const std::string& field) {
    CAPTURE(field);
    try {
      serve::Server s(std::move(o));
      FAIL("the Server was built");
    } catch (const lumen::usage_error& e) {
      CHECK(std::string(e.what()).find(field) != std::string::npos);
    }
  };
  refused({.io_threads = 0}, "io_threads");
  refused({.io_threads = 257}, "io_threads");
  refused({.max_body_bytes = 0}, "max_body_bytes");
  refused({.max_header_bytes = 100}, "max_header_bytes");
  refused({.read_timeout = 0ms}, "read_timeout");
  refused({.request_timeout = -1ms}, "request_timeout");
  refused({.max_requests_per_second = -1}, "max_requests_per_second");
  refused({.max_requests_per_second = std::numeric_limits<double>::quiet_NaN()}, "max_requests_per_second");
  refused({.client_burst = -2}, "client_burst");
  refused({.max_connections = 0}, "max_connections");
  refused({.retry_after_seconds = -1}, "retry_after_seconds");
  refused({.bearer_token = "two words"}, "bearer_token");
  refused({.tls_certificate_file = "/tmp/cert.pem"}, "tls_private_key_file");
  refused({.tls_private_key_file = "/tmp/key.pem"}, "tls_certificate_file");
  // The limits themselves are fine.
  CHECK_NOTHROW(serve::Server({.port = 0, .io_threads = 256, .max_header_bytes = 512}));
}

TEST_CASE("bad and taken route prefixes are refused with usage_error") {
  lumen::Runtime rt{two_workers()};
  auto probe = std::make_shared<Probe>();
  auto dep = deploy_model({.name = "fd-bad-routes"}, probe);
  serve::Server server({.port = 0});
  for (const char* prefix : {"", "x", "/a/", "//", "/-/x", "/-", "/metrics", "/a?b", "/a#b", "/a b", "/a\\b"}) {
    CAPTURE(prefix);
    CHECK_THROWS_AS(server.route(prefix, dep.h), lumen::usage_error);
  }
  server.route("/a", dep.h);
  CHECK_THROWS_AS(server.route("/a", dep.h), lumen::usage_error);
  CHECK_THROWS_AS(server.route("/b", serve::DeploymentHandle<Model>{}), lumen::usage_error);
  CHECK_NOTHROW(server.route("/", dep.h));
  CHECK_NOTHROW(server.route("/a/b", dep.h));
  CHECK(server.routes().size() == 3);
}

TEST_CASE("start twice and start after stop are refused; stop is idempotent") {
  lumen::Runtime rt{two_workers()};
  auto probe = std::make_shared<Probe>();
  auto dep = deploy_model({.name = "fd-lifecycle"}, probe);

  serve::Server server({.port = 0});
  CHECK(server.port() == 0);
  server.route("/t", dep.h);
  server.start();
  const auto port = server.port();
  REQUIRE(port != 0);
  CHECK_THROWS_AS(server.start(), lumen::usage_error);
  CHECK(get(port, "/t/echo").code == 200);  // the failed start changed nothing

  server.stop();
  server.stop();
  CHECK_THROWS_AS(server.start(), lumen::usage_error);
  Conn c(port);
  CHECK(!c.connected());

  serve::Server never_started({.port = 0});
  never_started.stop();
  never_started.stop();
}

TEST_CASE("a port in use or an address not of this host: start throws std::system_error") {
  serve::Server first({.port = 0});
  first.start();
  serve::Server second({.port = first.port()});
  CHECK_THROWS_AS(second.start(), std::system_error);
  serve::Server elsewhere({.host = "192.0.2.1", .port = 0});  // TEST-NET-1: not an address of this host
  CHECK_THROWS_AS(elsewhere.start(), std::system_error);
  // Whatever the type, it is an error and the server stays unstarted.
  serve::Server third({.port = first.port()});
  CHECK_THROWS(third.start());
  CHECK(third.port() == 0);
}

TEST_CASE("a Server destroyed without stop closes its connections, even with a request in flight") {
  lumen::Runtime rt{lumen::Config{.workers = 3}};
  auto probe = std::make_shared<Probe>();
  auto dep = deploy_model({.name = "fd-destroyed"}, probe);
  std::future<Reply> client;
  OpenOnExit open{probe};
  std::uint16_t port = 0;
  {
    serve::Server server({.port = 0});
    server.route("/t", dep.h);
    server.start();
    port = server.port();
    CHECK(get(port, "/t/echo").code == 200);
    client = std::async(std::launch::async, [port] { return get(port, "/t/block"); });
    REQUIRE(wait_until([&] { return probe->entered == 1; }));
  }  // ~Server: stop with no drain
  Reply r = client.get();
  CHECK(r.code != 200);
  CHECK(r.exit != 0);
  Conn c(port);
  CHECK(!c.connected());
  probe->open = true;
  // The deployment goes on serving in process.
  serve::Request req;
  req.path = "/t/echo";
  auto answer = lumen::get(dep.h.request(req));
  CHECK(answer.status == 200);
}

// A program the host process starts (a model shelling out, a test's curl) must not keep the
// server's sockets: a stopped server's port would stay open, its connections never close.
TEST_CASE("the server's sockets are not inherited by child processes") {
  Served app({.name = "fd-cloexec"}, {.port = 0});
  const auto port = app.server.port();
  Conn idle(port);
  REQUIRE(idle.send("GET /t/echo HTTP/1.1\r\nHost: x\r\n\r\n"));
  REQUIRE(status_of(idle.response(3s)) == 200);

  // A child that inherits what the process has open, as fork/exec and posix_spawn do. Once
  // it runs `sleep`, it holds what had no close-on-exec: the test's own client socket (made
  // with SOCK_CLOEXEC too) and none of the app.server's (the listener, the accepted connection).
  const char* argv[] = {"sleep", "3", nullptr};
  pid_t child = -1;
  REQUIRE(::posix_spawnp(&child, "sleep", nullptr, nullptr, const_cast<char**>(argv), environ) == 0);
  int sockets = -1;
  const auto until = Clock::now() + 3s;
  for (;;) {
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/" + std::to_string(child) + "/exe", ec);
    if (!ec && exe.filename() == "sleep") {
      sockets = 0;
      for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(child) + "/fd", ec))
        if (fs::read_symlink(fd.path(), ec).string().starts_with("socket:")) ++sockets;
      break;
    }
    if (Clock::now() > until) break;
    std::this_thread::sleep_for(1ms);
  }
  CHECK(sockets == 0);
  app.server.stop();
  CHECK(idle.closed_within(1s));

  ::kill(child, SIGKILL);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
}

// ---------------------------------------------------------------------------------------
// Streamed answers and the Open Inference Protocol

namespace {
struct Counter {
  void operator()(const serve::Request& r, lumen::Emitter<std::string>& out) {
    if (r.path.ends_with("/early")) throw std::runtime_error("failed before the first part");
    for (int i = 0; i < 4; ++i) out.emit("part" + std::to_string(i) + "\n");
    if (r.path.ends_with("/late")) throw std::runtime_error("failed after four parts");
  }
};

struct Adder {
  serve::InferResponse infer(const serve::InferRequest& r) {
    const auto& a = r.input("a");
    auto x = a.values<double>();
    std::vector<double> y;
    for (double v : x) y.push_back(v + 1);
    return {.outputs = {serve::Tensor::of("sum", a.shape, y), serve::Tensor::of("count", {1}, std::vector<std::int64_t>{
                                                                                                 static_cast<std::int64_t>(x.size())})}};
  }
};
}  // namespace

TEST_CASE("a streamed answer arrives in chunks; a failure before the first part is a plain 500, after it a cut body") {
  lumen::Runtime rt{two_workers()};
  Deployed<Counter> dep{serve::deploy<Counter>({.name = "fd-stream"})};
  serve::Server server({.port = 0});
  server.route("/count", dep.h);
  server.start();
  auto ok = get(server.port(), "/count");
  CHECK(ok.code == 200);
  CHECK(ok.body == "part0\npart1\npart2\npart3\n");
  CHECK(lower(ok.header("Transfer-Encoding").value_or("")) == "chunked");
  CHECK(valid_id(ok.header("X-Request-ID").value_or("")));
  auto early = get(server.port(), "/count/early");
  CHECK(early.code == 500);
  CHECK(early.parsed()["error"] == "failed before the first part");
  auto late = get(server.port(), "/count/late");
  CHECK(late.code == 200);
  CHECK(late.exit == 18);  // curl: the transfer closed with data missing
  // The connection after a complete stream stays usable: two requests, one connection.
  Conn c(server.port());
  REQUIRE(c.send("GET /count HTTP/1.1\r\nHost: x\r\n\r\nGET /-/healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto until = Clock::now() + 5s;
  while (c.pending().find("success") == std::string::npos && c.fill(until) > 0) {
  }
  CHECK(c.pending().find("part3\n\r\n0\r\n\r\n") != std::string::npos);  // the last chunk ends the body
  CHECK(c.pending().find("success") != std::string::npos);
}

TEST_CASE("the Open Inference Protocol: metadata, readiness, inference, and 400s for tensors that do not agree") {
  lumen::Runtime rt{two_workers()};
  Deployed<Adder> dep{serve::deploy<Adder>({.name = "fd-adder"})};
  serve::Server server({.port = 0, .bearer_token = "tok"});
  server.model({.name = "adder",
                .version = "3",
                .inputs = {{"a", "FP64", {-1, 2}}},
                .outputs = {{"sum", "FP64", {-1, 2}}, {"count", "INT64", {1}}}},
               dep.h);
  CHECK_THROWS_AS(server.model({.name = "adder"}, dep.h), lumen::usage_error);
  CHECK_THROWS_AS(server.model({.name = "bad name"}, dep.h), lumen::usage_error);
  server.start();
  const auto port = server.port();
  const std::vector<std::string> auth{"-H", "Authorization: Bearer tok"};
  REQUIRE(wait_running(dep.h, 1));
  // Health needs no token; the rest does.
  CHECK(get(port, "/v2/health/live").code == 200);
  CHECK(get(port, "/v2/health/ready").parsed()["ready"] == true);
  CHECK(get(port, "/v2/models/adder").code == 401);
  auto meta = get(port, "/v2/models/adder", auth);
  CHECK(meta.code == 200);
  CHECK(meta.parsed()["versions"] == json::array({"3"}));
  CHECK(meta.parsed()["inputs"][0]["shape"] == json::array({-1, 2}));
  CHECK(get(port, "/v2/models/adder/versions/3/ready", auth).parsed()["ready"] == true);
  CHECK(get(port, "/v2/models/adder/versions/9", auth).code == 404);
  CHECK(get(port, "/v2/models/nobody", auth).code == 404);
  CHECK(get(port, "/v2", auth).parsed()["name"] == "lumen");

  auto infer = [&](const std::string& body, std::string path = "/v2/models/adder/infer") {
    auto args = auth;
    args.insert(args.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
    return curl(url(port, path), args);
  };
  // Nested data is read row-major; the answer names the model, its version and the id.
  auto r = infer(R"({"id": "q7", "inputs": [{"name": "a", "datatype": "FP64", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]})");
  REQUIRE(r.code == 200);
  auto j = r.parsed();
  CHECK(j["id"] == "q7");
  CHECK(j["model_name"] == "adder");
  CHECK(j["model_version"] == "3");
  CHECK(j["outputs"][0]["data"] == json::array({2.0, 3.0, 4.0, 5.0}));
  CHECK(j["outputs"][0]["shape"] == json::array({2, 2}));
  // Asking for one output gets only that one.
  auto only = infer(R"({"inputs": [{"name": "a", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}], "outputs": [{"name": "count"}]})",
                    "/v2/models/adder/versions/3/infer");
  REQUIRE(only.code == 200);
  CHECK(only.parsed()["outputs"].size() == 1);
  CHECK(only.parsed()["outputs"][0]["name"] == "count");
  // Each disagreement gets 400 with a message, and the model is never called with it.
  for (std::string bad : {
           R"({"inputs": [{"name": "a", "datatype": "FP64", "shape": [1, 2], "data": [1]}]})",            // too few values
           R"({"inputs": [{"name": "a", "datatype": "FP64", "shape": [1, 2], "data": [1, "x"]}]})",       // a string
           R"({"inputs": [{"name": "a", "datatype": "INT8", "shape": [1, 2], "data": [1, 2]}]})",         // wrong datatype
           R"({"inputs": [{"name": "a", "datatype": "FP64", "shape": [2], "data": [1, 2]}]})",            // wrong rank
           R"({"inputs": [{"name": "b", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]})",         // unknown input
           R"({"inputs": [{"name": "a", "datatype": "FP99", "shape": [1, 2], "data": [1, 2]}]})",         // no such type
           R"({"inputs": [{"name": "a", "datatype": "FP64", "shape": [-1, 2], "data": [1, 2]}]})",        // negative size
           R"({"inputs": []})", R"({"inputs": 5})", R"([1, 2])", R"({"inputs": [)",
           R"({"inputs": [{"name": "a", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}], "outputs": [{"name": "nope"}]})",
       }) {
    auto b = infer(bad);
    CHECK_MESSAGE(b.code == 400, bad);
    CHECK_MESSAGE(b.parsed()["error"].is_string(), bad);
  }
  CHECK(curl(url(port, "/v2/models/adder/infer"), auth).code == 405);  // GET
}

namespace {
struct Statuses {
  serve::Response operator()(const serve::Request& r) {
    if (r.query == "204") return {.status = 204, .body = "a body 204 cannot carry"};
    if (r.query == "304") return {.status = 304, .body = "nor 304"};
    if (r.query == "101") throw serve::http_error(101, "1xx is not a final answer");
    if (r.query == "199") return {.status = 199, .body = "?"};
    return serve::Response::text("hello");
  }
};
}  // namespace

// Found by fuzzing: a 204 with a body ended the process; a 1xx went out as a final answer;
// HEAD answers carried a body (desynchronizing the connection); deep JSON overflowed a stack.
TEST_CASE("statuses without bodies, HEAD, and deeply nested JSON are answered safely") {
  lumen::Runtime rt{two_workers()};
  Deployed<Statuses> dep{serve::deploy<Statuses>({.name = "fd-statuses"})};
  Deployed<Adder> any{serve::deploy<Adder>({.name = "fd-any-shape"})};
  serve::Server server({.port = 0});
  server.route("/s", dep.h);
  server.model({.name = "any"}, any.h);
  server.start();
  const auto port = server.port();
  auto no_content = get(port, "/s?204");
  CHECK(no_content.code == 204);
  CHECK(no_content.body.empty());
  CHECK_FALSE(no_content.header("Content-Length").has_value());
  CHECK(get(port, "/s?304").code == 304);
  CHECK(get(port, "/s?101").code == 500);
  CHECK(get(port, "/s?199").code == 500);
  // HEAD: the length of the body, and no body; the next answer on the connection is whole.
  Conn c(port);
  REQUIRE(c.send("HEAD /s HTTP/1.1\r\nHost: x\r\n\r\nGET /s HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto until = Clock::now() + 3s;
  while (c.pending().find("hello") == std::string::npos && c.fill(until) > 0) {
  }
  const std::string both = c.pending();
  CHECK(both.find("Content-Length: 5") != std::string::npos);
  CHECK(both.rfind("HTTP/1.1 200", 0) == 0);
  const auto second = both.find("HTTP/1.1 200", 1);
  REQUIRE(second != std::string::npos);
  CHECK(both.substr(0, second).ends_with("\r\n\r\n"));  // nothing between the HEAD answer's head and the next answer
  CHECK(both.ends_with("hello"));
  // JSON nested past 128 levels never reaches a parser on a replica's stack.
  const std::string deep = std::string(600, '[') + std::string(600, ']');
  auto d = post_json(port, "/s", deep);
  CHECK(d.code == 400);
  CHECK(d.parsed()["error"] == "the JSON body nests deeper than 128 levels");
  CHECK(post_json(port, "/s", std::string(100, '[') + std::string(100, ']')).code == 200);
  // A shape whose product wraps around 2^64 is refused, not handed to the model.
  auto wrap = post_json(port, "/v2/models/any/infer",
                        R"({"inputs":[{"name":"a","shape":[16777216,1099511627776],"datatype":"FP64","data":[]}]})");
  CHECK(wrap.code == 400);
}

namespace {
// Answers with the header fields its query names.
struct HeaderFields {
  serve::Response operator()(const serve::Request& r) {
    serve::Response out = serve::Response::text("fields");
    if (r.query == "crlf-value") out.headers = {{"X-Note", "ok\r\nX-Injected: yes"}};
    if (r.query == "lf-value") out.headers = {{"X-Note", "ok\nX-Injected: yes"}};
    if (r.query == "nul-value") out.headers = {{"X-Note", std::string("ok\0no", 5)}};
    if (r.query == "space-name") out.headers = {{"X Bad", "v"}};
    if (r.query == "empty-name") out.headers = {{"", "v"}};
    if (r.query == "crlf-type") out.content_type = "text/plain\r\nX-Injected: yes";
    if (r.query == "repeated") out.headers = {{"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}, {"X-Padded", "  kept  "}};
    if (r.query == "framing")
      out.headers = {{"Content-Length", "999"}, {"transfer-encoding", "chunked"}, {"Connection", "close"}, {"content-type", "text/x-own"}};
    return out;
  }
};

std::size_t count_of(std::string_view text, std::string_view part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string_view::npos; at = text.find(part, at + 1)) ++n;
  return n;
}
}  // namespace

// A field that holds a line break would end the head early and let the model's text go out
// as fields of its own (or as a second answer): such an answer becomes 500, and the connection
// goes on. Fields HTTP can carry go out as the model set them, repeated names too; the length
// and the connection's fate stay the server's to say.
TEST_CASE("a model's header fields: line breaks and bad names get 500; repeats go out; framing stays the server's") {
  lumen::Runtime rt{two_workers()};
  Deployed<HeaderFields> dep{serve::deploy<HeaderFields>({.name = "fd-fields"})};
  serve::Server server({.port = 0});
  server.route("/f", dep.h);
  server.start();
  Conn c(server.port());
  for (const char* bad : {"crlf-value", "lf-value", "nul-value", "space-name", "empty-name", "crlf-type"}) {
    REQUIRE(c.send(std::string("GET /f?") + bad + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    const std::string resp = c.response(3s);
    INFO(bad << ": " << resp);
    CHECK(status_of(resp) == 500);
    CHECK(resp.find("X-Injected") == std::string::npos);
    CHECK(body_of(resp).find("header field HTTP cannot carry") != std::string::npos);
  }
  REQUIRE(c.send("GET /f?repeated HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string repeated = c.response(3s);
  INFO(repeated);
  CHECK(status_of(repeated) == 200);
  CHECK(repeated.find("Set-Cookie: a=1\r\n") != std::string::npos);
  CHECK(repeated.find("Set-Cookie: b=2\r\n") != std::string::npos);
  CHECK(repeated.find("X-Padded: kept\r\n") != std::string::npos);
  REQUIRE(c.send("GET /f?framing HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string framing = c.response(3s);
  INFO(framing);
  CHECK(status_of(framing) == 200);
  CHECK(header_in(framing.substr(0, framing.find("\r\n\r\n") + 2), "Content-Length") == "6");
  CHECK(header_in(framing.substr(0, framing.find("\r\n\r\n") + 2), "Content-Type") == "text/x-own");
  CHECK(count_of(lower(framing), "content-type:") == 1);
  CHECK(lower(framing).find("transfer-encoding") == std::string::npos);
  CHECK(lower(framing).find("connection: close") == std::string::npos);
  CHECK(body_of(framing) == "fields");
  // The connection is still usable after all of that.
  REQUIRE(c.send("GET /f HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(body_of(c.response(3s)) == "fields");
  // An HTTP/1.0 request without keep-alive: the answer says the connection closes.
  REQUIRE(c.send("GET /f HTTP/1.0\r\nHost: x\r\n\r\n"));
  const std::string old = c.response(3s);
  CHECK(lower(old).find("connection: close") != std::string::npos);
}
