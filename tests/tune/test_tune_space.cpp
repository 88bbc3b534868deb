// The search-space primitives, checked statistically. Every test draws from a fixed seed, so
// the outcome is the same on every run of one build; the tolerances are several standard errors
// wide for a correct implementation and far narrower than the error of a plausible broken one
// (a wrong bound, a missing log, an off-by-one).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "lumen/error.h"
#include "lumen/tune/config.h"
#include "lumen/tune/search_space.h"

using namespace lumen::tune;
using nlohmann::json;

namespace {

constexpr int kDraws = 20000;

std::vector<json> draw(const Domain& d, std::uint64_t seed, int n = kDraws) {
  Rng rng(seed);
  std::vector<json> out;
  out.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) out.push_back(d.sample(rng, Config{}));
  return out;
}

std::vector<double> numbers(const std::vector<json>& v) {
  std::vector<double> out;
  for (const json& x : v) out.push_back(x.get<double>());
  return out;
}

double mean(const std::vector<double>& x) {
  double s = 0;
  for (double v : x) s += v;
  return s / static_cast<double>(x.size());
}

double variance(const std::vector<double>& x) {
  const double m = mean(x);
  double s = 0;
  for (double v : x) s += (v - m) * (v - m);
  return s / static_cast<double>(x.size() - 1);
}

// The Kolmogorov-Smirnov statistic of the sample against the continuous CDF `cdf`.
double ks_statistic(std::vector<double> x, const std::function<double(double)>& cdf) {
  std::sort(x.begin(), x.end());
  const auto n = static_cast<double>(x.size());
  double d = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double f = cdf(x[i]);
    d = std::max({d, static_cast<double>(i + 1) / n - f, f - static_cast<double>(i) / n});
  }
  return d;
}

// The KS statistic a sample of n exceeds with probability 0.1% under the null hypothesis.
double ks_critical_01pct(std::size_t n) { return 1.9495 / std::sqrt(static_cast<double>(n)); }

// Pearson's chi-square of observed counts against expected probabilities.
double chi_square(const std::vector<double>& observed, const std::vector<double>& expected_p) {
  double total = 0;
  for (double o : observed) total += o;
  double chi = 0;
  for (std::size_t i = 0; i < observed.size(); ++i) {
    const double e = expected_p[i] * total;
    chi += (observed[i] - e) * (observed[i] - e) / e;
  }
  return chi;
}

// Chi-square critical values at 0.1%, by degrees of freedom.
double chi_square_critical_01pct(int df) {
  static const std::map<int, double> table{{1, 10.828}, {2, 13.816}, {3, 16.266}, {4, 18.467},
                                           {5, 20.515}, {6, 22.458}, {9, 27.877}, {20, 45.315}};
  return table.at(df);
}

bool is_multiple(double v, double q) { return std::fabs(v / q - std::round(v / q)) < 1e-9; }

// The what() of the usage_error that f throws; fails the test if f throws nothing or another type.
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

double normal_cdf(double x, double mu, double sd) { return 0.5 * std::erfc(-(x - mu) / (sd * std::sqrt(2.0))); }

}  // namespace

TEST_CASE("uniform: floats in [low, high), mean and variance of the uniform law, KS-uniform") {
  const Domain d = uniform(2.0, 5.0);
  const std::vector<json> raw = draw(d, 1);
  for (const json& v : raw) {
    REQUIRE(v.is_number_float());
    REQUIRE(v.get<double>() >= 2.0);
    REQUIRE(v.get<double>() < 5.0);
    REQUIRE(d.contains(v));
  }
  const std::vector<double> x = numbers(raw);
  // Standard errors: 0.006 for the mean, 0.004 for the variance.
  CHECK(std::fabs(mean(x) - 3.5) < 0.03);
  CHECK(std::fabs(variance(x) - 0.75) < 0.025);
  CHECK(ks_statistic(x, [](double v) { return (v - 2.0) / 3.0; }) < ks_critical_01pct(x.size()));
  CHECK(d.describe() == "uniform(2, 5)");
}

