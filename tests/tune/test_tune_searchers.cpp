// TpeSearch, ConcurrencyLimiter and Repeater, driven by hand the way the tuner drives a
// searcher: suggest, then reports and completions, one call at a time.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lumen/error.h"
#include "lumen/tune/concurrency_limiter.h"
#include "lumen/tune/repeater.h"
#include "lumen/tune/search_space.h"
#include "lumen/tune/tpe_search.h"

using namespace lumen::tune;
using nlohmann::json;

namespace {

std::string trial_id(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%05d", i);
  return buf;
}

Result result_of(const std::string& id, const std::string& metric, double value, std::int64_t iteration = 1) {
  Result r;
  r.trial_id = id;
  r.training_iteration = iteration;
  r.metrics = {{metric, value}};
  return r;
}

std::string usage_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const lumen::usage_error& e) {
    return e.what();
  } catch (...) {
    FAIL("threw something other than usage_error");
  }
  FAIL("threw nothing");
  return {};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Runs `n` trials one after the other: suggest, report f(config) once, complete. Returns the
// configs in order.
std::vector<Config> drive(Searcher& s, int n, const std::function<double(const Config&)>& f,
                          const std::string& metric = "loss", int first_id = 0) {
  std::vector<Config> out;
  for (int i = first_id; i < first_id + n; ++i) {
    const std::string id = trial_id(i);
    Suggestion sg = s.suggest(id);
    REQUIRE(sg.kind == Suggestion::Kind::config);
    const Result r = result_of(id, metric, f(sg.config));
    s.on_trial_result(id, r);
    s.on_trial_complete(id, &r, false);
    out.push_back(std::move(sg.config));
  }
  return out;
}

// A searcher for wrapping: gives the configs {"i": 0}, {"i": 1}, ... up to its num_samples (or
// later() while `hold` is set), and records every call it gets.
class ScriptedSearcher final : public Searcher {
 public:
  void setup(const SearchSetup& s) override { setup_calls.push_back(s); }
  Suggestion suggest(const std::string& id) override {
    suggest_ids.push_back(id);
    if (hold) return Suggestion::later();
    if (next >= setup_calls.back().num_samples) return Suggestion::done();
    Config c;
    c.set("i", next++);
    return Suggestion::run(c);
  }
  void on_trial_result(const std::string& id, const Result& r) override { results.emplace_back(id, r); }
  void on_trial_complete(const std::string& id, const Result* last, bool errored) override {
    completions.push_back({id, last != nullptr ? std::optional<Result>(*last) : std::nullopt, errored});
  }
  json save() const override { return {{"next", next}}; }
  void restore(const json& state) override {
    restored.push_back(state);
    if (state.is_object()) next = state["next"].get<int>();
  }
  void add_existing_trial(const std::string& id, const Config& c) override { existing.emplace_back(id, c); }

  struct Completion {
    std::string id;
    std::optional<Result> last;
    bool errored;
  };
  bool hold = false;
  int next = 0;
  std::vector<SearchSetup> setup_calls;
  std::vector<std::string> suggest_ids;
  std::vector<std::pair<std::string, Result>> results;
  std::vector<Completion> completions;
  std::vector<json> restored;
  std::vector<std::pair<std::string, Config>> existing;
};

const ParamSpace& quadratic_space() {
  static const ParamSpace space{{"x", uniform(-5, 5)}, {"y", uniform(-5, 5)}};
  return space;
}

// Minimum 0 at (1.5, -2).
double quadratic(const Config& c) {
  const double x = c.get<double>("x") - 1.5, y = c.get<double>("y") + 2;
  return x * x + y * y;
}

double distance_to_optimum(const Config& c) { return std::sqrt(quadratic(c)); }

}  // namespace

