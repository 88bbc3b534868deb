// The controller behind Tuner: starts trials as lumen tasks while slots are free, takes their
// reports under one lock (asking the searcher, the scheduler and the stoppers), retries
// failed trials, records everything in the experiment's folder, and prints progress.
//
// Locking: mutex_ guards the trials, the searcher, the scheduler and the stoppers. A trial's
// task takes it for each report and once at its end; fit()'s thread takes it to start trials
// and between waits. Files of one trial are written by that trial's task outside the lock.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "experiment_store.h"
#include "progress_table.h"
#include "lumen/tune/tuner.h"

namespace lumen::tune::detail {

// A trial's record as the controller keeps it.
struct TrialRecord {
  Trial trial;
  std::size_t index = 0;  // in creation order
  std::shared_ptr<const Checkpoint> resume_from;  // given by reset_trial: the next run starts there
  bool stop_requested = false;                    // a running trial told to stop at its next report
  std::uint64_t next_checkpoint_number = 1;
};

// One run of a trial's trainable, from its start (or resumption) to its return.
class TrialRun {
 public:
  Controller* controller = nullptr;
  TrialRecord* record = nullptr;
  Config config;
  std::shared_ptr<const Checkpoint> start_from;
  bool foreign_checkpoint = false;  // start_from is another trial's (PBT)
  std::int64_t iteration = 0;
  double time_base = 0;  // time_total_s before this run
  std::chrono::steady_clock::time_point started{}, last_report{};
  Decision decision = Decision::keep_going;
  bool ended_early = false;  // by the scheduler or the experiment's end, not by a stopper
  std::unique_ptr<TrialFiles> files;
};

class Controller final : public TrialControl {
 public:
  Controller(TrainFunction trainable, ParamSpace space, TuneConfig tune, RunConfig run);
  ~Controller();

  // Takes the trials of a stored experiment, to continue it.
  void adopt(StoredExperiment stored, const RestoreOptions& options);
  ResultGrid fit();

  // From a trial's Reporter, on its task.
  void report(TrialRun& run, Metrics metrics, std::optional<Checkpoint> checkpoint);

  const std::vector<const Trial*>& trials() const override { return views_; }
  std::vector<const Trial*> waiting() const override;
  void reset_trial(const Trial& t, Config config, std::shared_ptr<const Checkpoint> from) override;
  void stop_trial(const Trial& t) override;
  bool searcher_finished() const override { return searcher_finished_; }
  const std::string& metric() const override { return tune_.metric; }
  Mode mode() const override { return mode_; }

 private:
  void validate();
  void set_up_search(unsigned workers);
  void replay_stored();
  TrialRecord& record_of(const Trial& t);
  // Every change of a trial's status goes through here, which keeps waiting_.
  void set_status(TrialRecord& rec, TrialStatus status);
  void rebuild_waiting();
  TrialRecord& add_trial_locked(std::string id, Config config);
  void fill_slots_locked();
  void start_locked(TrialRecord& rec);
  void run_trial(const std::shared_ptr<TrialRun>& run) noexcept;
  void finish_run_locked(TrialRun& run, bool returned, const std::exception_ptr& failure);
  void end_trial_locked(TrialRecord& rec, TrialStatus status, bool stopped_early, bool tell_scheduler);
  void end_all_locked();
  void print_progress(std::unique_lock<std::mutex>& lock, bool final);
  nlohmann::json settings() const;

  TrainFunction trainable_;
  ParamSpace space_;
  TuneConfig tune_;
  RunConfig run_;
  Mode mode_ = Mode::min;
  std::shared_ptr<TrialScheduler> scheduler_;
  std::shared_ptr<Searcher> searcher_;
  std::shared_ptr<Stopper> stopper_;
  std::unique_ptr<ExperimentStore> store_;
  std::string path_;
  std::unique_ptr<ProgressTable> progress_;
  std::optional<StoredExperiment> stored_;
  RestoreOptions restore_options_;

  std::mutex mutex_;
  std::condition_variable changed_cv_;
  bool changed_ = false;
  std::deque<TrialRecord> records_;
  std::vector<const Trial*> views_;
  std::vector<TrialRecord*> waiting_;  // pending and paused, in creation order
  std::size_t slots_ = 1;
  std::size_t running_ = 0;
  bool searcher_finished_ = false;
  bool searcher_waits_ = false;
  bool ending_ = false;
  bool replaying_ = false;
  std::atomic<bool> fitted_{false};
  std::uint64_t seq_ = 0;
  std::size_t next_id_ = 0;
  std::chrono::steady_clock::time_point start_{};
  std::exception_ptr fatal_;
};

}  // namespace lumen::tune::detail