TEST_CASE("quniform: multiples of q, the inner steps equally likely and the end steps half as likely") {
  const double q = 0.5;
  const Domain d = quniform(0.0, 10.0, q);
  const std::vector<double> x = numbers(draw(d, 2));
  std::vector<double> counts(21, 0);
  for (double v : x) {
    REQUIRE(is_multiple(v, q));
    REQUIRE(v >= 0.0);
    REQUIRE(v <= 10.0);
    counts[static_cast<std::size_t>(std::lround(v / q))] += 1;
  }
  // Rounding U(0, 10) to halves: 0 and 10 own a quarter-wide stretch, every other step a half.
  std::vector<double> p(21, 1.0 / 20);
  p.front() = p.back() = 1.0 / 40;
  CHECK(chi_square(counts, p) < chi_square_critical_01pct(20));
  CHECK(std::fabs(mean(x) - 5.0) < 0.06);
}

TEST_CASE("loguniform: the logarithm is uniform on [log low, log high) (mean and KS)") {
  const Domain d = loguniform(1e-3, 10.0);
  const std::vector<json> raw = draw(d, 3);
  std::vector<double> logs;
  for (const json& v : raw) {
    const double x = v.get<double>();
    REQUIRE(x >= 1e-3);
    REQUIRE(x <= 10.0);
    REQUIRE(d.contains(v));
    logs.push_back(std::log(x));
  }
  const double a = std::log(1e-3), b = std::log(10.0);
  // The log's sd is (b - a) / sqrt(12) = 2.66; the mean's standard error 0.019. A linear-uniform
  // draw would put the mean of the log near log(5) = 1.6, far off.
  CHECK(std::fabs(mean(logs) - (a + b) / 2) < 0.08);
  CHECK(ks_statistic(logs, [&](double v) { return (v - a) / (b - a); }) < ks_critical_01pct(logs.size()));
}

TEST_CASE("qloguniform: multiples of q, with the quantiles of the rounded log-uniform law") {
  const double q = 10;
  const Domain d = qloguniform(10.0, 1000.0, q);
  const std::vector<double> x = numbers(draw(d, 4));
  for (double v : x) {
    REQUIRE(is_multiple(v, q));
    REQUIRE(v >= 10.0);
    REQUIRE(v <= 1000.0);
  }
  // P(value <= k) = P(draw < k + q/2) = log((k + 5) / 10) / log(100); each frequency's standard
  // error is at most 0.0036.
  for (double k : {20.0, 50.0, 100.0, 500.0}) {
    const double expected = std::log((k + q / 2) / 10.0) / std::log(100.0);
    const double seen = static_cast<double>(std::count_if(x.begin(), x.end(), [&](double v) { return v <= k; })) /
                        static_cast<double>(x.size());
    CHECK_MESSAGE(std::fabs(seen - expected) < 0.015,
                  "P(value <= " << k << ") = " << seen << ", expected " << expected);
  }
}

TEST_CASE("randn: mean and sd of the normal law given, KS-normal") {
  const Domain d = randn(3.0, 2.0);
  const std::vector<double> x = numbers(draw(d, 5));
  // Standard errors: 0.014 for the mean, 0.010 for the sd.
  CHECK(std::fabs(mean(x) - 3.0) < 0.06);
  CHECK(std::fabs(std::sqrt(variance(x)) - 2.0) < 0.05);
  CHECK(ks_statistic(x, [](double v) { return normal_cdf(v, 3.0, 2.0); }) < ks_critical_01pct(x.size()));
  const std::vector<double> standard = numbers(draw(randn(), 6));
  CHECK(std::fabs(mean(standard)) < 0.03);
  CHECK(std::fabs(std::sqrt(variance(standard)) - 1.0) < 0.025);
}

