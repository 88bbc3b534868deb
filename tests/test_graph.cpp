// graph: dependencies respected, condition tasks and loops, composition, reuse across runs,
// join counters reset per run, cycle rejection, dump(), exceptions, empty graphs, running
// from inside tasks; on one and on two workers.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr unsigned kWorkerCounts[] = {1, 2};
#ifdef LUMEN_TEST_SANITIZED
constexpr int kSide = 12;
#else
constexpr int kSide = 40;
#endif

// A side x side wavefront: tile (i, j) runs after (i-1, j) and (i, j-1). Each tile checks
// that both were done in this round and marks itself with the round number.
struct Wavefront {
  lumen::graph g{"wavefront"};
  std::vector<std::atomic<int>> done;
  std::atomic<int> violations{0};
  std::atomic<int> runs{0};
  int round = 0;

  explicit Wavefront(int side) : done(static_cast<std::size_t>(side * side)) {
    std::vector<lumen::graph_task> t(static_cast<std::size_t>(side * side));
    auto at = [side](int i, int j) { return static_cast<std::size_t>(i * side + j); };
    for (int i = 0; i < side; ++i) {
      for (int j = 0; j < side; ++j) {
        t[at(i, j)] = g.emplace([this, i, j, at] {
          const int r = round;
          if (i > 0 && done[at(i - 1, j)].load() != r) violations.fetch_add(1);
          if (j > 0 && done[at(i, j - 1)].load() != r) violations.fetch_add(1);
          done[at(i, j)].store(r);
          runs.fetch_add(1);
        });
        if (i > 0) t[at(i - 1, j)].precede(t[at(i, j)]);
        if (j > 0) t[at(i, j)].succeed(t[at(i, j - 1)]);
      }
    }
  }
};

}  // namespace

TEST_CASE("dependencies hold, and a graph runs again") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    Wavefront w(kSide);
    for (int r = 1; r <= 3; ++r) {
      w.round = r;
      lumen::run(w.g).wait();
    }
    CHECK(w.violations.load() == 0);
    CHECK(w.runs.load() == 3 * kSide * kSide);
  }
}

// run_n runs one round after another; join counters start afresh each round.
TEST_CASE("run_n") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    lumen::graph g;
    std::atomic<int> a_runs{0}, join_early{0}, join_runs{0};
    auto a = g.emplace([&] { a_runs.fetch_add(1); });
    auto b = g.emplace([] {});
    auto c = g.emplace([] {});
    auto join = g.emplace([&] {
      // a, b and c all ran as many times as join has, plus this time.
      if (a_runs.load() != join_runs.load() + 1) join_early.fetch_add(1);
      join_runs.fetch_add(1);
    });
    join.succeed(a, b, c);
    a.precede(b);
    lumen::run_n(g, 25).wait();
    CHECK(a_runs.load() == 25);
    CHECK(join_runs.load() == 25);
    CHECK(join_early.load() == 0);
    lumen::run_n(g, 0).wait();
    CHECK(a_runs.load() == 25);
  }
}

// A condition task picking its first successor again makes a loop that runs N times.
TEST_CASE("a loop through a condition task") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    lumen::graph g("loop");
    int i = 0;
    int after = 0;
    std::vector<int> seen;
    auto init = g.emplace([&] { i = 0; }).name("init");
    auto body = g.emplace([&] { seen.push_back(i++); }).name("body");
    auto more = g.emplace([&] { return i < 7 ? 0 : 1; }).name("more");
    auto done = g.emplace([&] { after = i; }).name("done");
    init.precede(body);
    body.precede(more);
    more.precede(body, done);
    lumen::run_n(g, 2).wait();
    CHECK(seen == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6});
    CHECK(after == 7);
  }
}