TEST_CASE(
    "TPE on a 2-D quadratic: after its random start it finds a far better point and concentrates near the optimum") {
  TpeSearch tpe(TpeOptions{.seed = 2024, .n_startup_trials = 10});
  tpe.setup({"loss", Mode::min, &quadratic_space(), 100});
  const std::vector<Config> configs = drive(tpe, 100, quadratic);

  std::vector<double> random_phase, model_phase, last30;
  double best_random = std::numeric_limits<double>::infinity(), best_model = best_random;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    CHECK(quadratic_space().dimensions()[0].second->contains(configs[i].at("x")));
    CHECK(quadratic_space().dimensions()[1].second->contains(configs[i].at("y")));
    const double f = quadratic(configs[i]);
    (i < 10 ? best_random : best_model) = std::min(i < 10 ? best_random : best_model, f);
    (i < 10 ? random_phase : model_phase).push_back(distance_to_optimum(configs[i]));
    if (i >= 70) last30.push_back(distance_to_optimum(configs[i]));
  }
  MESSAGE("best f: random phase " << best_random << ", TPE phase " << best_model << "; median distance: random phase "
                                  << median(random_phase) << ", last 30 " << median(last30));
  CHECK(best_model < best_random / 5);
  CHECK(best_model < 0.1);
  CHECK(median(last30) < median(random_phase) / 2);
  CHECK(tpe.observations() == 100);
  // num_samples reached: no more.
  CHECK(tpe.suggest(trial_id(100)).kind == Suggestion::Kind::finished);
  CHECK(tpe.given() == 100);
}

TEST_CASE("TPE with mode max concentrates near the maximum") {
  TpeSearch tpe(TpeOptions{.seed = 7});
  tpe.setup({"score", Mode::max, &quadratic_space(), 80});
  const std::vector<Config> configs = drive(
      tpe, 80, [](const Config& c) { return -quadratic(c); }, "score");
  std::vector<double> first10, last30;
  for (std::size_t i = 0; i < configs.size(); ++i)
    (i < 10 ? first10 : last30).push_back(distance_to_optimum(configs[i]));
  last30.erase(last30.begin(), last30.end() - 30);
  MESSAGE("mode max, median distance: random phase " << median(first10) << ", last 30 " << median(last30));
  CHECK(median(last30) < median(first10) / 2);
}

TEST_CASE("TPE: the same seed gives the same suggestions, random and modelled; another seed does not") {
  const auto run = [](std::uint64_t seed) {
    TpeSearch tpe(TpeOptions{.seed = seed, .n_startup_trials = 5});
    tpe.setup({"loss", Mode::min, &quadratic_space(), 30});
    return drive(tpe, 30, quadratic);
  };
  const std::vector<Config> a = run(11), b = run(11), c = run(12);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("TPE: a categorical dimension converges to the best category") {
  const ParamSpace space{{"opt", choice({"sgd", "adam", "rmsprop", "adagrad"})}, {"x", uniform(0, 1)}};
  TpeSearch tpe(TpeOptions{.seed = 3});
  tpe.setup({"loss", Mode::min, &space, 80});
  const std::vector<Config> configs = drive(tpe, 80, [](const Config& c) {
    const double x = c.get<double>("x") - 0.5;
    return (c.get<std::string>("opt") == "adam" ? 0.0 : 1.0) + x * x;
  });
  int adam_first10 = 0, adam_last30 = 0;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const bool adam = configs[i].get<std::string>("opt") == "adam";
    if (i < 10) adam_first10 += adam;
    if (i >= 50) adam_last30 += adam;
  }
  MESSAGE("\"adam\" chosen in " << adam_first10 << " of the first 10 and " << adam_last30 << " of the last 30");
  CHECK(adam_last30 >= 24);
}

