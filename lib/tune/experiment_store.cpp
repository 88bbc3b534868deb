#include "experiment_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include "lumen/error.h"

namespace lumen::tune::detail {

namespace fs = std::filesystem;

void make_folders(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) throw usage_error("lumen::tune: cannot create the folder " + path + ": " + ec.message());
}

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) throw usage_error("lumen::tune: cannot write " + tmp + ": " + std::strerror(errno));
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    throw usage_error("lumen::tune: writing " + tmp + " failed (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw usage_error("lumen::tune: cannot rename " + tmp + ": " + std::strerror(errno));
}

namespace {

std::string checkpoint_name(std::uint64_t number) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "checkpoint_%06llu.bin", static_cast<unsigned long long>(number));
  return buf;
}

constexpr std::uint64_t kCheckpointMagic = 0x31746b6374756e6cULL;  // "lnutckt1"
constexpr std::size_t kCheckpointHeader = 32;

std::uint64_t fnv1a(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

std::uint64_t get_u64(const std::string& in, std::size_t at) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}

// The checkpoint in `file`, or null when the file is not a whole checkpoint.
std::shared_ptr<Checkpoint> read_checkpoint(const std::string& file) {
  std::ifstream f(file, std::ios::binary);
  std::stringstream text;
  text << f.rdbuf();
  const std::string bytes = text.str();
  if (bytes.size() < kCheckpointHeader || get_u64(bytes, 0) != kCheckpointMagic) return nullptr;
  const std::uint64_t length = get_u64(bytes, 16);
  if (length != bytes.size() - kCheckpointHeader) return nullptr;
  auto c = std::make_shared<Checkpoint>();
  c->bytes = bytes.substr(kCheckpointHeader);
  if (fnv1a(c->bytes) != get_u64(bytes, 24)) return nullptr;
  c->training_iteration = static_cast<std::int64_t>(get_u64(bytes, 8));
  return c;
}

// The checkpoint numbers in a trial's folder, ascending.
std::vector<std::uint64_t> checkpoint_numbers(const std::string& folder) {
  std::vector<std::uint64_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(folder, ec)) {
    const std::string name = e.path().filename().string();
    unsigned long long n = 0;
    char tail[8] = {};
    if (std::sscanf(name.c_str(), "checkpoint_%llu.%4s", &n, tail) == 2 && std::strcmp(tail, "bin") == 0) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

nlohmann::json result_json(const Result& r, std::uint64_t seq) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : r.metrics) j[k] = v;
  j["training_iteration"] = r.training_iteration;
  j["time_this_iter_s"] = r.time_this_iter_s;
  j["time_total_s"] = r.time_total_s;
  j["trial_id"] = r.trial_id;
  j["seq"] = seq;
  return j;
}

std::string csv_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

TrialFiles::TrialFiles(std::string folder, bool write_header) : folder_(std::move(folder)), header_written_(!write_header) {
  make_folders(folder_);  // gone if someone deleted it since the trial was made
  results_ = std::fopen((folder_ + "/result.json").c_str(), "ab");
  progress_ = std::fopen((folder_ + "/progress.csv").c_str(), "ab");
  if (results_ == nullptr || progress_ == nullptr) {
    const int e = errno;
    if (results_ != nullptr) std::fclose(results_);
    if (progress_ != nullptr) std::fclose(progress_);
    throw usage_error("lumen::tune: cannot open the files of " + folder_ + ": " + std::strerror(e));
  }
  checkpoints_ = checkpoint_numbers(folder_);
}

TrialFiles::~TrialFiles() {
  std::fclose(results_);
  std::fclose(progress_);
}

