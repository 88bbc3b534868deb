// lumen-tune-bench: what lumen::tune costs and what it buys, in one run.
//
//   (a) bookkeeping: trials of a trainable that only reports, with the per-trial files off and on;
//   (b) overhead: trials that compute (a spin loop, 1 ms per report) on W workers, against the
//       ideal of their compute spread evenly over the workers (Ray Tune's release test of this
//       sits at 1.14x);
//   (c) early stopping: synthetic learning curves with a known optimum, random search with ASHA
//       against random search with every trial run to the end (FIFO), on the same samples.
//
// Each figure is the median of --repeats runs.
//
//   lumen-tune-bench [--workers 2] [--trials 2000] [--bookkeeping-trials 10000] [--repeats 3]
#include <lumen/lumen.h>
#include <lumen/tune/asha.h>
#include <lumen/tune/random_search.h>
#include <lumen/tune/tuner.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cxxopts.hpp>
#include <filesystem>
#include <functional>
#include <limits>
#include <mutex>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace lumen::tune;
using Clock = std::chrono::steady_clock;

struct Options {
  unsigned workers = 2;
  int trials = 2000;
  int bookkeeping_trials = 10000;
  int repeats = 3;
  int samples = 100;
  int max_t = 27;
};

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// NaN stands for a figure a run did not produce, and is left out; NaN when no run produced it.
double median(std::vector<double> v) {
  std::erase_if(v, [](double x) { return std::isnan(x); });
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Repeats a measurement and gives the median of each of its figures.
std::vector<double> median_of(int repeats, const std::function<std::vector<double>(int repeat)>& measure) {
  std::vector<std::vector<double>> runs;
  for (int r = 0; r < repeats; ++r) runs.push_back(measure(r));
  std::vector<double> out;
  for (std::size_t i = 0; i < runs[0].size(); ++i) {
    std::vector<double> column;
    for (const auto& run : runs) column.push_back(run[i]);
    out.push_back(median(column));
  }
  return out;
}

void row(const char* name, const std::string& value, const std::string& note = "") {
  std::printf("  %-48s %12s%s%s\n", name, value.c_str(), note.empty() ? "" : "   ", note.c_str());
}

std::string format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

ResultGrid tune(TrainFunction train, int samples, std::shared_ptr<TrialScheduler> scheduler, std::shared_ptr<Stopper> stop,
                std::uint64_t seed, const std::string& storage_path = "", const std::string& name = "") {
  Tuner tuner(std::move(train), ParamSpace{{"x", uniform(0, 1)}, {"y", uniform(0, 1)}},
              TuneConfig{.metric = "loss", .mode = "min", .num_samples = samples, .scheduler = std::move(scheduler),
                         .searcher = std::make_shared<RandomSearch>(RandomSearchOptions{.seed = seed})},
              RunConfig{.name = name, .storage_path = storage_path, .stop = std::move(stop), .progress = Progress::silent});
  return tuner.fit();
}

// (a) The tuner's cost per trial and per report when the trials do nothing.
void bookkeeping(const Options& o) {
  constexpr int kReports = 10;
  const TrainFunction idle = [](const Config&, Reporter& r) {
    for (int i = 0; i < kReports; ++i) r.report({{"loss", static_cast<double>(kReports - i)}});
  };
  const std::string scratch = (std::filesystem::temp_directory_path() / ("lumen-tune-bench-" + std::to_string(::getpid()))).string();
  auto measure = [&](bool files) {
    return median_of(o.repeats, [&](int repeat) {
      const auto start = Clock::now();
      tune(idle, o.bookkeeping_trials, nullptr, nullptr, 1, files ? scratch : "", "bookkeeping_" + std::to_string(repeat));
      const double s = seconds_since(start);
      std::filesystem::remove_all(scratch);
      return std::vector<double>{s};
    })[0];
  };
  std::printf("(a) bookkeeping: %d trials x %d reports, no work, %u workers\n", o.bookkeeping_trials, kReports, o.workers);
  const double reports = static_cast<double>(o.bookkeeping_trials) * kReports;
  for (bool files : {false, true}) {
    const double s = measure(files);
    row(files ? "per-trial files on" : "per-trial files off (storage_path empty)", format("%.3f s", s),
        format("%.1f us/trial, ", 1e6 * s / o.bookkeeping_trials) + format("%.0f reports/s", reports / s));
  }
}

// A busy loop of about `n` steps that the optimizer cannot remove.
std::atomic<std::uint64_t> g_sink{0};
void spin(std::uint64_t n) {
  std::uint64_t x = n;
  for (std::uint64_t i = 0; i < n; ++i) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  g_sink.fetch_add(x, std::memory_order_relaxed);
}

// Steps of spin() per millisecond, from the fastest of a few timed runs (the others were
// interrupted).
std::uint64_t steps_per_ms() {
  constexpr std::uint64_t kSteps = 1 << 22;
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < 10; ++i) {
    const auto start = Clock::now();
    spin(kSteps);
    best = std::min(best, seconds_since(start));
  }
  return static_cast<std::uint64_t>(kSteps / (best * 1e3));
}

