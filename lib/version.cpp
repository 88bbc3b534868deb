#include "lumen/version.h"

namespace lumen {

Version linked_version() noexcept { return header_version; }

}  // namespace lumen