TEST_CASE("TPE over every kind of domain: suggestions stay valid, integers stay integers, log scales converge") {
  const ParamSpace space{
      {"n", randint(1, 50)},
      {"lr", loguniform(1e-5, 1e-1)},
      {"z", randn(0, 1)},
      {"zq", qrandn(0, 1, 0.5)},
      {"q", qrandint(0, 100, 10)},
      {"k", lograndint(1, 1000)},
      {"u", quniform(0, 1, 0.1)},
      {"ql", qloguniform(1, 1000, 1)},
      {"nested", {{"c", choice({1, 2, 3})}, {"const", "kept"}}},
      {"derived", sample_from([](const Config& c) { return c.get<int>("n") * 2; })},
  };
  // Optimum: n = 20, lr = 1e-3, z = 1, k = 100.
  const auto f = [](const Config& c) {
    const double n = (c.get<double>("n") - 20) / 10, lr = std::log10(c.get<double>("lr")) + 3,
                 z = c.get<double>("z") - 1, k = std::log10(c.get<double>("k")) - 2;
    return n * n + lr * lr + z * z + k * k;
  };
  TpeSearch tpe(TpeOptions{.seed = 5});
  tpe.setup({"loss", Mode::min, &space, 120});
  const std::vector<Config> configs = drive(tpe, 120, f);
  const auto dims = space.dimensions();
  for (const Config& c : configs) {
    for (const auto& [key, d] : dims) CHECK_MESSAGE(d->contains(c.at(key)), key << " = " << c.at(key).dump());
    for (const char* key : {"n", "q", "k"}) CHECK(c.at(key).is_number_integer());
    CHECK(c.get<int>("derived") == 2 * c.get<int>("n"));
    CHECK(c.get<std::string>("nested/const") == "kept");
  }
  std::vector<double> lr_first, lr_last, n_first, n_last;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const double lr = std::fabs(std::log10(configs[i].get<double>("lr")) + 3),
                 n = std::fabs(configs[i].get<double>("n") - 20);
    if (i < 10) {
      lr_first.push_back(lr);
      n_first.push_back(n);
    } else if (i >= 90) {
      lr_last.push_back(lr);
      n_last.push_back(n);
    }
  }
  MESSAGE("|log10 lr + 3|: random " << median(lr_first) << ", last 30 " << median(lr_last) << "; |n - 20|: random "
                                    << median(n_first) << ", last 30 " << median(n_last));
  CHECK(median(lr_last) < median(lr_first) / 2);
  CHECK(median(n_last) < median(n_first) / 2);
}

TEST_CASE("TPE refuses a grid_search key, a missing metric, bad options and unknown points, with usage_error") {
  const ParamSpace grid{{"a", uniform(0, 1)}, {"nested", {{"b", grid_search({1, 2})}}}};
  TpeSearch tpe(TpeOptions{.seed = 1});
  const std::string e = usage_error_of([&] { tpe.setup({"loss", Mode::min, &grid, 10}); });
  CHECK(contains(e, "TpeSearch"));
  CHECK(contains(e, "\"nested/b\""));
  CHECK(contains(e, "grid_search"));

  CHECK(contains(usage_error_of([&] { tpe.setup({"", Mode::min, &quadratic_space(), 10}); }), "metric"));
  CHECK(contains(usage_error_of([&] { tpe.setup({"loss", Mode::min, nullptr, 10}); }), "space"));
  CHECK(contains(usage_error_of([&] { tpe.setup({"loss", Mode::min, &quadratic_space(), 0}); }), "num_samples"));
  CHECK(contains(usage_error_of([] { TpeSearch(TpeOptions{.gamma = 0}); }), "gamma"));
  CHECK(contains(usage_error_of([] { TpeSearch(TpeOptions{.gamma = 1.5}); }), "gamma"));
  CHECK(contains(usage_error_of([] { TpeSearch(TpeOptions{.n_startup_trials = -1}); }), "n_startup_trials"));
  CHECK(contains(usage_error_of([] { TpeSearch(TpeOptions{.n_ei_candidates = 0}); }), "n_ei_candidates"));
  CHECK(contains(usage_error_of([] { TpeSearch(TpeOptions{.points_to_evaluate = {json(3)}}); }), "JSON object"));
  TpeSearch typo(TpeOptions{.points_to_evaluate = {{{"x", 1}, {"z", 2}}}});
  CHECK(contains(usage_error_of([&] { typo.setup({"loss", Mode::min, &quadratic_space(), 10}); }), "\"z\""));
}