// (b) How close trials that compute come to their ideal time on the workers. On a machine that
// other programs load, the 1 ms spins take longer than 1 ms; the time measured inside them gives
// a second ideal that leaves that out and keeps only the tuner's own cost.
void overhead(const Options& o) {
  constexpr int kReports = 10;
  const std::uint64_t steps = steps_per_ms();
  std::atomic<std::int64_t> spin_ns{0};
  const TrainFunction compute = [steps, &spin_ns](const Config&, Reporter& r) {
    for (int i = 0; i < kReports; ++i) {
      const auto start = Clock::now();
      spin(steps);
      spin_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
      r.report({{"loss", static_cast<double>(kReports - i)}});
    }
  };
  const double ideal = o.trials * kReports * 1e-3 / o.workers;
  const auto figures = median_of(o.repeats, [&](int repeat) {
    spin_ns = 0;
    const auto start = Clock::now();
    tune(compute, o.trials, nullptr, nullptr, static_cast<std::uint64_t>(repeat + 1));
    const double total = seconds_since(start);
    return std::vector<double>{total, total / (spin_ns * 1e-9 / o.workers)};
  });
  std::printf("\n(b) overhead: %d trials x %d reports x 1 ms of compute (%llu spin steps), %u workers\n", o.trials,
              kReports, static_cast<unsigned long long>(steps), o.workers);
  row("total", format("%.3f s", figures[0]));
  row("ideal (compute / workers)", format("%.3f s", ideal));
  row("total / ideal", format("%.3fx", figures[0] / ideal), "Ray Tune's release test: 1.14x");
  row("total / (time measured in the spins / workers)", format("%.3fx", figures[1]));
}

// The synthetic experiment of (c): the loss falls as 1/(t + 1) towards f(x, y), whose minimum 0
// is at (0.3, 0.7). Configs that learn slowly (large x) look worse early than they end, so that
// stopping on early results can be wrong. The noise is a function of the config and t: the
// same config gives the same curve under either scheduler.
double synthetic_loss(double x, double y, std::int64_t t) {
  const double f = (x - 0.3) * (x - 0.3) + (y - 0.7) * (y - 0.7);
  const double slowness = 0.2 + 0.6 * x;
  std::mt19937_64 rng(std::hash<double>{}(x) ^ (std::hash<double>{}(y) << 1) ^ static_cast<std::uint64_t>(t) * 0x9e3779b97f4a7c15ULL);
  return f + slowness / static_cast<double>(t + 1) + std::normal_distribution<double>(0, 0.005)(rng);
}

