// Scenarios that end their process or need process-wide limits, each run by test_exhaustion
// in a child process of its own: exhaustion_child SCENARIO. A scenario that should survive
// prints what it saw and exits 0; one that should die leaves its message on stderr.
#include <lumen/lumen.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "gate.h"

namespace {

// A frame of 300 KiB, written at both ends.
[[gnu::noinline]] int big_frame() {
  volatile char frame[300 * 1024];
  frame[0] = 1;
  frame[sizeof frame - 1] = 2;
  return frame[0] + frame[sizeof frame - 1];
}

// A task with a frame larger than its stack: the process stops with a message that names it.
int overflow() {
  lumen::Runtime rt{lumen::Config{.workers = 1, .fiber_stack_size = 64 * 1024}};
  auto r = lumen::task(big_frame).name("deep").submit();
  std::printf("survived with %d\n", lumen::get(r));
  return 0;
}

// The same, after other tasks parked: the task gets the same stack either way.
int overflow_after_parks() {
  lumen::Runtime rt{lumen::Config{.workers = 1, .fiber_stack_size = 64 * 1024}};
  for (int i = 0; i < 8; ++i) {
    Gate gate;
    auto waiter = lumen::submit([&gate] { return lumen::get(gate.ref); });
    gate.open(i);
    lumen::get(waiter);
  }
  auto r = lumen::task(big_frame).name("deep after parks").submit();
  std::printf("survived with %d\n", lumen::get(r));
  return 0;
}

// Fills the process's memory mappings (vm.max_map_count) with one-page mappings of alternating
// protection, which cannot merge, then lets `spare` of them go.
std::vector<void*> fill_mappings(std::size_t spare) {
  std::vector<void*> maps;
  maps.reserve(1 << 17);
  for (;;) {
    void* p = ::mmap(nullptr, 4096, maps.size() % 2 != 0 ? PROT_READ : PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) break;
    maps.push_back(p);
  }
  for (std::size_t i = 0; i < spare && !maps.empty(); ++i) {
    ::munmap(maps.back(), 4096);
    maps.pop_back();
  }
  return maps;
}

// A task that blocks when no fiber stack can be mapped fails its get with resource_error.
int map_count(std::size_t spare) {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  Gate gate;  // a task parked (its fiber mapped) before the mappings run out
  std::vector<void*> maps = fill_mappings(spare);
  auto waiter = lumen::submit([&gate] { return lumen::get(gate.ref); });
  int status = 1;
  try {
    lumen::get(waiter);
    std::printf("the blocked task got a fiber\n");
  } catch (const lumen::resource_error& e) {
    std::printf("resource_error: %s\n", e.what());
    status = 0;
  }
  for (void* p : maps) ::munmap(p, 4096);
  gate.open(0);
  return status;
}

// The object table cannot grow (no mapping left for a new segment, or for the arrays beside
// it): put throws std::bad_alloc, the objects already there keep their values, and the table
// grows once mappings are free again. `spare` mappings are left, so that each of the segment's
// mappings in turn is the one that fails.
int table_growth(std::size_t spare) {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  std::vector<lumen::ObjectRef<int>> refs;
  refs.reserve(1 << 20);  // no mapping for the vector while the limit holds
  for (int i = 0; i < 100; ++i) refs.push_back(lumen::put(i));
  std::vector<void*> maps = fill_mappings(spare);
  bool refused = false;
  try {
    while (refs.size() < refs.capacity()) refs.push_back(lumen::put(static_cast<int>(refs.size())));
  } catch (const std::bad_alloc&) {
    refused = true;
  }
  for (void* p : maps) ::munmap(p, 4096);
  if (!refused) {
    std::printf("a million puts and the table never ran out of mappings\n");
    return 1;
  }
  std::printf("bad_alloc after %zu objects\n", refs.size());
  for (std::size_t i = 0; i < refs.size(); ++i) {
    if (lumen::get(refs[i]) != static_cast<int>(i)) {
      std::printf("object %zu lost its value\n", i);
      return 1;
    }
  }
  const std::size_t before = refs.size();
  for (int i = 0; i < 100000; ++i) refs.push_back(lumen::put(static_cast<int>(refs.size())));
  for (std::size_t i = before; i < refs.size(); ++i) {
    if (lumen::get(refs[i]) != static_cast<int>(i)) {
      std::printf("object %zu made after the limit lost its value\n", i);
      return 1;
    }
  }
  std::printf("then %zu objects\n", refs.size());
  return 0;
}

std::size_t mapped_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0;
  statm >> pages;
  return pages * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// Worker threads that cannot all start: a catchable error, and the ones that started stop.
int threads() {
  rlimit original{};
  ::getrlimit(RLIMIT_AS, &original);
  rlimit limit = original;  // the soft limit only: lowering the hard one could not be undone
  limit.rlim_cur = mapped_bytes() + (64u << 20);
  if (::setrlimit(RLIMIT_AS, &limit) != 0) {
    std::perror("setrlimit");
    return 1;
  }
  try {
    lumen::Runtime rt{lumen::Config{.workers = 256}};
    std::printf("started %u workers\n", rt.workers());
    return 1;
  } catch (const lumen::resource_error& e) {
    std::printf("resource_error: %s\n", e.what());
  }
  // The process goes on, and lumen with it, once memory is there again.
  ::setrlimit(RLIMIT_AS, &original);
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::printf("then %d\n", lumen::get(lumen::submit([] { return 42; })));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string scenario = argc > 1 ? argv[1] : "";
  if (scenario == "overflow") return overflow();
  if (scenario == "overflow-after-parks") return overflow_after_parks();
  if (scenario == "map-count") return map_count(0);
  if (scenario == "map-count-one-spare") return map_count(1);
  if (scenario == "threads") return threads();
  if (scenario.starts_with("table-growth-")) return table_growth(std::stoul(scenario.substr(13)));
  std::fprintf(stderr, "usage: exhaustion_child overflow|overflow-after-parks|map-count|map-count-one-spare|threads|table-growth-SPARE\n");
  return 2;
}
