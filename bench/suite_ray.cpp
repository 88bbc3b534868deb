// lumen-bench --suite ray: the operations of `ray microbenchmark` (Ray's
// python/ray/_private/ray_perf.py), done through lumen's own API, beside Ray's published
// figures. Each row does the work of Ray's row and counts operations in the same unit
// (one get, one batch of 1000 tasks, 0.8 GB per large put, ...), so the ratio compares like
// with like. Ray's numbers come from another machine (Ray 2.31.0 on one AWS m5.16xlarge):
// they place lumen's in-process figures against a distributed engine's, nothing finer.
//
// Timing follows Ray's timeit: a warm-up, then --repeat trials that each run the operation
// until --trial-seconds have passed; the table shows the median trial's operations per second.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <lumen/lumen.h>
#include <nlohmann/json.hpp>

#include "bench.h"

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;

// Ray's tasks return b"ok": two bytes.
using Ok = std::array<char, 2>;
Ok small_value() { return Ok{'o', 'k'}; }

void small_value_batch(int n) {
  std::vector<lumen::ObjectRef<Ok>> submitted;
  submitted.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) submitted.push_back(lumen::submit(small_value));
  for (auto& r : submitted) do_not_optimize(lumen::get(r));
}

// Ray's benchmark actor.
struct Actor {
  Ok small_value() { return Ok{'o', 'k'}; }
  Ok small_value_arg(int) { return Ok{'o', 'k'}; }
  void small_value_batch(int n) { bench::small_value_batch(n); }
};

// Ray's client actor: calls its servers n times each, then gets every result.
struct Client {
  explicit Client(std::vector<lumen::ActorHandle<Actor>> s) : servers(std::move(s)) {}
  void small_value_batch(int n) {
    std::vector<lumen::ObjectRef<Ok>> results;
    for (auto& s : servers)
      for (int i = 0; i < n; ++i) results.push_back(s.call(&Actor::small_value));
    for (auto& r : results) do_not_optimize(lumen::get(r));
  }
  void small_value_batch_arg(int n) {
    auto x = lumen::put(0);
    std::vector<lumen::ObjectRef<Ok>> results;
    for (auto& s : servers)
      for (int i = 0; i < n; ++i) results.push_back(s.call(&Actor::small_value_arg, x));
    for (auto& r : results) do_not_optimize(lumen::get(r));
  }
  std::vector<lumen::ActorHandle<Actor>> servers;
};

template <class T>
void get_all(const std::vector<lumen::ObjectRef<T>>& refs) {
  for (const auto& r : refs) lumen::get(r);
}

struct Row {
  std::string name;
  double ray_ops;              // Ray 2.31.0's published figure, operations per second; 0: a reference row
  double multiplier = 1;       // operations one call of `op` stands for
  std::function<void()> op;    // empty: the row does not apply in one process
  std::string not_applicable;  // why, for such a row
};

