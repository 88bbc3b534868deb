#include "lumen/tune/config.h"

#include <cstdio>
#include <string>

namespace lumen::tune {

namespace {

// Calls f(part) for each '/'-separated part of key.
template <class F>
bool for_each_part(std::string_view key, F&& f) {
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = key.find('/', start);
    const std::string_view part = key.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!f(part)) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

const char* json_type(const nlohmann::json& v) {
  if (v.is_number_float()) return "a float";
  if (v.is_number_integer()) return "an integer";
  return v.type_name();
}

}  // namespace

Config::Config(nlohmann::json values) : values_(std::move(values)) {
  if (!values_.is_object()) throw usage_error("lumen::tune::Config: a config is a JSON object, not " + std::string(values_.type_name()));
}

const nlohmann::json* Config::find(std::string_view key) const noexcept {
  const nlohmann::json* at = &values_;
  const bool found = for_each_part(key, [&](std::string_view part) {
    if (!at->is_object()) return false;
    const auto it = at->find(part);
    if (it == at->end()) return false;
    at = &*it;
    return true;
  });
  return found ? at : nullptr;
}

const nlohmann::json& Config::at(std::string_view key) const {
  const nlohmann::json* v = find(key);
  if (v == nullptr) throw usage_error("lumen::tune::Config: no key \"" + std::string(key) + "\" in " + values_.dump());
  return *v;
}

void Config::set(std::string_view key, nlohmann::json value) {
  if (key.empty()) throw usage_error("lumen::tune::Config::set: the key is empty");
  nlohmann::json* at = &values_;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = key.find('/', start);
    const std::string part(key.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (part.empty()) throw usage_error("lumen::tune::Config::set: the key \"" + std::string(key) + "\" has an empty part");
    if (slash == std::string_view::npos) {
      (*at)[part] = std::move(value);
      return;
    }
    nlohmann::json& next = (*at)[part];
    if (next.is_null()) next = nlohmann::json::object();
    if (!next.is_object())
      throw usage_error("lumen::tune::Config::set: \"" + std::string(key.substr(0, slash)) + "\" holds a value, not an object");
    at = &next;
    start = slash + 1;
  }
}

std::string Config::brief() const {
  std::string out;
  const auto walk = [&](const auto& self, const nlohmann::json& node, const std::string& prefix) -> void {
    for (auto it = node.begin(); it != node.end(); ++it) {
      const std::string key = prefix.empty() ? it.key() : prefix + "/" + it.key();
      if (it->is_object() && !it->empty()) {
        self(self, *it, key);
        continue;
      }
      if (!out.empty()) out += ", ";
      out += key;
      out += '=';
      if (it->is_number_float()) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.4g", it->get<double>());
        out += buf;
      } else if (it->is_string()) {
        out += it->get<std::string>();
      } else {
        out += it->dump();
      }
    }
  };
  walk(walk, values_, "");
  return out;
}

void Config::type_mismatch(std::string_view key, std::string_view wanted, const nlohmann::json& v) const {
  throw usage_error("lumen::tune::Config::get: \"" + std::string(key) + "\" is " + json_type(v) + " (" + v.dump() +
                    "), not " + std::string(wanted));
}

}  // namespace lumen::tune
