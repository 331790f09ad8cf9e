// A log line that something outside the VMM's control can trigger (a guest writing a bad queue
// address, say), rate-limited with a RateLimiter: the first kBurst messages are logged, then at most
// one per kInterval, each saying how many were suppressed before it. Suppressed messages are not
// even formatted, so a guest hammering the path costs a lock and a clock read, not a log write.
//
// One instance per source (per device, per kind of complaint), so one noisy source does not silence
// another. Thread-safe; messages go to spdlog's default logger.
#pragma once

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <string>
#include <utility>

#include "base/rate_limiter.h"

namespace microvm {

class RateLimitedLog {
 public:
  static constexpr unsigned kBurst = 5;
  static constexpr std::chrono::seconds kInterval{5};

  explicit RateLimitedLog(spdlog::level::level_enum level = spdlog::level::warn, unsigned burst = kBurst,
                          std::chrono::steady_clock::duration interval = kInterval,
                          RateLimiter::Clock clock = &std::chrono::steady_clock::now)
      : level_(level), limiter_(burst, interval, std::move(clock)) {}

  // Logs the message unless the limit is reached; returns whether it did.
  template <typename... Args>
  bool log(fmt::format_string<Args...> format, Args&&... args) {
    if (!spdlog::should_log(level_)) return false;  // nothing would be written: keep the tokens
    const auto suppressed = limiter_.admit();
    if (!suppressed) return false;
    std::string text = fmt::format(format, std::forward<Args>(args)...);
    if (*suppressed != 0) text += fmt::format(" ({} similar messages suppressed)", *suppressed);
    spdlog::log(level_, "{}", text);
    return true;
  }

 private:
  const spdlog::level::level_enum level_;
  RateLimiter limiter_;
};

}  // namespace microvm