TEST_CASE("TPE: points_to_evaluate come first and count toward num_samples; missing keys are drawn") {
  const ParamSpace space{{"x", uniform(-5, 5)}, {"opt", {{"name", choice({"a", "b"})}, {"m", uniform(0, 1)}}}};
  TpeSearch tpe(TpeOptions{.seed = 9,
                           .points_to_evaluate = {{{"x", 1.25}, {"opt", {{"name", "b"}, {"m", 0.5}}}}, {{"x", -2.0}}}});
  tpe.setup({"loss", Mode::min, &space, 3});
  const std::vector<Config> configs = drive(tpe, 3, [](const Config& c) { return c.get<double>("x"); });
  CHECK(configs[0].get<double>("x") == 1.25);
  CHECK(configs[0].get<std::string>("opt/name") == "b");
  CHECK(configs[0].get<double>("opt/m") == 0.5);
  CHECK(configs[1].get<double>("x") == -2.0);
  CHECK(configs[1].contains("opt/name"));
  CHECK(configs[1].contains("opt/m"));
  CHECK(tpe.suggest(trial_id(3)).kind == Suggestion::Kind::finished);
}

TEST_CASE("TPE observations: errored trials are left out; a completion without the metric uses the last report's") {
  TpeSearch tpe(TpeOptions{.seed = 1});
  tpe.setup({"loss", Mode::min, &quadratic_space(), 10});
  for (int i = 0; i < 4; ++i) REQUIRE(tpe.suggest(trial_id(i)).kind == Suggestion::Kind::config);
  // 0: reported, then errored.
  tpe.on_trial_result(trial_id(0), result_of(trial_id(0), "loss", 1));
  tpe.on_trial_complete(trial_id(0), nullptr, true);
  CHECK(tpe.observations() == 0);
  // 1: reported twice, ended without a result: the last report counts.
  tpe.on_trial_result(trial_id(1), result_of(trial_id(1), "loss", 5, 1));
  tpe.on_trial_result(trial_id(1), result_of(trial_id(1), "loss", 3, 2));
  tpe.on_trial_complete(trial_id(1), nullptr, false);
  CHECK(tpe.observations() == 1);
  // 2: its final result lacks the metric: the last report that had it counts.
  tpe.on_trial_result(trial_id(2), result_of(trial_id(2), "loss", 2));
  const Result other = result_of(trial_id(2), "accuracy", 0.9, 2);
  tpe.on_trial_complete(trial_id(2), &other, false);
  CHECK(tpe.observations() == 2);
  // 3: never reported the metric: nothing to learn.
  tpe.on_trial_complete(trial_id(3), &other, false);
  CHECK(tpe.observations() == 2);
  // Unknown trials and repeated completions are ignored.
  const Result r = result_of("zz", "loss", 1);
  tpe.on_trial_complete("zz", &r, false);
  tpe.on_trial_complete(trial_id(1), &r, false);
  CHECK(tpe.observations() == 2);
}

TEST_CASE("TPE save/restore: a restored searcher continues the count and the sequence of the one it replaces") {
  const auto options = TpeOptions{.seed = 42, .n_startup_trials = 8};
  TpeSearch original(options);
  original.setup({"loss", Mode::min, &quadratic_space(), 40});
  const std::vector<Config> before = drive(original, 25, quadratic);
  const json state = json::parse(original.save().dump());  // through text, as it is stored
  CHECK(state["given"] == 25);

  // The rest of the original's run, for comparison.
  const std::vector<Config> after = drive(original, 15, quadratic, "loss", 25);

  TpeSearch restored(TpeOptions{.seed = 999, .n_startup_trials = 8});  // the seed is replaced by the state
  restored.setup({"loss", Mode::min, &quadratic_space(), 40});
  restored.restore(state);
  for (int i = 0; i < 25; ++i) restored.add_existing_trial(trial_id(i), before[static_cast<std::size_t>(i)]);
  for (int i = 0; i < 25; ++i) {
    const Result r = result_of(trial_id(i), "loss", quadratic(before[static_cast<std::size_t>(i)]));
    restored.on_trial_complete(trial_id(i), &r, false);
  }
  CHECK(restored.given() == 25);
  CHECK(restored.observations() == 25);
  const std::vector<Config> resumed = drive(restored, 15, quadratic, "loss", 25);
  CHECK(resumed == after);
  CHECK(restored.suggest(trial_id(40)).kind == Suggestion::Kind::finished);

  CHECK(contains(usage_error_of([&] { restored.restore(json{{"given", 3}}); }), "restore"));
  CHECK(contains(usage_error_of([&] { restored.restore(json{{"given", 3}, {"rng", "not a state"}}); }), "restore"));
}

