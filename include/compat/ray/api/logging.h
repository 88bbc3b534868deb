// <ray/api/logging.h> for programs that include Ray's header by its own name: lumen's is
// lumen/ray/logging.h, which <ray/api.h> includes too.
#pragma once

#include <lumen/ray/logging.h>
