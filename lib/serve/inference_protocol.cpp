// The Open Inference Protocol (KServe v2) at the front door: model metadata, readiness, and
// inference requests checked against the protocol and the model's declared tensors before a
// replica sees them.
#include <algorithm>
#include <cstdint>
#include <set>

#include "lumen/serve/inference.h"
#include "serve/front_door.h"

namespace lumen::serve {

std::size_t Tensor::elements() const noexcept {
  std::size_t n = 1;
  for (auto d : shape) {
    const auto k = static_cast<std::size_t>(d < 0 ? 0 : d);
    if (k != 0 && n > SIZE_MAX / k) return SIZE_MAX;  // saturates instead of wrapping
    n *= k;
  }
  return n;
}

const Tensor& InferRequest::input(std::string_view name) const {
  for (const auto& t : inputs)
    if (t.name == name) return t;
  throw http_error(400, "the request has no input named '" + std::string(name) + "'");
}

namespace detail {

namespace {

const std::set<std::string, std::less<>> kDatatypes{"BOOL",  "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
                                                    "INT32", "INT64", "FP16",   "FP32",   "FP64",   "BYTES"};

bool value_fits(const nlohmann::json& v, std::string_view datatype) {
  if (datatype == "BOOL") return v.is_boolean();
  if (datatype == "BYTES") return v.is_string();
  if (datatype.starts_with("FP")) return v.is_number();
  if (!v.is_number_integer()) return false;
  if (datatype.starts_with("UINT")) return v.is_number_unsigned() || v.get<std::int64_t>() >= 0;
  return true;
}

// Appends the leaves of a nested array, row-major; false past `limit` leaves.
bool flatten(const nlohmann::json& v, nlohmann::json& out, std::size_t limit, int depth) {
  if (!v.is_array()) {
    if (out.size() >= limit) return false;
    out.push_back(v);
    return true;
  }
  if (depth > 32) return false;
  for (const auto& e : v)
    if (!flatten(e, out, limit, depth + 1)) return false;
  return true;
}

Tensor parse_tensor(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw http_error(400, where + " is not an object");
  Tensor t;
  if (!j.contains("name") || !j["name"].is_string()) throw http_error(400, where + " needs a string \"name\"");
  t.name = j["name"].get<std::string>();
  const std::string what = "input '" + t.name + "'";
  if (!j.contains("datatype") || !j["datatype"].is_string() || !kDatatypes.contains(j["datatype"].get<std::string>()))
    throw http_error(400, what + " needs a \"datatype\" among BOOL, UINT8-64, INT8-64, FP16, FP32, FP64, BYTES");
  t.datatype = j["datatype"].get<std::string>();
  if (!j.contains("shape") || !j["shape"].is_array() || j["shape"].size() > 32)
    throw http_error(400, what + " needs a \"shape\": an array of at most 32 sizes");
  std::size_t elements = 1;
  for (const auto& d : j["shape"]) {
    if (!d.is_number_integer() || d.get<std::int64_t>() < 0 || d.get<std::int64_t>() > (std::int64_t{1} << 40))
      throw http_error(400, what + " has a shape entry that is not a size: " + d.dump());
    t.shape.push_back(d.get<std::int64_t>());
    // Saturates at 2^40 before multiplying, so that a product of large sizes cannot wrap.
    constexpr std::size_t kCap = std::size_t{1} << 40;
    const auto k = static_cast<std::size_t>(t.shape.back());
    elements = k != 0 && elements > kCap / k ? kCap : std::min(elements * k, kCap);
  }
  if (!j.contains("data")) throw http_error(400, what + " needs \"data\"");
  if (!flatten(j["data"], t.data, elements, 0) || t.data.size() != elements)
    throw http_error(400, what + " has shape " + j["shape"].dump() + " (" + std::to_string(elements) +
                              " values) but its data holds a different number of values");
  for (const auto& v : t.data)
    if (!value_fits(v, t.datatype)) throw http_error(400, what + " holds a value that is not " + t.datatype + ": " + v.dump());
  if (j.contains("parameters")) {
    if (!j["parameters"].is_object()) throw http_error(400, what + ": \"parameters\" must be an object");
    t.parameters = j["parameters"];
  }
  return t;
}

void check_against(const Tensor& t, const TensorSpec& spec) {
  if (t.datatype != spec.datatype)
    throw http_error(400, "input '" + t.name + "' must be " + spec.datatype + ", not " + t.datatype);
  bool fits = t.shape.size() == spec.shape.size();
  for (std::size_t i = 0; fits && i < spec.shape.size(); ++i) fits = spec.shape[i] < 0 || spec.shape[i] == t.shape[i];
  if (!fits) throw http_error(400, "input '" + t.name + "' has a shape the model does not take: " + nlohmann::json(t.shape).dump() +
                                       ", expected " + nlohmann::json(spec.shape).dump() + " (-1: any size)");
}

InferRequest parse_infer(const std::string& body, const ModelInfo& info) {
  if (!json_depth_within(body, kMaxJsonDepth))
    throw http_error(400, "the JSON body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw http_error(400, "the body is not a JSON object");
  InferRequest r;
  if (j.contains("id")) {
    if (!j["id"].is_string()) throw http_error(400, "\"id\" must be a string");
    r.id = j["id"].get<std::string>();
  }
  if (!j.contains("inputs") || !j["inputs"].is_array() || j["inputs"].empty())
    throw http_error(400, "the request needs \"inputs\": a non-empty array of tensors");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < j["inputs"].size(); ++i) {
    r.inputs.push_back(parse_tensor(j["inputs"][i], "inputs[" + std::to_string(i) + "]"));
    if (!seen.insert(r.inputs.back().name).second) throw http_error(400, "input '" + r.inputs.back().name + "' is given twice");
  }
  if (j.contains("outputs")) {
    if (!j["outputs"].is_array()) throw http_error(400, "\"outputs\" must be an array");
    for (const auto& o : j["outputs"]) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string())
        throw http_error(400, "each of \"outputs\" needs a string \"name\"");
      r.outputs.push_back(o["name"].get<std::string>());
    }
  }
  if (j.contains("parameters")) {
    if (!j["parameters"].is_object()) throw http_error(400, "\"parameters\" must be an object");
    r.parameters = j["parameters"];
  }
  if (!info.inputs.empty()) {
    for (const auto& t : r.inputs) {
      auto spec = std::find_if(info.inputs.begin(), info.inputs.end(), [&](const TensorSpec& s) { return s.name == t.name; });
      if (spec == info.inputs.end()) throw http_error(400, "model '" + info.name + "' has no input named '" + t.name + "'");
      check_against(t, *spec);
    }
    for (const auto& s : info.inputs)
      if (!seen.contains(s.name)) throw http_error(400, "model '" + info.name + "' needs input '" + s.name + "'");
  }
  if (!info.outputs.empty())
    for (const auto& o : r.outputs)
      if (std::none_of(info.outputs.begin(), info.outputs.end(), [&](const TensorSpec& s) { return s.name == o; }))
        throw http_error(400, "model '" + info.name + "' has no output named '" + o + "'");
  return r;
}

nlohmann::json specs(const std::vector<TensorSpec>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& s : v) a.push_back({{"name", s.name}, {"datatype", s.datatype}, {"shape", s.shape}});
  return a;
}

