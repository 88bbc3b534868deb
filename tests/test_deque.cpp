// The scheduler's queues: the Chase-Lev work-stealing deque (owner LIFO, thieves FIFO,
// every item taken exactly once, growth) and the MPSC injection queue (every node once,
// FIFO per producer).
#include <doctest/doctest.h>
#include <lumen/detail/chase_lev_deque.h>
#include <lumen/detail/mpsc_queue.h>

#include <atomic>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

using lumen::detail::ChaseLevDeque;
using lumen::detail::MpscNode;
using lumen::detail::MpscQueue;

namespace {

#if defined(LUMEN_TEST_SANITIZED)
constexpr int kDequeItems = 100'000;
constexpr int kMpscPerProducer = 20'000;
#else
constexpr int kDequeItems = 1'000'000;
constexpr int kMpscPerProducer = 100'000;
#endif

}  // namespace

// One thread: pop returns the newest item (LIFO), steal the oldest (FIFO), null when empty.
TEST_CASE("deque: owner LIFO, steal FIFO") {
  std::vector<int> items(100);
  ChaseLevDeque<int*> dq;
  CHECK(dq.pop() == nullptr);
  CHECK(dq.steal() == nullptr);
  CHECK(dq.empty_hint());
  for (int& i : items) dq.push(&i);
  CHECK(dq.size_hint() == 100);
  for (int i = 99; i >= 0; --i) CHECK(dq.pop() == &items[static_cast<std::size_t>(i)]);
  CHECK(dq.pop() == nullptr);

  for (int& i : items) dq.push(&i);
  CHECK(dq.steal() == &items[0]);
  CHECK(dq.steal() == &items[1]);
  CHECK(dq.pop() == &items[99]);
  CHECK(dq.pop() == &items[98]);
  CHECK(dq.size_hint() == 96);
  // Down to the last element, which a steal can still take.
  for (int i = 0; i < 95; ++i) CHECK(dq.pop() != nullptr);
  CHECK(dq.steal() == &items[2]);
  CHECK(dq.pop() == nullptr);
  CHECK(dq.steal() == nullptr);
  CHECK(dq.empty_hint());
}

