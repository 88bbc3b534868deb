// An experiment's folder: its settings, the journal of trials starting and ending, and each
// trial's params, reports and checkpoints. What Tuner::restore reads back.
//
// Threads: the journal and the settings are written under the store's own lock; a trial's
// files are written only by the task running that trial (one at a time), without a lock.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lumen/tune/trial.h"

namespace lumen::tune::detail {

// One trial's files while it runs: result.json and progress.csv, kept open for appending.
class TrialFiles {
 public:
  TrialFiles(std::string folder, bool write_header);
  ~TrialFiles();
  TrialFiles(const TrialFiles&) = delete;
  TrialFiles& operator=(const TrialFiles&) = delete;

  void append(const Result& r, std::uint64_t seq);
  // Writes the checkpoint as checkpoint_<number>.bin (atomically: a temporary file renamed),
  // then deletes the oldest beyond `keep` (0: keep all). The file holds a header (a magic
  // word, the iteration, the length and an FNV-1a hash of the bytes) and the bytes.
  void write_checkpoint(const Checkpoint& c, std::uint64_t number, int keep);

 private:
  std::string folder_;
  std::FILE* results_ = nullptr;
  std::FILE* progress_ = nullptr;
  std::vector<std::string> progress_columns_;
  bool header_written_;
  std::vector<std::uint64_t> checkpoints_;
};

// A trial as read back from the folder.
struct StoredTrial {
  std::string id;
  Config config;
  bool ended = false;
  TrialStatus status = TrialStatus::pending;
  std::string error;
  bool stopped_early = false;
  int failures = 0;
  std::vector<std::pair<std::uint64_t, Result>> results;  // with their global sequence numbers
  std::shared_ptr<const Checkpoint> checkpoint;           // the newest on disk
  std::uint64_t checkpoint_number = 0;
};

struct StoredExperiment {
  nlohmann::json settings;
  nlohmann::json searcher_state;
  std::vector<StoredTrial> trials;
};

class ExperimentStore {
 public:
  // Creates the folder (and its parents). A fresh experiment claims the folder by creating its
  // experiment.json exclusively, so that of two tuners started on one folder, one fails.
  // Throws usage_error naming the path and the reason when it cannot be created or written,
  // or (fresh) when it already holds an experiment.
  ExperimentStore(std::string path, bool fresh);
  ~ExperimentStore();

  const std::string& path() const noexcept { return path_; }
  std::string trial_folder(const std::string& id) const { return path_ + "/trial_" + id; }

  void write_settings(const nlohmann::json& settings);
  // A trial made: its folder and params.json, and a journal line with the searcher's state.
  void add_trial(const Trial& t, const nlohmann::json& searcher_state);
  // A trial given another config (PBT).
  void reset_trial(const Trial& t);
  // A trial ended (terminated or errored) or failed once (retried).
  void end_trial(const Trial& t);
  void failed_once(const Trial& t);

  // Reads an experiment folder back; throws usage_error when it holds none, or when its
  // settings or its journal are damaged (a journal line cut short at the end, by the death of
  // the process that wrote it, is left out). A checkpoint file that does not check out is
  // passed over for the newest one that does.
  static StoredExperiment load(const std::string& path);

 private:
  void journal(const nlohmann::json& line);
  std::string path_;
  std::mutex mutex_;
  std::FILE* journal_ = nullptr;
};

// Creates `path` and its parents; throws usage_error with the reason when it cannot.
void make_folders(const std::string& path);
// Writes `text` to `path` through a temporary file and a rename, so readers never see half.
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace lumen::tune::detail
