#include "controller.h"

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <tuple>

#include "lumen/detail/on_worker.h"
#include "lumen/detail/scheduler_api.h"
#include "lumen/error.h"
#include "lumen/task.h"
#include "lumen/tune/random_search.h"

namespace lumen::tune::detail {

namespace {

std::string trial_id(std::size_t index) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%05zu", index);
  return buf;
}

std::string message_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

std::string default_name() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "tune_%Y-%m-%d_%H-%M-%S", &tm);
  return buf;
}

bool reserved_metric(const std::string& name) {
  return name == "training_iteration" || name == "time_total_s" || name == "time_this_iter_s" || name == "trial_id";
}

}  // namespace

Controller::Controller(TrainFunction trainable, ParamSpace space, TuneConfig tune, RunConfig run)
    : trainable_(std::move(trainable)), space_(std::move(space)), tune_(std::move(tune)), run_(std::move(run)) {}

Controller::~Controller() = default;

void Controller::adopt(StoredExperiment stored, const RestoreOptions& options) {
  const nlohmann::json& s = stored.settings;
  tune_.metric = s.value("metric", tune_.metric);
  tune_.mode = s.value("mode", tune_.mode);
  tune_.num_samples = s.value("num_samples", tune_.num_samples);
  stored_ = std::move(stored);
  restore_options_ = options;
}

void Controller::validate() {
  const auto bad = [](const std::string& why) { throw usage_error("lumen::tune::Tuner: " + why); };
  if (!trainable_) bad("the trainable is empty");
  if (space_.empty()) bad("the search space is empty: give at least one key");
  if (tune_.num_samples < 1) bad("num_samples must be at least 1, got " + std::to_string(tune_.num_samples));
  if (tune_.max_concurrent_trials < 0)
    bad("max_concurrent_trials must be >= 0 (0: as resources allow), got " + std::to_string(tune_.max_concurrent_trials));
  if (!std::isfinite(tune_.cpus_per_trial) || tune_.cpus_per_trial < 0 ||
      tune_.cpus_per_trial != std::floor(tune_.cpus_per_trial))
    bad("cpus_per_trial must be a whole number >= 0 (the runtime's resources come in whole units), got " +
        std::to_string(tune_.cpus_per_trial));
  if (!(tune_.time_budget.count() >= 0)) bad("time_budget must be >= 0");
  if (run_.max_failures < -1) bad("max_failures must be >= -1 (-1: no limit)");
  if (run_.checkpoints_to_keep < 0) bad("checkpoints_to_keep must be >= 0 (0: all)");
  if (!(run_.progress_interval.count() >= 0)) bad("progress_interval must be >= 0 (0: the default)");
  // The name is one folder inside storage_path, never a path out of it.
  if (!run_.name.empty() && (run_.name == "." || run_.name == ".." || run_.name.find('/') != std::string::npos))
    bad("the experiment's name \"" + run_.name + "\" must be a folder name (no '/', not . or ..)");
  if (!tune_.metric.empty()) {
    if (tune_.mode.empty()) bad("the metric \"" + tune_.metric + "\" needs a mode, \"min\" or \"max\"");
    mode_ = parse_mode(tune_.mode);
  } else if (!tune_.mode.empty()) {
    parse_mode(tune_.mode);
    bad("a mode (\"" + tune_.mode + "\") without a metric");
  }
}

nlohmann::json Controller::settings() const {
  return {{"metric", tune_.metric},
          {"mode", tune_.mode},
          {"num_samples", tune_.num_samples},
          {"max_concurrent_trials", tune_.max_concurrent_trials},
          {"cpus_per_trial", tune_.cpus_per_trial},
          {"max_failures", run_.max_failures},
          {"scheduler", scheduler_->name()}};
}

