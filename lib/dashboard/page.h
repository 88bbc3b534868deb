// The dashboard's one web page: a self-contained HTML document (inline CSS, JavaScript and
// SVG charts) that polls /api/stats and /api/timeline on its own origin. Serve it as
// "text/html; charset=utf-8".
#pragma once

#include <string_view>

namespace lumen::dashboard_detail {

std::string_view dashboard_page() noexcept;

}  // namespace lumen::dashboard_detail
