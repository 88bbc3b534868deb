// The trial schedulers (ASHA, HyperBand, median stopping, PBT) against hand-worked learning
// curves. A FakeRun stands in for the tuner: it holds the trials, applies each decision to the
// trial's status the way the tuner does, and records what the scheduler asked of it.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "lumen/error.h"
#include "lumen/tune/asha.h"
#include "lumen/tune/hyperband.h"
#include "lumen/tune/median_stopping.h"
#include "lumen/tune/pbt.h"

using namespace lumen::tune;

namespace {

class FakeRun final : public TrialControl {
 public:
  FakeRun(std::string metric, Mode mode) : metric_(std::move(metric)), mode_(mode) {}

  const std::vector<const Trial*>& trials() const override { return list_; }
  void reset_trial(const Trial& t, Config config, std::shared_ptr<const Checkpoint> from) override {
    Trial& m = mut(t);
    m.config = config;
    m.checkpoint = from;
    resets.push_back({t.id, std::move(config), std::move(from)});
  }
  void stop_trial(const Trial& t) override {
    mut(t).status = TrialStatus::terminated;
    stopped.push_back(t.id);
  }
  bool searcher_finished() const override { return finished; }
  const std::string& metric() const override { return metric_; }
  Mode mode() const override { return mode_; }

  // A new pending trial, announced to the scheduler.
  Trial& add(TrialScheduler& s, Config config = {}) {
    Trial& t = store_.emplace_back();
    char id[8];
    std::snprintf(id, sizeof id, "%05zu", store_.size() - 1);
    t.id = id;
    t.config = std::move(config);
    list_.push_back(&t);
    s.on_trial_add(*this, t);
    return t;
  }
  Trial& mut(const Trial& t) {
    const auto it = std::find_if(store_.begin(), store_.end(), [&](const Trial& x) { return x.id == t.id; });
    REQUIRE(it != store_.end());
    return *it;
  }

  struct Reset {
    std::string id;
    Config config;
    std::shared_ptr<const Checkpoint> from;
  };
  std::vector<Reset> resets;
  std::vector<std::string> stopped;
  bool finished = false;

