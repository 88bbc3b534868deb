// lumen built as a meson subproject of this one.
#include <lumen/lumen.h>

#include <cstdio>
#include <vector>

int main() {
  lumen::Runtime rt{{.workers = 2}};
  std::vector<int> v(10000);
  lumen::parallel_for(std::size_t{0}, v.size(), [&](std::size_t i) { v[i] = static_cast<int>(i % 7); });
  long sum = 0;
  for (int x : v) sum += x;
  std::printf("lumen %s as a subproject: parallel_for filled %zu values, sum %ld\n", LUMEN_VERSION_STRING, v.size(), sum);
  return sum == 29994 ? 0 : 1;
}
