#include "serve/response_head.h"

#include <ostream>  // before Beast: Boost 1.74's status.hpp prints through it undeclared

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/status.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>

namespace lumen::serve::detail {

namespace {

namespace http = boost::beast::http;

// RFC 9110's tchar.
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  return std::ranges::all_of(s, [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
  });
}

// Visible characters, spaces, tabs and bytes above 127; no other control character.
bool is_field_value(std::string_view s) {
  return std::ranges::all_of(s, [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

std::string_view trimmed(std::string_view v) {
  const auto first = v.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return v.substr(first, v.find_last_not_of(" \t") - first + 1);
}

bool same_name(std::string_view a, std::string_view b) { return boost::beast::iequals({a.data(), a.size()}, {b.data(), b.size()}); }

// Fields the server writes itself: a model's Server, Content-Type and X-Request-ID replace the
// server's value; its framing fields are dropped.
constexpr std::string_view kServerFields[] = {"Server",         "Content-Type",      "X-Request-ID",
                                              "Content-Length", "Transfer-Encoding", "Connection"};

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(trimmed(value));
  out.append("\r\n");
}

void append_number(std::string& out, std::uint64_t n) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, n).ptr;
  out.append(digits, end);
}

// The model's value for a field the server sets itself, if it gave one (the last one).
std::string_view replaced(std::string_view ours, std::string_view name, const Fields* fields) {
  if (fields != nullptr) {
    for (auto it = fields->rbegin(); it != fields->rend(); ++it)
      if (same_name(it->first, name)) return it->second;
  }
  return ours;
}

}  // namespace

std::optional<std::string> field_http_cannot_carry(std::string_view content_type, const Fields& fields) {
  if (!is_field_value(content_type)) return std::string("Content-Type");
  for (const auto& [name, value] : fields)
    if (!is_token(name) || !is_field_value(value)) return name;
  return std::nullopt;
}

void write_response_head(std::string& out, const ResponseHeadOptions& o) {
  out.clear();
  out.append("HTTP/1.1 ");
  append_number(out, static_cast<std::uint64_t>(o.status));
  out.push_back(' ');
  if (auto s = http::int_to_status(static_cast<unsigned>(o.status)); s != http::status::unknown) {
    auto reason = http::obsolete_reason(s);
    out.append(reason.data(), reason.size());
  }
  out.append("\r\n");
  append_field(out, "Server", replaced("lumen", "Server", o.fields));
  append_field(out, "Content-Type", replaced(o.content_type, "Content-Type", o.fields));
  append_field(out, "X-Request-ID", replaced(o.request_id, "X-Request-ID", o.fields));
  if (o.fields != nullptr) {
    for (const auto& field : *o.fields) {
      const auto servers = [&](std::string_view ours) { return same_name(field.first, ours); };
      if (!std::ranges::any_of(kServerFields, servers)) append_field(out, field.first, field.second);
    }
  }
  if (!o.keep_alive) out.append("Connection: close\r\n");
  if (o.content_length) {
    out.append("Content-Length: ");
    append_number(out, *o.content_length);
    out.append("\r\n");
  }
  out.append("\r\n");
}

}  // namespace lumen::serve::detail
