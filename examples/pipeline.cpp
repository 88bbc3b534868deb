// A text-processing pipeline: generate lines of text, count the words of each line in
// parallel, find each line's longest word in parallel, and tally the results in line order.
// Prints the counts, the longest word seen, how many lines were in flight at most, and the time.
#include <lumen/lumen.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>

namespace {

const char* const kWords[] = {"lumen", "pipeline", "token", "stage", "fiber", "worker", "steal", "graph",
                              "serial", "parallel", "order", "sink", "source", "item"};

// Line n of a made-up text: a deterministic mix of the words above.
std::string make_line(int n) {
  std::string line;
  unsigned x = static_cast<unsigned>(n) * 2654435761u + 1;
  const int words = 3 + static_cast<int>(x % 12);
  for (int i = 0; i < words; ++i) {
    x = x * 1664525u + 1013904223u;
    if (i > 0) line += ' ';
    line += kWords[(x >> 16) % std::size(kWords)];
  }
  return line;
}

struct Counted {
  int line;
  std::string text;
  int words;
};

struct Summary {
  int line;
  int words;
  std::string longest;
};

}  // namespace

int main() {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  using enum lumen::stage_mode;
  constexpr int kLines = 200000;
  constexpr std::size_t kTokens = 8;

  int next = 0;
  std::atomic<int> in_flight{0}, most_in_flight{0};
  long total_words = 0;
  int lines_seen = 0, out_of_order = 0;
  std::string longest;

  const auto start = std::chrono::steady_clock::now();
  lumen::pipeline(kTokens)
      .source([&](lumen::flow_control& fc) -> Counted {
        if (next == kLines) {
          fc.stop();
          return {};
        }
        const int now = in_flight.fetch_add(1) + 1;
        most_in_flight.store(std::max(most_in_flight.load(), now));
        return {next, make_line(next++), 0};
      })
      .stage(parallel,
             [](Counted c) {
               std::istringstream in(c.text);
               std::string w;
               while (in >> w) ++c.words;
               return c;
             })
      .stage(parallel,
             [](Counted c) {
               Summary s{c.line, c.words, {}};
               std::istringstream in(c.text);
               std::string w;
               while (in >> w)
                 if (w.size() > s.longest.size()) s.longest = w;
               return s;
             })
      .sink(serial_in_order, [&](const Summary& s) {
        if (s.line != lines_seen) ++out_of_order;
        ++lines_seen;
        total_words += s.words;
        if (s.longest.size() > longest.size()) longest = s.longest;
        in_flight.fetch_sub(1);
      })
      .run();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  std::printf("lines: %d, words: %ld, longest word: \"%s\"\n", lines_seen, total_words, longest.c_str());
  std::printf("lines reaching the sink out of order: %d (serial_in_order keeps source order)\n", out_of_order);
  std::printf("most lines in flight: %d (tokens: %zu)\n", most_in_flight.load(), kTokens);
  std::printf("time: %.1f ms on %u workers\n", ms, rt.workers());

  // A stage that throws stops the pipeline; run() rethrows its exception.
  int n = 0;
  try {
    lumen::pipeline(kTokens)
        .source([&](lumen::flow_control&) { return n++; })  // endless: only the error stops it
        .stage(parallel,
               [](int i) {
                 if (i == 1000) throw std::runtime_error("line 1000 is malformed");
                 return i;
               })
        .sink(serial, [](int) {})
        .run();
  } catch (const std::runtime_error& e) {
    std::printf("a stage threw: %s (the source stopped after %d lines)\n", e.what(), n);
  }
}