void Controller::set_up_search(unsigned workers) {
  if (tune_.cpus_per_trial > workers)
    throw usage_error("lumen::tune::Tuner: a trial needs " + std::to_string(tune_.cpus_per_trial) +
                      " CPUs and the runtime has " + std::to_string(workers) + " workers");
  slots_ = tune_.cpus_per_trial > 0 ? static_cast<std::size_t>(std::floor(workers / tune_.cpus_per_trial + 1e-9)) : workers;
  if (tune_.max_concurrent_trials > 0) {
    slots_ = tune_.cpus_per_trial > 0 ? std::min<std::size_t>(slots_, tune_.max_concurrent_trials)
                                      : static_cast<std::size_t>(tune_.max_concurrent_trials);
  }
  slots_ = std::max<std::size_t>(slots_, 1);

  scheduler_ = tune_.scheduler ? tune_.scheduler : std::make_shared<FifoScheduler>();
  searcher_ = tune_.searcher ? tune_.searcher : std::make_shared<RandomSearch>();
  stopper_ = run_.stop;
  scheduler_->set_search_properties(tune_.metric, mode_);
  if (stopper_) stopper_->set_search_properties(tune_.metric, mode_);
  searcher_->setup(SearchSetup{tune_.metric, mode_, &space_, tune_.num_samples});

  if (!run_.storage_path.empty()) {
    if (run_.name.empty()) run_.name = default_name();
    path_ = run_.storage_path + "/" + run_.name;
    store_ = std::make_unique<ExperimentStore>(path_, /*fresh=*/!stored_);
    store_->write_settings(settings());
  }
  progress_ = std::make_unique<ProgressTable>(run_.progress, run_.progress_interval, run_.progress_out);
}

void Controller::replay_stored() {
  StoredExperiment& stored = *stored_;
  if (!stored.searcher_state.is_null()) searcher_->restore(stored.searcher_state);
  std::vector<std::tuple<std::uint64_t, std::size_t, Result>> all;
  for (StoredTrial& s : stored.trials) {
    TrialRecord& rec = add_trial_locked(s.id, s.config);
    rec.trial.failures = s.failures;
    rec.trial.error = s.error;
    rec.trial.stopped_early = s.stopped_early;
    rec.trial.checkpoint = s.checkpoint;
    rec.next_checkpoint_number = s.checkpoint_number + 1;
    for (auto& [seq, r] : s.results) {
      all.emplace_back(seq, records_.size() - 1, r);
      seq_ = std::max(seq_, seq);
    }
    searcher_->add_existing_trial(s.id, s.config);
  }
  next_id_ = stored.trials.size();
  // The scheduler is rebuilt from the reports in the order they came; what it decides now is
  // history (the journal holds the outcomes), so its decisions and requests are ignored.
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
  replaying_ = true;
  for (auto& rec : records_) rec.trial.status = TrialStatus::running;
  waiting_.clear();
  for (auto& [seq, index, r] : all) {
    Trial& t = records_[index].trial;
    t.results.push_back(r);
    std::ignore = scheduler_->on_trial_result(*this, t, t.results.back());
  }
  for (std::size_t i = 0; i < stored.trials.size(); ++i) {
    const StoredTrial& s = stored.trials[i];
    Trial& t = records_[i].trial;
    if (!s.ended) {
      t.status = TrialStatus::pending;
      continue;
    }
    t.status = s.status;
    if (t.status == TrialStatus::error && (restore_options_.resume_errored || restore_options_.restart_errored)) {
      t.status = TrialStatus::pending;
      t.failures = 0;
      t.error.clear();
      if (restore_options_.restart_errored) {
        t.checkpoint.reset();
        t.results.clear();
      }
      continue;
    }
    if (t.status == TrialStatus::error) {
      scheduler_->on_trial_error(*this, t);
    } else {
      scheduler_->on_trial_complete(*this, t, t.last_result());
    }
    searcher_->on_trial_complete(t.id, t.last_result(), t.status == TrialStatus::error);
  }
  replaying_ = false;
  rebuild_waiting();
}

TrialRecord& Controller::record_of(const Trial& t) {
  // A trial's id is its index in creation order.
  char* end = nullptr;
  const unsigned long long index = std::strtoull(t.id.c_str(), &end, 10);
  if (index < records_.size() && &records_[index].trial == &t) return records_[index];
  throw usage_error("lumen::tune: a scheduler named a trial that is not this experiment's");
}

void Controller::set_status(TrialRecord& rec, TrialStatus status) {
  const auto is_waiting = [](TrialStatus s) { return s == TrialStatus::pending || s == TrialStatus::paused; };
  const bool was = is_waiting(rec.trial.status), will = is_waiting(status);
  rec.trial.status = status;
  if (was == will) return;
  const auto at = std::lower_bound(waiting_.begin(), waiting_.end(), rec.index,
                                   [](const TrialRecord* r, std::size_t i) { return r->index < i; });
  if (will) {
    waiting_.insert(at, &rec);
  } else if (at != waiting_.end() && *at == &rec) {
    waiting_.erase(at);
  }
}

