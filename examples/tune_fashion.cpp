// tune_fashion: tunes a small neural network on Fashion-MNIST with lumen::tune, twice on the same
// budget: random search where every trial trains to the end (FIFO), and random search where ASHA
// stops the trials that fall behind. Both find about the same best config; ASHA spends a
// fraction of the epochs.
//
//   build/examples/tune_fashion [--samples 20] [--epochs 9] [--out /tmp/lumen-tune-fashion] [--quick]
//
// The data is Debian's dataset-fashion-mnist: 28x28 grey images of clothes in 10 classes. The
// trials train on 10,000 images of its training file and are scored on the next 2,000; the best
// model is then checked on the 10,000 test images. The model has one hidden layer of ReLUs and
// is trained by minibatch SGD with momentum; a trial's iteration is one epoch, and it reports
// val_acc and val_loss with a checkpoint of its weights.
#include <lumen/lumen.h>
#include <lumen/tune/asha.h>
#include <lumen/tune/random_search.h>
#include <lumen/tune/tuner.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace lumen::tune;
constexpr int kPixels = 28 * 28;
constexpr int kClasses = 10;
const std::string kData = "/usr/share/datasets/fashion-mnist/";

struct Images {
  std::vector<float> pixels;  // size() x kPixels, in [0, 1]
  std::vector<unsigned char> labels;
  std::size_t size() const { return labels.size(); }
  const float* image(std::size_t i) const { return pixels.data() + i * kPixels; }
};

