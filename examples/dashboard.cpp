// The dashboard: a runtime's live state in the browser while it works.
//
//   build/examples/dashboard --seconds 60     then open the URL it prints
//
// Runs --tasks tasks named "demo-task" (each computes for a moment), some through an actor,
// counts them in a metric of its own (demo_tasks_total, at /metrics beside the runtime's),
// then keeps the dashboard up, with a little background work so the charts move, until
// --seconds have passed.
#include <lumen/dashboard/dashboard.h>
#include <lumen/lumen.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cxxopts.hpp>
#include <thread>
#include <vector>

namespace {

double work(int i) {
  double x = i;
  for (int k = 0; k < 20000; ++k) x = std::sqrt(x + k);
  return x;
}

struct Accumulator {
  double total = 0;
  double add(double v) { return total += v; }
};

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options cli("dashboard", "lumen's dashboard over a runtime at work");
  cli.add_options()("tasks", "tasks to run", cxxopts::value<int>()->default_value("5000"))(
      "seconds", "how long to keep the dashboard up", cxxopts::value<double>()->default_value("60"))(
      "port", "port on 127.0.0.1 (0: any free one)", cxxopts::value<int>()->default_value("0"))("h,help", "help");
  const auto args = cli.parse(argc, argv);
  if (args.count("help")) {
    std::puts(cli.help().c_str());
    return 0;
  }
  const int tasks = args["tasks"].as<int>();
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(args["seconds"].as<double>());

  lumen::Runtime rt{{.track_state = true}};  // for the page's tasks by state
  lumen::Dashboard dashboard{rt, {.port = static_cast<unsigned short>(args["port"].as<int>())}};
  std::printf("dashboard on %s\n", dashboard.url().c_str());
  std::fflush(stdout);

  lumen::Counter done{"demo_tasks_total", "Tasks the dashboard example ran"};
  auto accumulator = lumen::actor<Accumulator>(lumen::ActorOptions{.name = "accumulator"});
  std::vector<lumen::ObjectRef<double>> results;
  for (int i = 0; i < tasks; ++i) {
    results.push_back(lumen::task([i, &done] {
                        done.inc();
                        return work(i);
                      })
                          .name("demo-task")
                          .submit());
    if (i % 100 == 99) accumulator.call(&Accumulator::add, results.back());
  }
  double sum = 0;
  for (auto& r : results) sum += lumen::get(r);
  std::printf("ran %d tasks (checksum %.1f)\n", tasks, sum);
  for (const lumen::TaskSummary& t : lumen::summarize_tasks(rt))
    std::printf("  %-12s finished %llu, failed %llu, mean %.1f us\n", t.name.c_str(), static_cast<unsigned long long>(t.finished),
                static_cast<unsigned long long>(t.failed),
                t.finished + t.failed ? std::chrono::duration<double, std::micro>(t.total_time).count() / static_cast<double>(t.finished + t.failed) : 0.0);
  std::fflush(stdout);

  // Keeps the charts moving: a burst of the same tasks every half second.
  while (std::chrono::steady_clock::now() < until) {
    std::vector<lumen::ObjectRef<double>> burst;
    for (int i = 0; i < 200; ++i) burst.push_back(lumen::task(work).name("demo-task").submit(i));
    for (auto& r : burst) lumen::get(r);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return 0;
}
