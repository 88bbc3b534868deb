#include "lumen/tune/searcher.h"

namespace lumen::tune {

void Searcher::on_trial_result(const std::string&, const Result&) {}
void Searcher::on_trial_complete(const std::string&, const Result*, bool) {}
nlohmann::json Searcher::save() const { return nullptr; }
void Searcher::restore(const nlohmann::json&) {}
void Searcher::add_existing_trial(const std::string&, const Config&) {}

}  // namespace lumen::tune
