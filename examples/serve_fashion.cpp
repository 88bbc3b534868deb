// serve_fashion: trains a clothing classifier on Fashion-MNIST with lumen's parallel loops,
// then serves it over HTTP with lumen::serve, batching requests.
//
//   build/examples/serve_fashion [--port 8000] [--seconds 0 (until Ctrl-C)]
//   curl -s localhost:8000/classify -H 'Content-Type: application/json' -d '{"test_index": 0}'
//   curl -s localhost:8000/classify -H 'Content-Type: application/json' -d '{"pixels": [0, 0, ..., 255]}'
//   curl -s localhost:8000/v2/models/fashion/infer -d '{"inputs": [{"name": "pixels", "datatype": "FP32",
//        "shape": [1, 784], "data": [0, 0, ..., 255]}]}'        (the Open Inference Protocol)
//
// The data is Debian's dataset-fashion-mnist (60,000 training and 10,000 test images of
// 28x28 grey pixels, 10 classes). The model is a softmax regression: small enough to train in
// seconds, good for about 84% on the test set. Each replica answers a batch of requests with
// one pass over the weights.
#include <lumen/lumen.h>
#include <lumen/serve/serve.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace serve = lumen::serve;
constexpr int kPixels = 28 * 28;
constexpr int kClasses = 10;
constexpr std::array<const char*, kClasses> kNames{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
const char* kData = "/usr/share/datasets/fashion-mnist/";

// An IDX file (big-endian header, then bytes), gzip-compressed.
std::vector<unsigned char> read_idx(const std::string& name, int header_words) {
  gzFile f = gzopen((kData + name).c_str(), "rb");
  if (f == nullptr) throw std::runtime_error("cannot open " + std::string(kData) + name + " (apt-get install dataset-fashion-mnist)");
  std::vector<unsigned char> header(4 * header_words);
  std::vector<unsigned char> out;
  if (gzread(f, header.data(), static_cast<unsigned>(header.size())) != static_cast<int>(header.size())) {
    gzclose(f);
    throw std::runtime_error("short file " + name);
  }
  unsigned char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  gzclose(f);
  return out;
}

struct Dataset {
  std::vector<float> images;  // n x kPixels, in [0, 1]
  std::vector<unsigned char> labels;
  std::size_t size() const { return labels.size(); }
  const float* image(std::size_t i) const { return images.data() + i * kPixels; }
};

Dataset load(const std::string& prefix) {
  Dataset d;
  auto pixels = read_idx(prefix + "-images-idx3-ubyte.gz", 4);
  d.labels = read_idx(prefix + "-labels-idx1-ubyte.gz", 2);
  d.images.resize(pixels.size());
  for (std::size_t i = 0; i < pixels.size(); ++i) d.images[i] = pixels[i] / 255.0f;
  return d;
}

// Softmax regression: scores = W x + b.
struct Model {
  std::vector<float> w = std::vector<float>(kClasses * kPixels, 0.0f);
  std::array<float, kClasses> b{};

  std::array<float, kClasses> probabilities(const float* x) const {
    std::array<float, kClasses> p{};
    float top = -1e30f;
    for (int c = 0; c < kClasses; ++c) {
      float s = b[c];
      const float* wc = w.data() + c * kPixels;
      for (int i = 0; i < kPixels; ++i) s += wc[i] * x[i];
      p[c] = s;
      top = std::max(top, s);
    }
    float sum = 0;
    for (auto& v : p) sum += (v = std::exp(v - top));
    for (auto& v : p) v /= sum;
    return p;
  }
  int predict(const float* x) const {
    auto p = probabilities(x);
    return static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
  }
};

// Mini-batch gradient descent; each batch's gradient is summed over chunks in parallel.
Model train(const Dataset& data, int epochs) {
  Model m;
  constexpr std::size_t kBatch = 500;
  constexpr std::size_t kChunks = 8;
  const float rate = 0.5f;
  std::vector<std::size_t> order(data.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937 rng(7);
  std::vector<std::vector<float>> grads(kChunks, std::vector<float>(kClasses * (kPixels + 1)));
  for (int e = 0; e < epochs; ++e) {
    std::shuffle(order.begin(), order.end(), rng);
    for (std::size_t start = 0; start + kBatch <= order.size(); start += kBatch) {
      lumen::parallel_for(std::size_t{0}, kChunks, [&](std::size_t k) {
        auto& g = grads[k];
        std::fill(g.begin(), g.end(), 0.0f);
        for (std::size_t j = start + k * kBatch / kChunks; j < start + (k + 1) * kBatch / kChunks; ++j) {
          const float* x = data.image(order[j]);
          auto p = m.probabilities(x);
          p[data.labels[order[j]]] -= 1.0f;
          for (int c = 0; c < kClasses; ++c) {
            float* gc = g.data() + c * (kPixels + 1);
            for (int i = 0; i < kPixels; ++i) gc[i] += p[c] * x[i];
            gc[kPixels] += p[c];
          }
        }
      });
      for (int c = 0; c < kClasses; ++c)
        for (int i = 0; i <= kPixels; ++i) {
          float sum = 0;
          for (const auto& g : grads) sum += g[c * (kPixels + 1) + i];
          float& target = i < kPixels ? m.w[c * kPixels + i] : m.b[c];
          target -= rate * sum / kBatch;
        }
    }
  }
  return m;
}

double accuracy(const Model& m, const Dataset& test) {
  std::size_t right = lumen::parallel_reduce(
      std::size_t{0}, test.size(), std::size_t{0},
      [&](std::size_t i) -> std::size_t { return m.predict(test.image(i)) == test.labels[i]; },
      [](std::size_t a, std::size_t b) { return a + b; });
  return static_cast<double>(right) / static_cast<double>(test.size());
}

// The deployment: a batch of requests in, one answer each out (its HTTP entry, batched by
// lumen), and infer() for clients of the Open Inference Protocol, who batch themselves. A request names a test image
// ({"test_index": i}) or sends its own 784 pixels (0-255); anything else gets 400, alone.
struct Classifier {
  std::shared_ptr<const Model> model;
  std::shared_ptr<const Dataset> test;

  std::vector<serve::Response> operator()(std::vector<serve::Request> batch) {
    std::vector<serve::Response> out;
    out.reserve(batch.size());
    for (const auto& r : batch) out.push_back(answer(r));
    return out;
  }

  // {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [n, 784], "data": [...]}]}
  // with pixels from 0 to 255; answers labels, class names and probabilities for each image.
  serve::InferResponse infer(const serve::InferRequest& r) const {
    const serve::Tensor& in = r.input("pixels");
    std::vector<float> pixels = in.values<float>();
    const auto n = static_cast<std::size_t>(in.shape[0]);
    std::vector<std::int64_t> labels;
    std::vector<std::string> classes;
    std::vector<float> probabilities;
    for (std::size_t i = 0; i < n; ++i) {
      std::vector<float> x(pixels.begin() + static_cast<long>(i * kPixels), pixels.begin() + static_cast<long>((i + 1) * kPixels));
      for (auto& v : x) v /= 255.0f;
      auto p = model->probabilities(x.data());
      labels.push_back(std::max_element(p.begin(), p.end()) - p.begin());
      classes.emplace_back(kNames[static_cast<std::size_t>(labels.back())]);
      probabilities.insert(probabilities.end(), p.begin(), p.end());
    }
    const auto rows = static_cast<std::int64_t>(n);
    return {.outputs = {serve::Tensor::of("label", {rows}, labels), serve::Tensor::of("class", {rows}, classes),
                        serve::Tensor::of("probabilities", {rows, kClasses}, probabilities)}};
  }

  serve::Response answer(const serve::Request& r) const {
    std::vector<float> pixels;
    const float* x = nullptr;
    int truth = -1;
    const auto& j = r.json;
    if (j.is_object() && j.contains("test_index") && j["test_index"].is_number_integer()) {
      long i = j["test_index"].get<long>();
      if (i < 0 || i >= static_cast<long>(test->size()))
        return serve::Response::json({{"error", "test_index must be from 0 to " + std::to_string(test->size() - 1)}}, 400);
      x = test->image(static_cast<std::size_t>(i));
      truth = test->labels[static_cast<std::size_t>(i)];
    } else if (j.is_object() && j.contains("pixels") && j["pixels"].is_array() && j["pixels"].size() == kPixels) {
      for (const auto& v : j["pixels"]) {
        if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 255)
          return serve::Response::json({{"error", "pixels are numbers from 0 to 255"}}, 400);
        pixels.push_back(v.get<float>() / 255.0f);
      }
      x = pixels.data();
    } else {
      return serve::Response::json({{"error", "send {\"test_index\": i} or {\"pixels\": [784 numbers 0-255]}"}}, 400);
    }
    auto p = model->probabilities(x);
    int label = static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
    nlohmann::json body{{"label", label}, {"class", kNames[label]}, {"confidence", p[label]}};
    if (truth >= 0) body["true_class"] = kNames[truth];
    return serve::Response::json(body);
  }
};

std::atomic<bool> g_stop{false};

}  // namespace

