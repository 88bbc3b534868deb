// A build-like task graph: fetch sources, compile three libraries in parallel, link, then run
// tests until they pass (a condition task makes the loop). It runs twice with the same graph
// and prints the order tasks ran in, then the graph in Graphviz dot (pipe it to `dot -Tsvg`).
#include <lumen/lumen.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

int main() {
  lumen::Runtime rt{lumen::Config{.workers = 2}};

  std::mutex log_mutex;
  std::vector<std::string> log;
  auto step = [&](std::string what) {
    return [&, what] {
      std::lock_guard<std::mutex> lock(log_mutex);
      log.push_back(what);
    };
  };

  // Compiling the three libraries is a graph of its own, composed into the build.
  lumen::graph compile("compile");
  compile.emplace(step("compile libcore")).name("libcore");
  compile.emplace(step("compile libnet")).name("libnet");
  compile.emplace(step("compile libui")).name("libui");

  lumen::graph build("build");
  int attempts = 0;
  auto fetch = build.emplace(step("fetch sources")).name("fetch");
  auto libs = build.compose(compile).name("compile all");
  auto link = build.emplace(step("link app")).name("link");
  auto test = build.emplace([&] {
                     step("run tests (attempt " + std::to_string(++attempts) + ")")();
                   }).name("test");
  // Flaky tests: pass on every third attempt. 0 runs the tests again, 1 goes on.
  auto passed = build.emplace([&] { return attempts % 3 == 0 ? 1 : 0; }).name("passed?");
  auto ship = build.emplace(step("package")).name("package");

  fetch.precede(libs);
  libs.precede(link);
  link.precede(test);
  test.precede(passed);
  passed.precede(test, ship);

  lumen::run_n(build, 2).wait();
  std::printf("ran %zu steps in two runs of the same graph:\n", log.size());
  for (std::size_t i = 0; i < log.size(); ++i) std::printf("  %2zu. %s\n", i + 1, log[i].c_str());

  // A cycle without a condition could never start: run() says where it is.
  lumen::graph broken("broken");
  auto a = broken.emplace([] {}).name("configure");
  auto b = broken.emplace([] {}).name("generate");
  a.precede(b);
  b.precede(a);
  try {
    lumen::run(broken).wait();
  } catch (const lumen::usage_error& e) {
    std::printf("\n%s\n", e.what());
  }

  std::printf("\n%s", build.dump().c_str());
}