TEST_CASE("TPE restored without saved state: the existing trials still count toward num_samples") {
  TpeSearch tpe(TpeOptions{.seed = 1});
  tpe.setup({"loss", Mode::min, &quadratic_space(), 5});
  Rng rng(1);
  for (int i = 0; i < 4; ++i) tpe.add_existing_trial(trial_id(i), quadratic_space().resolve(rng));
  CHECK(tpe.given() == 4);
  CHECK(tpe.suggest(trial_id(4)).kind == Suggestion::Kind::config);
  CHECK(tpe.suggest(trial_id(5)).kind == Suggestion::Kind::finished);
}

TEST_CASE("ConcurrencyLimiter: later() at the limit without asking the inner searcher; resumes after a completion") {
  auto inner = std::make_shared<ScriptedSearcher>();
  ConcurrencyLimiter limiter(inner, 2);
  limiter.setup({"loss", Mode::min, &quadratic_space(), 4});
  CHECK(limiter.suggest("a").kind == Suggestion::Kind::config);
  CHECK(limiter.suggest("b").kind == Suggestion::Kind::config);
  CHECK(limiter.suggest("c").kind == Suggestion::Kind::wait);
  CHECK(inner->suggest_ids.size() == 2);
  CHECK(limiter.live() == 2);

  // Reports pass through at once.
  limiter.on_trial_result("b", result_of("b", "loss", 1));
  REQUIRE(inner->results.size() == 1);
  CHECK(inner->results[0].first == "b");

  const Result r = result_of("a", "loss", 2);
  limiter.on_trial_complete("a", &r, false);
  REQUIRE(inner->completions.size() == 1);
  CHECK(inner->completions[0].id == "a");
  CHECK(inner->completions[0].last->metrics == r.metrics);
  const Suggestion s = limiter.suggest("c");
  REQUIRE(s.kind == Suggestion::Kind::config);
  CHECK(s.config.get<int>("i") == 2);
  CHECK(limiter.suggest("d").kind == Suggestion::Kind::wait);
  limiter.on_trial_complete("b", nullptr, true);
  CHECK(inner->completions.back().errored);
  CHECK(limiter.suggest("d").kind == Suggestion::Kind::config);
  limiter.on_trial_complete("c", nullptr, false);
  // The inner searcher's done() passes through.
  CHECK(limiter.suggest("e").kind == Suggestion::Kind::finished);
  // Trials it did not make are not forwarded.
  limiter.on_trial_complete("zz", nullptr, false);
  CHECK(inner->completions.size() == 3);
}

TEST_CASE(
    "ConcurrencyLimiter batch mode: no new trial until the whole batch completed; completions reach the inner "
    "together") {
  auto inner = std::make_shared<ScriptedSearcher>();
  ConcurrencyLimiter limiter(inner, 3, true);
  limiter.setup({"loss", Mode::min, &quadratic_space(), 5});
  for (const char* id : {"a", "b", "c"}) CHECK(limiter.suggest(id).kind == Suggestion::Kind::config);
  limiter.on_trial_complete("b", nullptr, false);
  limiter.on_trial_complete("a", nullptr, false);
  CHECK(inner->completions.empty());
  CHECK(limiter.suggest("d").kind == Suggestion::Kind::wait);
  limiter.on_trial_complete("c", nullptr, false);
  REQUIRE(inner->completions.size() == 3);
  CHECK(inner->completions[0].id == "b");
  CHECK(inner->completions[1].id == "a");
  CHECK(inner->completions[2].id == "c");
  CHECK(limiter.live() == 0);

  // The last batch is short (the inner searcher has 2 left): done() closes it, and its
  // completions still reach the inner searcher.
  CHECK(limiter.suggest("d").kind == Suggestion::Kind::config);
  CHECK(limiter.suggest("e").kind == Suggestion::Kind::config);
  CHECK(limiter.suggest("f").kind == Suggestion::Kind::finished);
  limiter.on_trial_complete("d", nullptr, false);
  CHECK(inner->completions.size() == 3);
  CHECK(limiter.suggest("f").kind == Suggestion::Kind::wait);
  limiter.on_trial_complete("e", nullptr, false);
  CHECK(inner->completions.size() == 5);
  CHECK(limiter.suggest("f").kind == Suggestion::Kind::finished);
}