void TrialFiles::append(const Result& r, std::uint64_t seq) {
  const std::string line = result_json(r, seq).dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), results_);
  std::fflush(results_);
  // progress.csv takes its columns from the first report of the run; later metrics that the
  // first did not have are left out (result.json has them all).
  if (!header_written_) {
    std::string header = "training_iteration,time_this_iter_s,time_total_s";
    for (const auto& [k, v] : r.metrics) {
      progress_columns_.push_back(k);
      header += "," + k;
    }
    header += "\n";
    std::fwrite(header.data(), 1, header.size(), progress_);
    header_written_ = true;
  } else if (progress_columns_.empty()) {
    for (const auto& [k, v] : r.metrics) progress_columns_.push_back(k);
  }
  std::string row = std::to_string(r.training_iteration) + "," + csv_number(r.time_this_iter_s) + "," +
                    csv_number(r.time_total_s);
  for (const auto& k : progress_columns_) {
    row += ',';
    for (const auto& [name, v] : r.metrics)
      if (name == k) {
        row += csv_number(v);
        break;
      }
  }
  row += "\n";
  std::fwrite(row.data(), 1, row.size(), progress_);
  std::fflush(progress_);
}

void TrialFiles::write_checkpoint(const Checkpoint& c, std::uint64_t number, int keep) {
  std::string text;
  text.reserve(kCheckpointHeader + c.bytes.size());
  put_u64(text, kCheckpointMagic);
  put_u64(text, static_cast<std::uint64_t>(c.training_iteration));
  put_u64(text, c.bytes.size());
  put_u64(text, fnv1a(c.bytes));
  text += c.bytes;
  write_file_atomically(folder_ + "/" + checkpoint_name(number), text);
  checkpoints_.push_back(number);
  if (keep > 0)
    while (checkpoints_.size() > static_cast<std::size_t>(keep)) {
      std::remove((folder_ + "/" + checkpoint_name(checkpoints_.front())).c_str());
      checkpoints_.erase(checkpoints_.begin());
    }
}

ExperimentStore::ExperimentStore(std::string path, bool fresh) : path_(std::move(path)) {
  make_folders(path_);
  if (fresh) {
    const std::string settings = path_ + "/experiment.json";
    const int fd = ::open(settings.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST)
      throw usage_error("lumen::tune::Tuner: " + path_ +
                        " already holds an experiment; continue it with Tuner::restore, or choose another name");
    if (fd < 0) throw usage_error("lumen::tune: cannot write in the folder " + path_ + ": " + std::strerror(errno));
    ::close(fd);
  }
  journal_ = std::fopen((path_ + "/trials.jsonl").c_str(), "ab");
  if (journal_ == nullptr)
    throw usage_error("lumen::tune: cannot write in the folder " + path_ + ": " + std::strerror(errno));
}

ExperimentStore::~ExperimentStore() { std::fclose(journal_); }

void ExperimentStore::write_settings(const nlohmann::json& settings) {
  write_file_atomically(path_ + "/experiment.json", settings.dump(2) + "\n");
}

void ExperimentStore::journal(const nlohmann::json& line) {
  const std::string text = line.dump() + "\n";
  std::lock_guard lock(mutex_);
  if (std::fwrite(text.data(), 1, text.size(), journal_) != text.size() || std::fflush(journal_) != 0)
    throw usage_error("lumen::tune: writing " + path_ + "/trials.jsonl failed (disk full?)");
}

void ExperimentStore::add_trial(const Trial& t, const nlohmann::json& searcher_state) {
  const std::string folder = trial_folder(t.id);
  make_folders(folder);
  write_file_atomically(folder + "/params.json", t.config.json().dump(2) + "\n");
  journal({{"event", "add"}, {"trial", t.id}, {"config", t.config.json()}, {"searcher", searcher_state}});
}

void ExperimentStore::reset_trial(const Trial& t) {
  write_file_atomically(trial_folder(t.id) + "/params.json", t.config.json().dump(2) + "\n");
  journal({{"event", "reset"}, {"trial", t.id}, {"config", t.config.json()}});
}

void ExperimentStore::end_trial(const Trial& t) {
  journal({{"event", "end"},
           {"trial", t.id},
           {"status", to_string(t.status)},
           {"error", t.error},
           {"failures", t.failures},
           {"stopped_early", t.stopped_early}});
}

void ExperimentStore::failed_once(const Trial& t) {
  journal({{"event", "failed"}, {"trial", t.id}, {"error", t.error}, {"failures", t.failures}});
}

