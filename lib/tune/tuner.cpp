#include "lumen/tune/tuner.h"

#include <filesystem>

#include "controller.h"
#include "lumen/error.h"

namespace lumen::tune {

Tuner::Tuner(TrainFunction trainable, ParamSpace space, TuneConfig tune, RunConfig run)
    : controller_(std::make_unique<detail::Controller>(std::move(trainable), std::move(space), std::move(tune),
                                                       std::move(run))) {}
Tuner::Tuner(std::unique_ptr<detail::Controller> c) : controller_(std::move(c)) {}
Tuner::~Tuner() = default;
Tuner::Tuner(Tuner&&) noexcept = default;
Tuner& Tuner::operator=(Tuner&&) noexcept = default;

Tuner Tuner::restore(const std::string& path, TrainFunction trainable, ParamSpace space, TuneConfig tune, RunConfig run,
                     RestoreOptions options) {
  std::filesystem::path p(path);
  while (!p.empty() && !p.has_filename()) p = p.parent_path();  // "runs/exp/" names runs/exp
  detail::StoredExperiment stored = detail::ExperimentStore::load(p.string());
  run.storage_path = p.has_parent_path() ? p.parent_path().string() : std::string(".");
  run.name = p.filename().string();
  auto c = std::make_unique<detail::Controller>(std::move(trainable), std::move(space), std::move(tune), std::move(run));
  c->adopt(std::move(stored), options);
  return Tuner(std::move(c));
}

ResultGrid Tuner::fit() {
  if (!controller_) throw usage_error("lumen::tune::Tuner::fit: the Tuner was moved from");
  return controller_->fit();
}

void Reporter::report(Metrics metrics) { run_->controller->report(*run_, std::move(metrics), std::nullopt); }
void Reporter::report(Metrics metrics, Checkpoint checkpoint) {
  run_->controller->report(*run_, std::move(metrics), std::move(checkpoint));
}
const Checkpoint* Reporter::checkpoint() const noexcept { return run_->start_from.get(); }
std::int64_t Reporter::iteration() const noexcept { return run_->iteration; }
const std::string& Reporter::trial_id() const noexcept { return run_->record->trial.id; }
const Config& Reporter::config() const noexcept { return run_->config; }

}  // namespace lumen::tune