bool ready(const ServedModel& m) {
  return m.deployment->status().replicas_in(ReplicaState::running) > 0;
}

Response error_response(int status, const std::string& message) { return Response::json({{"error", message}}, status); }

}  // namespace

Response infer_response(const InferResponse& r, const std::string& model, const std::string& version, const std::string& id,
                        const std::vector<std::string>& wanted) {
  nlohmann::json outputs = nlohmann::json::array();
  for (const auto& t : r.outputs) {
    if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), t.name) == wanted.end()) continue;
    if (t.data.size() != t.elements())
      throw usage_error("lumen::serve: output '" + t.name + "' of model '" + model + "' has shape " +
                        nlohmann::json(t.shape).dump() + " but " + std::to_string(t.data.size()) + " values");
    nlohmann::json o{{"name", t.name}, {"datatype", t.datatype}, {"shape", t.shape}, {"data", t.data}};
    if (!t.parameters.empty()) o["parameters"] = t.parameters;
    outputs.push_back(std::move(o));
  }
  nlohmann::json body{{"model_name", model}, {"model_version", version}, {"outputs", outputs}};
  if (!id.empty()) body["id"] = id;
  if (!r.parameters.empty()) body["parameters"] = r.parameters;
  return Response::json(body);
}

bool json_depth_within(std::string_view text, int limit) noexcept {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

void FrontDoor::add_model(ModelInfo info, std::shared_ptr<DeploymentCore> d, ModelInvoker infer) {
  if (d == nullptr) throw usage_error("lumen::serve: model '" + info.name + "' with an empty DeploymentHandle");
  auto name_ok = [](const std::string& s) {
    return !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
    });
  };
  if (!name_ok(info.name)) throw usage_error("lumen::serve: model name '" + info.name + "' must be 1 to 128 of [A-Za-z0-9_.-]");
  if (!name_ok(info.version)) throw usage_error("lumen::serve: model version '" + info.version + "' must be 1 to 128 of [A-Za-z0-9_.-]");
  for (const auto* list : {&info.inputs, &info.outputs})
    for (const auto& s : *list)
      if (s.name.empty() || !kDatatypes.contains(s.datatype))
        throw usage_error("lumen::serve: model '" + info.name + "': tensor '" + s.name +
                          "' needs a name and a datatype among BOOL, UINT8-64, INT8-64, FP16, FP32, FP64, BYTES");
  std::unique_lock lock(routes_mu_);
  if (models_.contains(info.name)) throw usage_error("lumen::serve: model '" + info.name + "' is already served");
  std::string name = info.name;
  models_.emplace(std::move(name), std::make_shared<const ServedModel>(ServedModel{std::move(info), std::move(d), std::move(infer),
                                                                                  std::make_shared<RouteMetrics>()}));
  serves_models_.store(true, std::memory_order_release);
}