// `count` bytes of a gzip'd IDX file, after its header and `skip` bytes of data.
std::vector<unsigned char> read_idx(const std::string& name, int header_bytes, std::size_t skip, std::size_t count) {
  gzFile f = gzopen((kData + name).c_str(), "rb");
  if (f == nullptr) throw std::runtime_error("cannot open " + kData + name + " (apt-get install dataset-fashion-mnist)");
  std::vector<unsigned char> bytes(header_bytes + skip + count);
  const int n = gzread(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
  if (n != static_cast<int>(bytes.size())) throw std::runtime_error(kData + name + " is shorter than expected");
  return {bytes.begin() + header_bytes + static_cast<long>(skip), bytes.end()};
}

// Images first .. first + count of the "train" or "t10k" file.
Images load(const std::string& file, std::size_t first, std::size_t count) {
  Images d;
  const auto pixels = read_idx(file + "-images-idx3-ubyte.gz", 16, first * kPixels, count * kPixels);
  d.labels = read_idx(file + "-labels-idx1-ubyte.gz", 8, first, count);
  d.pixels.assign(pixels.begin(), pixels.end());
  for (float& p : d.pixels) p /= 255.0f;
  return d;
}

// 784 inputs -> `hidden` ReLUs -> 10 softmax outputs. The parameters live in one flat vector so
// that the update, the momentum and the checkpoint treat them alike. The loops run over a
// layer's outputs for each input, and skip the blank pixels (about half), which keeps them
// fast without a BLAS.
struct Mlp {
  int hidden;
  std::vector<float> params, velocity, grad;
  std::size_t b1, w2, b2;  // offsets in params; w1 (input-major, kPixels x hidden) starts at 0

  explicit Mlp(int hidden_units)
      : hidden(hidden_units),
        b1(std::size_t{kPixels} * hidden),
        w2(b1 + hidden),
        b2(w2 + std::size_t(hidden) * kClasses) {
    params.assign(b2 + kClasses, 0.0f);
    velocity = grad = params;
    std::mt19937 rng(1);  // the same start for every trial: configs differ only in hyperparameters
    std::normal_distribution<float> first(0, std::sqrt(2.0f / kPixels)), second(0, std::sqrt(2.0f / hidden));
    for (std::size_t i = 0; i < b1; ++i) params[i] = first(rng);
    for (std::size_t i = w2; i < b2; ++i) params[i] = second(rng);
  }

  // Class probabilities of x; h gets the hidden layer.
  std::vector<float> forward(const float* x, std::vector<float>& h) const {
    h.assign(params.begin() + b1, params.begin() + w2);
    for (int i = 0; i < kPixels; ++i)
      if (x[i] != 0)
        for (int j = 0; j < hidden; ++j) h[j] += x[i] * params[i * hidden + j];
    std::vector<float> p(params.begin() + b2, params.end());
    for (int j = 0; j < hidden; ++j) {
      h[j] = std::max(h[j], 0.0f);
      if (h[j] != 0)
        for (int c = 0; c < kClasses; ++c) p[c] += h[j] * params[w2 + j * kClasses + c];
    }
    const float top = *std::max_element(p.begin(), p.end());
    float sum = 0;
    for (float& v : p) sum += (v = std::exp(v - top));
    for (float& v : p) v /= sum;
    return p;
  }

  // Adds the cross-entropy gradient of one example to grad.
  void backward(const float* x, int label, std::vector<float>& h, std::vector<float>& dh) {
    std::vector<float> dp = forward(x, h);
    dp[label] -= 1;
    dh.assign(hidden, 0.0f);
    for (int c = 0; c < kClasses; ++c) grad[b2 + c] += dp[c];
    for (int j = 0; j < hidden; ++j) {
      if (h[j] == 0) continue;
      for (int c = 0; c < kClasses; ++c) {
        grad[w2 + j * kClasses + c] += h[j] * dp[c];
        dh[j] += params[w2 + j * kClasses + c] * dp[c];
      }
    }
    for (int j = 0; j < hidden; ++j) grad[b1 + j] += dh[j];
    for (int i = 0; i < kPixels; ++i)
      if (x[i] != 0)
        for (int j = 0; j < hidden; ++j) grad[i * hidden + j] += x[i] * dh[j];
  }

  void train_epoch(const Images& data, std::size_t batch, float lr, float momentum, float l2, std::uint32_t shuffle_seed) {
    std::vector<std::size_t> order(data.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(shuffle_seed));
    std::vector<float> h, dh;
    for (std::size_t start = 0; start + batch <= order.size(); start += batch) {
      std::fill(grad.begin(), grad.end(), 0.0f);
      for (std::size_t k = start; k < start + batch; ++k) backward(data.image(order[k]), data.labels[order[k]], h, dh);
      for (std::size_t i = 0; i < params.size(); ++i) {
        velocity[i] = momentum * velocity[i] - lr * (grad[i] / batch + l2 * params[i]);
        params[i] += velocity[i];
      }
    }
  }

  // Accuracy and mean cross-entropy.
  std::pair<double, double> evaluate(const Images& data) const {
    std::size_t right = 0;
    double loss = 0;
    std::vector<float> h;
    for (std::size_t i = 0; i < data.size(); ++i) {
      const auto p = forward(data.image(i), h);
      right += std::max_element(p.begin(), p.end()) - p.begin() == data.labels[i];
      loss -= std::log(std::max(p[data.labels[i]], 1e-12f));
    }
    return {static_cast<double>(right) / data.size(), loss / data.size()};
  }

  std::string save() const {
    std::string bytes(2 * params.size() * sizeof(float), '\0');
    std::memcpy(bytes.data(), params.data(), params.size() * sizeof(float));
    std::memcpy(bytes.data() + params.size() * sizeof(float), velocity.data(), velocity.size() * sizeof(float));
    return bytes;
  }
  void load(const std::string& bytes) {
    if (bytes.size() != 2 * params.size() * sizeof(float)) throw std::runtime_error("a checkpoint of another model's size");
    std::memcpy(params.data(), bytes.data(), params.size() * sizeof(float));
    std::memcpy(velocity.data(), bytes.data() + params.size() * sizeof(float), velocity.size() * sizeof(float));
  }
};

struct Search {
  ResultGrid grid;
  double seconds;
  std::int64_t epochs;  // the compute spent: epochs summed over the trials
};

Search run_search(const TrainFunction& train, const ParamSpace& space, std::shared_ptr<TrialScheduler> scheduler,
                  int samples, int epochs, const std::string& out, const std::string& name) {
  std::filesystem::remove_all(out + "/" + name);  // a rerun starts afresh instead of appending to the last one's files
  const auto start = std::chrono::steady_clock::now();
  Tuner tuner(train, space,
              TuneConfig{.metric = "val_acc", .mode = "max", .num_samples = samples, .scheduler = std::move(scheduler),
                         .searcher = std::make_shared<RandomSearch>(RandomSearchOptions{.seed = 1})},
              RunConfig{.name = name, .storage_path = out, .stop = max_iterations(epochs), .checkpoints_to_keep = 1,
                        .progress = Progress::silent});
  Search s{tuner.fit(), 0, 0};
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const Trial& t : s.grid) s.epochs += static_cast<std::int64_t>(t.results.size());
  return s;
}