TEST_CASE("qrandn: multiples of q, mean and sd of the normal law (sd widened by the rounding)") {
  const double q = 0.25;
  const Domain d = qrandn(-1.0, 0.5, q);
  const std::vector<json> raw = draw(d, 7);
  for (const json& v : raw) {
    REQUIRE(is_multiple(v.get<double>(), q));
    REQUIRE(d.contains(v));
  }
  const std::vector<double> x = numbers(raw);
  CHECK(std::fabs(mean(x) + 1.0) < 0.015);
  // Rounding adds q^2/12 to the variance (Sheppard): sd 0.5104.
  CHECK(std::fabs(std::sqrt(variance(x)) - std::sqrt(0.25 + q * q / 12)) < 0.015);
}

TEST_CASE("randint: integers in [low, high): the upper bound never, every other value, uniformly (chi-square)") {
  const Domain d = randint(-3, 4);
  const std::vector<json> raw = draw(d, 8);
  std::vector<double> counts(7, 0);
  for (const json& v : raw) {
    REQUIRE(v.is_number_integer());
    const auto i = v.get<std::int64_t>();
    REQUIRE(i >= -3);
    REQUIRE(i < 4);  // an implementation that includes high fails here
    REQUIRE(d.contains(v));
    counts[static_cast<std::size_t>(i + 3)] += 1;
  }
  for (double c : counts) CHECK(c > 0);
  CHECK(chi_square(counts, std::vector<double>(7, 1.0 / 7)) < chi_square_critical_01pct(6));
  CHECK_FALSE(d.contains(json(4)));
  CHECK_FALSE(d.contains(json(2.5)));
}

TEST_CASE("randint over two values: both drawn, about half each") {
  const std::vector<json> raw = draw(randint(0, 2), 9);
  const auto ones = std::count(raw.begin(), raw.end(), json(1));
  const auto zeros = std::count(raw.begin(), raw.end(), json(0));
  CHECK(ones + zeros == kDraws);
  CHECK(chi_square({static_cast<double>(zeros), static_cast<double>(ones)}, {0.5, 0.5}) < chi_square_critical_01pct(1));
}

TEST_CASE("qrandint: multiples of q within [low, high], the upper bound included, each equally likely") {
  const Domain d = qrandint(0, 20, 5);
  const std::vector<json> raw = draw(d, 10);
  std::vector<double> counts(5, 0);
  for (const json& v : raw) {
    REQUIRE(v.is_number_integer());
    const auto i = v.get<std::int64_t>();
    REQUIRE(i % 5 == 0);
    REQUIRE(i >= 0);
    REQUIRE(i <= 20);
    REQUIRE(d.contains(v));
    counts[static_cast<std::size_t>(i / 5)] += 1;
  }
  for (double c : counts) CHECK(c > 0);
  CHECK(chi_square(counts, {0.2, 0.2, 0.2, 0.2, 0.2}) < chi_square_critical_01pct(4));
}

TEST_CASE("q-rounded domains stay inside bounds that are not multiples of q, and refuse bounds with no multiple") {
  // qrandint(1, 10, 4) may give 4 or 8 only; quniform(0.1, 0.95, 0.25) 0.25, 0.5 or 0.75.
  for (const json& v : draw(qrandint(1, 10, 4), 12)) CHECK((v == json(4) || v == json(8)));
  for (const json& v : draw(quniform(0.1, 0.95, 0.25), 13)) {
    const double x = v.get<double>();
    CHECK(x >= 0.1);
    CHECK(x <= 0.95);
  }
  for (const json& v : draw(qloguniform(1e-4, 0.1, 5e-4), 14)) CHECK(v.get<double>() >= 1e-4);
  CHECK_THROWS_WITH_AS(qrandint(1, 3, 4), doctest::Contains("no multiple of q"), lumen::usage_error);
  CHECK_THROWS_WITH_AS(quniform(0.1, 0.2, 0.25), doctest::Contains("no multiple of q"), lumen::usage_error);
}

