// Uses every part of an installed lumen: the core, Ray's API, serve, tune and the dashboard.
#include <lumen/dashboard/dashboard.h>
#include <lumen/lumen.h>
#include <lumen/serve/serve.h>
#include <lumen/tune/tune.h>
#include <ray/api.h>

#include <cstdio>
#include <cstdint>

int main() {
  lumen::Runtime rt{{.workers = 2}};
  const std::int64_t sum =
      lumen::parallel_reduce(std::int64_t{0}, std::int64_t{1000}, std::int64_t{0}, [](std::int64_t i) { return i; },
                             std::plus<>());
  ray::Init();
  const int through_ray = *ray::Get(ray::Put(42));
  ray::Shutdown();

  using namespace lumen::tune;
  Tuner tuner([](const Config& c, Reporter& r) { r.report({{"loss", (c.get<double>("x") - 0.5) * (c.get<double>("x") - 0.5)}}); },
              ParamSpace{{"x", grid_search({0.0, 0.5, 1.0})}}, TuneConfig{.metric = "loss", .mode = "min"},
              RunConfig{.progress = Progress::silent});
  const double best_x = tuner.fit().best().config.get<double>("x");

  const lumen::serve::Response hello = lumen::serve::Response::text("hello");
  lumen::Dashboard dashboard{rt, {.port = 0}};

  const lumen::Version v = lumen::linked_version();
  std::printf("lumen %d.%d.%d (headers %s): sum %lld, ray %d, tune best x %g, serve %d, dashboard on port %u\n", v.major,
              v.minor, v.patch, LUMEN_VERSION_STRING, static_cast<long long>(sum), through_ray, best_x, hello.status,
              static_cast<unsigned>(dashboard.port()));
  return sum == 499500 && through_ray == 42 && best_x == 0.5 ? 0 : 1;
}
