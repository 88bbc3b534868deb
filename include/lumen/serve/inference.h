/// @file
/// The Open Inference Protocol (KServe v2): the REST convention that Triton, KServe, Seldon
/// and OpenVINO Model Server share, so that clients written for them call lumen unchanged.
///
/// @code
///   struct Classifier {
///     lumen::serve::InferResponse infer(const lumen::serve::InferRequest& r) {
///       std::vector<float> pixels = r.input("pixels").values<float>();
///       ...
///       return {.outputs = {lumen::serve::Tensor::of("label", {1}, std::vector<std::int64_t>{k})}};
///     }
///   };
///   server.model({.name = "fashion", .inputs = {{"pixels", "FP32", {-1, 784}}}}, classifier);
/// @endcode
///
/// A deployment with infer() served under a model name answers:
/// @code
///   GET  /v2                                          server metadata
///   GET  /v2/health/live, /v2/health/ready            200 (ready: every model has a running replica, else 503)
///   GET  /v2/models/{name}[/versions/{v}]             model metadata (name, versions, platform, inputs, outputs)
///   GET  /v2/models/{name}[/versions/{v}]/ready       200 when a replica runs, else 503
///   POST /v2/models/{name}[/versions/{v}]/infer       {"id", "inputs": [{"name","shape","datatype","data"}], "outputs"}
/// @endcode
/// An input whose shape, datatype or data do not agree (element count, value types), or that
/// the model's declared inputs do not name, gets 400 with {"error": ...} before it reaches a
/// replica. Data may be sent flat or nested (row-major); outputs are sent flat. The /v2 paths
/// belong to the protocol once a model is registered; health paths need no bearer token.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "lumen/serve/http.h"

namespace lumen::serve {

/// One tensor of the Open Inference Protocol: name, datatype, shape and flat data.
struct Tensor {
  std::string name{};  ///< unique among a request's inputs or a response's outputs
  std::string datatype{};  ///< BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES
  std::vector<std::int64_t> shape{};  ///< dimensions; their product is the number of elements in data
  nlohmann::json data = nlohmann::json::array();  ///< flat, row-major
  nlohmann::json parameters = nlohmann::json::object();  ///< protocol parameters, passed through as they are

  /// The product of the shape.
  std::size_t elements() const noexcept;

  /// The data as T (a number type, bool, or std::string for BYTES). Throws http_error(400)
  /// naming the tensor when a value does not fit T.
  template <class T>
  std::vector<T> values() const {
    std::vector<T> out{};
    out.reserve(data.size());
    for (const auto& v : data) {
      bool fits;
      if constexpr (std::is_same_v<T, bool>) fits = v.is_boolean();
      else if constexpr (std::is_same_v<T, std::string>) fits = v.is_string();
      else if constexpr (std::is_integral_v<T>) fits = v.is_number_integer() && in_range<T>(v);
      else fits = v.is_number();
      if (!fits) throw http_error(400, "tensor '" + name + "' holds a value that is not " + datatype_of<T>() + ": " + v.dump());
      out.push_back(v.get<T>());
    }
    return out;
  }

  /// A tensor of `values` with the datatype that matches T.
  template <class T>
  static Tensor of(std::string name, std::vector<std::int64_t> shape, const std::vector<T>& values) {
    return Tensor{std::move(name), datatype_of<T>(), std::move(shape), nlohmann::json(values), nlohmann::json::object()};
  }

  /// The protocol's datatype for T: BOOL, BYTES (std::string), FPn for floating point, UINTn or
  /// INTn for integers.
  template <class T>
  static std::string datatype_of() {
    if constexpr (std::is_same_v<T, bool>) return "BOOL";
    else if constexpr (std::is_same_v<T, std::string>) return "BYTES";
    else if constexpr (std::is_floating_point_v<T>) return sizeof(T) == 4 ? "FP32" : "FP64";
    else if constexpr (std::is_unsigned_v<T>) return "UINT" + std::to_string(8 * sizeof(T));
    else return "INT" + std::to_string(8 * sizeof(T));
  }

 private:
  template <class T>
  static bool in_range(const nlohmann::json& v) {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<T>::max());
    auto x = v.get<std::int64_t>();
    return x >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
           (x < 0 || static_cast<std::uint64_t>(x) <= static_cast<std::uint64_t>(std::numeric_limits<T>::max()));
  }
};

/// An infer request, parsed and checked against the model's declared inputs before a replica sees
/// it.
struct InferRequest {
  std::string id{};  ///< echoed in the response
  std::vector<Tensor> inputs{};  ///< checked against ModelInfo::inputs
  std::vector<std::string> outputs{};  ///< the outputs asked for; empty: all
  nlohmann::json parameters = nlohmann::json::object();  ///< protocol parameters, passed through as they are

  /// The input with this name; throws http_error(400) when there is none.
  const Tensor& input(std::string_view name) const;
};

/// What a model's infer() returns; only the outputs the request asked for are sent.
struct InferResponse {
  std::vector<Tensor> outputs{};  ///< flat data; each one's shape and datatype must agree with it
  nlohmann::json parameters = nlohmann::json::object();  ///< protocol parameters, passed through as they are
};

/// An input or output a model declares: its shape may use -1 for a dimension of any size.
struct TensorSpec {
  std::string name{};  ///< as requests name it
  std::string datatype{};  ///< the protocol's datatype: FP32, INT64, BYTES, ...
  std::vector<std::int64_t> shape{};  ///< -1: any size in that dimension
};

/// What a model publishes under /v2/models/{name}: its name, version, platform and tensors.
struct ModelInfo {
  std::string name{};  ///< [A-Za-z0-9_.-], 1 to 128 characters
  std::string version = "1";  ///< served under /versions/{version} too
  std::string platform = "lumen";  ///< reported in the metadata
  std::vector<TensorSpec> inputs{}; ///< empty: any inputs accepted
  std::vector<TensorSpec> outputs{};  ///< reported in the metadata; empty: none declared
};

namespace detail {
// The JSON body of a successful infer, keeping only the outputs asked for.
Response infer_response(const InferResponse& r, const std::string& model, const std::string& version,
                        const std::string& id, const std::vector<std::string>& wanted);
}  // namespace detail

}  // namespace lumen::serve
