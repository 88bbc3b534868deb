#include "lumen/tune/search_space.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "lumen/error.h"

namespace lumen::tune {

namespace {

[[noreturn]] void bad(const char* name, const std::string& why) {
  throw usage_error(std::string("lumen::tune::") + name + ": " + why);
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void check_finite(const char* name, std::initializer_list<double> values) {
  for (double v : values)
    if (!std::isfinite(v)) bad(name, "arguments must be finite numbers, got " + number(v));
}

// v rounded to a multiple of q that lies in [low, high] (the constructors check there is one).
double quantize(double v, double q, double low, double high) {
  if (q <= 0) return v;
  double r = std::round(v / q) * q;
  if (r > high) r -= q;
  if (r < low) r += q;
  return r;
}

// The smallest k with k * q >= low (q > 0).
std::int64_t low_multiple(std::int64_t low, std::int64_t q) { return low / q + (low % q > 0); }
// The largest k with k * q <= high (q > 0).
std::int64_t high_multiple(std::int64_t high, std::int64_t q) { return high / q - (high % q < 0); }

}  // namespace

Domain Domain::make_real(const char* name, double low, double high, double q, bool log) {
  check_finite(name, {low, high, q});
  if (!(low < high)) bad(name, "low (" + number(low) + ") must be below high (" + number(high) + ")");
  if (q < 0) bad(name, "q must be positive, got " + number(q));
  if (log && low <= 0) bad(name, "a log scale needs low > 0, got " + number(low));
  // The draw computes high - low (or their logarithms) and v / q: each must stay finite.
  if (!log && !std::isfinite(high - low)) bad(name, "the range from " + number(low) + " to " + number(high) + " is too wide");
  if (q > 0 && (!std::isfinite(low / q) || !std::isfinite(high / q)))
    bad(name, "q (" + number(q) + ") is too small for the bounds " + number(low) + " and " + number(high));
  if (q > 0 && std::ceil(low / q) * q > high)
    bad(name, "no multiple of q (" + number(q) + ") lies between " + number(low) + " and " + number(high));
  Domain d;
  d.kind_ = Kind::real;
  d.name_ = name;
  d.low_ = low;
  d.high_ = high;
  d.q_ = q;
  d.log_ = log;
  return d;
}

Domain Domain::make_normal(const char* name, double mean, double sd, double q) {
  check_finite(name, {mean, sd, q});
  if (!(sd > 0)) bad(name, "sd must be positive, got " + number(sd));
  if (q < 0) bad(name, "q must be positive, got " + number(q));
  // Draws lie within about 40 standard deviations of the mean; their multiples of q must be finite.
  if (!std::isfinite(std::fabs(mean) + 40 * sd) || (q > 0 && !std::isfinite((std::fabs(mean) + 40 * sd) / q)))
    bad(name, "mean " + number(mean) + " and sd " + number(sd) + (q > 0 ? " with q " + number(q) : "") +
                  " give values beyond the range of double");
  Domain d;
  d.kind_ = Kind::normal;
  d.name_ = name;
  d.low_ = mean;
  d.high_ = sd;
  d.q_ = q;
  return d;
}

Domain Domain::make_integer(const char* name, std::int64_t low, std::int64_t high, std::int64_t q, bool log) {
  if (!(low < high)) bad(name, "low (" + std::to_string(low) + ") must be below high (" + std::to_string(high) + ")");
  if (q <= 0) bad(name, "q must be positive, got " + std::to_string(q));
  if (log && low < 1) bad(name, "a log scale needs low >= 1, got " + std::to_string(low));
  if (q > 1 && low_multiple(low, q) > high_multiple(high, q))
    bad(name, "no multiple of q (" + std::to_string(q) + ") lies between " + std::to_string(low) + " and " +
                  std::to_string(high));
  // Bounds beyond 2^53 would not survive the double arithmetic of log scales and rounding.
  constexpr std::int64_t exact = std::int64_t{1} << 53;
  if (low < -exact || high > exact) bad(name, "bounds must lie within +-2^53");
  Domain d;
  d.kind_ = Kind::integer;
  d.name_ = name;
  d.low_ = static_cast<double>(low);
  d.high_ = static_cast<double>(high);
  d.q_ = static_cast<double>(q);
  d.log_ = log;
  return d;
}

Domain Domain::make_values(Kind kind, const char* name, std::vector<nlohmann::json> values) {
  if (values.empty()) bad(name, "needs at least one value");
  Domain d;
  d.kind_ = kind;
  d.name_ = name;
  d.values_ = std::move(values);
  return d;
}

Domain Domain::make_function(std::function<nlohmann::json(const Config&)> f) {
  if (!f) bad("sample_from", "the function is empty");
  Domain d;
  d.kind_ = Kind::function;
  d.name_ = "sample_from";
  d.function_ = std::make_shared<const std::function<nlohmann::json(const Config&)>>(std::move(f));
  return d;
}

std::string Domain::describe() const {
  switch (kind_) {
    case Kind::real:
      return std::string(name_) + "(" + number(low_) + ", " + number(high_) + (q_ > 0 ? ", " + number(q_) : "") + ")";
    case Kind::normal:
      return std::string(name_) + "(" + number(low_) + ", " + number(high_) + (q_ > 0 ? ", " + number(q_) : "") + ")";
    case Kind::integer:
      return std::string(name_) + "(" + number(low_) + ", " + number(high_) + (q_ > 1 ? ", " + number(q_) : "") + ")";
    case Kind::categorical:
    case Kind::grid:
      return std::string(name_) + "(" + nlohmann::json(values_).dump() + ")";
    case Kind::function:
      return "sample_from(...)";
  }
  return name_;
}

nlohmann::json Domain::sample(Rng& rng, const Config& so_far) const {
  switch (kind_) {
    case Kind::real: {
      double v;
      if (log_) {
        v = std::exp(std::uniform_real_distribution<double>(std::log(low_), std::log(high_))(rng));
        // exp(log(x)) may round past the bounds; the range is [low, high).
        v = std::clamp(v, low_, std::nextafter(high_, low_));
      } else {
        v = std::uniform_real_distribution<double>(low_, high_)(rng);
      }
      return quantize(v, q_, low_, high_);
    }
    case Kind::normal: {
      const double v = std::normal_distribution<double>(low_, high_)(rng);
      return q_ > 0 ? std::round(v / q_) * q_ : v;
    }
    case Kind::integer: {
      const auto low = static_cast<std::int64_t>(low_);
      const auto high = static_cast<std::int64_t>(high_);
      const auto q = static_cast<std::int64_t>(q_);
      if (log_) {
        const double v = std::exp(std::uniform_real_distribution<double>(std::log(low_), std::log(high_))(rng));
        return std::clamp(static_cast<std::int64_t>(std::floor(v)), low, high - 1);
      }
      if (std::strcmp(name_, "qrandint") == 0) {
        // Both bounds included; each multiple of q between them equally likely.
        return std::uniform_int_distribution<std::int64_t>(low_multiple(low, q), high_multiple(high, q))(rng) * q;
      }
      return std::uniform_int_distribution<std::int64_t>(low, high - 1)(rng);
    }
    case Kind::categorical:
    case Kind::grid:
      return values_[std::uniform_int_distribution<std::size_t>(0, values_.size() - 1)(rng)];
    case Kind::function:
      return (*function_)(so_far);
  }
  return nullptr;
}

bool Domain::contains(const nlohmann::json& v) const {
  switch (kind_) {
    case Kind::real: {
      if (!v.is_number()) return false;
      const double x = v.get<double>();
      // Without rounding the range is [low, high); rounded to q, high itself may come.
      if (!(x >= low_) || (q_ > 0 ? x > high_ : x >= high_)) return false;
      return q_ <= 0 || std::fabs(x / q_ - std::round(x / q_)) < 1e-6;
    }
    case Kind::normal:
      return v.is_number() && std::isfinite(v.get<double>()) &&
             (q_ <= 0 || std::fabs(v.get<double>() / q_ - std::round(v.get<double>() / q_)) < 1e-6);
    case Kind::integer: {
      if (!v.is_number_integer()) return false;
      const auto x = v.get<std::int64_t>();
      const auto q = static_cast<std::int64_t>(q_);
      if (std::strcmp(name_, "qrandint") == 0) return x % q == 0 && static_cast<double>(x) >= low_ && static_cast<double>(x) <= high_;
      return static_cast<double>(x) >= low_ && static_cast<double>(x) < high_;
    }
    case Kind::categorical:
    case Kind::grid:
      return std::find(values_.begin(), values_.end(), v) != values_.end();
    case Kind::function:
      return true;
  }
  return false;
}

Domain uniform(double low, double high) { return Domain::make_real("uniform", low, high, 0, false); }
Domain quniform(double low, double high, double q) {
  if (!(q > 0)) bad("quniform", "q must be positive, got " + number(q));
  return Domain::make_real("quniform", low, high, q, false);
}
Domain loguniform(double low, double high) { return Domain::make_real("loguniform", low, high, 0, true); }
Domain qloguniform(double low, double high, double q) {
  if (!(q > 0)) bad("qloguniform", "q must be positive, got " + number(q));
  return Domain::make_real("qloguniform", low, high, q, true);
}
Domain randn(double mean, double sd) { return Domain::make_normal("randn", mean, sd, 0); }
Domain qrandn(double mean, double sd, double q) {
  if (!(q > 0)) bad("qrandn", "q must be positive, got " + number(q));
  return Domain::make_normal("qrandn", mean, sd, q);
}
Domain randint(std::int64_t low, std::int64_t high) { return Domain::make_integer("randint", low, high, 1, false); }
Domain qrandint(std::int64_t low, std::int64_t high, std::int64_t q) {
  return Domain::make_integer("qrandint", low, high, q, false);
}
Domain lograndint(std::int64_t low, std::int64_t high) { return Domain::make_integer("lograndint", low, high, 1, true); }
Domain choice(std::vector<nlohmann::json> values) {
  return Domain::make_values(Domain::Kind::categorical, "choice", std::move(values));
}
Domain grid_search(std::vector<nlohmann::json> values) {
  return Domain::make_values(Domain::Kind::grid, "grid_search", std::move(values));
}
Domain sample_from(std::function<nlohmann::json(const Config&)> f) { return Domain::make_function(std::move(f)); }

Param::Param(Domain d) : domain_(std::make_shared<const Domain>(std::move(d))) {}
Param::Param(ParamSpace nested) : nested_(std::make_shared<const ParamSpace>(std::move(nested))) {}
Param::Param(std::initializer_list<std::pair<const std::string, Param>> nested)
    : nested_(std::make_shared<const ParamSpace>(nested)) {}

Param Param::constant(nlohmann::json v) {
  Param p;
  p.constant_ = std::move(v);
  return p;
}

ParamSpace::ParamSpace(std::initializer_list<std::pair<const std::string, Param>> entries) {
  for (const auto& [k, p] : entries) add(k, p);
}

void ParamSpace::add(std::string key, Param p) {
  if (key.empty()) throw usage_error("lumen::tune::ParamSpace: a key is empty");
  // JSON, and so the experiment's files, cannot hold NaN or infinity: a restored trial would
  // read null.
  if (p.domain() == nullptr && p.nested() == nullptr && p.constant_value().is_number_float() &&
      !std::isfinite(p.constant_value().get<double>()))
    throw usage_error("lumen::tune::ParamSpace: the constant \"" + key + "\" is not a finite number");
  if (key.find('/') != std::string::npos)
    throw usage_error("lumen::tune::ParamSpace: the key \"" + key + "\" holds '/', which joins nested keys; nest a space instead");
  for (const auto& e : entries_)
    if (e.first == key) throw usage_error("lumen::tune::ParamSpace: the key \"" + key + "\" is written twice");
  entries_.emplace_back(std::move(key), std::move(p));
}

namespace {

template <class F>
void for_each_leaf(const ParamSpace& space, const std::string& prefix, F&& f) {
  for (const auto& [key, p] : space.entries()) {
    const std::string path = prefix.empty() ? key : prefix + "/" + key;
    if (p.nested() != nullptr) {
      for_each_leaf(*p.nested(), path, f);
    } else {
      f(path, p);
    }
  }
}

}  // namespace

std::vector<std::pair<std::string, const Domain*>> ParamSpace::dimensions() const {
  std::vector<std::pair<std::string, const Domain*>> out;
  for_each_leaf(*this, "", [&](const std::string& path, const Param& p) {
    if (p.domain() != nullptr) out.emplace_back(path, p.domain());
  });
  return out;
}

std::size_t ParamSpace::grid_size() const {
  std::size_t n = 1;
  for_each_leaf(*this, "", [&](const std::string&, const Param& p) {
    if (p.domain() != nullptr && p.domain()->kind() == Domain::Kind::grid) {
      const std::size_t k = p.domain()->values().size();
      if (k > 1 && n > (std::size_t{1} << 40) / k) throw usage_error("lumen::tune::ParamSpace: the grid has more than 2^40 points");
      n *= k;
    }
  });
  return n;
}

Config ParamSpace::resolve(Rng& rng, std::size_t grid_index, const Chooser& choose) const {
  if (grid_index >= grid_size())
    throw usage_error("lumen::tune::ParamSpace::resolve: grid point " + std::to_string(grid_index) + " of a grid of " +
                      std::to_string(grid_size()));
  Config out;
  std::vector<std::pair<std::string, const Domain*>> functions;
  std::size_t rest = grid_index;
  for_each_leaf(*this, "", [&](const std::string& path, const Param& p) {
    const Domain* d = p.domain();
    if (d == nullptr) {
      out.set(path, p.constant_value());
      return;
    }
    std::optional<nlohmann::json> chosen;
    if (choose && d->kind() != Domain::Kind::function) chosen = choose(path, *d);
    if (d->kind() == Domain::Kind::grid) {
      // The grid index in mixed radix, the first grid key varying fastest.
      const std::size_t k = d->values().size();
      const std::size_t digit = rest % k;
      rest /= k;
      out.set(path, chosen ? std::move(*chosen) : d->values()[digit]);
      return;
    }
    if (d->kind() == Domain::Kind::function) {
      out.set(path, nullptr);
      functions.emplace_back(path, d);
      return;
    }
    out.set(path, chosen ? std::move(*chosen) : d->sample(rng, out));
  });
  for (const auto& [path, d] : functions) {
    std::optional<nlohmann::json> chosen;
    if (choose) chosen = choose(path, *d);
    nlohmann::json v = chosen ? std::move(*chosen) : d->sample(rng, out);
    if (v.is_discarded() || (v.is_number_float() && !std::isfinite(v.get<double>())))
      throw usage_error("lumen::tune: sample_from for \"" + path + "\" gave " +
                        (v.is_discarded() ? std::string("a discarded JSON value") : "a number that is not finite"));
    out.set(path, std::move(v));
  }
  return out;
}

}  // namespace lumen::tune
