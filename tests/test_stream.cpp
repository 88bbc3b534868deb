// Streams: items in order, back-pressure both ways, an error mid-stream, cancellation, a
// consumer that lets go, several emitters, actor methods that stream.
#include <doctest/doctest.h>
#include <lumen/lumen.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("a stream hands out every item in order, then ends") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto s = lumen::stream<int>(
      [](lumen::Emitter<int>& out, int n) {
        for (int i = 0; i < n; ++i) out.emit(i * i);
      },
      1000);
  int i = 0;
  while (auto r = s.next()) {
    CHECK(lumen::get(*r) == i * i);
    ++i;
  }
  CHECK(i == 1000);
  CHECK_FALSE(s.next().has_value());  // stays ended
  lumen::get(s.task());               // the producer finished
}

TEST_CASE("a fast producer waits for a slow consumer: never more than max_ahead items ahead") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  constexpr std::size_t kAhead = 4;
  std::atomic<int> emitted{0};
  auto s = lumen::stream<int>(lumen::StreamOptions{.max_ahead = kAhead}, [&emitted](lumen::Emitter<int>& out) {
    for (int i = 0; i < 200; ++i) {
      out.emit(i);
      emitted.fetch_add(1);
    }
  });
  int taken = 0;
  int most_ahead = 0;
  while (auto r = s.next()) {
    CHECK(lumen::get(*r) == taken);
    ++taken;
    if (taken % 20 == 0) std::this_thread::sleep_for(1ms);  // slower than the producer
    most_ahead = std::max(most_ahead, emitted.load() - taken);
  }
  CHECK(taken == 200);
  CHECK(most_ahead <= static_cast<int>(kAhead) + 1);  // +1: the emit that completes as next() returns
  CHECK(most_ahead >= 1);
}

TEST_CASE("a consumer faster than its producer waits for each item, on a worker too") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto consume = [] {
    auto s = lumen::stream<std::string>([](lumen::Emitter<std::string>& out) {
      for (int i = 0; i < 20; ++i) {
        std::this_thread::sleep_for(200us);
        out.emit(std::to_string(i));
      }
    });
    std::string all;
    while (auto r = s.next()) all += lumen::get(*r) + ",";
    return all;
  };
  const std::string want = "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,";
  CHECK(consume() == want);                            // the main thread blocks
  CHECK(lumen::get(lumen::submit(consume)) == want);  // a task parks its fiber
}

TEST_CASE("an error mid-stream reaches the consumer after the items before it") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto s = lumen::stream<int>([](lumen::Emitter<int>& out) {
    out.emit(1);
    out.emit(2);
    out.emit(3);
    throw std::out_of_range("row 4 is missing");
  });
  for (int want = 1; want <= 3; ++want) {
    auto r = s.next();
    REQUIRE(r.has_value());
    CHECK(lumen::get(*r) == want);
  }
  auto bad = s.next();
  REQUIRE(bad.has_value());
  CHECK_THROWS_AS(lumen::get(*bad), std::out_of_range);
  CHECK_FALSE(s.next().has_value());
  CHECK_THROWS_AS(lumen::get(s.task()), std::out_of_range);
}

// An endless producer that records, when emit() throws cancelled_error, whether it saw its
// stop request.
struct StopWitness {
  std::atomic<bool> saw_stop{false};
  std::atomic<bool> emit_threw{false};

  auto endless_producer() {
    return [this](lumen::Emitter<int>& out) {
      try {
        for (int i = 0;; ++i) out.emit(i);
      } catch (const lumen::cancelled_error&) {
        saw_stop.store(lumen::stop_requested());
        emit_threw.store(true);  // last: stop_seen() reads saw_stop once it sees this
        throw;
      }
    };
  }
  bool stop_seen() {
    while (!emit_threw.load()) std::this_thread::yield();
    return saw_stop.load();
  }
};

TEST_CASE("cancelling a stream stops its producer") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  // Repeated: the producer may be anywhere in emit() when the cancel lands.
  for (int round = 0; round < 200; ++round) {
    StopWitness witness;
    auto s = lumen::stream<int>(lumen::StreamOptions{.max_ahead = 2}, witness.endless_producer());
    for (int i = 0; i < 5; ++i) CHECK(lumen::get(*s.next()) == i);
    CHECK(lumen::cancel(s));
    auto last = s.next();
    REQUIRE(last.has_value());
    CHECK_THROWS_AS(lumen::get(*last), lumen::cancelled_error);
    CHECK_FALSE(s.next().has_value());
    CHECK_THROWS_AS(lumen::get(s.task()), lumen::cancelled_error);
    CHECK(witness.stop_seen());
    CHECK_FALSE(lumen::cancel(s));  // once
  }
}

TEST_CASE("a producer whose consumer let go sees stop_requested()") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  for (int round = 0; round < 200; ++round) {
    StopWitness witness;
    {
      auto s = lumen::stream<int>(lumen::StreamOptions{.max_ahead = 1}, witness.endless_producer());
      CHECK(lumen::get(*s.next()) == 0);
    }
    CHECK(witness.stop_seen());
  }
}