int main(int argc, char** argv) {
  int port = 8000;
  double seconds = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--port") == 0) port = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atof(argv[i + 1]);
  }
  lumen::Runtime rt;
  auto t0 = std::chrono::steady_clock::now();
  auto train_set = load("train");
  auto test = std::make_shared<const Dataset>(load("t10k"));
  auto model = std::make_shared<const Model>(train(train_set, 3));
  std::printf("trained on %zu images in %.1f s; test accuracy %.1f%%\n", train_set.size(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 100 * accuracy(*model, *test));

  auto classifier = serve::deploy<Classifier>(
      {.name = "fashion", .num_replicas = 2, .batch = {.max_batch_size = 32, .batch_wait_timeout = std::chrono::milliseconds(2)}},
      Classifier{model, test});
  serve::Server server({.port = static_cast<std::uint16_t>(port)});
  server.route("/classify", classifier);
  server.model({.name = "fashion",
                .inputs = {{"pixels", "FP32", {-1, kPixels}}},
                .outputs = {{"label", "INT64", {-1}}, {"class", "BYTES", {-1}}, {"probabilities", "FP32", {-1, kClasses}}}},
               classifier);
  server.start();
  std::printf("serving on http://127.0.0.1:%u/classify and /v2/models/fashion/infer; try\n"
              "  curl -s localhost:%u/classify -H 'Content-Type: application/json' -d '{\"test_index\": 0}'\n",
              server.port(), server.port());
  std::fflush(stdout);
  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!g_stop && (seconds <= 0 || std::chrono::steady_clock::now() < end))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  server.stop();
  auto st = classifier.status();
  std::uint64_t batches = 0;
  for (auto n : st.batch_sizes) batches += n;
  std::printf("served %llu requests in %llu batches\n", static_cast<unsigned long long>(st.batched_requests),
              static_cast<unsigned long long>(batches));
  classifier.shutdown();
}
