/// @file
/// lumen's version: the one these headers belong to, and the one of the library linked at run
/// time (they differ when a newer compatible liblumen is installed under a program built
/// earlier).
///
/// Compatibility (also CHANGELOG.md): a patch release (0.2.0 -> 0.2.1) fixes bugs and keeps the
/// API and the ABI. Before 1.0, a minor release (0.2 -> 0.3) may break both, and the shared
/// libraries' names say so (liblumen.so.0.2); from 1.0 on, only a major release may.
#pragma once

/// The major version of these headers.
#define LUMEN_VERSION_MAJOR 0
/// The minor version of these headers.
#define LUMEN_VERSION_MINOR 2
/// The patch version of these headers.
#define LUMEN_VERSION_PATCH 0
/// "major.minor.patch" of these headers.
#define LUMEN_VERSION_STRING "0.2.0"

namespace lumen {

/// A release's number.
struct Version {
  int major;  ///< breaking releases (from 1.0 on)
  int minor;  ///< features; breaking before 1.0
  int patch;  ///< fixes only
};

/// The version of these headers, as a value.
inline constexpr Version header_version{LUMEN_VERSION_MAJOR, LUMEN_VERSION_MINOR, LUMEN_VERSION_PATCH};

/// The version of the liblumen that the program runs with.
Version linked_version() noexcept;

}  // namespace lumen