void Controller::rebuild_waiting() {
  waiting_.clear();
  for (auto& rec : records_)
    if (rec.trial.status == TrialStatus::pending || rec.trial.status == TrialStatus::paused) waiting_.push_back(&rec);
}

std::vector<const Trial*> Controller::waiting() const {
  std::vector<const Trial*> out;
  out.reserve(waiting_.size());
  for (const TrialRecord* rec : waiting_) out.push_back(&rec->trial);
  return out;
}

TrialRecord& Controller::add_trial_locked(std::string id, Config config) {
  TrialRecord& rec = records_.emplace_back();
  rec.index = records_.size() - 1;
  rec.trial.id = std::move(id);
  rec.trial.config = std::move(config);
  views_.push_back(&rec.trial);
  if (!replaying_) waiting_.push_back(&rec);
  scheduler_->on_trial_add(*this, rec.trial);
  return rec;
}

void Controller::fill_slots_locked() {
  while (running_ < slots_ && !ending_ && !fatal_) {
    if (const Trial* next = scheduler_->choose_trial_to_run(*this)) {
      if (next->status != TrialStatus::pending && next->status != TrialStatus::paused)
        throw usage_error("lumen::tune: the " + scheduler_->name() + " scheduler chose trial " + next->id + ", which is " +
                          to_string(next->status));
      start_locked(record_of(*next));
      continue;
    }
    if (searcher_finished_) return;
    std::string id = trial_id(next_id_);
    Suggestion s = searcher_->suggest(id);
    if (s.kind == Suggestion::Kind::wait) {
      searcher_waits_ = true;
      return;
    }
    searcher_waits_ = false;
    if (s.kind == Suggestion::Kind::finished) {
      searcher_finished_ = true;
      return;
    }
    ++next_id_;
    TrialRecord& rec = add_trial_locked(std::move(id), std::move(s.config));
    if (store_) store_->add_trial(rec.trial, searcher_->save());
    start_locked(rec);
  }
}

void Controller::start_locked(TrialRecord& rec) {
  Trial& t = rec.trial;
  auto run = std::make_shared<TrialRun>();
  run->controller = this;
  run->record = &rec;
  run->config = t.config;
  run->foreign_checkpoint = rec.resume_from != nullptr;
  run->start_from = rec.resume_from ? std::move(rec.resume_from) : t.checkpoint;
  rec.resume_from.reset();
  rec.stop_requested = false;
  // The reports past the checkpoint are done again (from another trial's state, under PBT):
  // they are replaced, so that a trial's iterations always count up.
  const std::int64_t from = run->start_from ? run->start_from->training_iteration : 0;
  while (!t.results.empty() && t.results.back().training_iteration > from) t.results.pop_back();
  run->iteration = from;
  run->time_base = t.results.empty() ? 0 : t.results.back().time_total_s;
  set_status(rec, TrialStatus::running);
  ++running_;
  try {
    auto builder = lumen::task([this, run] { run_trial(run); }).name("tune trial");
    std::vector<std::pair<std::string, double>> resources = tune_.resources_per_trial;
    if (tune_.cpus_per_trial > 0) resources.emplace_back("CPU", tune_.cpus_per_trial);
    if (!resources.empty()) builder.resources(std::move(resources));
    builder.submit();
  } catch (...) {
    // The runtime refused the task (a resource it does not have, a shutdown): the experiment
    // cannot go on; fit() ends it and throws this.
    --running_;
    set_status(rec, TrialStatus::pending);
    fatal_ = std::current_exception();
  }
}

void Controller::run_trial(const std::shared_ptr<TrialRun>& run) noexcept {
  Reporter reporter(*run);
  bool returned = false;
  std::exception_ptr failure;
  run->started = run->last_report = std::chrono::steady_clock::now();
  try {
    if (store_) {
      const std::string folder = store_->trial_folder(run->record->trial.id);
      run->files = std::make_unique<TrialFiles>(folder, run->record->trial.results.empty());
      // Another trial's checkpoint (PBT) is copied in, so that a restore finds it here.
      if (run->foreign_checkpoint)
        run->files->write_checkpoint(*run->start_from, run->record->next_checkpoint_number++, run_.checkpoints_to_keep);
    }
    trainable_(run->config, reporter);
    returned = true;
  } catch (const TrialStopped&) {
  } catch (...) {
    failure = std::current_exception();
  }
  run->files.reset();
  std::lock_guard lock(mutex_);
  try {
    finish_run_locked(*run, returned, failure);
  } catch (...) {
    if (!fatal_) fatal_ = std::current_exception();
  }
  --running_;
  // The next trial starts from here, on this worker: fit()'s thread need not wake for it.
  try {
    fill_slots_locked();
  } catch (...) {
    if (!fatal_) fatal_ = std::current_exception();
  }
  if (running_ == 0 || fatal_ || ending_) {
    changed_ = true;
    changed_cv_.notify_all();
  }
}