TEST_CASE("lograndint: integers in [low, high) whose cumulative frequencies follow the log-uniform law") {
  const Domain d = lograndint(1, 100);
  const std::vector<json> raw = draw(d, 11);
  std::set<std::int64_t> seen;
  std::vector<std::int64_t> x;
  for (const json& v : raw) {
    REQUIRE(v.is_number_integer());
    const auto i = v.get<std::int64_t>();
    REQUIRE(i >= 1);
    REQUIRE(i < 100);
    REQUIRE(d.contains(v));
    seen.insert(i);
    x.push_back(i);
  }
  // floor(exp(U(0, log 100))) <= k  iff  exp(U) < k + 1: P = log(k + 1) / log(100).
  for (std::int64_t k : {1, 3, 9, 49}) {
    const double expected = std::log(static_cast<double>(k + 1)) / std::log(100.0);
    const double got = static_cast<double>(std::count_if(x.begin(), x.end(), [&](std::int64_t v) { return v <= k; })) /
                       static_cast<double>(x.size());
    CHECK_MESSAGE(std::fabs(got - expected) < 0.015, "P(value <= " << k << ") = " << got << ", expected " << expected);
  }
  // 99 has probability 0.0022 (44 expected draws): the top value is reachable, 100 is not.
  CHECK(seen.contains(99));
  CHECK_FALSE(seen.contains(100));
}

TEST_CASE("choice: each value equally likely (chi-square), values kept with their JSON types") {
  const Domain d = choice({"a", 1, 2.5, true});
  const std::vector<json> raw = draw(d, 12);
  const std::vector<json> given{"a", 1, 2.5, true};
  std::vector<double> counts(4, 0);
  for (const json& v : raw) {
    // Compared with their types: 1 must come back an integer, 2.5 a float, true a boolean.
    const auto at =
        std::find_if(given.begin(), given.end(), [&](const json& g) { return g == v && g.type() == v.type(); });
    REQUIRE_MESSAGE(at != given.end(), "choice drew a value it was not given: " << v.dump());
    counts[static_cast<std::size_t>(at - given.begin())] += 1;
  }
  CHECK(chi_square(counts, std::vector<double>(4, 0.25)) < chi_square_critical_01pct(3));
  CHECK(d.contains(json("a")));
  CHECK_FALSE(d.contains(json("b")));
  const std::vector<json> single = draw(choice({"only"}), 13, 100);
  CHECK(std::all_of(single.begin(), single.end(), [](const json& v) { return v == "only"; }));
}

TEST_CASE("grid_search: grid_size is the product, and grid indices 0..size-1 give every combination once") {
  const ParamSpace space{
      {"a", grid_search({1, 2, 3})},
      {"nested", {{"b", grid_search({"x", "y"})}, {"u", uniform(0, 1)}}},
      {"c", grid_search({true, false})},
      {"k", 7},
  };
  REQUIRE(space.grid_size() == 12);
  std::set<std::string> combos;
  Rng rng(14);
  for (std::size_t i = 0; i < space.grid_size(); ++i) {
    const Config c = space.resolve(rng, i);
    combos.insert(c.at("a").dump() + c.at("nested/b").dump() + c.at("c").dump());
    CHECK(c.get<int>("k") == 7);
    CHECK(c.get<double>("nested/u") >= 0);
  }
  CHECK(combos.size() == 12);
  // The first grid key varies fastest.
  CHECK(space.resolve(rng, 0).get<int>("a") == 1);
  CHECK(space.resolve(rng, 1).get<int>("a") == 2);
  CHECK(space.resolve(rng, 3).get<std::string>("nested/b") == "y");
  CHECK(space.resolve(rng, 6).get<bool>("c") == false);
  CHECK(ParamSpace{{"u", uniform(0, 1)}}.grid_size() == 1);
  // A grid key's value drawn on its own (outside a grid walk) is one of its values.
  const std::vector<json> raw = draw(grid_search({10, 20}), 15, 1000);
  CHECK(std::all_of(raw.begin(), raw.end(), [](const json& v) { return v == 10 || v == 20; }));
}

