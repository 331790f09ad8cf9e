// RateLimiter (a token bucket) and RateLimitedLog over an injected clock: the first N pass, then one
// per interval, the refused ones are counted and reported by the next message that gets through.
#include "base/rate_limited_log.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "base/rate_limiter.h"
#include "tests/unit/captured_log.h"

namespace microvm {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A clock the test moves by hand.
class FakeClock {
 public:
  [[nodiscard]] RateLimiter::Clock function() {
    return [this] { return now_; };
  }
  void advance(Clock::duration by) { now_ += by; }

 private:
  Clock::time_point now_{std::chrono::hours(1)};
};

TEST(RateLimiterTest, FirstBurstPassesThenOnePerInterval) {
  FakeClock clock;
  RateLimiter limiter(3, 10s, clock.function());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.admit(), std::optional<std::uint64_t>(0)) << i;
  EXPECT_EQ(limiter.admit(), std::nullopt);
  EXPECT_EQ(limiter.admit(), std::nullopt);
  clock.advance(9s);
  EXPECT_EQ(limiter.admit(), std::nullopt);  // not a whole interval yet
  clock.advance(1s);
  EXPECT_EQ(limiter.admit(), std::optional<std::uint64_t>(3));  // and it says how many were refused
  EXPECT_EQ(limiter.admit(), std::nullopt);
  clock.advance(10s);
  EXPECT_EQ(limiter.admit(), std::optional<std::uint64_t>(1));
}

TEST(RateLimiterTest, HammeringForAMinuteLetsThroughBurstPlusOnePerInterval) {
  FakeClock clock;
  RateLimiter limiter(5, 5s, clock.function());
  std::uint64_t passed = 0;
  std::uint64_t reported_refused = 0;
  std::uint64_t events = 0;
  for (int ms = 0; ms < 60'000; ++ms) {  // 1000 events a second for 60 s
    ++events;
    if (auto refused = limiter.admit()) {
      ++passed;
      reported_refused += *refused;
    }
    clock.advance(1ms);
  }
  EXPECT_EQ(passed, 5u + 60 / 5 - 1);  // the burst, then one per whole 5 s after the first
  // Every event is accounted for: passed, or reported by a later one that passed (except the tail).
  EXPECT_LE(passed + reported_refused, events);
  EXPECT_GE(passed + reported_refused, events - 5000);
}

TEST(RateLimiterTest, QuietPeriodRefillsTheWholeBurstButNoMore) {
  FakeClock clock;
  RateLimiter limiter(2, 1s, clock.function());
  EXPECT_TRUE(limiter.admit());
  EXPECT_TRUE(limiter.admit());
  EXPECT_FALSE(limiter.admit());
  clock.advance(1h);
  EXPECT_EQ(limiter.admit(), std::optional<std::uint64_t>(1));
  EXPECT_EQ(limiter.admit(), std::optional<std::uint64_t>(0));
  EXPECT_FALSE(limiter.admit());  // an hour idle does not bank 3600 tokens
}

TEST(RateLimiterTest, PartOfAnIntervalAlreadyWaitedCounts) {
  FakeClock clock;
  RateLimiter limiter(2, 10s, clock.function());
  EXPECT_TRUE(limiter.admit());
  EXPECT_TRUE(limiter.admit());
  clock.advance(15s);  // one token back, half of the next interval waited
  EXPECT_TRUE(limiter.admit());
  EXPECT_FALSE(limiter.admit());
  clock.advance(5s);  // 20 s since empty: the second token
  EXPECT_TRUE(limiter.admit());
}

TEST(RateLimiterTest, ZeroBurstStillLetsTheFirstThrough) {
  FakeClock clock;
  RateLimiter limiter(0, 1s, clock.function());
  EXPECT_TRUE(limiter.admit());
  EXPECT_FALSE(limiter.admit());
}

TEST(RateLimiterTest, ConcurrentCallersShareTheBudget) {
  FakeClock clock;  // never advances: exactly the burst passes
  RateLimiter limiter(7, 1s, clock.function());
  std::atomic<int> passed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (limiter.admit()) ++passed;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(passed.load(), 7);
}

using test::CapturedLog;

TEST(RateLimitedLogTest, LogsTheBurstThenReportsWhatItSuppressed) {
  CapturedLog captured;
  FakeClock clock;
  RateLimitedLog log(spdlog::level::warn, 2, 1s, clock.function());
  for (int i = 0; i < 10; ++i) log.log("bad queue write {}", i);
  clock.advance(1s);
  EXPECT_TRUE(log.log("bad queue write {}", 10));
  EXPECT_FALSE(log.log("bad queue write {}", 11));
  EXPECT_EQ(captured.lines(), (std::vector<std::string>{"warning bad queue write 0", "warning bad queue write 1",
                                                        "warning bad queue write 10 (8 similar messages suppressed)"}));
}

TEST(RateLimitedLogTest, UsesItsLevel) {
  CapturedLog captured;
  RateLimitedLog log(spdlog::level::err);
  log.log("host I/O failed");
  EXPECT_EQ(captured.lines(), (std::vector<std::string>{"error host I/O failed"}));
}

TEST(RateLimitedLogTest, DisabledLevelNeitherLogsNorUsesTokens) {
  CapturedLog captured;
  FakeClock clock;
  RateLimitedLog log(spdlog::level::debug, 1, 1s, clock.function());
  spdlog::set_level(spdlog::level::info);
  EXPECT_FALSE(log.log("quiet"));
  spdlog::set_level(spdlog::level::trace);
  EXPECT_TRUE(log.log("now heard"));  // the token was not spent while the level was off
  EXPECT_EQ(captured.lines(), (std::vector<std::string>{"debug now heard"}));
}

}  // namespace
}  // namespace microvm