void Controller::finish_run_locked(TrialRun& run, bool returned, const std::exception_ptr& failure) {
  TrialRecord& rec = *run.record;
  Trial& t = rec.trial;
  if (run.decision == Decision::pause && !ending_) {
    set_status(rec, TrialStatus::paused);
    return;
  }
  if (run.decision != Decision::keep_going) {
    end_trial_locked(rec, TrialStatus::terminated, run.ended_early, true);
    return;
  }
  if (failure) {
    ++t.failures;
    t.error = message_of(failure);
    if (!ending_ && (run_.max_failures == -1 || t.failures <= run_.max_failures)) {
      set_status(rec, TrialStatus::pending);
      if (store_) store_->failed_once(t);
      return;
    }
    end_trial_locked(rec, TrialStatus::error, false, true);
    return;
  }
  (void)returned;
  end_trial_locked(rec, TrialStatus::terminated, false, true);
}

void Controller::end_trial_locked(TrialRecord& rec, TrialStatus status, bool stopped_early, bool tell_scheduler) {
  Trial& t = rec.trial;
  set_status(rec, status);
  t.stopped_early = stopped_early;
  if (tell_scheduler) {
    if (status == TrialStatus::error) {
      scheduler_->on_trial_error(*this, t);
    } else {
      scheduler_->on_trial_complete(*this, t, t.last_result());
    }
  }
  searcher_->on_trial_complete(t.id, t.last_result(), status == TrialStatus::error);
  if (store_) store_->end_trial(t);
  changed_ = true;
}

void Controller::end_all_locked() {
  ending_ = true;
  while (!waiting_.empty()) end_trial_locked(*waiting_.front(), TrialStatus::terminated, true, true);
}

void Controller::reset_trial(const Trial& t, Config config, std::shared_ptr<const Checkpoint> from) {
  if (replaying_) return;
  TrialRecord& rec = record_of(t);
  if (t.status != TrialStatus::paused && t.status != TrialStatus::running)
    throw usage_error("lumen::tune: reset_trial of trial " + t.id + ", which is " + to_string(t.status));
  rec.trial.config = std::move(config);
  rec.resume_from = std::move(from);
  if (store_) store_->reset_trial(rec.trial);
}

void Controller::stop_trial(const Trial& t) {
  if (replaying_) return;
  TrialRecord& rec = record_of(t);
  if (t.status == TrialStatus::running) {
    rec.stop_requested = true;
  } else if (t.status == TrialStatus::pending || t.status == TrialStatus::paused) {
    end_trial_locked(rec, TrialStatus::terminated, true, false);
  }
}

