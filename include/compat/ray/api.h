// <ray/api.h> for programs written against Ray's C++ API: lumen runs them in one process.
// See lumen/ray.h.
#pragma once

#include <lumen/ray.h>
