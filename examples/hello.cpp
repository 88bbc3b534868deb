// The first program: two tasks, one depending on the other, and a zero-copy read.
#include <lumen/lumen.h>

#include <cstdio>
#include <vector>

int add(int a, int b) { return a + b; }

int main() {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  lumen::ObjectRef<int> a = lumen::submit(add, 1, 2);
  lumen::ObjectRef<int> b = lumen::submit(add, a, 10);  // waits for a; add receives 3
  std::printf("add(add(1, 2), 10) = %d\n", lumen::get(b));

  auto p = lumen::put(std::vector<double>(1 << 20, 1.0));
  const std::vector<double>& x = lumen::get(p);  // no copy: a view into the object table
  std::printf("put a vector of %zu doubles; object %u lives in the table\n", x.size(), p.id().index());
}