TEST_CASE(
    "ConcurrencyLimiter batch mode: an inner later() closes a short batch, which goes to the inner once complete") {
  auto inner = std::make_shared<ScriptedSearcher>();
  ConcurrencyLimiter limiter(inner, 4, true);
  limiter.setup({"loss", Mode::min, &quadratic_space(), 10});
  CHECK(limiter.suggest("a").kind == Suggestion::Kind::config);
  inner->hold = true;
  CHECK(limiter.suggest("b").kind == Suggestion::Kind::wait);
  inner->hold = false;
  // Closed: no more trials join this batch.
  CHECK(limiter.suggest("b").kind == Suggestion::Kind::wait);
  limiter.on_trial_complete("a", nullptr, false);
  CHECK(inner->completions.size() == 1);
  CHECK(limiter.suggest("b").kind == Suggestion::Kind::config);
}

TEST_CASE("ConcurrencyLimiter batch mode after a restore: trials from before are alive and hold the batch back") {
  auto inner = std::make_shared<ScriptedSearcher>();
  ConcurrencyLimiter limiter(inner, 4, true);
  limiter.setup({"loss", Mode::min, &quadratic_space(), 10});
  Config c;
  c.set("i", 0);
  limiter.add_existing_trial("old1", c);
  limiter.add_existing_trial("old2", c);
  CHECK(limiter.suggest("a").kind == Suggestion::Kind::config);
  CHECK(limiter.suggest("b").kind == Suggestion::Kind::config);
  CHECK(limiter.suggest("c").kind == Suggestion::Kind::wait);  // 4 alive: the batch is closed
  limiter.on_trial_complete("a", nullptr, false);
  limiter.on_trial_complete("b", nullptr, false);
  CHECK(inner->completions.empty());
  // The old trials' completions go to the inner searcher at once; the last one releases the batch.
  limiter.on_trial_complete("old1", nullptr, false);
  CHECK(inner->completions.size() == 1);
  CHECK(limiter.suggest("c").kind == Suggestion::Kind::wait);
  limiter.on_trial_complete("old2", nullptr, false);
  REQUIRE(inner->completions.size() == 4);
  CHECK(inner->completions[2].id == "a");
  CHECK(inner->completions[3].id == "b");
  CHECK(limiter.suggest("c").kind == Suggestion::Kind::config);
}

TEST_CASE(
    "ConcurrencyLimiter: arguments are checked; save/restore nests the inner state; existing trials count as alive") {
  auto inner = std::make_shared<ScriptedSearcher>();
  CHECK(contains(usage_error_of([&] { ConcurrencyLimiter(inner, 0); }), "max_concurrent"));
  CHECK(contains(usage_error_of([] { ConcurrencyLimiter(nullptr, 2); }), "null"));

  ConcurrencyLimiter limiter(inner, 2);
  limiter.setup({"loss", Mode::min, &quadratic_space(), 10});
  (void)limiter.suggest("a");
  const json state = limiter.save();
  CHECK(state == json{{"inner", {{"next", 1}}}});

  auto inner2 = std::make_shared<ScriptedSearcher>();
  ConcurrencyLimiter restored(inner2, 2);
  restored.setup({"loss", Mode::min, &quadratic_space(), 10});
  restored.restore(state);
  REQUIRE(inner2->restored.size() == 1);
  CHECK(inner2->restored[0] == json{{"next", 1}});
  Config c;
  c.set("i", 0);
  restored.add_existing_trial("a", c);
  restored.add_existing_trial("x", c);
  CHECK(inner2->existing.size() == 2);
  CHECK(restored.suggest("b").kind == Suggestion::Kind::wait);
  restored.on_trial_complete("x", nullptr, false);
  CHECK(inner2->completions.size() == 1);
  const Suggestion s = restored.suggest("b");
  REQUIRE(s.kind == Suggestion::Kind::config);
  CHECK(s.config.get<int>("i") == 1);
  CHECK(contains(usage_error_of([&] { restored.restore(json(3)); }), "restore"));
}