// Only the chosen successor runs; an index out of range runs none. Counters of a branch
// left half counted in one run are reset for the next.
TEST_CASE("condition branches and counter reset") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    lumen::graph g;
    int pick = 0;
    std::atomic<int> x_runs{0}, y_runs{0}, join_runs{0}, join_before_x{0};
    auto pick_task = g.emplace([&] { return pick; });
    auto x = g.emplace([&] { x_runs.fetch_add(1); });
    auto y = g.emplace([&] { y_runs.fetch_add(1); });
    auto z = g.emplace([] {});
    auto join = g.emplace([&] {
      if (x_runs.load() <= join_runs.load()) join_before_x.fetch_add(1);
      join_runs.fetch_add(1);
    });
    pick_task.precede(x, y);
    join.succeed(x, z);  // when y is picked, join never runs: x does not

    pick = 1;
    lumen::run(g).wait();
    CHECK(x_runs.load() == 0);
    CHECK(y_runs.load() == 1);
    CHECK(join_runs.load() == 0);

    pick = 0;  // z counted join down last time; it must wait for x again
    lumen::run(g).wait();
    CHECK(x_runs.load() == 1);
    CHECK(y_runs.load() == 1);
    CHECK(join_runs.load() == 1);
    CHECK(join_before_x.load() == 0);

    pick = 5;
    lumen::run(g).wait();
    CHECK(x_runs.load() == 1);
    CHECK(y_runs.load() == 1);
    CHECK(join_runs.load() == 1);
  }
}

TEST_CASE("composition") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    Wavefront inner(8);
    lumen::graph outer("outer");
    std::atomic<int> before{0}, after{0}, after_early{0};
    auto first = outer.emplace([&] { before.fetch_add(1); }).name("first");
    auto module = outer.compose(inner.g).name("tiles");
    auto last = outer.emplace([&] {
                       if (inner.runs.load() != 64 * (after.load() + 1)) after_early.fetch_add(1);
                       after.fetch_add(1);
                     })
                    .name("last");
    first.precede(module);
    module.precede(last);
    inner.round = 1;
    lumen::run_n(outer, 4).wait();
    CHECK(before.load() == 4);
    CHECK(after.load() == 4);
    CHECK(inner.runs.load() == 4 * 64);
    CHECK(after_early.load() == 0);
    CHECK(inner.violations.load() == 0);

    lumen::graph self;
    CHECK_THROWS_AS(self.compose(self), lumen::usage_error);
  }
}

TEST_CASE("a cycle without a condition is rejected") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  lumen::graph g("cyclic");
  std::atomic<int> runs{0};
  auto start = g.emplace([&] { runs.fetch_add(1); }).name("start");
  auto a = g.emplace([&] { runs.fetch_add(1); }).name("alpha");
  auto b = g.emplace([&] { runs.fetch_add(1); }).name("beta");
  auto c = g.emplace([&] { runs.fetch_add(1); });  // unnamed: index 3
  start.precede(a);
  a.precede(b);
  b.precede(c);
  c.precede(a);
  try {
    lumen::run(g).wait();
    FAIL("a graph with a plain cycle ran");
  } catch (const lumen::usage_error& e) {
    std::string what = e.what();
    CHECK(what.find("cyclic") != std::string::npos);
    CHECK(what.find("alpha -> beta -> #3 -> alpha") != std::string::npos);
    CHECK(what.find("start") == std::string::npos);
  }
  CHECK(runs.load() == 0);

  // The same loop through a condition is fine.
  lumen::graph ok;
  int n = 0;
  auto entry = ok.emplace([] {});
  auto body = ok.emplace([&] { ++n; });
  auto again = ok.emplace([&] { return n < 3 ? 0 : 1; });
  entry.precede(body);
  body.precede(again);
  again.precede(body);
  lumen::run(ok).wait();
  CHECK(n == 3);
}