TEST_CASE("sample_from: runs after the other keys, reads earlier, later and nested keys and constants") {
  const ParamSpace space{
      {"before", sample_from([](const Config& c) { return c.get<double>("lr") * 2; })},
      {"lr", loguniform(1e-4, 1e-1)},
      {"model", {{"layers", randint(1, 5)}, {"width", 64}}},
      {"units", sample_from([](const Config& c) { return c.get<int>("model/layers") * c.get<int>("model/width"); })},
      {"name", "net"},
      {"after", sample_from([](const Config& c) { return c.get<std::string>("name") + "/" + c.at("units").dump(); })},
  };
  const auto dims = space.dimensions();
  REQUIRE(dims.size() == 5);  // constants are not drawn
  CHECK(dims[2].first == "model/layers");
  Rng rng(16);
  for (int i = 0; i < 200; ++i) {
    const Config c = space.resolve(rng);
    const double lr = c.get<double>("lr");
    CHECK(c.get<double>("before") == doctest::Approx(2 * lr));
    CHECK(c.get<int>("units") == 64 * c.get<int>("model/layers"));
    CHECK(c.get<int>("model/width") == 64);
    CHECK(c.get<std::string>("after") == "net/" + std::to_string(c.get<int>("units")));
  }
}

TEST_CASE("resolve: a chooser's values replace the draws of the keys it names") {
  const ParamSpace space{{"a", uniform(0, 1)}, {"b", choice({"x", "y"})}, {"c", grid_search({1, 2})}};
  Rng rng(17);
  const Config c = space.resolve(rng, 0, [](const std::string& key, const Domain&) -> std::optional<json> {
    if (key == "a") return 0.25;
    if (key == "c") return 2;
    return std::nullopt;
  });
  CHECK(c.get<double>("a") == 0.25);
  CHECK(c.get<int>("c") == 2);
  CHECK((c.get<std::string>("b") == "x" || c.get<std::string>("b") == "y"));
}

TEST_CASE("seeded draws are reproducible: the same seed gives the same configs") {
  const ParamSpace space{{"a", uniform(0, 1)}, {"b", randint(0, 1000)}, {"c", randn()}};
  Rng r1(18), r2(18);
  for (int i = 0; i < 50; ++i) CHECK(space.resolve(r1) == space.resolve(r2));
}

TEST_CASE("Config::get: typed reads convert exactly, and a mismatch names the key and both types") {
  Config c(json{{"i", 42},
                {"f", 1.5},
                {"s", "adam"},
                {"b", true},
                {"big", 200},
                {"neg", -1},
                {"huge", 5000000000LL},
                {"nested", {{"k", 3}}}});
  CHECK(c.get<int>("i") == 42);
  CHECK(c.get<double>("i") == 42.0);  // an integer reads as a float type
  CHECK(c.get<float>("f") == 1.5f);
  CHECK(c.get<std::string>("s") == "adam");
  CHECK(c.get<bool>("b"));
  CHECK(c.get<std::uint8_t>("big") == 200);
  CHECK(c.get<std::int64_t>("huge") == 5000000000LL);
  CHECK(c.get<int>("nested/k") == 3);
  CHECK(c.get_or<int>("missing", 9) == 9);

  std::string e = usage_error_of([&] { (void)c.get<int>("f"); });
  CHECK(contains(e, "\"f\""));
  CHECK(contains(e, "a float"));
  CHECK(contains(e, "not an integer"));

  e = usage_error_of([&] { (void)c.get<double>("s"); });
  CHECK(contains(e, "\"s\""));
  CHECK(contains(e, "string"));
  CHECK(contains(e, "not a number"));

  e = usage_error_of([&] { (void)c.get<std::string>("i"); });
  CHECK(contains(e, "\"i\""));
  CHECK(contains(e, "an integer"));
  CHECK(contains(e, "not a string"));

  e = usage_error_of([&] { (void)c.get<bool>("i"); });
  CHECK(contains(e, "\"i\""));
  CHECK(contains(e, "not bool"));

  e = usage_error_of([&] { (void)c.get<std::int8_t>("big"); });
  CHECK(contains(e, "\"big\""));
  CHECK(contains(e, "200"));
  CHECK(contains(e, "an integer type that holds it"));

  e = usage_error_of([&] { (void)c.get<std::uint8_t>("neg"); });
  CHECK(contains(e, "\"neg\""));
  CHECK(contains(e, "-1"));
  CHECK(contains(e, "unsigned"));

  e = usage_error_of([&] { (void)c.get<std::int32_t>("huge"); });
  CHECK(contains(e, "\"huge\""));
  CHECK(contains(e, "5000000000"));

  e = usage_error_of([&] { (void)c.get<int>("missing"); });
  CHECK(contains(e, "\"missing\""));
  e = usage_error_of([&] { (void)c.get_or<int>("s", 1); });  // present with another type: still an error
  CHECK(contains(e, "\"s\""));
  // Non-negative integers parsed from JSON text are unsigned in nlohmann::json: still range-checked.
  const Config parsed(json::parse(R"({"u": 300})"));
  e = usage_error_of([&] { (void)parsed.get<std::uint8_t>("u"); });
  CHECK(contains(e, "\"u\""));
  CHECK(parsed.get<std::uint16_t>("u") == 300);
}