TEST_CASE("Repeater: each config runs `repeat` times with __trial_index__; the inner is asked once per group") {
  auto inner = std::make_shared<ScriptedSearcher>();
  Repeater repeater(inner, 3);
  repeater.setup({"loss", Mode::min, &quadratic_space(), 6});
  REQUIRE(inner->setup_calls.size() == 1);
  CHECK(inner->setup_calls[0].num_samples == 2);
  for (int i = 0; i < 6; ++i) {
    const Suggestion s = repeater.suggest(trial_id(i));
    REQUIRE(s.kind == Suggestion::Kind::config);
    CHECK(s.config.get<int>("i") == i / 3);
    CHECK(s.config.get<int>(Repeater::trial_index_key) == i % 3);
  }
  CHECK(repeater.suggest(trial_id(6)).kind == Suggestion::Kind::finished);
  CHECK(inner->suggest_ids == std::vector<std::string>{trial_id(0), trial_id(3), trial_id(6)});

  Repeater plain(std::make_shared<ScriptedSearcher>(), 2, false);
  plain.setup({"loss", Mode::min, &quadratic_space(), 2});
  CHECK_FALSE(plain.suggest("a").config.contains(Repeater::trial_index_key));
}

TEST_CASE("Repeater: the inner sees the group's mean under its first trial's id, errored repeats skipped") {
  auto inner = std::make_shared<ScriptedSearcher>();
  Repeater repeater(inner, 3);
  repeater.setup({"loss", Mode::min, &quadratic_space(), 9});
  for (int i = 0; i < 9; ++i) REQUIRE(repeater.suggest(trial_id(i)).kind == Suggestion::Kind::config);

  // Group 0: 1 and 5 count, the errored one does not: mean 3.
  Result r0 = result_of(trial_id(0), "loss", 1, 4), r2 = result_of(trial_id(2), "loss", 5, 7);
  repeater.on_trial_result(trial_id(0), r0);
  CHECK(inner->results.empty());  // reports of single repeats are not passed on
  repeater.on_trial_complete(trial_id(0), &r0, false);
  repeater.on_trial_complete(trial_id(1), nullptr, true);
  CHECK(inner->completions.empty());
  repeater.on_trial_complete(trial_id(2), &r2, false);
  REQUIRE(inner->completions.size() == 1);
  CHECK(inner->completions[0].id == trial_id(0));
  CHECK_FALSE(inner->completions[0].errored);
  REQUIRE(inner->completions[0].last.has_value());
  CHECK(inner->completions[0].last->get("loss") == doctest::Approx(3.0));
  CHECK(inner->completions[0].last->trial_id == trial_id(0));
  CHECK(inner->completions[0].last->training_iteration == 7);

  // Group 1: all errored.
  for (int i = 3; i < 6; ++i) repeater.on_trial_complete(trial_id(i), nullptr, true);
  REQUIRE(inner->completions.size() == 2);
  CHECK(inner->completions[1].id == trial_id(3));
  CHECK(inner->completions[1].errored);
  CHECK_FALSE(inner->completions[1].last.has_value());

  // Group 2, completed out of order: a final result without the metric falls back to the last report.
  const Result no_metric = result_of(trial_id(7), "accuracy", 0.5, 2);
  repeater.on_trial_result(trial_id(7), result_of(trial_id(7), "loss", 10));
  repeater.on_trial_complete(trial_id(8), &r0, false);
  repeater.on_trial_complete(trial_id(7), &no_metric, false);
  repeater.on_trial_complete(trial_id(6), &r2, false);
  REQUIRE(inner->completions.size() == 3);
  CHECK(inner->completions[2].id == trial_id(6));
  CHECK(inner->completions[2].last->get("loss") == doctest::Approx((1.0 + 10.0 + 5.0) / 3));
}

