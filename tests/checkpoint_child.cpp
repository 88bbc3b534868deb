// A process that a test kills: it runs a counter actor that keeps its checkpoints in a file,
// prints each count it has been told (one per line, flushed), and never ends on its own.
//   checkpoint_child FILE
#include <lumen/lumen.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

struct Counter {
  long count = 0;
  long add(long n) { return count += n; }
  std::string checkpoint() const { return std::to_string(count); }
  void restore(const std::string& bytes) { count = std::stol(bytes); }
};

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: checkpoint_child FILE\n");
    return 2;
  }
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto counter = lumen::actor<Counter>(lumen::ActorOptions{.name = "counter", .checkpoint_file = argv[1]});
  for (;;) {
    std::printf("%ld\n", lumen::get(counter.call(&Counter::add, 1)));
    std::fflush(stdout);
  }
}
