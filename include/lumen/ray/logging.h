/// @file
/// RAYLOG: Ray's log macro, writing to lumen's log (standard error).
///
/// @code
///   RAYLOG(INFO) << "loaded " << n << " rows";
///   RAYLOG(WARNING) << "retrying";
///   RAYLOG(FATAL) << "cannot go on";          // writes, then aborts the process
/// @endcode
///
/// Each statement writes one line, whole even when threads log at once:
/// @code
///   [lumen ray INFO main.cpp:12] loaded 3 rows
/// @endcode
/// Levels, lowest first: DEBUG, INFO, WARNING, ERROR, FATAL. Lines below the level named by
/// the environment variable RAY_BACKEND_LOG_LEVEL (debug, info, warning, error, fatal; read
/// once; default info) are skipped, and their stream expressions are not evaluated.
#pragma once

#include <sstream>

namespace ray {

/// The severity of a RAYLOG line, lowest first; lines below RAY_BACKEND_LOG_LEVEL are skipped.
enum class RayLoggerLevel { DEBUG = -1, INFO = 0, WARNING = 1, ERROR = 2, FATAL = 3 };
using RayLogLevel = RayLoggerLevel;  ///< the name Ray's own code uses

namespace internal {

bool log_enabled(RayLogLevel level) noexcept;

// One line of the log; written when the statement ends.
class RayLogLine {
 public:
  RayLogLine(const char* file, int line, RayLogLevel level);
  RayLogLine(const RayLogLine&) = delete;
  RayLogLine& operator=(const RayLogLine&) = delete;
  ~RayLogLine() noexcept(false);

  std::ostream& stream() { return text_; }

 private:
  std::ostringstream text_;
  RayLogLevel level_;
};

// Makes `RAYLOG(x) << a << b;` one statement whose value is void, so that the macro's `if`
// does not capture an `else` that follows it.
struct RayLogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace internal

/// Whether RAYLOG(level) writes (Ray's name for it).
inline bool IsLevelEnabled(RayLoggerLevel level) noexcept { return internal::log_enabled(level); }

}  // namespace ray

/// A stream for one log line at `level` (DEBUG, INFO, WARNING, ERROR or FATAL), written as a whole
/// when the statement ends; its operands are not evaluated when the level is skipped, and FATAL
/// aborts after writing.
#define RAYLOG(level)                                                 \
  !::ray::internal::log_enabled(::ray::RayLogLevel::level)            \
      ? (void)0                                                       \
      : ::ray::internal::RayLogVoidify() &                            \
            ::ray::internal::RayLogLine(__FILE__, __LINE__, ::ray::RayLogLevel::level).stream()
