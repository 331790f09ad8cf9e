// A token bucket for events a guest (or any outside party) can trigger at will: the first `burst`
// pass at once, then one per `interval`; the rest are refused and counted. RateLimitedLog uses it so
// that a guest writing bad values in a loop cannot flood the host's log.
//
// Thread-safe. The clock is injected (steady_clock by default) so tests can move time by hand.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>

namespace microvm {

class RateLimiter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // burst is at least 1; a token comes back every `interval`, up to `burst` of them.
  RateLimiter(unsigned burst, std::chrono::steady_clock::duration interval,
              Clock clock = &std::chrono::steady_clock::now);

  // An event happened. nullopt: refused (and counted); otherwise it may go ahead, and the value is
  // how many were refused since the previous one that went ahead.
  [[nodiscard]] std::optional<std::uint64_t> admit();

 private:
  const unsigned burst_;
  const std::chrono::steady_clock::duration interval_;
  const Clock clock_;
  std::mutex mutex_;  // the fields below
  unsigned tokens_;
  std::chrono::steady_clock::time_point refilled_;  // when the last token came back (or the bucket was full)
  std::uint64_t refused_ = 0;
};

}  // namespace microvm
