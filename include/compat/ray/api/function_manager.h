// <ray/api/function_manager.h> for programs that include Ray's header by its own name: lumen's is
// lumen/ray/remote.h, which <ray/api.h> includes too.
#pragma once

#include <lumen/ray/remote.h>
