#include "vmm/guest_sampler.h"

#include <algorithm>

namespace microvm::vmm {

GuestSampler::GuestSampler(unsigned hz, std::size_t vcpus, std::function<void(std::size_t)> kick)
    : hz_(std::clamp(hz, 1U, kMaxHz)), kick_(std::move(kick)), requested_(vcpus), samples_(vcpus) {}

GuestSampler::~GuestSampler() {
  stop();
}

void GuestSampler::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void GuestSampler::stop() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void GuestSampler::loop() {
  using Clock = std::chrono::steady_clock;
  const auto period = std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(1)) / hz_;
  auto next = Clock::now() + period;
  std::unique_lock lock(stop_mutex_);
  while (!stop_cv_.wait_until(lock, next, [this] { return stopping_; })) {
    for (std::size_t i = 0; i < requested_.size(); ++i) {
      requested_[i].store(true, std::memory_order_relaxed);
      kick_(i);
    }
    next += period;
    // A late wake-up (a loaded host) skips the ticks it missed instead of firing them in a burst.
    if (const auto now = Clock::now(); next < now) next = now + period;
  }
}

void GuestSampler::record(std::size_t vcpu, std::uint64_t pc) {
  const GuestSample sample{std::chrono::steady_clock::now(), static_cast<unsigned>(vcpu), pc};
  std::lock_guard lock(samples_mutex_);
  std::vector<GuestSample>& mine = samples_[vcpu];
  if (mine.size() >= kMaxSamplesPerVcpu) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  mine.push_back(sample);
}

std::vector<GuestSample> GuestSampler::samples() const {
  std::vector<GuestSample> all;
  {
    std::lock_guard lock(samples_mutex_);
    for (const std::vector<GuestSample>& mine : samples_) all.insert(all.end(), mine.begin(), mine.end());
  }
  std::ranges::sort(all, [](const GuestSample& a, const GuestSample& b) {
    return a.when != b.when ? a.when < b.when : a.vcpu < b.vcpu;
  });
  return all;
}

}  // namespace microvm::vmm
