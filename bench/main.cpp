// lumen-bench: lumen's tasks side by side with oneTBB, OpenMP and plain serial code.
//
//   lumen-bench [--filter REGEX] [--threads N] [--repeat K] [--json FILE] [--list] [--timeout S]
//   lumen-bench --suite ray [--threads N] [--repeat K] [--trial-seconds S] [--filter REGEX] [--json FILE]
//
// The default suite compares lumen with oneTBB, OpenMP and hand-written code, workload by
// workload (below). --suite ray runs the rows of Ray's own microbenchmark through lumen's API
// and prints them beside Ray's published figures (suite_ray.cpp).
//
// Each workload runs at thread counts 1, 2, 4, ... below N, and N (N defaults to the hardware
// threads). At each thread count there is one lumen::Runtime{.workers = t}, one tbb::task_arena(t)
// (with tbb::global_control raised to t) and omp_set_num_threads(t), all set up outside the timed
// runs. Every system runs once to warm up, then K times interleaved (rep 1 of every system, then
// rep 2, ...), so that drift in the machine's state spreads over all systems alike. The table
// reports the median and minimum wall time, the median per item, the median's ratio to tbb's and
// omp's, and for lumen the parks and steals its runtime counted per run. Every run's answer is
// checked; a wrong one aborts. A run that takes longer than --timeout seconds (default 60) is
// taken for a hang: lumen's stats are printed and the process aborts.
//
// --filter REGEX selects workloads by name; when no workload name matches, it selects single
// systems by "workload/system" (e.g. --filter 'fib32/(lumen|tbb)').
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <cxxopts.hpp>
#include <lumen/lumen.h>
#include <nlohmann/json.hpp>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include "bench.h"
#include "scaling.h"

namespace bench {

[[noreturn]] void fail(const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "lumen-bench: FAILED: %s\n", what.c_str());
  std::abort();
}