TEST_CASE("every bad argument of a primitive throws usage_error naming the primitive") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    const char* name;
    std::function<void()> make;
  };
  const std::vector<Case> cases{
      {"uniform", [] { uniform(1, 1); }},
      {"uniform", [] { uniform(2, 1); }},
      {"uniform", [&] { uniform(nan, 1); }},
      {"uniform", [&] { uniform(0, inf); }},
      {"quniform", [] { quniform(0, 1, 0); }},
      {"quniform", [] { quniform(0, 1, -0.5); }},
      {"quniform", [] { quniform(1, 0, 0.1); }},
      {"quniform", [&] { quniform(0, 1, nan); }},
      {"loguniform", [] { loguniform(0, 1); }},
      {"loguniform", [] { loguniform(-1, 1); }},
      {"loguniform", [] { loguniform(2, 1); }},
      {"loguniform", [&] { loguniform(1, inf); }},
      {"qloguniform", [] { qloguniform(0, 1, 0.1); }},
      {"qloguniform", [] { qloguniform(1, 10, 0); }},
      {"qloguniform", [] { qloguniform(10, 1, 1); }},
      {"randn", [] { randn(0, 0); }},
      {"randn", [] { randn(0, -1); }},
      {"randn", [&] { randn(nan, 1); }},
      {"randn", [&] { randn(0, inf); }},
      {"qrandn", [] { qrandn(0, 1, 0); }},
      {"qrandn", [] { qrandn(0, 0, 1); }},
      {"qrandn", [] { qrandn(0, 1, -1); }},
      {"randint", [] { randint(3, 3); }},
      {"randint", [] { randint(4, 3); }},
      {"randint", [] { randint(0, (std::int64_t{1} << 53) + 2); }},
      {"qrandint", [] { qrandint(0, 10, 0); }},
      {"qrandint", [] { qrandint(0, 10, -2); }},
      {"qrandint", [] { qrandint(5, 5, 1); }},
      {"lograndint", [] { lograndint(0, 10); }},
      {"lograndint", [] { lograndint(-1, 10); }},
      {"lograndint", [] { lograndint(5, 5); }},
      {"choice", [] { choice({}); }},
      {"grid_search", [] { grid_search({}); }},
      {"sample_from", [] { sample_from(nullptr); }},
  };
  for (const Case& c : cases) {
    const std::string e = usage_error_of(c.make);
    CHECK_MESSAGE(contains(e, std::string("lumen::tune::") + c.name + ":"), c.name << " threw: " << e);
  }
}
