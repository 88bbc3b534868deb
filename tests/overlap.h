// Overlap: how many callers were inside a region at once, at most. Tests of serial stages and
// serial actors check that it stays 1; tests of bounds check that it stays under the bound.
#pragma once

#include <atomic>

struct Overlap {
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  void enter() {
    int now = inside.fetch_add(1) + 1;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
  }
  void leave() { inside.fetch_sub(1); }
};