void print_search(const char* title, const Search& s, int epochs) {
  const Trial& best = s.grid.best();
  std::size_t stopped = 0;
  for (const Trial& t : s.grid) stopped += t.results.size() < static_cast<std::size_t>(epochs);
  std::printf("%s\n  %zu trials, %zu stopped before epoch %d, %lld epochs in all, %.1f s\n"
              "  best: trial %s, val_acc %.4f after %lld epochs\n        %s\n",
              title, s.grid.size(), stopped, epochs, static_cast<long long>(s.epochs), s.seconds, best.id.c_str(),
              best.last_result()->get("val_acc"), static_cast<long long>(best.last_result()->training_iteration),
              best.config.brief().c_str());
}

}  // namespace

int run(int argc, char** argv) {
  int samples = 20, epochs = 9;
  std::size_t train_size = 10000, val_size = 2000;
  std::string out = "/tmp/lumen-tune-fashion";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--samples" && has_value) {
      samples = std::atoi(argv[++i]);
    } else if (arg == "--epochs" && has_value) {
      epochs = std::atoi(argv[++i]);
    } else if (arg == "--out" && has_value) {
      out = argv[++i];
    } else if (arg == "--quick") {
      samples = 6;
      epochs = 3;
      train_size = 2000;
      val_size = 500;
    } else {
      std::fprintf(stderr, "usage: %s [--samples N] [--epochs N] [--out DIR] [--quick]\n", argv[0]);
      return 2;
    }
  }

  lumen::Runtime rt;
  const Images train_set = load("train", 0, train_size);
  const Images val_set = load("train", train_size, val_size);
  std::printf("Fashion-MNIST: %zu training and %zu validation images; %d trials per search, at most %d epochs each, "
              "on %u workers\n\n",
              train_set.size(), val_set.size(), samples, epochs, rt.workers());

  const TrainFunction train = [&](const Config& cfg, Reporter& r) {
    Mlp model(cfg.get<int>("hidden"));
    if (const Checkpoint* c = r.checkpoint()) model.load(c->bytes);
    for (;;) {
      model.train_epoch(train_set, cfg.get<std::size_t>("batch"), cfg.get<float>("lr"), cfg.get<float>("momentum"),
                        cfg.get<float>("l2"), static_cast<std::uint32_t>(r.iteration()));
      const auto [accuracy, loss] = model.evaluate(val_set);
      r.report({{"val_acc", accuracy}, {"val_loss", loss}}, Checkpoint{model.save()});
    }
  };
  const ParamSpace space{
      {"lr", loguniform(1e-3, 0.3)},
      {"momentum", uniform(0.5, 0.95)},
      {"l2", loguniform(1e-6, 1e-3)},
      {"batch", choice({16, 32, 64, 128})},
      {"hidden", choice({16, 32, 64})},
  };

  const Search fifo = run_search(train, space, std::make_shared<FifoScheduler>(), samples, epochs, out, "fifo");
  print_search("random search, every trial trained to the end (FIFO):", fifo, epochs);
  const Search asha = run_search(
      train, space,
      std::make_shared<AshaScheduler>(AshaOptions{.max_t = static_cast<double>(epochs), .grace_period = 1, .reduction_factor = 3}),
      samples, epochs, out, "asha");
  print_search("random search, weak trials stopped by ASHA:", asha, epochs);

  std::printf("\nASHA trained %lld epochs to FIFO's %lld (%.2fx less compute), in %.1f s to FIFO's %.1f s\n",
              static_cast<long long>(asha.epochs), static_cast<long long>(fifo.epochs),
              static_cast<double>(fifo.epochs) / static_cast<double>(asha.epochs), asha.seconds, fifo.seconds);

  // The best trial's checkpoint holds its trained weights: score them on data no trial saw.
  const Trial& best = asha.grid.best();
  Mlp model(best.config.get<int>("hidden"));
  model.load(best.checkpoint->bytes);
  const Images test_set = load("t10k", 0, 10000);
  std::printf("ASHA's best model, from its checkpoint, on the %zu test images: %.1f%% accurate\n", test_set.size(),
              100 * model.evaluate(test_set).first);
  std::printf("learning curves: %s/curves.svg (trial folders beside it)\n", asha.grid.path().c_str());
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tune_fashion: %s\n", e.what());
    return 1;
  }
}