StoredExperiment ExperimentStore::load(const std::string& path) {
  StoredExperiment out;
  {
    std::ifstream f(path + "/experiment.json");
    if (!f) throw usage_error("lumen::tune::Tuner::restore: " + path + " holds no experiment (no experiment.json)");
    try {
      out.settings = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception& e) {
      throw usage_error("lumen::tune::Tuner::restore: " + path + "/experiment.json is not valid JSON: " + e.what());
    }
    if (!out.settings.is_object() || !out.settings.contains("metric") || !out.settings.contains("mode") ||
        !out.settings.contains("num_samples"))
      throw usage_error("lumen::tune::Tuner::restore: " + path + "/experiment.json is not the settings of an experiment");
  }
  std::ifstream journal(path + "/trials.jsonl");
  if (!journal) throw usage_error("lumen::tune::Tuner::restore: " + path + " has no trials.jsonl");
  std::vector<std::string> lines;
  for (std::string line; std::getline(journal, line);) lines.push_back(std::move(line));
  std::vector<std::string> order;
  std::map<std::string, StoredTrial> by_id;
  for (std::size_t n = 0; n < lines.size(); ++n) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(lines[n]);
      if (!j.is_object() || !j.contains("event") || !j.contains("trial")) throw std::invalid_argument("not an event");
      if (j.at("event") == "add" && !j.at("config").is_object()) throw std::invalid_argument("no config");
    } catch (const std::exception& e) {
      // A last line cut short by the death of the process that wrote it: the journal ends
      // before it. Anywhere else, the file was damaged, and continuing would run ended trials
      // again.
      if (n + 1 == lines.size()) break;
      throw usage_error("lumen::tune::Tuner::restore: line " + std::to_string(n + 1) + " of " + path +
                        "/trials.jsonl is damaged (" + e.what() + ")");
    }
    const std::string id = j.value("trial", "");
    const std::string event = j.value("event", "");
    if (event == "add") {
      StoredTrial t;
      t.id = id;
      t.config = Config(j.at("config"));
      by_id.emplace(id, std::move(t));
      order.push_back(id);
      out.searcher_state = j.value("searcher", nlohmann::json());
      continue;
    }
    const auto it = by_id.find(id);
    if (it == by_id.end()) continue;
    StoredTrial& t = it->second;
    if (event == "reset") {
      t.config = Config(j.at("config"));
    } else if (event == "failed") {
      t.failures = j.value("failures", t.failures);
      t.error = j.value("error", "");
    } else if (event == "end") {
      t.ended = true;
      t.status = j.value("status", "") == "ERROR" ? TrialStatus::error : TrialStatus::terminated;
      t.error = j.value("error", "");
      t.failures = j.value("failures", 0);
      t.stopped_early = j.value("stopped_early", false);
    }
  }
  for (const std::string& id : order) {
    StoredTrial& t = by_id.at(id);
    const std::string folder = path + "/trial_" + id;
    std::ifstream results(folder + "/result.json");
    for (std::string line; std::getline(results, line);) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception&) {
        break;
      }
      Result r;
      r.trial_id = id;
      r.training_iteration = j.value("training_iteration", std::int64_t{0});
      r.time_this_iter_s = j.value("time_this_iter_s", 0.0);
      r.time_total_s = j.value("time_total_s", 0.0);
      const std::uint64_t seq = j.value("seq", std::uint64_t{0});
      for (auto m = j.begin(); m != j.end(); ++m)
        if (m->is_number() && m.key() != "training_iteration" && m.key() != "time_this_iter_s" &&
            m.key() != "time_total_s" && m.key() != "seq")
          r.metrics.emplace_back(m.key(), m->get<double>());
      // A run resumed from a checkpoint reports its iterations again: the later reports replace
      // the earlier ones from that iteration on.
      while (!t.results.empty() && t.results.back().second.training_iteration >= r.training_iteration) t.results.pop_back();
      t.results.emplace_back(seq, std::move(r));
    }
    const auto numbers = checkpoint_numbers(folder);
    if (!numbers.empty()) t.checkpoint_number = numbers.back();
    for (auto n = numbers.rbegin(); n != numbers.rend() && t.checkpoint == nullptr; ++n)
      t.checkpoint = read_checkpoint(folder + "/" + checkpoint_name(*n));
    out.trials.push_back(std::move(t));
  }
  return out;
}

}  // namespace lumen::tune::detail
