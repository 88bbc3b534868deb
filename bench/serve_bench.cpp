// lumen-serve-bench: the servers bench/serve.sh drives with wrk and hey over loopback.
//
//   lumen-serve-bench --server bare      a bare Boost.Beast server answering "hello"
//   lumen-serve-bench --server noop      lumen::serve, a no-op deployment with 2 replicas
//   lumen-serve-bench --server model     a model costing 1 ms + 0.02 ms per item, unbatched
//   lumen-serve-bench --server batched   the same model with dynamic batching
//   lumen-serve-bench --server overload  the unbatched model with a short queue
//
// Prints "listening on PORT", serves for --seconds, then prints what the server saw: peak RSS,
// requests by status, and for lumen the p99 of the requests it served (200) from its metrics.
#include <lumen/lumen.h>
#include <lumen/serve/serve.h>

#include <chrono>
#include <cstdio>
#include <cxxopts.hpp>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bare_http_server.h"

namespace {

namespace serve = lumen::serve;
using Clock = std::chrono::steady_clock;

// Keeps the CPU busy for `d`, as a model's arithmetic would (a sleep would leave the core to
// others and flatter batching).
void spin_for(std::chrono::nanoseconds d) {
  const auto end = Clock::now() + d;
  volatile double x = 1.0;
  while (Clock::now() < end)
    for (int i = 0; i < 64; ++i) x = x * 1.0000001 + 1e-9;
}

struct Noop {
  serve::Response operator()(const serve::Request&) { return serve::Response::text("hello"); }
};

// 1 ms per call plus 0.02 ms per item: what a small network costs on one core.
constexpr auto kFixed = std::chrono::microseconds(1000);
constexpr auto kPerItem = std::chrono::microseconds(20);

struct Model {
  serve::Response operator()(const serve::Request&) {
    spin_for(kFixed + kPerItem);
    return serve::Response::text("1");
  }
};

struct BatchedModel {
  std::vector<std::string> operator()(std::vector<serve::Request> batch) {
    spin_for(kFixed + kPerItem * static_cast<long>(batch.size()));
    return std::vector<std::string>(batch.size(), "1");
  }
};

long peak_rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// From the metrics text: requests by code, and an upper bound of the p99 latency of the
// requests answered 200 (the bucket boundary that the 99th percentile falls in).
void report_metrics(const std::string& text) {
  std::map<std::string, double> buckets;  // le -> cumulative count, code 200
  std::map<std::string, long> by_code;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("lumen_serve_requests_total{", 0) == 0) {
      auto c = line.find("code=\"");
      auto e = line.find('"', c + 6);
      by_code[line.substr(c + 6, e - c - 6)] += std::stol(line.substr(line.rfind(' ') + 1));
    }
    if (line.rfind("lumen_serve_request_duration_seconds_bucket{", 0) == 0 && line.find("code=\"200\"") != std::string::npos) {
      auto l = line.find("le=\"");
      auto e = line.find('"', l + 4);
      buckets[line.substr(l + 4, e - l - 4)] = std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  for (auto& [code, n] : by_code) std::printf("code %s: %ld\n", code.c_str(), n);
  double total = buckets.count("+Inf") ? buckets["+Inf"] : 0;
  std::vector<std::pair<double, double>> sorted;
  for (auto& [le, n] : buckets)
    if (le != "+Inf") sorted.emplace_back(std::stod(le), n);
  std::sort(sorted.begin(), sorted.end());
  for (auto& [le, n] : sorted)
    if (total > 0 && n >= 0.99 * total) {
      std::printf("served p99 <= %g ms\n", le * 1000);
      break;
    }
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options cli("lumen-serve-bench", "HTTP servers for bench/serve.sh");
  cli.add_options()("server", "bare, noop, model, batched or overload", cxxopts::value<std::string>())(
      "port", "port on 127.0.0.1 (0: any)", cxxopts::value<int>()->default_value("0"))(
      "seconds", "how long to serve", cxxopts::value<double>()->default_value("12"))(
      "io-threads", "HTTP threads", cxxopts::value<int>()->default_value("2"))(
      "workers", "lumen workers (0: one per core)", cxxopts::value<unsigned>()->default_value("0"))(
      "idle-spin-us", "how long an idle lumen worker looks for work before it sleeps", cxxopts::value<long>()->default_value("50"))(
      "max-batch", "batched: max_batch_size", cxxopts::value<std::size_t>()->default_value("64"))(
      "batch-wait-us", "batched: batch_wait_timeout in microseconds", cxxopts::value<long>()->default_value("2000"))("h,help", "help");
  auto args = cli.parse(argc, argv);
  if (args.count("help") || !args.count("server")) {
    std::puts(cli.help().c_str());
    return args.count("help") ? 0 : 2;
  }
  const std::string kind = args["server"].as<std::string>();
  const auto port = static_cast<unsigned short>(args["port"].as<int>());
  const auto seconds = std::chrono::duration<double>(args["seconds"].as<double>());
  const int io = args["io-threads"].as<int>();

  if (kind == "bare") {
    bench::BareHttpServer s(port, io);
    std::printf("listening on %u\n", s.port());
    std::fflush(stdout);
    std::this_thread::sleep_for(seconds);
    std::printf("peak RSS %ld KiB\n", peak_rss_kib());
    return 0;
  }

  lumen::Runtime rt{{.workers = args["workers"].as<unsigned>(),
                     .idle_spin = std::chrono::microseconds(args["idle-spin-us"].as<long>())}};
  serve::Server server({.port = port, .io_threads = io});
  serve::DeploymentHandle<Noop> noop;
  serve::DeploymentHandle<Model> model;
  serve::DeploymentHandle<BatchedModel> batched;
  if (kind == "noop") {
    noop = serve::deploy<Noop>({.name = "noop", .num_replicas = 2});
    server.route("/", noop);
  } else if (kind == "model") {
    model = serve::deploy<Model>({.name = "model", .num_replicas = 2});
    server.route("/", model);
  } else if (kind == "overload") {
    model = serve::deploy<Model>({.name = "model", .num_replicas = 2, .max_ongoing_requests = 2, .max_queued_requests = 16});
    server.route("/", model);
  } else if (kind == "batched") {
    batched = serve::deploy<BatchedModel>(
        {.name = "batched", .num_replicas = 2, .batch = {.max_batch_size = args["max-batch"].as<std::size_t>(),
                                              .batch_wait_timeout = std::chrono::microseconds(args["batch-wait-us"].as<long>())}});
    server.route("/", batched);
  } else {
    std::fprintf(stderr, "unknown --server %s\n", kind.c_str());
    return 2;
  }
  server.start();
  std::printf("listening on %u\n", server.port());
  std::fflush(stdout);
  std::this_thread::sleep_for(seconds);
  server.stop(std::chrono::seconds(5));
  std::printf("peak RSS %ld KiB\n", peak_rss_kib());
  report_metrics(server.metrics());
  return 0;
}
