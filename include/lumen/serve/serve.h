/// @file
/// lumen::serve: put C++ models behind an HTTP front door, on lumen's actors.
///
/// @code
///   lumen::Runtime rt;
///   auto model = lumen::serve::deploy<Model>({.name = "model", .num_replicas = 2});
///   lumen::serve::Server server({.port = 8000});
///   server.route("/predict", model);
///   server.start();
/// @endcode
///
/// Link lumen-serve (pkg-config lumen-serve). See docs/serve.md.
#pragma once

#include "lumen/serve/deployment.h"
#include "lumen/serve/http.h"
#include "lumen/serve/inference.h"
#include "lumen/serve/model_cache.h"
#include "lumen/serve/options.h"
#include "lumen/serve/server.h"
#include "lumen/serve/status.h"

/// @namespace lumen::serve
/// Model serving (lumen-serve): deployments whose replicas are lumen actors, behind an HTTP
/// front door that speaks plain routes and the Open Inference Protocol. See docs/serve.md.