void Controller::report(TrialRun& run, Metrics metrics, std::optional<Checkpoint> checkpoint) {
  for (std::size_t i = 0; i < metrics.size(); ++i) {
    const std::string& name = metrics[i].first;
    if (name.empty()) throw usage_error("lumen::tune::Reporter::report: a metric's name is empty");
    if (reserved_metric(name))
      throw usage_error("lumen::tune::Reporter::report: \"" + name + "\" is set by the tuner; name the metric otherwise");
    for (std::size_t j = 0; j < i; ++j)
      if (metrics[j].first == name)
        throw usage_error("lumen::tune::Reporter::report: the metric \"" + name + "\" is reported twice");
  }
  const auto now = std::chrono::steady_clock::now();
  Result r;
  r.trial_id = run.record->trial.id;
  r.training_iteration = run.iteration + 1;
  r.time_this_iter_s = std::chrono::duration<double>(now - run.last_report).count();
  r.time_total_s = run.time_base + std::chrono::duration<double>(now - run.started).count();
  r.metrics = std::move(metrics);
  std::shared_ptr<const Checkpoint> kept;
  if (checkpoint) {
    checkpoint->training_iteration = r.training_iteration;
    kept = std::make_shared<const Checkpoint>(std::move(*checkpoint));
  }
  std::uint64_t seq = 0;
  {
    std::lock_guard lock(mutex_);
    if (run.decision != Decision::keep_going) throw TrialStopped{};
    seq = ++seq_;
    run.iteration = r.training_iteration;
    run.last_report = now;
    Trial& t = run.record->trial;
    t.results.push_back(r);
    if (kept) t.checkpoint = kept;
    searcher_->on_trial_result(t.id, t.results.back());
    Decision d = scheduler_->on_trial_result(*this, t, t.results.back());
    run.ended_early = d != Decision::keep_going;
    if (stopper_) {
      if (stopper_->stop_trial(t.id, t.results.back()) && d == Decision::keep_going) d = Decision::stop;
      if (!ending_ && stopper_->stop_all()) end_all_locked();
    }
    if (ending_ || run.record->stop_requested) {
      run.ended_early = run.ended_early || d == Decision::keep_going;
      d = Decision::stop;
    }
    run.decision = d;
    if (d != Decision::keep_going) {
      changed_ = true;
      changed_cv_.notify_all();
    }
  }
  if (run.files) {
    run.files->append(r, seq);
    if (kept) run.files->write_checkpoint(*kept, run.record->next_checkpoint_number++, run_.checkpoints_to_keep);
  }
  if (run.decision != Decision::keep_going) throw TrialStopped{};
}

void Controller::print_progress(std::unique_lock<std::mutex>& lock, bool final) {
  const auto now = std::chrono::steady_clock::now();
  if (progress_->silent() || (!final && !progress_->due(now))) return;
  const std::string text =
      progress_->render(views_, tune_.metric, mode_, std::chrono::duration<double>(now - start_).count(), final);
  lock.unlock();
  progress_->print(text, now);
  lock.lock();
}

ResultGrid Controller::fit() {
  if (fitted_.exchange(true)) throw usage_error("lumen::tune::Tuner::fit: called twice; make another Tuner");
  if (lumen::detail::worker_scheduler() != nullptr)
    throw usage_error("lumen::tune::Tuner::fit: called from a lumen task; call it from a thread of your own (main)");
  validate();
  const unsigned workers =
      lumen::detail::on_worker([] { return lumen::detail::worker_count(*lumen::detail::worker_scheduler()); });
  set_up_search(workers);
  start_ = std::chrono::steady_clock::now();
  // deadline_after saturates: a budget too long to add to now() (infinity) is no deadline.
  const auto budget_end = tune_.time_budget.count() > 0 ? lumen::detail::deadline_after(tune_.time_budget)
                                                        : std::chrono::steady_clock::time_point::max();

  std::unique_lock lock(mutex_);
  if (stored_) replay_stored();
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (!ending_ && (now >= budget_end || fatal_ || (stopper_ && stopper_->stop_all()))) end_all_locked();
    try {
      fill_slots_locked();
    } catch (...) {
      if (!fatal_) fatal_ = std::current_exception();
      end_all_locked();
    }
    if (running_ == 0) {
      const bool waiting = !waiting_.empty();
      if (ending_ || (!waiting && searcher_finished_)) break;
      if (searcher_waits_ && !waiting) {
        // Nothing runs, so no result can come that the searcher waits for: it has no more.
        searcher_finished_ = true;
        continue;
      }
      if (waiting && searcher_finished_) {
        // The scheduler chose none of the trials left and no new one will come: they end here.
        while (!waiting_.empty()) end_trial_locked(*waiting_.front(), TrialStatus::terminated, true, true);
        continue;
      }
    }
    print_progress(lock, false);
    const auto wake = std::min(budget_end, now + std::chrono::milliseconds(250));
    changed_cv_.wait_until(lock, wake, [&] { return changed_; });
    changed_ = false;
  }
  print_progress(lock, true);
  std::vector<Trial> trials;
  trials.reserve(records_.size());
  for (const auto& rec : records_) trials.push_back(rec.trial);
  lock.unlock();
  if (fatal_) std::rethrow_exception(fatal_);
  ResultGrid grid(std::move(trials), tune_.metric, mode_, path_);
  if (store_) {
    grid.write_csv(path_ + "/results.csv");
    if (!tune_.metric.empty()) grid.write_svg(path_ + "/curves.svg");
  }
  return grid;
}

}  // namespace lumen::tune::detail