std::vector<Row> make_rows(unsigned workers) {
  // Ray sizes its 1:n and n:n rows by half the machine's CPUs.
  const int n_cpu = static_cast<int>(std::max(1u, workers / 2));
  std::vector<Row> rows;

  auto value = lumen::put(0);
  rows.push_back({"single client get calls", 10594, 1, [value] { do_not_optimize(lumen::get(value)); }, ""});
  rows.push_back({"single client put calls", 5301, 1, [] { lumen::put(0); }, ""});
  rows.push_back({"multi client put calls", 13048, 1000,
                  [] {
                    std::vector<lumen::ObjectRef<void>> clients;
                    for (int c = 0; c < 10; ++c)
                      clients.push_back(lumen::submit([] {
                        for (int i = 0; i < 100; ++i) lumen::put(0);
                      }));
                    get_all(clients);
                  },
                  ""});
  auto array = std::make_shared<std::vector<std::int64_t>>(std::size_t{100} * 1024 * 1024);
  rows.push_back({"single client put gigabytes", 20.3, 8 * 0.1, [array] { lumen::put(*array); }, ""});
  // The same put from a large_vector: its copy lands in warm memory from lumen's pool, as
  // Ray's lands in its object store's memory. Beside it, what a copy into warm memory costs.
  auto pooled = std::make_shared<lumen::large_vector<std::int64_t>>(array->begin(), array->end());
  rows.push_back({"single client put gigabytes, large_vector", 20.3, 8 * 0.1, [pooled] { lumen::put(*pooled); }, ""});
  // A copy into warm memory: with 4 KiB pages, and with the pool's huge pages, which miss the
  // TLB less.
  auto memcpy_row = [&rows, array](const char* name, std::shared_ptr<void> owner, std::int64_t* warm_destination) {
    rows.push_back({name, 0, 8 * 0.1,
                    [array, owner, warm_destination] {
                      std::memcpy(warm_destination, array->data(), array->size() * sizeof(std::int64_t));
                      do_not_optimize(warm_destination);
                    },
                    ""});
  };
  auto warm = std::make_shared<std::vector<std::int64_t>>(array->size(), 1);
  auto warm_huge = std::make_shared<lumen::large_vector<std::int64_t>>(array->size(), 1);
  memcpy_row("(reference) warm memcpy gigabytes, same size", warm, warm->data());
  memcpy_row("(reference) warm memcpy gigabytes, huge pages", warm_huge, warm_huge->data());
  rows.push_back({"single client tasks and get batch", 8.03, 1, [] { small_value_batch(1000); }, ""});
  rows.push_back({"multi client put gigabytes", 32.8, 10 * 8 * 0.1,
                  [] {
                    std::vector<lumen::ObjectRef<void>> clients;
                    for (int c = 0; c < 10; ++c)
                      clients.push_back(lumen::submit([] {
                        for (int i = 0; i < 10; ++i) lumen::put(std::vector<std::int64_t>(std::size_t{10} * 1024 * 1024));
                      }));
                    get_all(clients);
                  },
                  ""});
  rows.push_back({"multi client put gigabytes, large_vector", 32.8, 10 * 8 * 0.1,
                  [] {
                    std::vector<lumen::ObjectRef<void>> clients;
                    for (int c = 0; c < 10; ++c)
                      clients.push_back(lumen::submit([] {
                        for (int i = 0; i < 10; ++i)
                          lumen::put(lumen::large_vector<std::int64_t>(std::size_t{10} * 1024 * 1024));
                      }));
                    get_all(clients);
                  },
                  ""});
  auto containing = lumen::submit([] {
    std::vector<lumen::ObjectRef<int>> refs;
    for (int i = 0; i < 10000; ++i) refs.push_back(lumen::put(1));
    return refs;
  });
  // Ray's get hands the caller its own list of refs: a copy.
  rows.push_back({"single client get object containing 10k refs", 13.2, 1,
                  [containing] {
                    std::vector<lumen::ObjectRef<int>> copy = lumen::get(containing);
                    do_not_optimize(copy.data());
                  },
                  ""});
  rows.push_back({"single client wait 1k refs", 5.38, 1,
                  [] {
                    std::vector<lumen::ObjectRef<Ok>> not_ready;
                    for (int i = 0; i < 1000; ++i) not_ready.push_back(lumen::submit(small_value));
                    for (int i = 0; i < 1000; ++i) not_ready = lumen::wait(std::move(not_ready), 1).not_ready;
                  },
                  ""});
  rows.push_back({"single client tasks sync", 987, 1, [] { do_not_optimize(lumen::get(lumen::submit(small_value))); }, ""});
  rows.push_back({"single client tasks async", 7955, 1000,
                  [] {
                    std::vector<lumen::ObjectRef<Ok>> refs;
                    for (int i = 0; i < 1000; ++i) refs.push_back(lumen::submit(small_value));
                    get_all(refs);
                  },
                  ""});
  {
    static constexpr int n = 10000, m = 4;
    std::vector<lumen::ActorHandle<Actor>> actors;
    for (int i = 0; i < m; ++i) actors.push_back(lumen::actor<Actor>());
    rows.push_back({"multi client tasks async", 23558, n * m,
                    [actors] {
                      std::vector<lumen::ObjectRef<void>> submitted;
                      for (auto& a : actors) submitted.push_back(a.call(&Actor::small_value_batch, n));
                      get_all(submitted);
                    },
                    ""});
  }
  auto one = lumen::actor<Actor>();
  rows.push_back({"1:1 actor calls sync", 2058, 1, [one] { do_not_optimize(lumen::get(one.call(&Actor::small_value))); }, ""});
  auto one_async = lumen::actor<Actor>();
  rows.push_back({"1:1 actor calls async", 8334, 1000,
                  [one_async] {
                    std::vector<lumen::ObjectRef<Ok>> refs;
                    for (int i = 0; i < 1000; ++i) refs.push_back(one_async.call(&Actor::small_value));
                    get_all(refs);
                  },
                  ""});
  auto concurrent = lumen::actor<Actor>(lumen::ActorOptions{.max_concurrency = 16});
  rows.push_back({"1:1 actor calls concurrent", 5129, 1000,
                  [concurrent] {
                    std::vector<lumen::ObjectRef<Ok>> refs;
                    for (int i = 0; i < 1000; ++i) refs.push_back(concurrent.call(&Actor::small_value));
                    get_all(refs);
                  },
                  ""});
  {
    static constexpr int n = 5000;
    std::vector<lumen::ActorHandle<Actor>> servers;
    for (int i = 0; i < n_cpu; ++i) servers.push_back(lumen::actor<Actor>());
    auto client = lumen::actor<Client>(servers);
    rows.push_back({"1:n actor calls async", 8762, static_cast<double>(n * n_cpu),
                    [client] { lumen::get(client.call(&Client::small_value_batch, n)); }, ""});
  }
  {
    static constexpr int n = 5000, m = 4;
    std::vector<lumen::ActorHandle<Actor>> actors;
    for (int i = 0; i < n_cpu; ++i) actors.push_back(lumen::actor<Actor>());
    rows.push_back({"n:n actor calls async", 27658, n * m,
                    [actors, n_cpu] {
                      std::vector<lumen::ObjectRef<void>> work;
                      for (int w = 0; w < m; ++w)
                        work.push_back(lumen::submit([&actors, n_cpu] {
                          std::vector<lumen::ObjectRef<Ok>> refs;
                          for (int i = 0; i < n; ++i)
                            refs.push_back(actors[static_cast<std::size_t>(i % n_cpu)].call(&Actor::small_value));
                          get_all(refs);
                        }));
                      get_all(work);
                    },
                    ""});
  }
  {
    static constexpr int n = 1000;
    std::vector<lumen::ActorHandle<Client>> clients;
    for (int i = 0; i < n_cpu; ++i)
      clients.push_back(lumen::actor<Client>(std::vector<lumen::ActorHandle<Actor>>{lumen::actor<Actor>()}));
    rows.push_back({"n:n actor calls with arg async", 2713, static_cast<double>(n * n_cpu),
                    [clients] {
                      std::vector<lumen::ObjectRef<void>> done;
                      for (auto& c : clients) done.push_back(c.call(&Client::small_value_batch_arg, n));
                      get_all(done);
                    },
                    ""});
  }
  rows.push_back({"placement group create/removal", 0, 1, {},
                  "not applicable: placement groups reserve resources across a cluster's nodes"});
  return rows;
}

