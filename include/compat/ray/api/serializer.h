// <ray/api/serializer.h> for programs that include Ray's header by its own name: lumen's is
// lumen/ray/serializer.h, which <ray/api.h> includes too.
#pragma once

#include <lumen/ray/serializer.h>