TEST_CASE("dump") {
  lumen::graph inner("inner graph");
  inner.emplace([] {}).name("leaf");
  lumen::graph g("build \"all\"");
  auto a = g.emplace([] {}).name("compile");
  auto cond = g.emplace([] { return 0; }).name("changed?");
  auto m = g.compose(inner).name("sub");
  auto u = g.emplace([] {});
  a.precede(cond);
  cond.precede(m, u);
  const std::string dot = g.dump();
  CHECK(dot.rfind("digraph \"build \\\"all\\\"\" {", 0) == 0);
  CHECK(dot.find("g0_0 [label=\"compile\"];") != std::string::npos);
  CHECK(dot.find("g0_1 [label=\"changed?\", shape=diamond];") != std::string::npos);
  CHECK(dot.find("g0_2 [label=\"sub\", shape=box3d") != std::string::npos);
  CHECK(dot.find("g0_3 [label=\"#3\"];") != std::string::npos);
  CHECK(dot.find("g0_0 -> g0_1;") != std::string::npos);
  CHECK(dot.find("g0_1 -> g0_2 [style=dashed, label=\"0\"];") != std::string::npos);
  CHECK(dot.find("g0_1 -> g0_3 [style=dashed, label=\"1\"];") != std::string::npos);
  CHECK(dot.find("subgraph cluster_1 {") != std::string::npos);
  CHECK(dot.find("label=\"inner graph\";") != std::string::npos);
  CHECK(dot.find("g1_0 [label=\"leaf\"];") != std::string::npos);
  CHECK(dot.substr(dot.size() - 2) == "}\n");
}

struct TaskFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// wait() rethrows with the exception's type; successors of the failed task do not run; the
// graph runs normally afterwards.
TEST_CASE("exceptions") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    lumen::graph g;
    bool fail = true;
    std::atomic<int> after{0}, rounds{0};
    auto a = g.emplace([&] {
      rounds.fetch_add(1);
      if (fail) throw TaskFailed("a failed");
    });
    auto b = g.emplace([&] { after.fetch_add(1); });
    auto c = g.emplace([&] { after.fetch_add(1); });
    a.precede(b);
    b.precede(c);
    CHECK_THROWS_AS(lumen::run_n(g, 5).wait(), TaskFailed);
    CHECK(rounds.load() == 1);  // run_n stops after the round that threw
    CHECK(after.load() == 0);
    fail = false;
    lumen::run_n(g, 2).wait();
    CHECK(after.load() == 4);

    // A composed graph's exception reaches the outer run.
    lumen::graph bad;
    bad.emplace([] { throw 42; });
    lumen::graph outer;
    outer.compose(bad);
    CHECK_THROWS_AS(lumen::run(outer).wait(), int);
  }
}

TEST_CASE("empty graphs and misuse") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  lumen::graph g;
  CHECK(g.empty());
  lumen::run(g).wait();
  lumen::run_n(g, 3).wait();

  lumen::graph other;
  auto a = g.emplace([] {});
  auto b = other.emplace([] {});
  CHECK_THROWS_AS(a.precede(b), lumen::usage_error);
  CHECK_THROWS_AS(lumen::graph_task().precede(a), lumen::usage_error);

  lumen::graph_run r = lumen::run(g);
  r.wait();
  CHECK_THROWS_AS(r.wait(), lumen::usage_error);
}

// run() from inside tasks and task_group children, with wait() parking; a graph already
// running refuses a second run.
TEST_CASE("runs inside tasks") {
  for (unsigned workers : kWorkerCounts) {
    CAPTURE(workers);
    lumen::Runtime rt{lumen::Config{.workers = workers}};
    auto one = [] {
      Wavefront w(10);
      w.round = 1;
      lumen::run_n(w.g, 2).wait();
      return w.violations.load() == 0 && w.runs.load() == 200;
    };
    CHECK(lumen::get(lumen::submit(one)));
    std::atomic<int> good{0};
    lumen::task_group tg;
    for (int i = 0; i < 6; ++i) tg.run([&] { good.fetch_add(one() ? 1 : 0); });
    tg.wait();
    CHECK(good.load() == 6);

    // A graph that is running (its task blocked on an object) cannot run again, nor change.
    auto gate = std::make_shared<std::atomic<bool>>(false);
    lumen::graph slow;
    slow.emplace([gate] {
      while (!gate->load()) lumen::get(lumen::submit([] { return 0; }));
    });
    lumen::graph_run first = lumen::run(slow);
    CHECK_THROWS_AS(lumen::run(slow).wait(), lumen::usage_error);
    CHECK_THROWS_AS(slow.emplace([] {}), lumen::usage_error);
    gate->store(true);
    first.wait();
  }
}