TEST_CASE("Repeater: checks its arguments, and refuses a num_samples that is not a multiple of repeat") {
  CHECK(contains(usage_error_of([] { Repeater(nullptr, 2); }), "null"));
  CHECK(contains(usage_error_of([] { Repeater(std::make_shared<ScriptedSearcher>(), 0); }), "repeat"));
  Repeater repeater(std::make_shared<ScriptedSearcher>(), 3);
  const std::string e = usage_error_of([&] { repeater.setup({"loss", Mode::min, &quadratic_space(), 7}); });
  CHECK(contains(e, "num_samples (7)"));
  CHECK(contains(e, "multiple of repeat (3)"));
  CHECK(contains(usage_error_of([&] { repeater.setup({"", Mode::min, &quadratic_space(), 6}); }), "metric"));
}

TEST_CASE(
    "Repeater save/restore: inner state nested; groups rebuilt from the existing trials; a short group is filled "
    "first") {
  auto inner = std::make_shared<ScriptedSearcher>();
  Repeater repeater(inner, 3);
  repeater.setup({"loss", Mode::min, &quadratic_space(), 9});
  std::vector<Config> made;
  for (int i = 0; i < 4; ++i) made.push_back(repeater.suggest(trial_id(i)).config);
  const json state = repeater.save();
  CHECK(state == json{{"inner", {{"next", 2}}}});

  auto inner2 = std::make_shared<ScriptedSearcher>();
  Repeater restored(inner2, 3);
  restored.setup({"loss", Mode::min, &quadratic_space(), 9});
  restored.restore(state);
  for (int i = 0; i < 4; ++i) restored.add_existing_trial(trial_id(i), made[static_cast<std::size_t>(i)]);
  // The inner searcher hears of the groups only, without the index key.
  REQUIRE(inner2->existing.size() == 2);
  CHECK(inner2->existing[0].first == trial_id(0));
  CHECK(inner2->existing[1].first == trial_id(3));
  CHECK_FALSE(inner2->existing[1].second.contains(Repeater::trial_index_key));
  // Replayed completions of group 0 give the inner its mean.
  for (int i = 0; i < 3; ++i) {
    const Result r = result_of(trial_id(i), "loss", i);
    restored.on_trial_complete(trial_id(i), &r, false);
  }
  REQUIRE(inner2->completions.size() == 1);
  CHECK(inner2->completions[0].last->get("loss") == doctest::Approx(1.0));
  // Group 1 has one trial of three: the next two join it without asking the inner searcher.
  for (int i = 4; i < 6; ++i) {
    const Suggestion s = restored.suggest(trial_id(i));
    CHECK(s.config.get<int>("i") == 1);
    CHECK(s.config.get<int>(Repeater::trial_index_key) == i - 3);
  }
  CHECK(inner2->suggest_ids.empty());
  const Suggestion next = restored.suggest(trial_id(6));
  CHECK(next.config.get<int>("i") == 2);
  CHECK(inner2->suggest_ids == std::vector<std::string>{trial_id(6)});
}

TEST_CASE("Repeater over TPE behind a ConcurrencyLimiter: TPE learns one observation per group, from the means") {
  auto tpe = std::make_shared<TpeSearch>(TpeOptions{.seed = 4, .n_startup_trials = 3});
  auto repeater = std::make_shared<Repeater>(tpe, 2);
  ConcurrencyLimiter limiter(repeater, 2);
  limiter.setup({"loss", Mode::min, &quadratic_space(), 20});
  int made = 0;
  for (int round = 0; round < 10; ++round) {
    const std::string a = trial_id(made++), b = trial_id(made++);
    const Suggestion sa = limiter.suggest(a), sb = limiter.suggest(b);
    REQUIRE(sa.kind == Suggestion::Kind::config);
    REQUIRE(sb.kind == Suggestion::Kind::config);
    CHECK(limiter.suggest("extra").kind == Suggestion::Kind::wait);
    CHECK(sa.config.get<double>("x") == sb.config.get<double>("x"));
    // Noise that the mean cancels: +-1 by repeat index.
    const Result ra = result_of(a, "loss", quadratic(sa.config) + 1),
                 rb = result_of(b, "loss", quadratic(sb.config) - 1);
    limiter.on_trial_complete(a, &ra, false);
    limiter.on_trial_complete(b, &rb, false);
  }
  CHECK(tpe->observations() == 10);
  CHECK(tpe->given() == 10);
  CHECK(limiter.suggest(trial_id(made)).kind == Suggestion::Kind::finished);
}