 private:
  std::string metric_;
  Mode mode_;
  std::deque<Trial> store_;
  std::vector<const Trial*> list_;
};

// One report of `metric` = value, the way the tuner passes it: appended to the trial, which is
// running; the decision is applied to its status (stop ends it, with on_trial_complete).
Decision report(TrialScheduler& s, FakeRun& run, Trial& t, std::int64_t iteration, double value,
                const std::string& metric = "loss", double time_total_s = -1) {
  Result r;
  r.trial_id = t.id;
  r.training_iteration = iteration;
  r.time_this_iter_s = 1;
  r.time_total_s = time_total_s >= 0 ? time_total_s : static_cast<double>(iteration);
  r.metrics = {{metric, value}};
  t.status = TrialStatus::running;
  t.results.push_back(r);
  const Decision d = s.on_trial_result(run, t, r);
  if (d == Decision::pause) t.status = TrialStatus::paused;
  if (d == Decision::stop) {
    t.status = TrialStatus::terminated;
    t.stopped_early = true;
    s.on_trial_complete(run, t, t.last_result());
  }
  return d;
}

// A tuner with one slot: asks choose_trial_to_run, else starts a new trial while fewer than
// `total` exist (the searcher is finished once the last is made); runs the trial from its last
// iteration until the scheduler pauses or stops it, or it returns after `last_iteration`.
// Returns the log: "id pause@it", "id stop@it", "id done@it", and "id stopped" for trials
// stopped by stop_trial or because they were left paused at the end.
std::vector<std::string> drive(TrialScheduler& s, FakeRun& run, std::size_t total, std::int64_t last_iteration,
                               const std::function<double(std::size_t, std::int64_t)>& curve) {
  std::vector<std::string> log;
  std::size_t seen_stops = 0;
  const auto note_stops = [&] {
    for (; seen_stops < run.stopped.size(); ++seen_stops) log.push_back(run.stopped[seen_stops] + " stopped");
  };
  for (int guard = 0; guard < 10000; ++guard) {
    const Trial* next = s.choose_trial_to_run(run);
    note_stops();
    if (next == nullptr) {
      if (run.trials().size() < total) {
        next = &run.add(s);
        run.finished = run.trials().size() == total;
      } else {
        bool any_paused = false;
        for (const Trial* t : run.trials()) {
          if (t->status != TrialStatus::paused) continue;
          any_paused = true;
          run.stop_trial(*t);
          s.on_trial_complete(run, *t, t->last_result());
        }
        note_stops();
        if (!any_paused) return log;
        continue;
      }
    }
    Trial& t = run.mut(*next);
    const std::size_t index = static_cast<std::size_t>(std::stol(t.id));
    for (std::int64_t it = t.results.empty() ? 1 : t.results.back().training_iteration + 1;; ++it) {
      const Decision d = report(s, run, t, it, curve(index, it));
      note_stops();
      if (d == Decision::pause) {
        log.push_back(t.id + " pause@" + std::to_string(it));
        break;
      }
      if (d == Decision::stop) {
        log.push_back(t.id + " stop@" + std::to_string(it));
        break;
      }
      if (it == last_iteration) {
        t.status = TrialStatus::terminated;
        s.on_trial_complete(run, t, t.last_result());
        note_stops();
        log.push_back(t.id + " done@" + std::to_string(it));
        break;
      }
    }
  }
  FAIL("the run did not end");
  return log;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

template <class Scheduler>
std::string usage_message(const std::function<Scheduler()>& make) {
  try {
    make();
  } catch (const lumen::usage_error& e) {
    return e.what();
  }
  return "(no usage_error)";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ASHA

// Rungs sit at grace * rf^(k+s) up to max_t; trials are dealt to brackets in turn.
TEST_CASE("asha: rung milestones per bracket and round-robin brackets") {
  AshaScheduler four(AshaOptions{.max_t = 100, .grace_period = 1, .reduction_factor = 4, .brackets = 2});
  CHECK(four.milestones() == std::vector<std::vector<double>>{{1, 4, 16, 64}, {4, 16, 64}});
  AshaScheduler three(AshaOptions{.max_t = 81, .reduction_factor = 3});
  CHECK(three.milestones() == std::vector<std::vector<double>>{{1, 3, 9, 27, 81}});

  four.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  run.add(four);
  run.add(four);
  run.add(four);
  CHECK(four.bracket_of("00000") == 0);
  CHECK(four.bracket_of("00001") == 1);
  CHECK(four.bracket_of("00002") == 0);
}

// rf = 2: a trial stops at a rung when below the median of the values recorded there before it;
// the first at each rung always goes on; max_t stops the survivor.
TEST_CASE("asha: rf=2 stops below the median at each rung, and at max_t") {
  AshaScheduler s(AshaOptions{.max_t = 8, .grace_period = 1, .reduction_factor = 2});
  s.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  Trial& a = run.add(s);
  Trial& b = run.add(s);
  Trial& c = run.add(s);
  Trial& d = run.add(s);
  CHECK(report(s, run, a, 1, 0.5) == Decision::keep_going);   // rung 1: first
  CHECK(report(s, run, b, 1, 0.7) == Decision::stop);         // cutoff = 0.5
  CHECK(report(s, run, c, 1, 0.4) == Decision::keep_going);   // cutoff = median(0.5, 0.7) = 0.6
  CHECK(report(s, run, d, 1, 0.55) == Decision::stop);        // cutoff = median(0.4, 0.5, 0.7) = 0.5
  CHECK(report(s, run, a, 2, 0.45) == Decision::keep_going);  // rung 2: first
  CHECK(report(s, run, c, 2, 0.3) == Decision::keep_going);   // better than 0.45
  CHECK(report(s, run, a, 3, 0.44) == Decision::keep_going);  // no rung at 3
  CHECK(report(s, run, a, 4, 0.44) == Decision::keep_going);  // rung 4: first
  CHECK(report(s, run, c, 3, 0.5) == Decision::keep_going);   // no rung at 3, however bad
  CHECK(report(s, run, c, 4, 0.5) == Decision::stop);         // rung 4: worse than 0.44
  for (std::int64_t it = 5; it < 8; ++it) CHECK(report(s, run, a, it, 0.4) == Decision::keep_going);
  CHECK(report(s, run, a, 8, 0.4) == Decision::stop);  // max_t
}

// rf = 3: the cutoff is the 2/3 quantile of the earlier values, interpolated as numpy does.
TEST_CASE("asha: rf=3 cutoff is the interpolated 2/3 quantile") {
  AshaScheduler s(AshaOptions{.metric = "acc", .mode = "max", .max_t = 27, .reduction_factor = 3});
  s.set_search_properties("", Mode::min);
  FakeRun run("", Mode::min);
  const auto at_rung_1 = [&](double acc) { return report(s, run, run.add(s), 1, acc, "acc"); };
  CHECK(at_rung_1(0.1) == Decision::keep_going);
  CHECK(at_rung_1(0.2) == Decision::keep_going);   // cutoff 0.1
  CHECK(at_rung_1(0.3) == Decision::keep_going);   // cutoff 0.1 + 0.1 * 2/3
  CHECK(at_rung_1(0.15) == Decision::stop);        // cutoff 0.2 + 0.1 / 3 of {.1 .2 .3}
  CHECK(at_rung_1(0.25) == Decision::keep_going);  // cutoff 0.2 of {.1 .15 .2 .3}
  CHECK(at_rung_1(0.2) == Decision::stop);         // cutoff 0.2 + 0.05 * 2/3 of {.1 .15 .2 .25 .3}
}

// rf = 4: the cutoff is the 3/4 quantile; a value equal to it is not below it and goes on.
TEST_CASE("asha: rf=4 cutoff is the 3/4 quantile, ties go on") {
  AshaScheduler s(AshaOptions{.metric = "acc", .mode = "max", .max_t = 64});
  s.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  for (double v : {1.0, 2.0, 3.0, 4.0, 5.0}) report(s, run, run.add(s), 1, v, "acc");
  // {1, 2, 3, 4, 5}: cutoff 4.
  CHECK(report(s, run, run.add(s), 1, 4.0, "acc") == Decision::keep_going);
  // {1, 2, 3, 4, 4, 5}: cutoff at position 3.75, 4.
  CHECK(report(s, run, run.add(s), 1, 3.9, "acc") == Decision::stop);
}

// A report that passes several rungs at once is recorded at the highest of them only.
TEST_CASE("asha: a jump over several rungs records at the highest") {
  AshaScheduler s(AshaOptions{.time_attr = "time_total_s", .max_t = 64});
  s.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  Trial& a = run.add(s);
  Trial& b = run.add(s);
  Trial& c = run.add(s);
  CHECK(report(s, run, a, 1, 0.5, "loss", 5.0) == Decision::keep_going);  // rung 4
  CHECK(report(s, run, b, 1, 0.9, "loss", 1.5) == Decision::keep_going);  // rung 1 is empty
  CHECK(report(s, run, c, 1, 0.6, "loss", 4.0) == Decision::stop);        // rung 4 holds 0.5
}

// Reports without the metric are passed over; with stop_last_trials = false a trial runs past
// max_t, still cut at the rung at max_t itself.
TEST_CASE("asha: missing metric and stop_last_trials=false") {
  AshaScheduler s(AshaOptions{.max_t = 4, .reduction_factor = 2, .stop_last_trials = false});
  s.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  Trial& a = run.add(s);
  Trial& b = run.add(s);
  CHECK(report(s, run, a, 1, 0.9, "other") == Decision::keep_going);
  CHECK(report(s, run, b, 1, std::nan(""), "loss") == Decision::keep_going);  // not recorded at rung 1
  CHECK(report(s, run, a, 1, 0.9) == Decision::keep_going);                   // so the first there
  CHECK(report(s, run, a, 4, 0.5) == Decision::keep_going);                   // rung 4, first
  CHECK(report(s, run, a, 5, 0.5) == Decision::keep_going);                   // past max_t
  CHECK(report(s, run, b, 4, 0.6) == Decision::stop);                         // rung 4 holds 0.5
}

// Brackets are judged apart, and bracket 1 has no rung at grace_period.
TEST_CASE("asha: brackets have their own rungs") {
  AshaScheduler s(AshaOptions{.max_t = 8, .reduction_factor = 2, .brackets = 2});
  s.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  Trial& t0 = run.add(s);  // bracket 0: 1 2 4 8
  Trial& t1 = run.add(s);  // bracket 1: 2 4 8
  Trial& t2 = run.add(s);
  Trial& t3 = run.add(s);
  CHECK(report(s, run, t0, 1, 0.5) == Decision::keep_going);
  CHECK(report(s, run, t1, 1, 0.9) == Decision::keep_going);  // no rung 1 in bracket 1
  CHECK(report(s, run, t2, 1, 0.9) == Decision::stop);        // bracket 0, rung 1 holds 0.5
  CHECK(report(s, run, t1, 2, 0.9) == Decision::keep_going);  // bracket 1, rung 2: first
  CHECK(report(s, run, t3, 2, 1.0) == Decision::stop);        // bracket 1, rung 2 holds 0.9
}

// The promotion variant, one slot, rf = 2, max_t = 4 (pauses at 1 and 2). Trial quality:
// 00003 > 00001 > 00002 > 00000. A trial is promoted once it is in the top half of its rung;
// once the searcher is finished, the best of each rung is promoted even alone; the rest are
// left paused and the tuner stops them.
TEST_CASE("asha: promotion variant pauses at rungs and promotes the best first") {
  AshaScheduler s(AshaOptions{.max_t = 4, .reduction_factor = 2, .promotion = true});
  s.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  const double quality[] = {0.5, 0.3, 0.4, 0.2};
  const auto log =
      drive(s, run, 4, 10, [&](std::size_t i, std::int64_t it) { return quality[i] - 0.01 * static_cast<double>(it); });
  CHECK(log == std::vector<std::string>{"00000 pause@1", "00001 pause@1", "00001 pause@2", "00002 pause@1",
                                        "00003 pause@1", "00001 stop@4", "00003 pause@2", "00003 stop@4",
                                        "00000 stopped", "00002 stopped"});
}

// A replayed experiment: a trial that reported past a rung counts as promoted from it, so it is
// not promoted from there again.
TEST_CASE("asha: promotion state is rebuilt from replayed results") {
  AshaScheduler s(AshaOptions{.max_t = 4, .reduction_factor = 2, .promotion = true});
  s.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  Trial& a = run.add(s);
  Trial& b = run.add(s);
  CHECK(report(s, run, a, 1, 0.5) == Decision::pause);
  CHECK(report(s, run, b, 1, 0.3) == Decision::pause);
  CHECK(report(s, run, b, 2, 0.3) == Decision::pause);  // b resumed (promoted) and reached rung 2
  CHECK(s.choose_trial_to_run(run) == nullptr);         // rung 1's one promotion is used; rung 2 needs 2
  run.finished = true;
  CHECK(s.choose_trial_to_run(run) == &b);       // alone at rung 2, promoted once the searcher is done
  CHECK(s.choose_trial_to_run(run) == nullptr);  // rung 1's quota (1 of 2) is b, already promoted
}

// Invalid options name the scheduler and the option.
TEST_CASE("asha: invalid options throw usage_error") {
  using M = std::function<AshaScheduler()>;
  CHECK(usage_message<AshaScheduler>(M([] { return AshaScheduler(AshaOptions{.reduction_factor = 1}); })) ==
        "lumen::tune::AshaScheduler: reduction_factor must be > 1, got 1");
  CHECK(usage_message<AshaScheduler>(M([] { return AshaScheduler(AshaOptions{.grace_period = 0}); })) ==
        "lumen::tune::AshaScheduler: grace_period must be > 0, got 0");
  CHECK(usage_message<AshaScheduler>(M([] { return AshaScheduler(AshaOptions{.max_t = 5, .grace_period = 10}); })) ==
        "lumen::tune::AshaScheduler: grace_period (10) must not exceed max_t (5)");
  CHECK(usage_message<AshaScheduler>(M([] { return AshaScheduler(AshaOptions{.brackets = 0}); })) ==
        "lumen::tune::AshaScheduler: brackets must be >= 1, got 0");
  CHECK(usage_message<AshaScheduler>(M([] { return AshaScheduler(AshaOptions{.max_t = 10, .brackets = 3}); })) ==
        "lumen::tune::AshaScheduler: brackets (3) is too many: bracket 2 would start above max_t (10)");
  CHECK(usage_message<AshaScheduler>(M([] { return AshaScheduler(AshaOptions{.mode = "maximize"}); })) ==
        "lumen::tune::AshaScheduler: mode must be \"min\" or \"max\" (or empty), got \"maximize\"");
  AshaScheduler no_metric;
  CHECK_THROWS_AS(no_metric.set_search_properties("", Mode::min), lumen::usage_error);
}

// ---------------------------------------------------------------------------------------------
// HyperBand

// Bracket s holds ceil((s_max + 1) / (s + 1) * rf^s) trials first run to max_t / rf^s, filled
// smallest first as Ray does: for max_t = 81, rf = 3, 5 to 81, 8 to 27, 15 to 9, 34 to 3, 81 to 1.
TEST_CASE("hyperband: bracket sizes and first milestones") {
  HyperBandScheduler s(HyperBandOptions{.max_t = 81, .reduction_factor = 3});
  const auto& round = s.round();
  REQUIRE(round.size() == 5);
  const std::size_t trials[] = {5, 8, 15, 34, 81};
  const double milestone[] = {81, 27, 9, 3, 1};
  for (std::size_t i = 0; i < 5; ++i) {
    CHECK(round[i].s == static_cast<int>(i));
    CHECK(round[i].trials == trials[i]);
    CHECK(round[i].milestone == doctest::Approx(milestone[i]));
  }
  HyperBandScheduler small(HyperBandOptions{.max_t = 9});
  REQUIRE(small.round().size() == 3);
  CHECK(small.round()[0].trials == 3);
  CHECK(small.round()[1].trials == 5);  // ceil(3 / 2 * 3)
  CHECK(small.round()[2].trials == 9);
  HyperBandScheduler uneven(HyperBandOptions{.max_t = 100});  // s_max = floor(log3(100)) = 4
  REQUIRE(uneven.round().size() == 5);
  CHECK(uneven.round()[4].milestone == doctest::Approx(100.0 / 81));
}

// Trials fill the brackets in order as they are added; after the last, a new round begins.
TEST_CASE("hyperband: trials fill brackets in order, round after round") {
  HyperBandScheduler s(HyperBandOptions{.max_t = 9});
  s.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  for (int i = 0; i < 18; ++i) run.add(s);
  CHECK(s.bracket_of("00000") == 0);
  CHECK(s.bracket_of("00002") == 0);
  CHECK(s.bracket_of("00003") == 1);
  CHECK(s.bracket_of("00007") == 1);
  CHECK(s.bracket_of("00008") == 2);
  CHECK(s.bracket_of("00016") == 2);
  CHECK(s.bracket_of("00017") == 3);
  CHECK(s.milestone_of(3) == 9);
}

namespace {

// max_t = 9, rf = 3: trials 0-2 make bracket 0 (to 9), trials 3-7 bracket 1 (to 3, then the best
// floor(5 / 3) = 1 to 9).
struct SmallBand {
  HyperBandScheduler s{HyperBandOptions{.max_t = 9}};
  FakeRun run{"loss", Mode::min};
  std::vector<Trial*> t;
  SmallBand() {
    s.set_search_properties("loss", Mode::min);
    for (int i = 0; i < 8; ++i) t.push_back(&run.add(s));
  }
  // Runs the trial up to the bracket-1 milestone (3); the decision at 3.
  Decision to_milestone(std::size_t i, double loss) {
    CHECK(report(s, run, *t[i], 1, loss + 0.2) == Decision::keep_going);
    CHECK(report(s, run, *t[i], 2, loss + 0.1) == Decision::keep_going);
    return report(s, run, *t[i], 3, loss);
  }
};

}  // namespace

// The synchronous cut: trials pause at the milestone; the last to arrive triggers the cut, the
// losers stop (stop_trial for the paused ones, a stop decision for the reporting one), the
// survivor resumes and stops at max_t. Bracket 0 (s = 0) just runs to max_t.
TEST_CASE("hyperband: synchronous cut inside one bracket") {
  SmallBand b;
  CHECK(b.to_milestone(3, 0.5) == Decision::pause);
  CHECK(b.to_milestone(4, 0.2) == Decision::pause);
  CHECK(b.to_milestone(5, 0.4) == Decision::pause);
  CHECK(b.to_milestone(6, 0.3) == Decision::pause);
  CHECK(b.s.choose_trial_to_run(b.run) == b.t[0]);  // only pending trials to run yet
  CHECK(b.run.stopped.empty());
  CHECK(b.to_milestone(7, 0.6) == Decision::stop);
  CHECK(sorted(b.run.stopped) == std::vector<std::string>{"00003", "00005", "00006"});
  CHECK(b.s.milestone_of(1) == 9);
  CHECK(b.s.choose_trial_to_run(b.run) == b.t[4]);
  for (std::int64_t it = 4; it < 9; ++it) CHECK(report(b.s, b.run, *b.t[4], it, 0.1) == Decision::keep_going);
  CHECK(report(b.s, b.run, *b.t[4], 9, 0.1) == Decision::stop);
  for (std::int64_t it = 1; it < 9; ++it) CHECK(report(b.s, b.run, *b.t[0], it, 0.9) == Decision::keep_going);
  CHECK(report(b.s, b.run, *b.t[0], 9, 0.9) == Decision::stop);
}

// The trial whose report completes the bracket may be the survivor: it goes on.
TEST_CASE("hyperband: the reporting trial survives the cut") {
  SmallBand b;
  for (std::size_t i = 3; i < 7; ++i) CHECK(b.to_milestone(i, 0.5 + 0.01 * static_cast<double>(i)) == Decision::pause);
  CHECK(b.to_milestone(7, 0.1) == Decision::keep_going);
  CHECK(sorted(b.run.stopped) == std::vector<std::string>{"00003", "00004", "00005", "00006"});
}

// A trial that returns on its own leaves the bracket, which then cuts without it: floor(4 / 3).
TEST_CASE("hyperband: a trial ending on its own leaves the bracket") {
  SmallBand b;
  CHECK(b.to_milestone(3, 0.5) == Decision::pause);
  CHECK(b.to_milestone(4, 0.2) == Decision::pause);
  CHECK(b.to_milestone(5, 0.4) == Decision::pause);
  CHECK(b.to_milestone(6, 0.3) == Decision::pause);
  CHECK(report(b.s, b.run, *b.t[7], 1, 0.01) == Decision::keep_going);
  b.t[7]->status = TrialStatus::terminated;
  b.s.on_trial_complete(b.run, *b.t[7], b.t[7]->last_result());
  CHECK(sorted(b.run.stopped) == std::vector<std::string>{"00003", "00005", "00006"});
  CHECK(b.s.choose_trial_to_run(b.run) == b.t[4]);
}

// An unfilled bracket waits for more trials while the searcher may give them, and cuts with
// what it holds once the searcher is finished.
TEST_CASE("hyperband: an unfilled bracket cuts when the searcher is finished") {
  HyperBandScheduler s(HyperBandOptions{.max_t = 9});
  s.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  for (int i = 0; i < 3; ++i) {
    Trial& t = run.add(s);
    for (std::int64_t it = 1; it <= 9; ++it) report(s, run, t, it, 1.0);
    REQUIRE(t.status == TrialStatus::terminated);
  }
  Trial& a = run.add(s);
  Trial& b = run.add(s);
  CHECK(report(s, run, a, 3, 0.4) == Decision::pause);
  CHECK(report(s, run, b, 3, 0.3) == Decision::pause);
  CHECK(s.choose_trial_to_run(run) == nullptr);  // room for 3 more in the bracket: start new trials
  run.finished = true;
  CHECK(s.choose_trial_to_run(run) == &b);
  CHECK(run.stopped == std::vector<std::string>{"00003"});
}

// A whole round with one slot: bracket 0 runs to 9; in bracket 1 the best of 5 reaches 9; in
// bracket 2 the best 3 of 9 reach 3 and the best of those reaches 9.
TEST_CASE("hyperband: a round run through, who reaches which milestone") {
  HyperBandScheduler s(HyperBandOptions{.max_t = 9});
  s.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  const double quality[] = {0.5, 0.5, 0.5,                                 // bracket 0
                            0.5, 0.2, 0.4, 0.3, 0.6,                       // bracket 1
                            0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6};  // bracket 2
  drive(s, run, 17, 100, [&](std::size_t i, std::int64_t it) { return quality[i] / static_cast<double>(it); });
  std::vector<std::int64_t> reached;
  for (const Trial* t : run.trials()) {
    reached.push_back(t->results.back().training_iteration);
    CHECK(t->status == TrialStatus::terminated);
  }
  CHECK(reached == std::vector<std::int64_t>{9, 9, 9, 3, 9, 3, 3, 3, 1, 9, 1, 3, 1, 3, 1, 1, 1});
}

// Invalid options name the scheduler and the option.
TEST_CASE("hyperband: invalid options throw usage_error") {
  using M = std::function<HyperBandScheduler()>;
  CHECK(usage_message<HyperBandScheduler>(M([] { return HyperBandScheduler(HyperBandOptions{.max_t = 0}); })) ==
        "lumen::tune::HyperBandScheduler: max_t must be > 0, got 0");
  CHECK(usage_message<HyperBandScheduler>(M([] {
          return HyperBandScheduler(HyperBandOptions{.reduction_factor = 1});
        })) == "lumen::tune::HyperBandScheduler: reduction_factor must be > 1, got 1");
  CHECK(usage_message<HyperBandScheduler>(M([] {
          return HyperBandScheduler(HyperBandOptions{.max_t = 1e9, .reduction_factor = 1.01});
        })).find("brackets") != std::string::npos);
  CHECK_THROWS_WITH_AS(HyperBandScheduler(HyperBandOptions{.time_attr = ""}),
                       "lumen::tune::HyperBandScheduler: time_attr must not be empty", lumen::usage_error);
}

// ---------------------------------------------------------------------------------------------
// Median stopping

namespace {

// Loss curves, one report every 30 s: a, b and c improve; d is far behind.
const std::vector<double> curve_a{1.0, 0.9, 0.8, 0.7};
const std::vector<double> curve_b{1.0, 0.8, 0.6, 0.5};
const std::vector<double> curve_c{1.0, 0.7, 0.6, 0.55};

std::vector<Decision> run_curve(TrialScheduler& s, FakeRun& run, Trial& t, const std::vector<double>& curve) {
  std::vector<Decision> out;
  for (std::size_t i = 0; i < curve.size() && t.status != TrialStatus::terminated; ++i) {
    const auto it = static_cast<std::int64_t>(i + 1);
    out.push_back(report(s, run, t, it, curve[i], "loss", 30.0 * static_cast<double>(it)));
  }
  return out;
}

}  // namespace

// Defaults (time_total_s, grace 60 s, 3 samples): a, b, c each beat the median of the trials
// before them; d's best (1.8 at 60 s) is worse than median(0.9, 0.8, 0.7) and stops at 60 s.
TEST_CASE("median stopping: a trial clearly below the median stops after the grace period") {
  MedianStoppingRule s;
  s.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  const std::vector<Decision> go_on(4, Decision::keep_going);
  CHECK(run_curve(s, run, run.add(s), curve_a) == go_on);
  CHECK(run_curve(s, run, run.add(s), curve_b) == go_on);
  CHECK(run_curve(s, run, run.add(s), curve_c) == go_on);
  CHECK(run_curve(s, run, run.add(s), {2.0, 1.9, 1.8, 1.7}) ==
        std::vector<Decision>{Decision::keep_going, Decision::stop});
}

// With two samples required, c is judged: at 60 s median(0.9, 0.8) = 0.85 > 0.7; at 90 s
// median((0.9+0.8)/2, (0.8+0.6)/2) = 0.775 > 0.6; at 120 s median(0.8, 0.633) = 0.717 > 0.55.
// e's best is its first report (before the grace period), which still counts: it goes on. A
// best equal to the median is not worse than it.
TEST_CASE("median stopping: running averages from the grace period, best result over all reports") {
  MedianStoppingRule s(MedianStoppingOptions{.metric = "loss", .mode = "min", .min_samples_required = 2});
  s.set_search_properties("", Mode::max);
  FakeRun run("", Mode::max);
  run_curve(s, run, run.add(s), curve_a);
  run_curve(s, run, run.add(s), curve_b);
  CHECK(run_curve(s, run, run.add(s), curve_c) == std::vector<Decision>(4, Decision::keep_going));
  CHECK(run_curve(s, run, run.add(s), {0.1, 0.95, 0.95, 0.95}) == std::vector<Decision>(4, Decision::keep_going));
  CHECK(run_curve(s, run, run.add(s), {0.1, 1.95}) == std::vector<Decision>(2, Decision::keep_going));
  // At 60 s: median(0.9, 0.8, 0.7, 0.95, 1.95) = 0.9, equal to this trial's best.
  CHECK(run_curve(s, run, run.add(s), {0.9, 0.95}) == std::vector<Decision>(2, Decision::keep_going));
  // At 60 s: median(0.9, 0.8, 0.7, 0.95, 1.95, 0.95) = 0.925, better than 0.93.
  CHECK(run_curve(s, run, run.add(s), {0.93, 0.95}) == std::vector<Decision>{Decision::keep_going, Decision::stop});
}

// hard_stop = false pauses the trial instead, and once paused it is not judged again.
TEST_CASE("median stopping: soft stop pauses once") {
  MedianStoppingRule s(MedianStoppingOptions{.hard_stop = false});
  s.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  run_curve(s, run, run.add(s), curve_a);
  run_curve(s, run, run.add(s), curve_b);
  run_curve(s, run, run.add(s), curve_c);
  Trial& d = run.add(s);
  CHECK(report(s, run, d, 1, 2.0, "loss", 30) == Decision::keep_going);
  CHECK(report(s, run, d, 2, 1.9, "loss", 60) == Decision::pause);
  CHECK(report(s, run, d, 3, 1.8, "loss", 90) == Decision::keep_going);
}

// Too few others to compare with: the trial yields its slot while trials wait, at most once per
// min_time_slice; with nobody waiting it goes on.
TEST_CASE("median stopping: yields to waiting trials while samples are too few") {
  MedianStoppingRule s(
      MedianStoppingOptions{.time_attr = "training_iteration", .grace_period = 2, .min_time_slice = 2});
  s.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  Trial& a = run.add(s);
  CHECK(report(s, run, a, 2, 0.5) == Decision::keep_going);  // nobody waits
  Trial& b = run.add(s);
  b.status = TrialStatus::paused;
  CHECK(report(s, run, a, 3, 0.5) == Decision::pause);       // first yield
  CHECK(report(s, run, a, 4, 0.5) == Decision::keep_going);  // 1 since the yield
  CHECK(report(s, run, a, 5, 0.5) == Decision::keep_going);  // 2: not more than min_time_slice
  CHECK(report(s, run, a, 6, 0.5) == Decision::pause);
}

// A trial that restarts from an earlier checkpoint replaces its reports from there: b is judged
// against a's second curve (0.5 at 60 s), not the first (5.0).
TEST_CASE("median stopping: reports after a restart replace the earlier ones") {
  MedianStoppingRule s(MedianStoppingOptions{.min_samples_required = 1});
  s.set_search_properties("loss", Mode::min);
  FakeRun run("loss", Mode::min);
  Trial& a = run.add(s);
  run_curve(s, run, a, {1.0, 5.0, 5.0});
  CHECK(report(s, run, a, 2, 0.5, "loss", 60) == Decision::keep_going);
  CHECK(report(s, run, a, 3, 0.5, "loss", 90) == Decision::keep_going);
  CHECK(run_curve(s, run, run.add(s), {1.0, 0.7}) == std::vector<Decision>{Decision::keep_going, Decision::stop});
}

// Invalid options name the scheduler and the option.
TEST_CASE("median stopping: invalid options throw usage_error") {
  CHECK_THROWS_WITH_AS(MedianStoppingRule(MedianStoppingOptions{.min_samples_required = 0}),
                       "lumen::tune::MedianStoppingRule: min_samples_required must be >= 1, got 0", lumen::usage_error);
  CHECK_THROWS_WITH_AS(MedianStoppingRule(MedianStoppingOptions{.grace_period = -1}),
                       "lumen::tune::MedianStoppingRule: grace_period must be >= 0, got -1", lumen::usage_error);
  CHECK_THROWS_WITH_AS(MedianStoppingRule(MedianStoppingOptions{.min_time_slice = -0.5}),
                       "lumen::tune::MedianStoppingRule: min_time_slice must be >= 0, got -0.5", lumen::usage_error);
  MedianStoppingRule no_metric;
  CHECK_THROWS_AS(no_metric.set_search_properties("", Mode::min), lumen::usage_error);
}

// ---------------------------------------------------------------------------------------------
// Population based training

namespace {

ParamSpace mutations() {
  return ParamSpace{
      {"lr", uniform(0.001, 1.0)}, {"batch", randint(8, 128)}, {"opt", choice({"sgd", "adam", "rmsprop"})}};
}

// Four trials with lr 0.1 .. 0.4, batch 32, opt `opt`, each with a checkpoint (unless told
// not), the score maximized. Reporting scores 0.1 .. 0.4 at iteration 1 makes 00000 the
// laggard and 00003 the leader.
struct Population {
  PopulationBasedTraining s;
  FakeRun run{"score", Mode::max};
  std::vector<Trial*> t;
  explicit Population(PbtOptions o, const char* opt = "adam", bool checkpoints = true) : s(std::move(o)) {
    s.set_search_properties("score", Mode::max);
    for (int i = 0; i < 4; ++i) {
      Config c;
      c.set("lr", 0.1 * (i + 1));
      c.set("batch", 32);
      c.set("opt", opt);
      Trial& trial = run.add(s, c);
      if (checkpoints) trial.checkpoint = std::make_shared<const Checkpoint>(Checkpoint{"weights " + trial.id, 1});
      t.push_back(&trial);
    }
    for (int i = 0; i < 4; ++i) CHECK(report(s, run, *t[i], 1, 0.1 * (i + 1), "score") == Decision::keep_going);
  }
};

PbtOptions perturb_only(std::uint64_t seed) {
  return PbtOptions{
      .perturbation_interval = 2, .hyperparam_mutations = mutations(), .resample_probability = 0, .seed = seed};
}

}  // namespace

// At its perturbation point the bottom-quantile trial takes the top trial's checkpoint and its
// config perturbed: numbers x1.2 or x0.8 (integers rounded, still integers), the choice moved
// to a neighbour; it is paused and chosen to run next. Trials above the bottom go on.
TEST_CASE("pbt: the laggard exploits the leader's checkpoint and perturbed config") {
  Population p(perturb_only(7));
  CHECK(report(p.s, p.run, *p.t[0], 2, 0.15, "score") == Decision::pause);
  REQUIRE(p.run.resets.size() == 1);
  CHECK(p.run.resets[0].id == "00000");
  CHECK(p.run.resets[0].from == p.t[3]->checkpoint);
  const Config& c = p.run.resets[0].config;
  const double lr = c.get<double>("lr");
  CHECK((lr == doctest::Approx(0.4 * 1.2) || lr == doctest::Approx(0.4 * 0.8)));
  CHECK(c.at("lr").is_number_float());
  CHECK(c.at("batch").is_number_integer());
  const int batch = c.get<int>("batch");
  CHECK((batch == 38 || batch == 26));
  const std::string opt = c.get<std::string>("opt");
  CHECK((opt == "sgd" || opt == "rmsprop"));

  REQUIRE(p.s.exploits().size() == 1);
  const PbtExploit& e = p.s.exploits()[0];
  CHECK(e.trial_id == "00000");
  CHECK(e.donor_id == "00003");
  CHECK(e.training_iteration == 2);
  CHECK(e.checkpoint_iteration == 1);
  CHECK(e.old_config.get<double>("lr") == doctest::Approx(0.1));
  CHECK(e.donor_config == p.t[3]->config);
  CHECK(e.new_config == c);
  REQUIRE(e.operations.size() == 3);
  CHECK(e.operations[0].first == "lr");
  CHECK((e.operations[0].second == "* 1.2" || e.operations[0].second == "* 0.8"));
  CHECK((e.operations[2].second == "shift left" || e.operations[2].second == "shift right"));

  CHECK(p.s.choose_trial_to_run(p.run) == p.t[0]);
  CHECK(report(p.s, p.run, *p.t[1], 2, 0.25, "score") == Decision::keep_going);
  CHECK(report(p.s, p.run, *p.t[3], 2, 0.45, "score") == Decision::keep_going);
}

// resample_probability = 1: every mutated key is drawn afresh from its Domain.
TEST_CASE("pbt: resampling draws from the domains") {
  PbtOptions o = perturb_only(3);
  o.resample_probability = 1;
  Population p(std::move(o));
  CHECK(report(p.s, p.run, *p.t[0], 2, 0.15, "score") == Decision::pause);
  const Config& c = p.s.exploits().at(0).new_config;
  CHECK(uniform(0.001, 1.0).contains(c.at("lr")));
  CHECK(randint(8, 128).contains(c.at("batch")));
  CHECK(choice({"sgd", "adam", "rmsprop"}).contains(c.at("opt")));
  for (const auto& [key, op] : p.s.exploits()[0].operations) CHECK(op == "resample");
}

// A choice moves to a neighbouring value: from the middle to either side, from the first value
// to the second or (clamped) nowhere. Over seeds both directions occur.
TEST_CASE("pbt: choice values shift to a neighbour") {
  std::set<std::string> from_middle, from_edge;
  for (std::uint64_t seed = 0; seed < 30; ++seed) {
    Population middle(perturb_only(seed), "adam");
    report(middle.s, middle.run, *middle.t[0], 2, 0.15, "score");
    from_middle.insert(middle.s.exploits().at(0).new_config.get<std::string>("opt"));
    Population edge(perturb_only(seed), "sgd");
    report(edge.s, edge.run, *edge.t[0], 2, 0.15, "score");
    from_edge.insert(edge.s.exploits().at(0).new_config.get<std::string>("opt"));
  }
  CHECK(from_middle == std::set<std::string>{"sgd", "rmsprop"});
  CHECK(from_edge == std::set<std::string>{"sgd", "adam"});
}

// With a fixed seed the same reports give the same exploits.
TEST_CASE("pbt: a seed makes exploits repeatable") {
  Population a(perturb_only(42));
  Population b(perturb_only(42));
  report(a.s, a.run, *a.t[0], 2, 0.15, "score");
  report(b.s, b.run, *b.t[0], 2, 0.15, "score");
  CHECK(a.s.exploits().at(0).new_config == b.s.exploits().at(0).new_config);
}

// No exploit without a leader's checkpoint, before the burn-in, between perturbation points,
// or with quantile_fraction = 0.
TEST_CASE("pbt: when there is no exploit") {
  SUBCASE("no checkpoint") {
    Population p(perturb_only(1), "adam", false);
    CHECK(report(p.s, p.run, *p.t[0], 2, 0.15, "score") == Decision::keep_going);
    CHECK(p.run.resets.empty());
  }
  SUBCASE("burn-in") {
    PbtOptions o = perturb_only(1);
    o.burn_in_period = 4;
    Population p(std::move(o));
    CHECK(report(p.s, p.run, *p.t[0], 2, 0.15, "score") == Decision::keep_going);
    CHECK(report(p.s, p.run, *p.t[0], 3, 0.15, "score") == Decision::keep_going);
    CHECK(report(p.s, p.run, *p.t[0], 4, 0.15, "score") == Decision::pause);
  }
  SUBCASE("interval") {
    PbtOptions o = perturb_only(1);
    o.perturbation_interval = 3;
    Population p(std::move(o));
    CHECK(report(p.s, p.run, *p.t[0], 2, 0.15, "score") == Decision::keep_going);
    CHECK(report(p.s, p.run, *p.t[0], 3, 0.15, "score") == Decision::pause);
  }
  SUBCASE("quantile_fraction = 0") {
    PbtOptions o = perturb_only(1);
    o.quantile_fraction = 0;
    Population p(std::move(o));
    CHECK(report(p.s, p.run, *p.t[0], 2, 0.15, "score") == Decision::keep_going);
  }
}

// Invalid options name the scheduler and the option.
TEST_CASE("pbt: invalid options throw usage_error") {
  CHECK_THROWS_WITH_AS(PopulationBasedTraining(PbtOptions{}),
                       "lumen::tune::PopulationBasedTraining: hyperparam_mutations must not be empty: give the keys "
                       "to mutate and their Domains",
                       lumen::usage_error);
  CHECK_THROWS_WITH_AS(PopulationBasedTraining(PbtOptions{.hyperparam_mutations = {{"lr", 0.1}}}),
                       "lumen::tune::PopulationBasedTraining: hyperparam_mutations: \"lr\" is a constant (0.1); give a "
                       "Domain (uniform, randint, choice, ...) for a key to mutate",
                       lumen::usage_error);
  PbtOptions o = perturb_only(1);
  o.quantile_fraction = 0.6;
  CHECK_THROWS_WITH_AS(PopulationBasedTraining{o},
                       "lumen::tune::PopulationBasedTraining: quantile_fraction must be in [0, 0.5], got 0.6",
                       lumen::usage_error);
  o = perturb_only(1);
  o.perturbation_factors = {};
  CHECK_THROWS_WITH_AS(PopulationBasedTraining{o},
                       "lumen::tune::PopulationBasedTraining: perturbation_factors must not be empty",
                       lumen::usage_error);
  o = perturb_only(1);
  o.perturbation_interval = 0;
  CHECK_THROWS_WITH_AS(PopulationBasedTraining{o},
                       "lumen::tune::PopulationBasedTraining: perturbation_interval must be > 0, got 0",
                       lumen::usage_error);
  PopulationBasedTraining no_metric(perturb_only(1));
  CHECK_THROWS_AS(no_metric.set_search_properties("", Mode::max), lumen::usage_error);
}