// (c) Compute (iterations summed over trials) that ASHA and FIFO spend, and that ASHA spends
// until it first matches FIFO's final best.
void early_stopping(const Options& o) {
  struct Log {
    std::mutex lock;
    std::vector<double> losses;  // every report of the run, in the order made
  };
  auto curves = [](Log& log) {
    return [&log](const Config& cfg, Reporter& r) {
      for (;;) {
        const double loss = synthetic_loss(cfg.get<double>("x"), cfg.get<double>("y"), r.iteration() + 1);
        {
          std::lock_guard<std::mutex> hold(log.lock);
          log.losses.push_back(loss);
        }
        r.report({{"loss", loss}});
      }
    };
  };
  auto best_last = [](const ResultGrid& grid) { return grid.best().last_result()->get("loss"); };
  int never_reached = 0;
  const auto figures = median_of(o.repeats, [&](int repeat) {
    const auto seed = static_cast<std::uint64_t>(repeat + 1);
    Log fifo_log, asha_log;
    const ResultGrid fifo = tune(curves(fifo_log), o.samples, nullptr, max_iterations(o.max_t), seed);
    const ResultGrid asha = tune(
        curves(asha_log), o.samples,
        std::make_shared<AshaScheduler>(AshaOptions{.max_t = static_cast<double>(o.max_t), .grace_period = 1, .reduction_factor = 3}),
        max_iterations(o.max_t), seed);
    const double target = best_last(fifo);
    const auto hit = std::find_if(asha_log.losses.begin(), asha_log.losses.end(), [&](double l) { return l <= target; });
    if (hit == asha_log.losses.end()) ++never_reached;
    const double to_reach = hit == asha_log.losses.end() ? std::nan("") : static_cast<double>(hit - asha_log.losses.begin() + 1);
    return std::vector<double>{static_cast<double>(fifo_log.losses.size()), static_cast<double>(asha_log.losses.size()),
                               to_reach, best_last(fifo), best_last(asha)};
  });
  const double fifo_compute = figures[0], asha_compute = figures[1], to_reach = figures[2];
  std::printf("\n(c) early stopping: %d samples of (x, y) in [0, 1)^2, at most %d iterations, optimum 0 at (0.3, 0.7)\n",
              o.samples, o.max_t);
  row("FIFO: compute (iterations)", format("%.0f", fifo_compute), "best final loss " + format("%.4f", figures[3]));
  row("ASHA: compute (iterations)", format("%.0f", asha_compute), "best final loss " + format("%.4f", figures[4]));
  row("ASHA: compute to reach FIFO's best", std::isnan(to_reach) ? "never" : format("%.0f", to_reach),
      never_reached > 0 ? format("not reached in %.0f of the repeats", never_reached) : "");
  row("compute FIFO / ASHA", format("%.2fx", fifo_compute / asha_compute));
  if (!std::isnan(to_reach)) row("compute FIFO / ASHA to reach FIFO's best", format("%.2fx", fifo_compute / to_reach));
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options cli("lumen-tune-bench", "The cost and the payoff of lumen::tune");
  // clang-format off
  cli.add_options()
    ("workers", "the runtime's workers", cxxopts::value<unsigned>()->default_value("2"))
    ("trials", "trials of the overhead test (b)", cxxopts::value<int>()->default_value("2000"))
    ("bookkeeping-trials", "trials of the bookkeeping test (a)", cxxopts::value<int>()->default_value("10000"))
    ("samples", "trials per search of the early-stopping test (c)", cxxopts::value<int>()->default_value("100"))
    ("max-t", "iterations of a full trial in (c)", cxxopts::value<int>()->default_value("27"))
    ("repeats", "runs of each test; the figures are their medians", cxxopts::value<int>()->default_value("3"))
    ("h,help", "print this help");
  // clang-format on
  Options o;
  try {
    auto args = cli.parse(argc, argv);
    if (args.count("help") != 0) {
      std::printf("%s\n", cli.help().c_str());
      return 0;
    }
    o.workers = std::max(1u, args["workers"].as<unsigned>());
    o.trials = std::max(1, args["trials"].as<int>());
    o.bookkeeping_trials = std::max(1, args["bookkeeping-trials"].as<int>());
    o.samples = std::max(1, args["samples"].as<int>());
    o.max_t = std::max(1, args["max-t"].as<int>());
    o.repeats = std::max(1, args["repeats"].as<int>());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lumen-tune-bench: %s\n%s\n", e.what(), cli.help().c_str());
    return 2;
  }
  lumen::Runtime rt{{.workers = o.workers}};
  std::printf("lumen-tune-bench: medians of %d runs\n\n", o.repeats);
  bookkeeping(o);
  overhead(o);
  early_stopping(o);
}