V2Answer FrontDoor::answer_v2(std::string_view method, const std::string& path, const std::string& body) {
  auto now = [](Response r) { return V2Answer{std::move(r), {}, nullptr}; };
  auto not_allowed = [&](const char* allow) {
    Response r = error_response(405, std::string("use ") + allow + " here");
    r.headers.emplace_back("Allow", allow);
    return V2Answer{std::move(r), {}, nullptr};
  };
  if (path == "/v2") {
    if (method != "GET") return not_allowed("GET");
    return now(Response::json({{"name", "lumen"}, {"version", LUMEN_VERSION}, {"extensions", nlohmann::json::array()}}));
  }
  if (path == "/v2/health/live") return method == "GET" ? now(Response::json({{"live", true}})) : not_allowed("GET");
  if (path == "/v2/health/ready") {
    if (method != "GET") return not_allowed("GET");
    bool all = true;
    {
      std::shared_lock lock(routes_mu_);
      for (const auto& [n, m] : models_) all = all && ready(*m);
    }
    return now(Response::json({{"ready", all}}, all ? 200 : 503));
  }
  // /v2/models/{name}[/versions/{v}][/ready | /infer]
  constexpr std::string_view kModels = "/v2/models/";
  if (!path.starts_with(kModels)) return now(error_response(404, "no such endpoint: " + path));
  std::vector<std::string> parts;
  for (std::size_t i = kModels.size(); i <= path.size();) {
    auto j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    parts.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  std::string version;
  std::string action;
  if (parts.size() >= 3 && parts[1] == "versions") {
    version = parts[2];
    if (parts.size() == 4) action = parts[3];
    if (parts.size() > 4) return now(error_response(404, "no such endpoint: " + path));
  } else if (parts.size() == 2) {
    action = parts[1];
  } else if (parts.size() != 1) {
    return now(error_response(404, "no such endpoint: " + path));
  }
  std::shared_ptr<const ServedModel> found;
  {
    std::shared_lock lock(routes_mu_);
    auto it = models_.find(parts[0]);
    if (it == models_.end()) return now(error_response(404, "no model named '" + parts[0] + "'"));
    found = it->second;
  }
  const ServedModel& model = *found;
  if (!version.empty() && version != model.info.version)
    return now(error_response(404, "model '" + model.info.name + "' has no version '" + version + "'"));
  if (action.empty()) {
    if (method != "GET") return not_allowed("GET");
    return now(Response::json({{"name", model.info.name},
                               {"versions", {model.info.version}},
                               {"platform", model.info.platform},
                               {"inputs", specs(model.info.inputs)},
                               {"outputs", specs(model.info.outputs)}}));
  }
  if (action == "ready") {
    if (method != "GET") return not_allowed("GET");
    const bool r = ready(model);
    return now(Response::json({{"name", model.info.name}, {"ready", r}}, r ? 200 : 503));
  }
  if (action != "infer") return now(error_response(404, "no such endpoint: " + path));
  if (method != "POST") return not_allowed("POST");
  InferRequest req = parse_infer(body, model.info);
  return V2Answer{std::nullopt, model.infer(std::move(req), model.info.name, model.info.version), model.metrics};
}

}  // namespace detail

}  // namespace lumen::serve
