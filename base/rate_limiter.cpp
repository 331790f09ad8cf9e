#include "base/rate_limiter.h"

#include <algorithm>
#include <utility>

namespace microvm {

RateLimiter::RateLimiter(unsigned burst, std::chrono::steady_clock::duration interval, Clock clock)
    : burst_(std::max(burst, 1U)),
      interval_(std::max(interval, std::chrono::steady_clock::duration(1))),
      clock_(std::move(clock)),
      tokens_(burst_),
      refilled_(clock_()) {}

std::optional<std::uint64_t> RateLimiter::admit() {
  std::lock_guard lock(mutex_);
  const auto now = clock_();
  if (tokens_ == burst_) {
    refilled_ = now;  // a full bucket does not bank time
  } else if (now > refilled_) {
    const auto earned = static_cast<std::uint64_t>((now - refilled_) / interval_);
    if (earned >= burst_ - tokens_) {
      tokens_ = burst_;
      refilled_ = now;
    } else {
      tokens_ += static_cast<unsigned>(earned);
      // The part of an interval already waited counts towards the next token.
      refilled_ += interval_ * static_cast<std::int64_t>(earned);
    }
  }
  if (tokens_ == 0) {
    ++refused_;
    return std::nullopt;
  }
  --tokens_;
  return std::exchange(refused_, 0);
}

}  // namespace microvm
