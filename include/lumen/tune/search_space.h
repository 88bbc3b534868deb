/// @file
/// Search spaces: what each hyperparameter of a trial may be, and how it is drawn.
///
/// @code
///   using namespace lumen::tune;
///   ParamSpace space{
///       {"lr", loguniform(1e-4, 1e-1)},
///       {"layers", randint(1, 5)},                       // 1, 2, 3 or 4: the upper bound is excluded
///       {"batch", grid_search({32, 64, 128})},           // every value, num_samples times each
///       {"optimizer", {{"name", choice({"sgd", "adam"})}, {"momentum", uniform(0.8, 0.99)}}},
///       {"epochs", 20},                                  // a constant
///       {"decay", sample_from([](const Config& c) { return c.get<double>("lr") / 10; })},
///   };
/// @endcode
///
/// Nested spaces give nested keys ("optimizer/momentum"). Every Domain checks its arguments when
/// made and throws usage_error naming the primitive (low >= high, a non-positive bound of a log
/// scale, q <= 0, an empty choice). Drawing is deterministic given the generator's state, so a
/// seeded searcher gives the same trials on every run of the same build.
///
/// Keys are drawn in the order written; sample_from functions run after every other key of
/// the trial is set, in the order written, and may read the keys drawn before them.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "lumen/tune/config.h"

namespace lumen::tune {

/// The random number generator every draw uses.
using Rng = std::mt19937_64;

/// One hyperparameter's distribution.
class Domain {
 public:
  /// What a domain draws from, and which function made it.
  enum class Kind {
    real,         ///< uniform, quniform, loguniform, qloguniform
    normal,       ///< randn, qrandn
    integer,      ///< randint, qrandint, lograndint
    categorical,  ///< choice
    grid,         ///< grid_search: not drawn; every value in turn
    function,     ///< sample_from
  };

  /// Which kind of domain this is.
  Kind kind() const noexcept { return kind_; }
  /// real and integer: the bounds (integer: high excluded); log: drawn uniformly in log space.
  /// @{
  double low() const noexcept { return low_; }
  double high() const noexcept { return high_; }
  bool log_scale() const noexcept { return log_; }
  /// @}
  /// Rounding step: the value is a multiple of q (0: no rounding).
  double q() const noexcept { return q_; }
  /// normal: mean and standard deviation.
  /// @{
  double mean() const noexcept { return low_; }
  double sd() const noexcept { return high_; }
  /// @}
  /// categorical and grid: the values.
  const std::vector<nlohmann::json>& values() const noexcept { return values_; }
  /// A description such as "loguniform(0.0001, 0.1)".
  std::string describe() const;

  /// A draw; `so_far` is the trial's config as drawn up to here (read by sample_from).
  nlohmann::json sample(Rng& rng, const Config& so_far) const;
  /// Whether `v` is a value this domain can give (type, bounds, step, membership).
  bool contains(const nlohmann::json& v) const;

  /// Makes a domain; the named functions below check their arguments and are how users make one.
  /// @{
  static Domain make_real(const char* name, double low, double high, double q, bool log);
  static Domain make_normal(const char* name, double mean, double sd, double q);
  static Domain make_integer(const char* name, std::int64_t low, std::int64_t high, std::int64_t q, bool log);
  static Domain make_values(Kind kind, const char* name, std::vector<nlohmann::json> values);
  static Domain make_function(std::function<nlohmann::json(const Config&)> f);
  /// @}

