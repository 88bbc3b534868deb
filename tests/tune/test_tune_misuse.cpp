// lumen::tune misused: extreme arguments, damaged experiment folders, racing and reused
// objects, trainables that fight the tuner. Each test states the behaviour the headers and
// docs/tune.md promise: bad input gets a clear usage_error, every trial resolves, nothing hangs.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lumen/error.h"
#include "lumen/runtime.h"
#include "lumen/task.h"
#include "lumen/tune/tune.h"

namespace fs = std::filesystem;
using namespace lumen::tune;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

fs::path scratch(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("lumen_tune_misuse_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void spit(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary | std::ios::trunc) << s; }

RunConfig quiet(std::string name = {}, std::string storage = {}) {
  RunConfig rc;
  rc.name = std::move(name);
  rc.storage_path = std::move(storage);
  rc.progress = Progress::silent;
  return rc;
}

// Reports x + i for i in [start, 5), with a checkpoint holding the next i; logs where each run
// started from ("00000:3" = trial 00000 resumed at i = 3).
struct Logged {
  std::mutex mu;
  std::vector<std::string> runs;
  TrainFunction fn() {
    return [this](const Config& c, Reporter& r) {
      int start = 0;
      if (const Checkpoint* ck = r.checkpoint()) start = std::stoi(ck->bytes);
      {
        std::lock_guard<std::mutex> l(mu);
        runs.push_back(r.trial_id() + ":" + std::to_string(start));
      }
      for (int i = start; i < 5; i++) r.report({{"m", c.get<double>("x") + i}}, Checkpoint{std::to_string(i + 1)});
    };
  }
};

TuneConfig seeded3() {
  TuneConfig tc;
  tc.metric = "m";
  tc.mode = "max";
  tc.num_samples = 3;
  tc.searcher = std::make_shared<RandomSearch>(RandomSearchOptions{.seed = 1});
  return tc;
}

// Runs the three-trial experiment "e" under base to its end.
void run_finished_experiment(Logged& log, const fs::path& base) {
  Tuner t(log.fn(), ParamSpace{{"x", uniform(0, 1)}}, seeded3(), quiet("e", base.string()));
  t.fit();
}

// A Tuner continuing experiment "e" under base.
Tuner restore_experiment(Logged& log, const fs::path& base) {
  return Tuner::restore((base / "e").string(), log.fn(), ParamSpace{{"x", uniform(0, 1)}}, seeded3(), quiet());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Domains

TEST_CASE("domains whose draws would overflow a double are refused when made") {
  // uniform(-1e308, 1e308): high - low is inf. A q so small that value / q overflows, likewise.
  CHECK_THROWS_WITH_AS(uniform(-1e308, 1e308), doctest::Contains("too wide"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(quniform(0, 1, 1e-320), doctest::Contains("too small"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(quniform(0, 1e300, 1e-300), doctest::Contains("too small"), lumen::usage_error);
  CHECK_THROWS_AS(qrandn(0, 1, 1e-320), lumen::usage_error);
  CHECK_THROWS_AS(randn(0, 1e307), lumen::usage_error);
  CHECK_THROWS_AS(qloguniform(1e-300, 1e300, 1e-310), lumen::usage_error);
  // What is allowed draws finite values inside the bounds, the upper one excluded.
  Rng rng(1);
  const Config none;
  for (const Domain& d : {uniform(-1e307, 1e307), loguniform(1e-300, 1e300), uniform(0, 1e-300)}) {
    for (int i = 0; i < 200; i++) {
      const nlohmann::json v = d.sample(rng, none);
      CHECK_MESSAGE(std::isfinite(v.get<double>()), d.describe());
      CHECK_MESSAGE(d.contains(v), d.describe() << " gave " << v.dump());
    }
  }
  CHECK_FALSE(uniform(0, 5).contains(5.0));
  CHECK(quniform(0, 5, 1).contains(5.0));
}

TEST_CASE("a real domain does not contain NaN") {
  // Domain::contains: "Whether v is a value this domain can give". uniform never gives NaN.
  CHECK_FALSE(uniform(0, 5).contains(kNaN));
  CHECK_FALSE(loguniform(1, 5).contains(kNaN));
  CHECK_FALSE(quniform(0, 5, 1).contains(kNaN));
}

// ---------------------------------------------------------------------------------------------
// Tuner options

TEST_CASE("an infinite or very large time_budget runs every trial") {
  // TuneConfig::time_budget: "0: none". A budget of inf (or 1e10 s, about 317 years) is
  // effectively none; it must not end the experiment before its first trial.
  lumen::Runtime rt(lumen::Config{.workers = 2});
  for (double budget : {kInf, 1e10, 1e18}) {
    CAPTURE(budget);
    TuneConfig tc;
    tc.num_samples = 3;
    tc.time_budget = std::chrono::duration<double>(budget);
    Tuner t([](const Config&, Reporter& r) { r.report({{"m", 1}}); }, ParamSpace{{"x", uniform(0, 1)}}, tc, quiet());
    ResultGrid g = t.fit();
    CHECK(g.size() == 3);
    CHECK(g.num_terminated() == 3);
  }
}

TEST_CASE("RunConfig::name cannot leave storage_path") {
  // name is "the experiment's folder under storage_path"; "../x" put the experiment beside it.
  fs::path base = scratch("escape");
  lumen::Runtime rt(lumen::Config{.workers = 2});
  Tuner t([](const Config&, Reporter& r) { r.report({{"m", 1}}); }, ParamSpace{{"x", 1}}, TuneConfig{},
          quiet("../lumen_tune_hostile_escaped", (base / "store").string()));
  fs::remove_all(base / "lumen_tune_hostile_escaped");
  fs::remove_all(fs::temp_directory_path() / "lumen_tune_hostile_escaped");
  CHECK_THROWS_AS(t.fit(), lumen::usage_error);
  CHECK_FALSE(fs::exists(fs::temp_directory_path() / "lumen_tune_hostile_escaped"));
}

// ---------------------------------------------------------------------------------------------
// Storage and restore

TEST_CASE("two Tuners started at once on one storage folder: only one may run") {
  // docs/tune.md: "a folder that already holds an experiment ... throws usage_error from fit()".
  // Two fits racing for the same new folder both passed the check about 1 time in 5, and wrote
  // 12 "add" lines into one trials.jsonl and two trials' reports into one result.json.
  lumen::Runtime rt(lumen::Config{.workers = 2});
  auto train = [](const Config& c, Reporter& r) {
    for (int i = 0; i < 5; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      r.report({{"m", c.get<double>("x") + i}});
    }
  };
  for (int round = 0; round < 40; round++) {
    CAPTURE(round);
    fs::path base = scratch("shared");
    TuneConfig tc;
    tc.metric = "m";
    tc.mode = "max";
    tc.num_samples = 4;
    Tuner a(train, ParamSpace{{"x", uniform(0, 1)}}, tc, quiet("same", base.string()));
    Tuner b(train, ParamSpace{{"x", uniform(0, 1)}}, tc, quiet("same", base.string()));
    int ok = 0, refused = 0;
    std::mutex mu;
    auto go = [&](Tuner& t) {
      try {
        t.fit();
        std::lock_guard<std::mutex> l(mu);
        ok++;
      } catch (const lumen::usage_error&) {
        std::lock_guard<std::mutex> l(mu);
        refused++;
      }
    };
    std::thread ta([&] { go(a); });
    std::thread tb([&] { go(b); });
    ta.join();
    tb.join();
    REQUIRE(ok == 1);
    REQUIRE(refused == 1);
  }
}

TEST_CASE("restore of an experiment.json that is valid JSON but not an object throws usage_error") {
  // Tuner::restore: "Throws usage_error when path holds no experiment." A JSON array there
  // escaped as nlohmann::json::type_error ("cannot use value() with array").
  fs::path base = scratch("exp_array");
  lumen::Runtime rt(lumen::Config{.workers = 2});
  Logged log;
  run_finished_experiment(log, base);
  spit(base / "e" / "experiment.json", "[1,2]");
  CHECK_THROWS_AS(restore_experiment(log, base),
                  lumen::usage_error);
}

TEST_CASE("a corrupted line inside trials.jsonl is not silently taken for a fresh experiment") {
  // docs/tune.md: on restore "trials that ended are not run again". With the first line of a
  // finished experiment's trials.jsonl damaged (not a torn tail), restore ran every trial again
  // from scratch, overwriting their folders, without a word. Expected: usage_error naming the
  // file and line, or the intact lines honoured (finished trials not rerun).
  fs::path base = scratch("corrupt_line");
  lumen::Runtime rt(lumen::Config{.workers = 2});
  Logged log;
  run_finished_experiment(log, base);
  std::string s = slurp(base / "e" / "trials.jsonl");
  const auto nl = s.find('\n');
  REQUIRE(nl != std::string::npos);
  spit(base / "e" / "trials.jsonl", s.substr(0, nl - 5) + s.substr(nl));
  log.runs.clear();
  bool threw = false;
  try {
    Tuner t = restore_experiment(log, base);
    t.fit();
  } catch (const lumen::usage_error&) {
    threw = true;
  }
  if (!threw) {
    // Trials 00001 and 00002 ended according to intact lines: they must not run again.
    for (const std::string& r : log.runs) CHECK_MESSAGE(r.rfind("00000", 0) == 0, "reran " << r);
  }
}

TEST_CASE("a damaged newest checkpoint falls back to the previous good one") {
  // docs/tune.md: unfinished trials "resume from their newest checkpoint on disk (or from
  // scratch without one)". A deleted newest checkpoint falls back to checkpoint_000004; a
  // truncated one (or a junk checkpoint_999999.bin) made the trial restart from scratch even
  // though checkpoint_000004.bin is intact.
  fs::path base = scratch("bad_ckpt");
  lumen::Runtime rt(lumen::Config{.workers = 2});
  Logged log;
  run_finished_experiment(log, base);
  // Make the experiment look killed: drop the "end" lines.
  std::ifstream in(base / "e" / "trials.jsonl");
  std::string line, kept;
  while (std::getline(in, line))
    if (line.find("\"end\"") == std::string::npos) kept += line + "\n";
  in.close();
  spit(base / "e" / "trials.jsonl", kept);
  fs::path newest = base / "e" / "trial_00000" / "checkpoint_000005.bin";
  REQUIRE(fs::exists(newest));
  std::string bytes = slurp(newest);
  spit(newest, bytes.substr(0, bytes.size() / 2));
  log.runs.clear();
  Tuner t = restore_experiment(log, base);
  ResultGrid g = t.fit();
  CHECK(g.num_errors() == 0);
  bool found = false;
  for (const std::string& r : log.runs)
    if (r.rfind("00000:", 0) == 0) {
      found = true;
      CHECK(r == "00000:4");
    }
  CHECK(found);
}

TEST_CASE("a non-finite config value is refused up front: the experiment's JSON files could not hold it") {
  // Written to params.json and trials.jsonl, NaN becomes null, and a restored trial would read
  // null where the original read a number.
  CHECK_THROWS_WITH_AS(ParamSpace({{"x", uniform(0, 1)}, {"c", kNaN}}), doctest::Contains("\"c\" is not a finite number"),
                       lumen::usage_error);
  CHECK_THROWS_AS(ParamSpace({{"c", kInf}}), lumen::usage_error);
  CHECK_THROWS_AS(ParamSpace({{"nested", {{"c", -kInf}}}}), lumen::usage_error);
}

// ---------------------------------------------------------------------------------------------
// Searchers and schedulers

TEST_CASE("a searcher instance given to a second Tuner runs its trials or is refused") {
  // A RandomSearch (or TpeSearch) reused by a second Tuner gave it zero trials, silently:
  // fit() returned an empty ResultGrid with num_samples = 3.
  lumen::Runtime rt(lumen::Config{.workers = 2});
  auto train = [](const Config& c, Reporter& r) { r.report({{"m", c.get<double>("x")}}); };
  auto searcher = std::make_shared<RandomSearch>(RandomSearchOptions{.seed = 3});
  TuneConfig tc;
  tc.metric = "m";
  tc.mode = "min";
  tc.num_samples = 3;
  tc.searcher = searcher;
  {
    Tuner t(train, ParamSpace{{"x", uniform(0, 1)}}, tc, quiet());
    CHECK(t.fit().size() == 3);
  }
  Tuner t2(train, ParamSpace{{"x", uniform(0, 1)}}, tc, quiet());
  bool refused = false;
  std::size_t n = 0;
  try {
    n = t2.fit().size();
  } catch (const lumen::usage_error&) {
    refused = true;
  }
  CHECK((refused || n == 3));
}

TEST_CASE("AshaScheduler refuses a reduction_factor that makes millions of rungs") {
  // reduction_factor only has to be > 1. 1.00001 with max_t = 1e6 built 1.4 million rungs
  // (3.4 s, 390 MB); 1.000001 ran out of memory (std::bad_alloc after 16 s under a 4 GB limit;
  // unbounded, it swaps or is OOM-killed). HyperBand refuses the same with "more than 40
  // brackets"; ASHA should refuse with usage_error naming the option.
  CHECK_THROWS_AS(AshaScheduler(AshaOptions{.max_t = 1e6, .reduction_factor = 1.00001}), lumen::usage_error);
}

// ---------------------------------------------------------------------------------------------
// Things that held up (kept as regression checks)

TEST_CASE("fit() from a lumen task and a second concurrent fit() both throw usage_error") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  auto train = [](const Config&, Reporter& r) { r.report({{"m", 1}}); };
  auto ref = lumen::submit([train] {
    Tuner t(train, ParamSpace{{"x", 1}}, TuneConfig{}, quiet());
    try {
      t.fit();
      return false;
    } catch (const lumen::usage_error&) {
      return true;
    }
  });
  CHECK(lumen::get(ref));

  Tuner t(
      [](const Config&, Reporter& r) {
        for (int i = 0; i < 5; i++) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          r.report({{"m", 1}});
        }
      },
      ParamSpace{{"x", uniform(0, 1)}}, TuneConfig{.num_samples = 4}, quiet());
  int usage = 0, ok = 0;
  std::mutex mu;
  auto go = [&] {
    try {
      t.fit();
      std::lock_guard<std::mutex> l(mu);
      ok++;
    } catch (const lumen::usage_error&) {
      std::lock_guard<std::mutex> l(mu);
      usage++;
    }
  };
  std::thread a(go), b(go);
  a.join();
  b.join();
  CHECK(ok == 1);
  CHECK(usage == 1);
}

TEST_CASE("a trainable that swallows TrialStopped gets it again and the trial still ends") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  int caught = 0;
  Tuner t(
      [&caught](const Config&, Reporter& r) {
        for (int i = 0; i < 20; i++) {
          try {
            r.report({{"m", double(i)}});
          } catch (const TrialStopped&) {
            caught++;
          }
        }
      },
      ParamSpace{{"x", 1}}, TuneConfig{}, RunConfig{.stop = max_iterations(3), .progress = Progress::silent});
  ResultGrid g = t.fit();
  REQUIRE(g.size() == 1);
  CHECK(g[0].status == TrialStatus::terminated);
  CHECK(g[0].results.size() == 3);
  CHECK(caught == 18);  // the 3rd report is recorded and throws; so do the 17 after it
}

TEST_CASE("non-std exceptions fail the trial with a message, retries counted") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  Tuner t([](const Config&, Reporter&) { throw 42; }, ParamSpace{{"x", 1}}, TuneConfig{.num_samples = 2},
          RunConfig{.max_failures = 1, .progress = Progress::silent});
  ResultGrid g = t.fit();
  CHECK(g.num_errors() == 2);
  for (const Trial& tr : g) {
    CHECK(tr.failures == 2);
    CHECK_FALSE(tr.error.empty());
  }
}

TEST_CASE("small misuses each get a clear usage_error") {
  lumen::Runtime rt(lumen::Config{.workers = 2});
  // A metric reported twice in one report fails the trial with a message naming it.
  Tuner twice([](const Config&, Reporter& r) { r.report({{"m", 1}, {"m", 2}}); }, ParamSpace{{"x", 1}}, TuneConfig{},
              quiet());
  const ResultGrid g = twice.fit();
  CHECK(g[0].status == TrialStatus::error);
  CHECK(g[0].error.find("\"m\" is reported twice") != std::string::npos);
  // A name that is not one folder, a progress interval that is not a duration.
  for (const char* name : {".", "..", "a/b", "/abs"}) {
    Tuner t([](const Config&, Reporter& r) { r.report({{"m", 1}}); }, ParamSpace{{"x", 1}}, TuneConfig{},
            quiet(name, scratch("names").string()));
    CHECK_THROWS_WITH_AS(t.fit(), doctest::Contains("must be a folder name"), lumen::usage_error);
  }
  RunConfig nan_interval = quiet();
  nan_interval.progress_interval = std::chrono::duration<double>(kNaN);
  Tuner t([](const Config&, Reporter& r) { r.report({{"m", 1}}); }, ParamSpace{{"x", 1}}, TuneConfig{}, nan_interval);
  CHECK_THROWS_WITH_AS(t.fit(), doctest::Contains("progress_interval"), lumen::usage_error);
  // A grid point past the grid; a float read of a value float cannot hold.
  Rng rng(1);
  CHECK_THROWS_AS(ParamSpace({{"g", grid_search({1, 2})}}).resolve(rng, 2), lumen::usage_error);
  CHECK_THROWS_WITH_AS(Config(nlohmann::json{{"big", 1e300}}).get<float>("big"), doctest::Contains("\"big\""),
                       lumen::usage_error);
  CHECK(Config(nlohmann::json{{"big", 1e300}}).get<double>("big") == 1e300);
  // A sample_from that gives NaN names its key.
  CHECK_THROWS_WITH_AS(ParamSpace({{"f", sample_from([](const Config&) { return kNaN; })}}).resolve(rng),
                       doctest::Contains("\"f\""), lumen::usage_error);
  // The stream form of write_csv reports a failed stream.
  std::ofstream closed;
  CHECK_THROWS_AS(g.write_csv(closed), lumen::usage_error);
}

TEST_CASE("restore refuses a folder whose settings or journal are not an experiment's") {
  fs::path base = scratch("not_experiment");
  lumen::Runtime rt(lumen::Config{.workers = 2});
  Logged log;
  run_finished_experiment(log, base);
  const std::string journal = slurp(base / "e" / "trials.jsonl");
  spit(base / "e" / "experiment.json", "{}");
  CHECK_THROWS_WITH_AS(
      restore_experiment(log, base),
      doctest::Contains("not the settings of an experiment"), lumen::usage_error);
  spit(base / "e" / "experiment.json", R"({"metric": "m", "mode": "max", "num_samples": 3})");
  fs::remove(base / "e" / "trials.jsonl");
  CHECK_THROWS_WITH_AS(
      restore_experiment(log, base),
      doctest::Contains("no trials.jsonl"), lumen::usage_error);
  // A last line cut short (the process died writing it) is left out; the rest is honoured.
  spit(base / "e" / "trials.jsonl", journal + "{\"event\": \"add\", \"tri");
  log.runs.clear();
  Tuner t = restore_experiment(log, base);
  CHECK(t.fit().size() == 3);
  CHECK(log.runs.empty());
}
