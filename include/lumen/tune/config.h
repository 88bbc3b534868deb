/// @file
/// Config: one trial's hyperparameters, as the trainable reads them.
///
/// @code
///   double lr = cfg.get<double>("lr");
///   int layers = cfg.get<int>("model/layers");     // nested keys joined with '/'
///   std::string opt = cfg.get<std::string>("optimizer");
/// @endcode
///
/// A Config is a JSON object (nlohmann::json): numbers, strings, booleans, arrays and nested
/// objects. get<T> converts exactly: an integer reads as any arithmetic type that holds it, a
/// float only as a floating-point type; anything else throws usage_error naming the key, the
/// type asked for and the value found. Reads are const and may come from any thread; a Config
/// is not modified once its trial has started.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include "lumen/error.h"

namespace lumen::tune {

/// One trial's hyperparameters: a JSON object read by key ("a/b" for nested keys); see the top of
/// this file for how get<T> converts.
class Config {
 public:
  Config() : values_(nlohmann::json::object()) {}
  /// values must be a JSON object; throws usage_error otherwise.
  explicit Config(nlohmann::json values);

  /// The value at `key` ("a/b" for b inside a). Throws usage_error if there is none.
  const nlohmann::json& at(std::string_view key) const;
  /// The value at `key`, or nullptr.
  const nlohmann::json* find(std::string_view key) const noexcept;
  /// Whether `key` holds a value.
  bool contains(std::string_view key) const noexcept { return find(key) != nullptr; }

  /// The value at `key` as a T, converted exactly as the top of this file says; throws usage_error
  /// naming the key when it is missing or does not convert.
  template <class T>
  T get(std::string_view key) const;
  /// get<T>(key), or `fallback` when the key is absent (a value of another type still throws).
  template <class T>
  T get_or(std::string_view key, T fallback) const {
    return contains(key) ? get<T>(key) : fallback;
  }

  /// Sets `key` (creating the objects on its path).
  void set(std::string_view key, nlohmann::json value);

  /// The whole config as a JSON object.
  const nlohmann::json& json() const noexcept { return values_; }
  /// Compact JSON text, keys sorted.
  std::string dump() const { return values_.dump(); }
  /// "lr=0.01, model/layers=3": the leaves in key order, for tables and logs.
  std::string brief() const;

  /// Same keys and values.
  friend bool operator==(const Config& a, const Config& b) { return a.values_ == b.values_; }

 private:
  [[noreturn]] void type_mismatch(std::string_view key, std::string_view wanted, const nlohmann::json& v) const;
  nlohmann::json values_;
};

template <class T>
T Config::get(std::string_view key) const {
  const nlohmann::json& v = at(key);
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) type_mismatch(key, "bool", v);
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (v.is_number_unsigned()) {
      const auto u = v.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) type_mismatch(key, "an integer type that holds it", v);
      return static_cast<T>(u);
    }
    if (!v.is_number_integer()) type_mismatch(key, "an integer", v);
    const auto i = v.get<std::int64_t>();
    if constexpr (std::is_signed_v<T>) {
      if (i < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
          i > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
        type_mismatch(key, "an integer type that holds it", v);
    } else {
      if (i < 0 || static_cast<std::uint64_t>(i) > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
        type_mismatch(key, "an unsigned integer that holds it", v);
    }
    return static_cast<T>(i);
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) type_mismatch(key, "a number", v);
    const double d = v.get<double>();
    if (d > static_cast<double>(std::numeric_limits<T>::max()) || d < -static_cast<double>(std::numeric_limits<T>::max()))
      type_mismatch(key, "a floating-point type that holds it", v);
    return static_cast<T>(d);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) type_mismatch(key, "a string", v);
    return v.get<std::string>();
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    return v;
  } else {
    try {
      return v.get<T>();
    } catch (const nlohmann::json::exception&) {
      type_mismatch(key, "the type asked for", v);
    }
  }
}

}  // namespace lumen::tune