namespace {

using Clock = std::chrono::steady_clock;

struct Result {
  std::string workload;
  std::string system;
  unsigned threads = 0;
  double items = 0;
  std::vector<double> seconds;  // one per timed run
  std::vector<double> parks, steals;
  double median_s = 0, min_s = 0;
  double median_parks = 0, median_steals = 0;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::vector<unsigned> thread_counts(unsigned n) {
  std::vector<unsigned> out;
  for (unsigned t = 1; t < n; t *= 2) out.push_back(t);
  out.push_back(n);
  return out;
}

bool is_lumen(const std::string& system) { return system.rfind("lumen", 0) == 0; }

// Aborts the process, with what lumen's runtime reports, when one run takes longer than the
// limit: a hang becomes a failure that says where it happened.
class Watchdog {
 public:
  explicit Watchdog(double limit_s) : limit_(limit_s), thread_([this] { loop(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void arm(const std::string& what, lumen::Runtime* rt) {
    std::lock_guard<std::mutex> lock(mutex_);
    what_ = what;
    runtime_ = rt;
    since_ = Clock::now();
    armed_ = true;
  }
  void disarm() {
    std::lock_guard<std::mutex> lock(mutex_);
    armed_ = false;
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(250));
      if (!armed_ || limit_ <= 0) continue;
      double took = std::chrono::duration<double>(Clock::now() - since_).count();
      if (took < limit_) continue;
      std::fprintf(stderr, "lumen-bench: %s has run for %.0f s (--timeout %.0f)\n", what_.c_str(), took, limit_);
      if (runtime_ != nullptr) {
        lumen::Stats st = runtime_->stats();
        std::fprintf(stderr,
                     "lumen-bench: lumen stats: workers %u, tasks_run %llu, tasks_pending %llu, steals %llu, "
                     "parks %llu, fibers_created %llu, fibers_pooled %llu, objects_live %llu, injection_queued %d, "
                     "queue_lengths",
                     st.workers, static_cast<unsigned long long>(st.tasks_run),
                     static_cast<unsigned long long>(st.tasks_pending), static_cast<unsigned long long>(st.steals),
                     static_cast<unsigned long long>(st.parks), static_cast<unsigned long long>(st.fibers_created),
                     static_cast<unsigned long long>(st.fibers_pooled),
                     static_cast<unsigned long long>(st.objects_live), st.injection_queued ? 1 : 0);
        for (std::size_t q : st.queue_lengths) std::fprintf(stderr, " %zu", q);
        std::fprintf(stderr, "\n");
      }
      fail(what_ + " hung (ran past --timeout)");
    }
  }

  double limit_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool armed_ = false;
  std::string what_;
  lumen::Runtime* runtime_ = nullptr;
  Clock::time_point since_;
  std::thread thread_;
};

Watchdog* g_watchdog = nullptr;

// Runs s once: times it, records what lumen counted meanwhile, verifies the answer.
double run_once(const Workload& w, const System& s, Context& ctx, double* parks, double* steals) {
  lumen::Stats before;
  if (ctx.runtime != nullptr) before = ctx.runtime->stats();
  Clock::time_point t0, t1;
  if (g_watchdog != nullptr)
    g_watchdog->arm(w.name + "/" + s.name + " at threads=" + std::to_string(ctx.threads), ctx.runtime);
  try {
    t0 = Clock::now();
    s.run(ctx);
    t1 = Clock::now();
  } catch (const std::exception& e) {
    fail(w.name + "/" + s.name + " threw: " + e.what());
  } catch (...) {
    fail(w.name + "/" + s.name + " threw an exception that is not a std::exception");
  }
  if (g_watchdog != nullptr) g_watchdog->disarm();
  ctx.parks = ctx.steals = ctx.fibers_created = 0;
  if (ctx.runtime != nullptr) {
    lumen::Stats after = ctx.runtime->stats();
    ctx.parks = after.parks - before.parks;
    ctx.steals = after.steals - before.steals;
    ctx.fibers_created = after.fibers_created - before.fibers_created;
  }
  w.verify(s, ctx);
  *parks = static_cast<double>(ctx.parks);
  *steals = static_cast<double>(ctx.steals);
  return std::chrono::duration<double>(t1 - t0).count();
}

// Lets the previous system's spinning threads (tbb's, libgomp's, lumen's) go idle first.
void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(2)); }

std::string fmt_ratio(const std::optional<double>& r) {
  if (!r) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", *r);
  return buf;
}

std::string fmt_count(const Result& r, double v) {
  if (!is_lumen(r.system)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

const Result* find(const std::vector<Result>& rs, const std::string& w, unsigned t, const std::string& s) {
  for (const auto& r : rs)
    if (r.workload == w && r.threads == t && r.system == s) return &r;
  return nullptr;
}

std::optional<double> ratio(const std::vector<Result>& rs, const Result& r, const std::string& peer) {
  const Result* p = find(rs, r.workload, r.threads, peer);
  if (p == nullptr || p->median_s <= 0) return std::nullopt;
  return r.median_s / p->median_s;
}

void print_table(const std::vector<Workload>& ws, const std::vector<Result>& rs, unsigned repeat) {
  std::printf("\nlumen-bench: %u timed runs per cell (after 1 warm-up), interleaved across systems; %u hardware threads\n",
              repeat, std::thread::hardware_concurrency());
  std::printf("%-8s %3s  %-14s %11s %11s %12s %7s %7s %9s %9s\n", "workload", "thr", "system", "median ms",
              "min ms", "per-item ns", "/tbb", "/omp", "parks", "steals");
  std::string rule(104, '-');
  for (const auto& w : ws) {
    bool any = false;
    for (const auto& r : rs) any = any || r.workload == w.name;
    if (!any) continue;
    std::printf("%s\n%s: %s (per item: %s, %.0f items)\n", rule.c_str(), w.name.c_str(), w.description.c_str(),
                w.item.c_str(), w.items);
    unsigned last_t = 0;
    for (const auto& r : rs) {
      if (r.workload != w.name) continue;
      if (last_t != 0 && r.threads != last_t) std::printf("\n");
      last_t = r.threads;
      std::printf("%-8s %3u  %-14s %11.2f %11.2f %12.1f %7s %7s %9s %9s\n", r.workload.c_str(), r.threads,
                  r.system.c_str(), r.median_s * 1e3, r.min_s * 1e3, r.median_s * 1e9 / r.items,
                  fmt_ratio(ratio(rs, r, "tbb")).c_str(), fmt_ratio(ratio(rs, r, "omp")).c_str(),
                  fmt_count(r, r.median_parks).c_str(), fmt_count(r, r.median_steals).c_str());
    }
  }
  std::printf("%s\n", rule.c_str());
  std::printf("(parks, steals: lumen's counters per run, median; /tbb, /omp: median over the peer's median)\n");

  // One line per workload: lumen's ratio to tbb at each thread count; with no tbb, to the first
  // other peer (a hand-written actor, Ray's API), else to serial.
  std::printf("\nsummary (median ratio; < 1 means lumen is faster):\n");
  for (const auto& w : ws) {
    std::vector<unsigned> ts;
    for (const auto& r : rs)
      if (r.workload == w.name && std::find(ts.begin(), ts.end(), r.threads) == ts.end()) ts.push_back(r.threads);
    if (ts.empty()) continue;
    std::string peer = "serial";
    for (const auto& s : w.systems) {
      if (s.name == "tbb") {
        peer = "tbb";
        break;
      }
      if (peer == "serial" && !is_lumen(s.name) && s.name != "serial" && s.name != "omp") peer = s.name;
    }
    std::string line;
    for (const auto& s : w.systems) {
      if (!is_lumen(s.name)) continue;
      std::string part;
      for (unsigned t : ts) {
        const Result* r = find(rs, w.name, t, s.name);
        if (r == nullptr) continue;
        char buf[48];
        std::snprintf(buf, sizeof buf, " t=%u %s", t, fmt_ratio(ratio(rs, *r, peer)).c_str());
        part += buf;
      }
      if (part.empty()) continue;
      if (!line.empty()) line += "  |  ";
      line += s.name + "/" + peer + ":" + part;
    }
    if (line.empty() || line.find_first_of("0123456789", line.find(':')) == std::string::npos)
      line = "(no lumen run with a " + peer + " run beside it)";
    std::printf("  %-8s %s\n", w.name.c_str(), line.c_str());
  }
}

void write_json(const std::string& path, const std::vector<Result>& rs, unsigned repeat) {
  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (const auto& r : rs) {
    nlohmann::ordered_json j = {{"workload", r.workload}, {"system", r.system},       {"threads", r.threads},
                        {"median_s", r.median_s}, {"min_s", r.min_s},         {"runs", r.seconds.size()},
                        {"per_item_ns", r.median_s * 1e9 / r.items},          {"items", r.items}};
    if (is_lumen(r.system)) {
      j["parks"] = r.median_parks;
      j["steals"] = r.median_steals;
    }
    results.push_back(std::move(j));
  }
  nlohmann::ordered_json doc = {{"results", results},
                        {"repeat", repeat},
                        {"hardware_threads", std::thread::hardware_concurrency()}};
  std::ofstream out(path);
  if (!out) fail("cannot write " + path);
  out << doc.dump(2) << "\n";
  if (!out) fail("cannot write " + path);
}

int run_main(int argc, char** argv) {
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  cxxopts::Options opts("lumen-bench", "lumen's tasks side by side with oneTBB, OpenMP and serial code");
  // clang-format off
  opts.add_options()
    ("filter", "run workloads whose name matches REGEX (or only systems whose workload/system does)",
     cxxopts::value<std::string>()->default_value(""), "REGEX")
    ("threads", "largest thread count; runs 1, 2, 4, ... below it, and it",
     cxxopts::value<unsigned>()->default_value(std::to_string(hw)), "N")
    ("repeat", "timed runs per system and thread count", cxxopts::value<unsigned>()->default_value("7"), "K")
    ("json", "also write the results to FILE as JSON", cxxopts::value<std::string>(), "FILE")
    ("scaling", "also print speed-up against threads and plot it to FILE (SVG)", cxxopts::value<std::string>(), "FILE")
    ("timeout", "abort, printing lumen's state, when one run takes longer than S seconds (0: never)",
     cxxopts::value<double>()->default_value("60"), "S")
    ("suite", "which benchmarks: 'scheduler' (lumen beside its peers), 'ray' (Ray's microbenchmark rows) or 'idle' (idle CPU, wake-up of a burst)",
     cxxopts::value<std::string>()->default_value("scheduler"), "NAME")
    ("trial-seconds", "--suite ray: length of one trial of a row", cxxopts::value<double>()->default_value("0.5"), "S")
    ("list", "list workloads and their systems, run nothing")
    ("h,help", "show this help");
  // clang-format on
  cxxopts::ParseResult args;
  try {
    args = opts.parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lumen-bench: %s\n%s", e.what(), opts.help().c_str());
    return 2;
  }
  if (args.count("help") != 0) {
    std::printf("%s", opts.help().c_str());
    return 0;
  }
  const unsigned max_threads = args["threads"].as<unsigned>();
  const unsigned repeat = args["repeat"].as<unsigned>();
  if (max_threads == 0 || repeat == 0) {
    std::fprintf(stderr, "lumen-bench: --threads and --repeat must be at least 1\n");
    return 2;
  }
  std::regex filter;
  const std::string filter_text = args["filter"].as<std::string>();
  try {
    filter = std::regex(filter_text);
  } catch (const std::regex_error& e) {
    std::fprintf(stderr, "lumen-bench: bad --filter regex '%s': %s\n", filter_text.c_str(), e.what());
    return 2;
  }

  const std::string suite = args["suite"].as<std::string>();
  if (suite == "ray") {
    RaySuiteOptions ray;
    ray.workers = args.count("threads") != 0 ? max_threads : 0;
    ray.repeat = args.count("repeat") != 0 ? repeat : 5;
    ray.trial_seconds = args["trial-seconds"].as<double>();
    ray.filter = filter_text;
    if (args.count("json") != 0) ray.json = args["json"].as<std::string>();
    if (!(ray.trial_seconds > 0)) {
      std::fprintf(stderr, "lumen-bench: --trial-seconds must be positive\n");
      return 2;
    }
    return run_ray_suite(ray);
  }
  if (suite == "idle") return run_idle_suite(max_threads, 2.0);
  if (suite != "scheduler") {
    std::fprintf(stderr, "lumen-bench: unknown --suite '%s' (scheduler, ray, idle)\n", suite.c_str());
    return 2;
  }

  std::vector<Workload> all;
  add_recursive_workloads(all);
  add_spawn_workloads(all);
  add_object_workloads(all);
  add_actor_workloads(all);
  add_flow_workloads(all);
  add_loop_workloads(all);
  add_ray_api_workloads(all);

  // Selection: a workload whose name matches runs every system; otherwise only the systems
  // whose "workload/system" matches.
  std::vector<Workload> ws;
  for (auto& w : all) {
    if (!filter_text.empty() && !std::regex_search(w.name, filter)) {
      std::vector<System> keep;
      for (auto& s : w.systems)
        if (std::regex_search(w.name + "/" + s.name, filter)) keep.push_back(s);
      if (keep.empty()) continue;
      w.systems = std::move(keep);
    }
    ws.push_back(std::move(w));
  }

  if (args.count("list") != 0) {
    for (const auto& w : ws) {
      std::printf("%-8s %s\n         per item: %s (%.0f items)%s\n         systems:", w.name.c_str(),
                  w.description.c_str(), w.item.c_str(), w.items, w.single_thread_only ? "; 1 thread only" : "");
      for (const auto& s : w.systems) std::printf(" %s", s.name.c_str());
      std::printf("\n");
    }
    return 0;
  }
  if (ws.empty()) {
    std::fprintf(stderr, "lumen-bench: no workload matches '%s' (see --list)\n", filter_text.c_str());
    return 2;
  }

  Watchdog watchdog(args["timeout"].as<double>());
  g_watchdog = &watchdog;

  std::vector<Result> results;
  for (unsigned t : thread_counts(max_threads)) {
    bool any = false;
    for (const auto& w : ws) any = any || !w.single_thread_only || t == 1;
    if (!any) continue;

    // Set up once per thread count, outside every timed region.
    auto runtime = std::make_unique<lumen::Runtime>(lumen::Config{.workers = t});
    // The arena asks for t - 1 workers; tbb's global limit is the core count unless raised.
    tbb::global_control tbb_limit(tbb::global_control::max_allowed_parallelism, t);
    tbb::task_arena arena(static_cast<int>(t));
    arena.initialize();
    omp_set_num_threads(static_cast<int>(t));
    Context ctx;
    ctx.threads = t;
    ctx.runtime = runtime.get();
    ctx.arena = &arena;

    for (const auto& w : ws) {
      if (w.single_thread_only && t != 1) continue;
      auto started = Clock::now();
      std::vector<Result> cell(w.systems.size());
      for (std::size_t i = 0; i < w.systems.size(); ++i) {
        cell[i].workload = w.name;
        cell[i].system = w.systems[i].name;
        cell[i].threads = t;
        cell[i].items = w.systems[i].items > 0 ? w.systems[i].items : w.items;
      }
      double parks = 0, steals = 0;
      if (w.setup) w.setup(ctx);
      for (const auto& s : w.systems) {  // warm-up
        settle();
        run_once(w, s, ctx, &parks, &steals);
      }
      for (unsigned rep = 0; rep < repeat; ++rep) {
        for (std::size_t i = 0; i < w.systems.size(); ++i) {
          settle();
          cell[i].seconds.push_back(run_once(w, w.systems[i], ctx, &parks, &steals));
          cell[i].parks.push_back(parks);
          cell[i].steals.push_back(steals);
        }
      }
      if (w.teardown) w.teardown(ctx);
      for (auto& r : cell) {
        r.median_s = median(r.seconds);
        r.min_s = *std::min_element(r.seconds.begin(), r.seconds.end());
        r.median_parks = median(r.parks);
        r.median_steals = median(r.steals);
        results.push_back(std::move(r));
      }
      std::fprintf(stderr, "lumen-bench: %-8s threads=%u done in %.1f s\n", w.name.c_str(), t,
                   std::chrono::duration<double>(Clock::now() - started).count());
    }
  }

  g_watchdog = nullptr;

  // Grouped by workload, then thread count, systems in their declared order.
  std::vector<Result> ordered;
  for (const auto& w : ws)
    for (unsigned t : thread_counts(max_threads))
      for (const auto& s : w.systems)
        if (const Result* r = find(results, w.name, t, s.name)) ordered.push_back(*r);
  print_table(ws, ordered, repeat);
  if (args.count("json") != 0) write_json(args["json"].as<std::string>(), ordered, repeat);
  if (args.count("scaling") != 0) {
    std::vector<ScalingPoint> points;
    for (const auto& r : ordered) points.push_back({r.workload, r.system, r.threads, r.median_s});
    print_scaling_table(points);
    const std::string path = args["scaling"].as<std::string>();
    write_scaling_svg(path, points, std::thread::hardware_concurrency());
    std::printf("speed-up plot written to %s\n", path.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) { return bench::run_main(argc, argv); }