TEST_CASE("a consumer that lets go of the stream stops the producer") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  std::atomic<bool> ended{false};
  lumen::ObjectRef<void> task;
  {
    auto s = lumen::stream<int>(lumen::StreamOptions{.max_ahead = 1}, [&ended](lumen::Emitter<int>& out) {
      try {
        for (;;) out.emit(7);
      } catch (...) {
        ended.store(true);
        throw;
      }
    });
    CHECK(lumen::get(*s.next()) == 7);
    task = s.task();
  }
  CHECK_THROWS_AS(lumen::get(task), lumen::cancelled_error);
  // The cancel resolves the task's ref at once; the producer stops at its next emit().
  while (!ended.load()) std::this_thread::yield();
}

TEST_CASE("several emitters feed one stream, which ends when the last is gone") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto made = lumen::make_stream<int>({.max_ahead = 8});
  lumen::Stream<int>& s = made.first;
  lumen::Emitter<int> out = std::move(made.second);
  std::vector<lumen::ObjectRef<void>> producers;
  for (int p = 0; p < 4; ++p) {
    producers.push_back(lumen::submit(
        [p](lumen::Emitter<int> e) {
          for (int i = 0; i < 1000; ++i) e.emit(p * 1000 + i);
        },
        out));
  }
  std::vector<int> last(4, -1);
  int count = 0;
  std::thread closer([&out, &producers] {
    for (auto& r : producers) lumen::get(r);
    auto gone = std::move(out);  // the last emitter goes: the stream ends
  });
  while (auto r = s.next()) {
    const int v = lumen::get(*r);
    CHECK(v % 1000 > last[static_cast<std::size_t>(v / 1000)]);  // each emitter's items in its order
    last[static_cast<std::size_t>(v / 1000)] = v % 1000;
    ++count;
  }
  closer.join();
  CHECK(count == 4000);
}

namespace {
struct Table {
  std::vector<std::string> rows{"a", "b", "c"};
  int scan(lumen::Emitter<std::string> out, int times) {
    int n = 0;
    for (int t = 0; t < times; ++t) {
      for (const auto& r : rows) {
        out.emit(r);
        ++n;
      }
    }
    return n;
  }
};
}  // namespace

TEST_CASE("an actor method streams through an emitter argument") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
  auto table = lumen::actor<Table>();
  auto [s, out] = lumen::make_stream<std::string>();
  auto done = table.call(&Table::scan, std::move(out), 2);
  std::string all;
  while (auto r = s.next()) all += lumen::get(*r);
  CHECK(all == "abcabc");
  CHECK(lumen::get(done) == 6);
}

TEST_CASE("misuse of streams is refused with usage_error") {
  lumen::Runtime rt{lumen::Config{.workers = 1}};
  CHECK_THROWS_AS(lumen::make_stream<int>({.max_ahead = 0}), lumen::usage_error);
  lumen::Stream<int> empty;
  CHECK_THROWS_AS(empty.next(), lumen::usage_error);
  CHECK_FALSE(lumen::cancel(empty));
  auto [s, out] = lumen::make_stream<int>();
  out.fail(std::make_exception_ptr(std::runtime_error("stop")));
  CHECK_THROWS_AS(out.emit(1), lumen::usage_error);  // ended by fail()
  auto r = s.next();
  REQUIRE(r.has_value());
  CHECK_THROWS_AS(lumen::get(*r), std::runtime_error);
  CHECK_FALSE(s.next().has_value());
}

// Many short streams whose consumer stops at a random point, or cancels just as the producer
// ends: every stream settles (the producer's task resolves), and the items taken are a prefix.
TEST_CASE("cancels racing with the ends of streams") {
  lumen::Runtime rt{lumen::Config{.workers = 2}};
#if defined(LUMEN_TEST_SANITIZED)
  constexpr int kRounds = 200;
#else
  constexpr int kRounds = 2000;
#endif
  int cancelled_open = 0;
  for (int round = 0; round < kRounds; ++round) {
    const int items = round % 7;
    auto s = lumen::stream<int>(
        lumen::StreamOptions{.max_ahead = static_cast<std::size_t>(round % 3 + 1)},
        [](lumen::Emitter<int>& out, int n) {
          for (int i = 0; i < n; ++i) out.emit(i);
        },
        items);
    const int take = round % 5;
    int taken = 0;
    for (; taken < take; ++taken) {
      auto r = s.next();
      if (!r) break;
      CHECK(lumen::get(*r) == taken);
    }
    CHECK(taken == std::min(take, items));
    lumen::ObjectRef<void> task = s.task();
    if (lumen::cancel(s)) ++cancelled_open;
    try {
      lumen::get(task);
    } catch (const lumen::cancelled_error&) {
    }
  }
  MESSAGE("streams cancelled while open: " << cancelled_open << " of " << kRounds);
}
