// A process that a test kills mid-experiment: it runs 8 trials of 10 iterations each (20 ms
// per iteration, a checkpoint every second iteration) with their files under STORAGE/NAME.
//   tune_child STORAGE NAME
#include <lumen/lumen.h>
#include <lumen/tune/random_search.h>
#include <lumen/tune/tuner.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "kill_restore_trainable.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: tune_child STORAGE NAME\n");
    return 2;
  }
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  using namespace lumen::tune;
  Tuner tuner([](const Config& c, Reporter& r) { kill_restore_trainable(c, r); }, kill_restore_space(),
              TuneConfig{.metric = "loss", .mode = "min", .num_samples = 8,
                         .searcher = std::make_shared<RandomSearch>(RandomSearchOptions{.seed = 5})},
              RunConfig{.name = argv[2], .storage_path = argv[1], .progress = Progress::silent});
  tuner.fit();
  std::printf("finished\n");
}