// Ray's timeit: a warm-up, then trials of repeated calls.
std::vector<double> time_row(const Row& row, unsigned trials, double trial_seconds) {
  auto run_for = [&](double seconds) {
    auto start = Clock::now();
    long count = 0;
    double elapsed = 0;
    do {
      row.op();
      ++count;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    } while (elapsed < seconds);
    return static_cast<double>(count) * row.multiplier / elapsed;
  };
  run_for(trial_seconds / 4);
  std::vector<double> ops;
  for (unsigned t = 0; t < trials; ++t) ops.push_back(run_for(trial_seconds));
  return ops;
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int run_ray_suite(const RaySuiteOptions& options) {
  lumen::Runtime runtime(lumen::Config{.workers = options.workers});
  std::vector<Row> rows = make_rows(runtime.workers());
  std::regex filter(options.filter);
  std::printf("lumen-bench --suite ray: Ray's microbenchmark through lumen's API, %u workers, median of %u trials\n",
              runtime.workers(), options.repeat);
  std::printf("(Ray: 2.31.0 on one AWS m5.16xlarge, as published; ratio = lumen / Ray, > 1 means lumen does more)\n\n");
  std::printf("%-48s %16s %12s %10s\n", "row", "lumen ops/s", "Ray ops/s", "ratio");
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (const Row& row : rows) {
    if (!options.filter.empty() && !std::regex_search(row.name, filter)) continue;
    if (!row.op) {
      std::printf("%-48s %s\n", row.name.c_str(), row.not_applicable.c_str());
      results.push_back({{"row", row.name}, {"not_applicable", row.not_applicable}});
      continue;
    }
    std::vector<double> ops = time_row(row, options.repeat, options.trial_seconds);
    double m = median_of(ops);
    if (row.ray_ops > 0) {
      std::printf("%-48s %16.4g %12.4g %10.3g\n", row.name.c_str(), m, row.ray_ops, m / row.ray_ops);
      results.push_back({{"row", row.name}, {"ops_per_s", m}, {"trials", ops}, {"ray_ops_per_s", row.ray_ops},
                         {"ratio_to_ray", m / row.ray_ops}});
    } else {
      std::printf("%-48s %16.4g %12s %10s\n", row.name.c_str(), m, "-", "-");
      results.push_back({{"row", row.name}, {"ops_per_s", m}, {"trials", ops}});
    }
    std::fflush(stdout);
  }
  if (!options.json.empty()) {
    nlohmann::ordered_json doc = {{"suite", "ray"},
                                  {"workers", runtime.workers()},
                                  {"repeat", options.repeat},
                                  {"trial_seconds", options.trial_seconds},
                                  {"results", results}};
    std::ofstream out(options.json);
    out << doc.dump(2) << "\n";
    if (!out) fail("cannot write " + options.json);
  }
  return 0;
}

}  // namespace bench
