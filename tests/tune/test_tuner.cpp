// lumen::tune's Tuner end to end on a real runtime: trials as tasks within their slots,
// searchers' configs, stoppers, retries from checkpoints, the experiment's files, a restore
// after the process was killed, and the errors a bad setup gives before any trial runs.
#include <doctest/doctest.h>
#include <lumen/lumen.h>
#include <lumen/tune/tune.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kill_restore_trainable.h"

namespace {

namespace fs = std::filesystem;
using namespace lumen::tune;
using namespace std::chrono_literals;

// A fresh folder under the system's temporary one, removed at the end of the test.
struct TempFolder {
  fs::path path;
  TempFolder() {
    char tmpl[] = "/tmp/lumen-tune-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempFolder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream f(p);
  std::vector<std::string> out;
  for (std::string line; std::getline(f, line);) out.push_back(line);
  return out;
}

// Reports loss = (x - 0.3)^2 + 1/i for i = 1..iterations, a checkpoint with each.
TrainFunction quadratic(int iterations) {
  return [iterations](const Config& c, Reporter& r) {
    const double x = c.get<double>("x");
    for (std::int64_t i = r.iteration() + 1; i <= iterations; ++i)
      r.report({{"loss", (x - 0.3) * (x - 0.3) + 1.0 / static_cast<double>(i)}}, Checkpoint{std::to_string(i)});
  };
}

}  // namespace

TEST_CASE("random search runs num_samples times the grid, every trial to its end, and best() finds the minimum") {
  lumen::Runtime rt{{.workers = 2}};
  Tuner tuner(quadratic(5), ParamSpace{{"x", uniform(0, 1)}, {"g", grid_search({"a", "b", "c"})}, {"k", 7}},
              TuneConfig{.metric = "loss", .mode = "min", .num_samples = 4,
                         .searcher = std::make_shared<RandomSearch>(RandomSearchOptions{.seed = 11})},
              RunConfig{.progress = Progress::silent});
  const ResultGrid grid = tuner.fit();
  REQUIRE(grid.size() == 12);
  std::map<std::string, int> per_grid_value;
  double best = 1e9;
  for (const Trial& t : grid) {
    CHECK(t.status == TrialStatus::terminated);
    CHECK_FALSE(t.stopped_early);
    REQUIRE(t.results.size() == 5);
    for (std::size_t i = 0; i < 5; ++i) CHECK(t.results[i].training_iteration == static_cast<std::int64_t>(i + 1));
    CHECK(t.config.get<int>("k") == 7);
    ++per_grid_value[t.config.get<std::string>("g")];
    best = std::min(best, t.results.back().get("loss"));
  }
  CHECK(per_grid_value == std::map<std::string, int>{{"a", 4}, {"b", 4}, {"c", 4}});
  CHECK(grid.best().last_result()->get("loss") == best);
  CHECK(grid.num_terminated() == 12);
  CHECK(grid.num_errors() == 0);
}

TEST_CASE("the same seed gives the same trials; points_to_evaluate come first") {
  lumen::Runtime rt{{.workers = 2}};
  const auto configs = [](std::uint64_t seed) {
    Tuner tuner(quadratic(1), ParamSpace{{"x", uniform(0, 1)}, {"n", randint(0, 1000)}},
                TuneConfig{.num_samples = 6,
                           .searcher = std::make_shared<RandomSearch>(RandomSearchOptions{
                               .seed = seed, .points_to_evaluate = {{{"x", 0.25}}}})},
                RunConfig{.progress = Progress::silent});
    std::vector<std::string> out;
    for (const Trial& t : tuner.fit()) out.push_back(t.config.dump());
    return out;
  };
  const auto a = configs(42), b = configs(42), c = configs(43);
  CHECK(a.size() == 6);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(Config(nlohmann::json::parse(a[0])).get<double>("x") == 0.25);
}

TEST_CASE("no more trials run at once than the slots: workers / cpus_per_trial, and max_concurrent_trials") {
  lumen::Runtime rt{{.workers = 2}};
  for (int limit : {0, 1}) {
    std::atomic<int> now{0}, most{0};
    auto train = [&](const Config&, Reporter& r) {
      const int n = ++now;
      int m = most.load();
      while (n > m && !most.compare_exchange_weak(m, n)) {
      }
      std::this_thread::sleep_for(5ms);
      --now;
      r.report({{"v", 1}});
    };
    Tuner tuner(train, ParamSpace{{"x", uniform(0, 1)}},
                TuneConfig{.num_samples = 12, .max_concurrent_trials = limit}, RunConfig{.progress = Progress::silent});
    CHECK(tuner.fit().size() == 12);
    CHECK(most.load() <= (limit == 0 ? 2 : 1));
  }
}

TEST_CASE("trials hold their resources: one gpu among two workers runs one gpu trial at a time") {
  lumen::Runtime rt{{.workers = 2, .resources = {{"gpu", 1}}}};
  std::atomic<int> now{0}, most{0};
  auto train = [&](const Config&, Reporter& r) {
    const int n = ++now;
    int m = most.load();
    while (n > m && !most.compare_exchange_weak(m, n)) {
    }
    std::this_thread::sleep_for(3ms);
    --now;
    r.report({{"v", 1}});
  };
  Tuner tuner(train, ParamSpace{{"x", uniform(0, 1)}}, TuneConfig{.num_samples = 8, .resources_per_trial = {{"gpu", 1}}},
              RunConfig{.progress = Progress::silent});
  CHECK(tuner.fit().num_terminated() == 8);
  CHECK(most.load() == 1);
}

TEST_CASE("a trial may use lumen's parallel loops inside") {
  lumen::Runtime rt{{.workers = 2}};
  auto train = [](const Config& c, Reporter& r) {
    const auto n = c.get<std::int64_t>("n");
    for (int epoch = 0; epoch < 3; ++epoch) {
      const std::int64_t sum =
          lumen::parallel_reduce(std::int64_t{0}, n, std::int64_t{0}, [](std::int64_t i) { return i; }, std::plus<>());
      r.report({{"sum", static_cast<double>(sum)}});
    }
  };
  Tuner tuner(train, ParamSpace{{"n", grid_search({1000, 100000})}}, {}, RunConfig{.progress = Progress::silent});
  const ResultGrid grid = tuner.fit();
  CHECK(grid[0].last_result()->get("sum") == 999.0 * 1000 / 2);
  CHECK(grid[1].last_result()->get("sum") == 99999.0 * 100000 / 2);
}

TEST_CASE("a stopper ends trials that would run forever, as terminated (not stopped early: it is their end)") {
  lumen::Runtime rt{{.workers = 2}};
  auto forever = [](const Config&, Reporter& r) {
    for (;;) r.report({{"v", static_cast<double>(r.iteration())}});
  };
  Tuner tuner(forever, ParamSpace{{"x", uniform(0, 1)}}, TuneConfig{.num_samples = 3},
              RunConfig{.stop = any_of({max_iterations(4), stop_trial_when([](const std::string&, const Result& r) {
                                          return r.get("v") >= 100;
                                        })}),
                        .progress = Progress::silent});
  for (const Trial& t : tuner.fit()) {
    CHECK(t.results.size() == 4);
    CHECK(t.status == TrialStatus::terminated);
    CHECK_FALSE(t.stopped_early);
  }
}

TEST_CASE("the experiment's time budget stops every trial, running or not yet started") {
  lumen::Runtime rt{{.workers = 2}};
  auto forever = [](const Config&, Reporter& r) {
    for (;;) {
      std::this_thread::sleep_for(2ms);
      r.report({{"v", 1}});
    }
  };
  Tuner tuner(forever, ParamSpace{{"x", uniform(0, 1)}}, TuneConfig{.num_samples = 5, .time_budget = 200ms},
              RunConfig{.progress = Progress::silent});
  const ResultGrid grid = tuner.fit();
  CHECK(grid.size() >= 2);
  for (const Trial& t : grid) {
    CHECK(t.status == TrialStatus::terminated);
    CHECK(t.stopped_early);
  }
}

TEST_CASE("a trial that throws is retried from its latest checkpoint up to max_failures, then errored") {
  lumen::Runtime rt{{.workers = 2}};
  for (int max_failures : {0, 1, 2}) {
    std::mutex m;
    std::map<std::string, std::vector<std::int64_t>> starts;  // trial -> iteration it started from
    auto flaky = [&](const Config& c, Reporter& r) {
      {
        std::lock_guard lock(m);
        starts[r.trial_id()].push_back(r.checkpoint() != nullptr ? r.checkpoint()->training_iteration : -1);
      }
      for (std::int64_t i = r.iteration() + 1; i <= 6; ++i) {
        // Trial "bad" fails at iteration 4 of its first two runs; a checkpoint comes every 3.
        if (c.get<std::string>("kind") == "bad" && i == 4 && starts[r.trial_id()].size() <= 2)
          throw std::runtime_error("diverged at 4");
        if (i % 3 == 0) {
          r.report({{"i", static_cast<double>(i)}}, Checkpoint{"state"});
        } else {
          r.report({{"i", static_cast<double>(i)}});
        }
      }
    };
    Tuner tuner(flaky, ParamSpace{{"kind", grid_search({"good", "bad"})}}, TuneConfig{.num_samples = 1},
                RunConfig{.max_failures = max_failures, .progress = Progress::silent});
    const ResultGrid grid = tuner.fit();
    REQUIRE(grid.size() == 2);
    const Trial& good = grid[0];
    const Trial& bad = grid[1];
    CHECK(good.status == TrialStatus::terminated);
    CHECK(good.results.size() == 6);
    if (max_failures < 2) {
      CHECK(bad.status == TrialStatus::error);
      CHECK(bad.error == "diverged at 4");
      CHECK(bad.failures == max_failures + 1);
      CHECK(grid.num_errors() == 1);
    } else {
      CHECK(bad.status == TrialStatus::terminated);
      REQUIRE(bad.results.size() == 6);
      for (std::size_t i = 0; i < 6; ++i) CHECK(bad.results[i].training_iteration == static_cast<std::int64_t>(i + 1));
      // Each retry resumed from the checkpoint of iteration 3.
      CHECK(starts[bad.id] == std::vector<std::int64_t>{-1, 3, 3});
    }
  }
}

TEST_CASE("a class trainable: setup, step, save and load, and a step that says done") {
  struct Counter : Trainable {
    int n = 0, step_size = 0;
    void setup(const Config& c) override { step_size = c.get<int>("step"); }
    Metrics step() override {
      n += step_size;
      return {{"n", n}, {"done", n >= 10 ? 1.0 : 0.0}};
    }
    std::optional<std::string> save() override { return std::to_string(n); }
    void load(const std::string& bytes) override { n = std::stoi(bytes); }
  };
  lumen::Runtime rt{{.workers = 2}};
  Tuner tuner(from_class<Counter>(), ParamSpace{{"step", grid_search({1, 5})}}, TuneConfig{.metric = "n", .mode = "max"},
              RunConfig{.progress = Progress::silent});
  const ResultGrid grid = tuner.fit();
  CHECK(grid[0].results.size() == 10);
  CHECK(grid[1].results.size() == 2);
  CHECK(grid[1].checkpoint->bytes == "10");
  CHECK(grid.best().last_result()->get("n") == 10);
}

TEST_CASE("a bad setup throws usage_error before any trial runs") {
  lumen::Runtime rt{{.workers = 2}};
  std::atomic<int> ran{0};
  auto counting = [&](const Config&, Reporter& r) {
    ++ran;
    r.report({{"loss", 1}});
  };
  const ParamSpace space{{"x", uniform(0, 1)}};
  const auto fit_error = [&](ParamSpace s, TuneConfig tc, RunConfig rc = {}) {
    rc.progress = Progress::silent;
    Tuner tuner(counting, std::move(s), std::move(tc), std::move(rc));
    try {
      tuner.fit();
    } catch (const lumen::usage_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(fit_error(ParamSpace{}, {}).find("search space is empty") != std::string::npos);
  CHECK(fit_error(space, {.metric = "loss", .mode = "maximize"}).find("\"min\" or \"max\", not \"maximize\"") !=
        std::string::npos);
  CHECK(fit_error(space, {.metric = "loss"}).find("needs a mode") != std::string::npos);
  CHECK(fit_error(space, {.mode = "min"}).find("without a metric") != std::string::npos);
  CHECK(fit_error(space, {.num_samples = 0}).find("num_samples must be at least 1") != std::string::npos);
  CHECK(fit_error(space, {.num_samples = -5}).find("num_samples") != std::string::npos);
  CHECK(fit_error(space, {.max_concurrent_trials = -1}).find("max_concurrent_trials") != std::string::npos);
  CHECK(fit_error(space, {.cpus_per_trial = 3}).find("needs 3") != std::string::npos);
  CHECK(fit_error(space, {.cpus_per_trial = std::nan("")}).find("cpus_per_trial") != std::string::npos);
  CHECK(fit_error(space, {.cpus_per_trial = 0.5}).find("whole number") != std::string::npos);
  CHECK(fit_error(space, {.resources_per_trial = {{"gpu", 1}}}).find("unknown resource 'gpu'") != std::string::npos);
  CHECK(fit_error(space, {}, {.max_failures = -2}).find("max_failures") != std::string::npos);
  CHECK(fit_error(space, {}, {.storage_path = "/proc/no-such/place"}).find("/proc/no-such/place") != std::string::npos);
  // A file where the folder should be.
  TempFolder tmp;
  std::ofstream(tmp.path / "file") << "x";
  CHECK(fit_error(space, {}, {.name = "exp", .storage_path = (tmp.path / "file").string()}).find("cannot create") !=
        std::string::npos);
  // A folder that already holds an experiment: a new one would mix its files with the old.
  CHECK(fit_error(space, {}, {.name = "exp", .storage_path = tmp.path.string()}) == "no error");
  CHECK(fit_error(space, {}, {.name = "exp", .storage_path = tmp.path.string()}).find("already holds an experiment") !=
        std::string::npos);
  CHECK(ran.load() == 1);
}

TEST_CASE("best() of a metric no trial reports names it; a reserved metric name fails the trial with a clear error") {
  lumen::Runtime rt{{.workers = 2}};
  Tuner tuner(quadratic(2), ParamSpace{{"x", uniform(0, 1)}}, TuneConfig{.metric = "accuracy", .mode = "max"},
              RunConfig{.progress = Progress::silent});
  const ResultGrid grid = tuner.fit();
  CHECK_THROWS_WITH_AS(grid.best(), doctest::Contains("no trial reported the metric \"accuracy\""), lumen::usage_error);
  CHECK(grid.best("loss", "min").results.size() == 2);
  CHECK_THROWS_AS(grid.best("loss", "lowest"), lumen::usage_error);

  Tuner reserved([](const Config&, Reporter& r) { r.report({{"training_iteration", 3}}); },
                 ParamSpace{{"x", uniform(0, 1)}}, {}, RunConfig{.progress = Progress::silent});
  const ResultGrid g2 = reserved.fit();
  CHECK(g2[0].status == TrialStatus::error);
  CHECK(g2[0].error.find("set by the tuner") != std::string::npos);
}

TEST_CASE("fit() from a task, or twice, is a usage_error") {
  lumen::Runtime rt{{.workers = 2}};
  Tuner tuner(quadratic(1), ParamSpace{{"x", uniform(0, 1)}}, {}, RunConfig{.progress = Progress::silent});
  auto ref = lumen::submit([&] { return tuner.fit().size(); });
  CHECK_THROWS_WITH_AS(lumen::get(ref), doctest::Contains("from a lumen task"), lumen::usage_error);
  Tuner again(quadratic(1), ParamSpace{{"x", uniform(0, 1)}}, {}, RunConfig{.progress = Progress::silent});
  CHECK(again.fit().size() == 1);
  CHECK_THROWS_WITH_AS(again.fit(), doctest::Contains("called twice"), lumen::usage_error);
}

TEST_CASE("the experiment's folder: settings, journal, params, results, progress, the newest checkpoints, csv, svg") {
  lumen::Runtime rt{{.workers = 2}};
  TempFolder tmp;
  Tuner tuner(quadratic(6), ParamSpace{{"x", uniform(0, 1)}, {"opt", {{"lr", loguniform(1e-3, 1e-1)}}}},
              TuneConfig{.metric = "loss", .mode = "min", .num_samples = 3},
              RunConfig{.name = "exp", .storage_path = tmp.path.string(), .checkpoints_to_keep = 2,
                        .progress = Progress::silent});
  const ResultGrid grid = tuner.fit();
  const fs::path exp = tmp.path / "exp";
  CHECK(grid.path() == exp.string());
  CHECK(nlohmann::json::parse(std::ifstream(exp / "experiment.json")).at("metric") == "loss");
  const auto journal = lines_of(exp / "trials.jsonl");
  CHECK(std::count_if(journal.begin(), journal.end(), [](const std::string& l) { return l.find("\"add\"") != std::string::npos; }) == 3);
  CHECK(std::count_if(journal.begin(), journal.end(), [](const std::string& l) { return l.find("\"end\"") != std::string::npos; }) == 3);
  for (const Trial& t : grid) {
    const fs::path dir = exp / ("trial_" + t.id);
    CHECK(Config(nlohmann::json::parse(std::ifstream(dir / "params.json"))) == t.config);
    const auto results = lines_of(dir / "result.json");
    REQUIRE(results.size() == 6);
    CHECK(nlohmann::json::parse(results[5]).at("training_iteration") == 6);
    CHECK(nlohmann::json::parse(results[5]).at("loss").get<double>() == t.results[5].get("loss"));
    const auto progress = lines_of(dir / "progress.csv");
    REQUIRE(progress.size() == 7);
    CHECK(progress[0] == "training_iteration,time_this_iter_s,time_total_s,loss");
    std::set<std::string> checkpoints;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().rfind("checkpoint_", 0) == 0) checkpoints.insert(e.path().filename().string());
    CHECK(checkpoints == std::set<std::string>{"checkpoint_000005.bin", "checkpoint_000006.bin"});
  }
  const auto csv = lines_of(exp / "results.csv");
  REQUIRE(csv.size() == 4);
  CHECK(csv[0].find("config/opt/lr") != std::string::npos);
  const auto svg = lines_of(exp / "curves.svg");
  REQUIRE_FALSE(svg.empty());
  CHECK(std::any_of(svg.begin(), svg.end(), [](const std::string& l) { return l.find("<svg") != std::string::npos; }));
}

TEST_CASE("progress lines name the trials by state and the best so far") {
  lumen::Runtime rt{{.workers = 2}};
  std::FILE* out = std::tmpfile();
  REQUIRE(out != nullptr);
  Tuner tuner(quadratic(3), ParamSpace{{"x", uniform(0, 1)}}, TuneConfig{.metric = "loss", .mode = "min", .num_samples = 4},
              RunConfig{.progress = Progress::lines, .progress_out = out});
  tuner.fit();
  std::rewind(out);
  std::string text(4096, '\0');
  text.resize(std::fread(text.data(), 1, text.size(), out));
  std::fclose(out);
  CHECK(text.find("finished in") != std::string::npos);
  CHECK(text.find("4 TERMINATED") != std::string::npos);
  CHECK(text.find("best loss") != std::string::npos);
}

TEST_CASE("an experiment killed with SIGKILL is restored: ended trials are not run again, the others resume from their checkpoints") {
  const char* child = std::getenv("LUMEN_TUNE_CHILD");
  REQUIRE_MESSAGE(child != nullptr, "LUMEN_TUNE_CHILD names the child program");
  TempFolder tmp;
  const fs::path exp = tmp.path / "killed";
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::execl(child, child, tmp.path.c_str(), "killed", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Kill it once three trials have ended and others have checkpoints.
  const auto ended_in_journal = [&] {
    std::set<std::string> ended;
    for (const auto& l : lines_of(exp / "trials.jsonl")) {
      try {
        const auto j = nlohmann::json::parse(l);
        if (j.at("event") == "end") ended.insert(j.at("trial").get<std::string>());
      } catch (const nlohmann::json::exception&) {
      }
    }
    return ended;
  };
  for (int i = 0; i < 3000 && ended_in_journal().size() < 3; ++i) std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(50ms);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  const std::set<std::string> ended = ended_in_journal();
  REQUIRE(ended.size() >= 3);
  REQUIRE(ended.size() < 8);

  lumen::Runtime rt{{.workers = 2}};
  std::mutex m;
  std::map<std::string, std::int64_t> resumed_from;
  auto recording = [&](const Config& c, Reporter& r) {
    {
      std::lock_guard lock(m);
      resumed_from[r.trial_id()] = r.checkpoint() != nullptr ? r.checkpoint()->training_iteration : 0;
    }
    kill_restore_trainable(c, r);
  };
  Tuner restored = Tuner::restore(exp.string(), recording, kill_restore_space(),
                                  TuneConfig{.searcher = std::make_shared<RandomSearch>(RandomSearchOptions{.seed = 5})},
                                  RunConfig{.progress = Progress::silent});
  const ResultGrid grid = restored.fit();
  REQUIRE(grid.size() == 8);
  std::set<std::string> ids;
  for (const Trial& t : grid) {
    ids.insert(t.id);
    CHECK(t.status == TrialStatus::terminated);
    REQUIRE(t.results.size() == 10);
    for (std::size_t i = 0; i < 10; ++i) CHECK(t.results[i].training_iteration == static_cast<std::int64_t>(i + 1));
    if (ended.count(t.id) != 0) CHECK_MESSAGE(resumed_from.count(t.id) == 0, "trial " << t.id << " ended before the kill and ran again");
  }
  CHECK(ids.size() == 8);
  // Some unfinished trial had a checkpoint and resumed from it rather than from scratch.
  std::int64_t furthest = 0;
  for (const auto& [id, from] : resumed_from) {
    CHECK(from % 2 == 0);
    furthest = std::max(furthest, from);
  }
  CHECK(furthest > 0);
  MESSAGE(ended.size() << " trials ended before the kill; " << resumed_from.size() << " ran after the restore");
}

namespace {

// A curve with a known best: loss(t) = (x - 0.3)^2 + 0.5 / t, its state (t) checkpointed at
// every report, so that pauses, exploits and retries resume where the checkpoint says.
struct Curve : Trainable {
  double x = 0;
  std::int64_t t = 0;
  void setup(const Config& c) override { x = c.get<double>("x"); }
  Metrics step() override {
    // A millisecond per step, so that trials overlap in time as real ones do (PBT compares the
    // trials running beside each other).
    std::this_thread::sleep_for(1ms);
    ++t;
    return {{"loss", (x - 0.3) * (x - 0.3) + 0.5 / static_cast<double>(t)}};
  }
  std::optional<std::string> save() override { return std::to_string(t); }
  void load(const std::string& bytes) override { t = std::stoll(bytes); }
};

// Every trial's reports are numbered 1, 2, ... without a gap or a repeat.
void check_iterations_continuous(const ResultGrid& grid) {
  for (const Trial& t : grid)
    for (std::size_t i = 0; i < t.results.size(); ++i)
      CHECK_MESSAGE(t.results[i].training_iteration == static_cast<std::int64_t>(i + 1),
                    "trial " << t.id << " report " << i << " is iteration " << t.results[i].training_iteration);
}

}  // namespace

TEST_CASE("schedulers that pause trials run through the tuner: ASHA's promotion and HyperBand end with every trial terminated") {
  lumen::Runtime rt{{.workers = 2}};
  const ParamSpace space{{"x", uniform(0, 1)}};
  for (int which = 0; which < 2; ++which) {
    std::shared_ptr<TrialScheduler> scheduler;
    if (which == 0) {
      scheduler = std::make_shared<AshaScheduler>(AshaOptions{.max_t = 9, .grace_period = 1, .reduction_factor = 3,
                                                              .promotion = true});
    } else {
      scheduler = std::make_shared<HyperBandScheduler>(HyperBandOptions{.max_t = 9, .reduction_factor = 3});
    }
    Tuner tuner(from_class<Curve>(), space,
                TuneConfig{.metric = "loss", .mode = "min", .num_samples = 18, .scheduler = scheduler,
                           .searcher = std::make_shared<RandomSearch>(RandomSearchOptions{.seed = 3})},
                RunConfig{.stop = max_iterations(9), .progress = Progress::silent});
    const ResultGrid grid = tuner.fit();
    CHECK(grid.size() == 18);
    std::size_t full = 0, cut = 0;
    for (const Trial& t : grid) {
      CHECK(t.status == TrialStatus::terminated);
      full += t.results.size() == 9;
      cut += t.results.size() < 9;
    }
    check_iterations_continuous(grid);
    CHECK(full >= 1);
    CHECK(cut >= 9);
    // The trial trained to the end is the best of those that reached the end.
    CHECK(grid.best().results.size() == 9);
    MESSAGE(scheduler->name() << ": " << full << " trials ran 9 iterations, " << cut << " were cut");
  }
}

TEST_CASE("PBT through the tuner: laggards take a leader's checkpoint and a perturbed config, and go on from there") {
  lumen::Runtime rt{{.workers = 2}};
  auto pbt = std::make_shared<PopulationBasedTraining>(
      PbtOptions{.perturbation_interval = 3, .hyperparam_mutations = {{"x", uniform(0, 1)}}, .seed = 9});
  // Both trials start before either trains, so that they run beside each other however the
  // machine schedules them.
  std::atomic<int> started{0};
  auto curve = from_class<Curve>();
  auto side_by_side = [&](const Config& c, Reporter& r) {
    ++started;
    for (int i = 0; i < 10000 && started.load() < 2; ++i) std::this_thread::sleep_for(1ms);
    curve(c, r);
  };
  Tuner tuner(side_by_side, ParamSpace{{"x", uniform(0, 1)}},
              TuneConfig{.metric = "loss", .mode = "min", .num_samples = 2, .scheduler = pbt,
                         .searcher = std::make_shared<RandomSearch>(RandomSearchOptions{
                             .seed = 1, .points_to_evaluate = {{{"x", 0.3}}, {{"x", 0.95}}}})},
              RunConfig{.stop = max_iterations(12), .progress = Progress::silent});
  const ResultGrid grid = tuner.fit();
  REQUIRE(grid.size() == 2);
  REQUIRE_FALSE(pbt->exploits().empty());
  for (const PbtExploit& e : pbt->exploits()) {
    CHECK(e.trial_id == "00001");  // the laggard, far from the optimum
    CHECK(e.donor_id == "00000");
  }
  // After its exploits the laggard's config is the leader's, explored: x times 1.2 or 0.8, or
  // drawn afresh; and it finished from the leader's state rather than its own.
  CHECK(grid[1].config.get<double>("x") != 0.95);
  CHECK(grid[1].status == TrialStatus::terminated);
  CHECK(grid[1].last_result()->training_iteration <= 12);
}