// The buffer grows past its initial capacity and keeps every item in order.
TEST_CASE("deque: growth beyond the initial capacity") {
  std::vector<int> items(10'000);
  ChaseLevDeque<int*> dq(2);
  for (int& i : items) dq.push(&i);
  CHECK(dq.size_hint() == items.size());
  // Take from both ends alternately: steal sees 0, 1, 2, ...; pop sees 9999, 9998, ...
  std::size_t lo = 0;
  std::size_t hi = items.size();
  bool ok = true;
  while (lo < hi) {
    ok = ok && dq.steal() == &items[lo++];
    if (lo < hi) ok = ok && dq.pop() == &items[--hi];
  }
  CHECK(ok);
  CHECK(dq.pop() == nullptr);
  // It keeps working after growing, with the owner wrapping around the buffer.
  for (int round = 0; round < 1000; ++round) {
    dq.push(&items[0]);
    dq.push(&items[1]);
    ok = ok && dq.steal() == &items[0] && dq.pop() == &items[1];
  }
  CHECK(ok);
}

// One owner pushing and popping, three thieves stealing: every item is taken exactly once,
// and each thief sees the items it steals in push order.
TEST_CASE("deque: owner and three thieves take every item exactly once") {
  constexpr int kThieves = 3;
  std::vector<int> items(kDequeItems);
  std::vector<std::atomic<int>> taken(kDequeItems);
  std::atomic<int> total{0};
  std::atomic<int> out_of_order{0};
  ChaseLevDeque<int*> dq(4);  // small: it grows while thieves are stealing

  auto take = [&](int* p) {
    taken[static_cast<std::size_t>(p - items.data())].fetch_add(1, std::memory_order_relaxed);
    total.fetch_add(1, std::memory_order_acq_rel);
  };

  std::vector<std::thread> thieves;
  std::vector<int> stolen(kThieves, 0);
  for (int t = 0; t < kThieves; ++t) {
    thieves.emplace_back([&, t] {
      std::ptrdiff_t last = -1;
      while (total.load(std::memory_order_acquire) < kDequeItems) {
        if (int* p = dq.steal()) {
          const std::ptrdiff_t index = p - items.data();
          if (index <= last) out_of_order.fetch_add(1);
          last = index;
          take(p);
          ++stolen[static_cast<std::size_t>(t)];
        } else {
          std::this_thread::yield();
        }
      }
    });
  }

  std::mt19937 rng(42);
  int next = 0;
  while (next < kDequeItems) {
    const int burst = static_cast<int>(rng() % 64) + 1;
    for (int i = 0; i < burst && next < kDequeItems; ++i) dq.push(&items[static_cast<std::size_t>(next++)]);
    const int pops = static_cast<int>(rng() % static_cast<unsigned>(burst));
    for (int i = 0; i < pops; ++i)
      if (int* p = dq.pop()) take(p);
  }
  while (total.load(std::memory_order_acquire) < kDequeItems)
    if (int* p = dq.pop()) take(p);
  for (auto& t : thieves) t.join();

  int wrong = 0;
  for (auto& c : taken) wrong += c.load() == 1 ? 0 : 1;
  CHECK(wrong == 0);
  CHECK(total.load() == kDequeItems);
  CHECK(out_of_order.load() == 0);
  CHECK(dq.pop() == nullptr);
  CHECK(dq.steal() == nullptr);
}

namespace {
struct Node : MpscNode {
  int producer = 0;
  int seq = 0;
};
}  // namespace

// One thread: FIFO, empty gives null, the queue works again after being drained.
TEST_CASE("mpsc: FIFO on one thread") {
  MpscQueue q;
  CHECK(q.pop() == nullptr);
  CHECK_FALSE(q.nonempty_hint());
  CHECK_FALSE(q.consumer_sees_items());
  std::vector<Node> nodes(10);
  for (int round = 0; round < 3; ++round) {
    for (auto& n : nodes) q.push(&n);
    CHECK(q.nonempty_hint());
    for (auto& n : nodes) {
      CHECK(q.consumer_sees_items());
      CHECK(q.pop() == &n);
    }
    CHECK(q.pop() == nullptr);
    CHECK_FALSE(q.nonempty_hint());
    CHECK_FALSE(q.consumer_sees_items());
  }
  // Interleaved pushes and pops.
  q.push(&nodes[0]);
  q.push(&nodes[1]);
  CHECK(q.pop() == &nodes[0]);
  q.push(&nodes[2]);
  CHECK(q.pop() == &nodes[1]);
  CHECK(q.pop() == &nodes[2]);
  CHECK(q.pop() == nullptr);
}

// Four producers, one consumer: every node arrives exactly once, in order per producer.
TEST_CASE("mpsc: four producers, one consumer") {
  constexpr int kProducers = 4;
  MpscQueue q;
  std::vector<Node> nodes(static_cast<std::size_t>(kProducers) * kMpscPerProducer);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int k = 0; k < kMpscPerProducer; ++k) {
        Node& n = nodes[static_cast<std::size_t>(p) * kMpscPerProducer + static_cast<std::size_t>(k)];
        n.producer = p;
        n.seq = k;
        q.push(&n);
      }
    });
  }
  std::vector<int> expected(kProducers, 0);
  int received = 0;
  int wrong = 0;
  int seen_but_not_popped = 0;  // consumer_sees_items() said yes, then pop() kept failing
  while (received < kProducers * kMpscPerProducer) {
    bool seen = q.consumer_sees_items();
    MpscNode* m = q.pop();
    // A push that is half done makes pop() fail for an instant; it must not stay failed.
    for (int tries = 0; seen && m == nullptr && tries < 1'000'000; ++tries) {
      std::this_thread::yield();
      m = q.pop();
    }
    if (seen && m == nullptr) ++seen_but_not_popped;
    if (m == nullptr) {
      std::this_thread::yield();
      continue;
    }
    const Node* n = static_cast<Node*>(m);
    if (n->producer < 0 || n->producer >= kProducers || n->seq != expected[static_cast<std::size_t>(n->producer)]) {
      ++wrong;
    } else {
      ++expected[static_cast<std::size_t>(n->producer)];
    }
    ++received;
  }
  for (auto& t : producers) t.join();
  CHECK(wrong == 0);
  CHECK(seen_but_not_popped == 0);
  for (int e : expected) CHECK(e == kMpscPerProducer);
  CHECK(q.pop() == nullptr);
  CHECK_FALSE(q.nonempty_hint());
  CHECK_FALSE(q.consumer_sees_items());
}
