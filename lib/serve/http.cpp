#include "lumen/serve/http.h"

#include <algorithm>
#include <cctype>

namespace lumen::serve {

std::string_view Request::header(std::string_view name) const noexcept {
  auto same = [&](const std::string& h) {
    return h.size() == name.size() && std::equal(h.begin(), h.end(), name.begin(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
           });
  };
  for (const auto& [k, v] : headers)
    if (same(k)) return v;
  return {};
}

Response Response::json(const nlohmann::json& value, int status) {
  Response r;
  r.status = status;
  r.body = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  r.content_type = "application/json";
  return r;
}

Response Response::text(std::string body, int status) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

}  // namespace lumen::serve
