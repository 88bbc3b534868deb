// Pipelines and task graphs: pipeline (1M items through four stages), wavefront (a 256x256
// grid of tiny dependent tasks, run 10 times) and chain (1M tasks, each after the one before).
// lumen::pipeline and lumen::graph beside tbb::parallel_pipeline and tbb::flow::graph.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <lumen/lumen.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/parallel_pipeline.h>

#include "bench.h"

namespace bench {
namespace {

// A few rounds of a 64-bit mix: tens of ns of work the compiler cannot fold.
std::uint64_t mix(std::uint64_t x, int rounds) {
  for (int k = 0; k < rounds; ++k) x = (x ^ (x >> 29)) * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}

// ---------------------------------------------------------------- pipeline
// A serial source reads the input, two parallel stages transform each item, a serial
// in-order sink writes the results in input order.

constexpr std::size_t kItems = 1000000;
constexpr std::size_t kTokens = 16;

struct PipelineData {
  std::vector<std::uint64_t> input, output;
  std::size_t read = 0, written = 0;
  PipelineData() : input(kItems), output(kItems) {
    for (std::size_t i = 0; i < kItems; ++i) input[i] = i * 0x9E3779B97F4A7C15ull;
  }
};

PipelineData& pipeline_data() {
  static PipelineData d;
  return d;
}

std::uint64_t first_transform(std::uint64_t x) { return mix(x, 8); }
std::uint64_t second_transform(std::uint64_t x) { return mix(x ^ 0xABCDEFull, 8); }

Workload pipeline() {
  Workload w;
  w.name = "pipeline";
  w.description = "1M items: serial read, two parallel transforms, serial in-order write (16 tokens)";
  w.items = kItems;
  w.item = "item";
  w.systems = {
      {"lumen",
       [](Context&) {
         PipelineData& d = pipeline_data();
         using enum lumen::stage_mode;
         lumen::pipeline(kTokens)
             .source([&d](lumen::flow_control& fc) -> std::uint64_t {
               if (d.read == kItems) {
                 fc.stop();
                 return 0;
               }
               return d.input[d.read++];
             })
             .stage(parallel, first_transform)
             .stage(parallel, second_transform)
             .sink(serial_in_order, [&d](std::uint64_t v) { d.output[d.written++] = v; })
             .run();
       }},
      {"tbb",
       [](Context& c) {
         c.arena->execute([] {
           PipelineData& d = pipeline_data();
           using tbb::filter_mode;
           tbb::parallel_pipeline(
               kTokens,
               tbb::make_filter<void, std::uint64_t>(filter_mode::serial_in_order,
                                                     [&d](tbb::flow_control& fc) -> std::uint64_t {
                                                       if (d.read == kItems) {
                                                         fc.stop();
                                                         return 0;
                                                       }
                                                       return d.input[d.read++];
                                                     }) &
                   tbb::make_filter<std::uint64_t, std::uint64_t>(filter_mode::parallel,
                                                                  [](std::uint64_t v) { return first_transform(v); }) &
                   tbb::make_filter<std::uint64_t, std::uint64_t>(filter_mode::parallel,
                                                                  [](std::uint64_t v) { return second_transform(v); }) &
                   tbb::make_filter<std::uint64_t, void>(filter_mode::serial_in_order,
                                                         [&d](std::uint64_t v) { d.output[d.written++] = v; }));
         });
       }},
  };
  w.verify = [](const System& s, Context&) {
    PipelineData& d = pipeline_data();
    check(d.read == kItems && d.written == kItems,
          "pipeline/" + s.name + ": wrote " + std::to_string(d.written) + " of " + std::to_string(kItems));
    for (std::size_t i = 0; i < kItems; ++i) {
      if (d.output[i] != second_transform(first_transform(d.input[i])))
        fail("pipeline/" + s.name + ": wrong or out-of-order value at " + std::to_string(i));
      d.output[i] = 0;
    }
    d.read = d.written = 0;
  };
  return w;
}

// ---------------------------------------------------------------- wavefront
// Cell (i, j) = mix of its upper and left neighbours: each cell is a task that runs after
// the two cells it reads. The graph is built once (outside the timed runs) and run 10 times.

constexpr int kSide = 256;
constexpr int kRounds = 10;

std::vector<std::uint64_t>& cells() {
  static std::vector<std::uint64_t> c(static_cast<std::size_t>(kSide * kSide));
  return c;
}

void compute_cell(std::uint64_t* c, int i, int j) {
  const std::uint64_t up = i > 0 ? c[(i - 1) * kSide + j] : static_cast<std::uint64_t>(j);
  const std::uint64_t left = j > 0 ? c[i * kSide + j - 1] : static_cast<std::uint64_t>(i);
  c[i * kSide + j] = mix(up + 3 * left, 2);
}

const std::vector<std::uint64_t>& wavefront_expected() {
  static const std::vector<std::uint64_t> e = [] {
    std::vector<std::uint64_t> c(static_cast<std::size_t>(kSide * kSide));
    for (int i = 0; i < kSide; ++i)
      for (int j = 0; j < kSide; ++j) compute_cell(c.data(), i, j);
    return c;
  }();
  return e;
}

lumen::graph& lumen_wavefront() {
  static lumen::graph g = [] {
    lumen::graph g("wavefront");
    std::uint64_t* c = cells().data();
    std::vector<lumen::graph_task> t(static_cast<std::size_t>(kSide * kSide));
    for (int i = 0; i < kSide; ++i) {
      for (int j = 0; j < kSide; ++j) {
        auto& me = t[static_cast<std::size_t>(i * kSide + j)];
        me = g.emplace([c, i, j] { compute_cell(c, i, j); });
        if (i > 0) t[static_cast<std::size_t>((i - 1) * kSide + j)].precede(me);
        if (j > 0) t[static_cast<std::size_t>(i * kSide + j - 1)].precede(me);
      }
    }
    return g;
  }();
  return g;
}

// A tbb::flow::graph belongs to the arena it was built in: one per thread count.
struct TbbWavefront {
  tbb::flow::graph g;
  std::vector<std::unique_ptr<tbb::flow::continue_node<tbb::flow::continue_msg>>> nodes;
  TbbWavefront() {
    std::uint64_t* c = cells().data();
    nodes.reserve(static_cast<std::size_t>(kSide * kSide));
    for (int i = 0; i < kSide; ++i) {
      for (int j = 0; j < kSide; ++j) {
        nodes.push_back(std::make_unique<tbb::flow::continue_node<tbb::flow::continue_msg>>(
            g, [c, i, j](const tbb::flow::continue_msg&) { compute_cell(c, i, j); }));
        auto& me = *nodes.back();
        if (i > 0) tbb::flow::make_edge(*nodes[static_cast<std::size_t>((i - 1) * kSide + j)], me);
        if (j > 0) tbb::flow::make_edge(*nodes[static_cast<std::size_t>(i * kSide + j - 1)], me);
      }
    }
  }
};

template <class T>
T& per_arena(Context& c) {
  static tbb::task_arena* built_for = nullptr;
  static std::unique_ptr<T> v;
  if (built_for != c.arena) {
    v.reset();
    c.arena->execute([] { v = std::make_unique<T>(); });
    built_for = c.arena;
  }
  return *v;
}

Workload wavefront() {
  Workload w;
  w.name = "wavefront";
  w.description = "256x256 grid, each cell a task after its upper and left cells; the graph run 10 times";
  w.items = static_cast<double>(kSide) * kSide * kRounds;
  w.item = "task";
  w.systems = {
      {"lumen", [](Context&) { lumen::run_n(lumen_wavefront(), kRounds).wait(); }},
      {"tbb",
       [](Context& c) {
         TbbWavefront& t = per_arena<TbbWavefront>(c);
         c.arena->execute([&t] {
           for (int r = 0; r < kRounds; ++r) {
             t.nodes.front()->try_put(tbb::flow::continue_msg());
             t.g.wait_for_all();
           }
         });
       }},
  };
  w.verify = [](const System& s, Context&) {
    std::vector<std::uint64_t>& c = cells();
    check(c == wavefront_expected(), "wavefront/" + s.name + ": wrong cell values");
    std::fill(c.begin(), c.end(), 0);
  };
  return w;
}

// ---------------------------------------------------------------- chain
// 1M tasks, each after the one before: what a graph costs per task when nothing runs in
// parallel.

constexpr std::size_t kChain = 1000000;
std::uint64_t g_chain = 0;

std::uint64_t chain_expected() {
  static const std::uint64_t v = [] {
    std::uint64_t x = 1;
    for (std::size_t i = 0; i < kChain; ++i) x = x * 6364136223846793005ULL + i;
    return x;
  }();
  return v;
}

lumen::graph& lumen_chain() {
  static lumen::graph g = [] {
    lumen::graph g("chain");
    lumen::graph_task prev;
    for (std::size_t i = 0; i < kChain; ++i) {
      auto t = g.emplace([i] { g_chain = g_chain * 6364136223846793005ULL + i; });
      if (!prev.empty()) prev.precede(t);
      prev = t;
    }
    return g;
  }();
  return g;
}

struct TbbChain {
  tbb::flow::graph g;
  std::vector<std::unique_ptr<tbb::flow::continue_node<tbb::flow::continue_msg>>> nodes;
  TbbChain() {
    nodes.reserve(kChain);
    for (std::size_t i = 0; i < kChain; ++i) {
      nodes.push_back(std::make_unique<tbb::flow::continue_node<tbb::flow::continue_msg>>(
          g, [i](const tbb::flow::continue_msg&) { g_chain = g_chain * 6364136223846793005ULL + i; }));
      if (i > 0) tbb::flow::make_edge(*nodes[i - 1], *nodes[i]);
    }
  }
};

Workload chain() {
  Workload w;
  w.name = "chain";
  w.description = "a graph of 1M tasks in a line, each after the one before";
  w.items = kChain;
  w.item = "task";
  w.systems = {
      {"lumen",
       [](Context&) {
         g_chain = 1;
         lumen::run(lumen_chain()).wait();
       }},
      {"tbb",
       [](Context& c) {
         TbbChain& t = per_arena<TbbChain>(c);
         g_chain = 1;
         c.arena->execute([&t] {
           t.nodes.front()->try_put(tbb::flow::continue_msg());
           t.g.wait_for_all();
         });
       }},
  };
  w.verify = [](const System& s, Context&) {
    check(g_chain == chain_expected(), "chain/" + s.name + ": wrong result (a task ran out of order or not at all)");
    g_chain = 0;
  };
  return w;
}

}  // namespace

void add_flow_workloads(std::vector<Workload>& out) {
  out.push_back(pipeline());
  out.push_back(wavefront());
  out.push_back(chain());
}

}  // namespace bench