 private:
  Domain() = default;
  Kind kind_ = Kind::real;
  const char* name_ = "";
  double low_ = 0, high_ = 0, q_ = 0;
  bool log_ = false;
  std::vector<nlohmann::json> values_;
  std::shared_ptr<const std::function<nlohmann::json(const Config&)>> function_;
};

/// Floats uniform in [low, high).
Domain uniform(double low, double high);
/// uniform, rounded to a multiple of q inside [low, high] (there must be one).
Domain quniform(double low, double high, double q);
/// Floats whose logarithm is uniform: low > 0.
Domain loguniform(double low, double high);
/// loguniform, rounded to a multiple of q inside [low, high] (there must be one).
Domain qloguniform(double low, double high, double q);
/// Normal floats.
Domain randn(double mean = 0.0, double sd = 1.0);
/// randn, rounded to a multiple of q.
Domain qrandn(double mean, double sd, double q);
/// Integers in [low, high): the upper bound is excluded.
Domain randint(std::int64_t low, std::int64_t high);
/// The multiples of q in [low, high], each equally likely (the upper bound is included, as in
/// Ray's qrandint; there must be one).
Domain qrandint(std::int64_t low, std::int64_t high, std::int64_t q = 1);
/// Integers in [low, high) whose logarithm is uniform: low >= 1.
Domain lograndint(std::int64_t low, std::int64_t high);
/// One of the values, each equally likely.
Domain choice(std::vector<nlohmann::json> values);
/// Every value: the search space's grid is the cross product of its grid_search keys, and
/// random search runs it num_samples times.
Domain grid_search(std::vector<nlohmann::json> values);
/// The value of f(config so far).
Domain sample_from(std::function<nlohmann::json(const Config&)> f);

class ParamSpace;

/// One key's entry of a space: a Domain, a constant, or a nested space.
class Param {
 public:
  /// A domain to draw from.
  /// @{
  Param(Domain d);
  Param(ParamSpace nested);
  Param(std::initializer_list<std::pair<const std::string, Param>> nested);
  /// @}
  /// A constant.
  /// @{
  Param(int v) : constant_(v) {}
  Param(long v) : constant_(v) {}
  Param(long long v) : constant_(v) {}
  Param(unsigned v) : constant_(v) {}
  Param(unsigned long v) : constant_(v) {}
  Param(double v) : constant_(v) {}
  Param(bool v) : constant_(v) {}
  Param(const char* v) : constant_(v) {}
  Param(std::string v) : constant_(std::move(v)) {}
  /// @}
  /// Any other JSON value as a constant (an array, say).
  static Param constant(nlohmann::json v);

  /// The domain; null unless this entry is one.
  const Domain* domain() const noexcept { return domain_.get(); }
  /// The nested space; null unless this entry is one.
  const ParamSpace* nested() const noexcept { return nested_.get(); }
  /// The constant; null JSON unless this entry is one.
  const nlohmann::json& constant_value() const noexcept { return constant_; }

 private:
  Param() = default;
  std::shared_ptr<const Domain> domain_;
  std::shared_ptr<const ParamSpace> nested_;
  nlohmann::json constant_;
};

/// A search space: keys in the order written, each a Param.
class ParamSpace {
 public:
  ParamSpace() = default;
  /// The entries, in the order written; throws usage_error as add() does.
  ParamSpace(std::initializer_list<std::pair<const std::string, Param>> entries);
  /// A key written twice, an empty key or one holding '/', throw usage_error.
  void add(std::string key, Param p);

  /// The entries, in the order written.
  const std::vector<std::pair<std::string, Param>>& entries() const noexcept { return entries_; }
  /// True when the space has no entry.
  bool empty() const noexcept { return entries_.empty(); }

  /// The drawn keys ("a/b" for nested ones) and their domains, in drawing order; grid and
  /// sample_from keys included. What model-based searchers search over.
  std::vector<std::pair<std::string, const Domain*>> dimensions() const;
  /// How many points the grid has: the product of the grid_search keys' sizes (1 without any).
  std::size_t grid_size() const;

  /// What resolve() asks for a drawn key's value: the value, or nullopt to let the domain draw it.
  using Chooser = std::function<std::optional<nlohmann::json>(const std::string&, const Domain&)>;
  /// A trial's config. For each drawn key, `choose(key, domain)` may give the value; when it
  /// gives nullopt the domain draws it from rng. Grid keys take point `grid_index` of the grid
  /// (grid_index < grid_size()), unless choose gives their value. sample_from runs last.
  Config resolve(Rng& rng, std::size_t grid_index = 0, const Chooser& choose = {}) const;

 private:
  std::vector<std::pair<std::string, Param>> entries_;
};

}  // namespace lumen::tune
