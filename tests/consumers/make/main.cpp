// The core and tune of an installed lumen, found by pkg-config.
#include <lumen/lumen.h>
#include <lumen/tune/tune.h>

#include <cstdio>

int main() {
  lumen::Runtime rt{{.workers = 2}};
  auto squares = lumen::submit([] {
    long sum = 0;
    for (long i = 1; i <= 10; ++i) sum += i * i;
    return sum;
  });
  using namespace lumen::tune;
  Tuner tuner([](const Config& c, Reporter& r) { r.report({{"score", c.get<double>("x")}}); },
              ParamSpace{{"x", uniform(0, 1)}}, TuneConfig{.metric = "score", .mode = "max", .num_samples = 4},
              RunConfig{.progress = Progress::silent});
  const ResultGrid grid = tuner.fit();
  std::printf("lumen %s: sum of squares %ld, %zu trials tuned\n", LUMEN_VERSION_STRING, lumen::get(squares), grid.size());
  return lumen::get(squares) == 385 && grid.size() == 4 ? 0 : 1;
}
