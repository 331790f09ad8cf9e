// GuestSampler: a statistical profile of the guest, for tools/boot-profile. A thread of its own
// kicks every vCPU thread out of KVM_RUN `hz` times a second; at its next exit the vCPU thread
// records where the guest was (its program counter) and when. Symbolizing the addresses (the
// guest kernel's ELF symbols) is the profile tool's job: the VMM only counts.
//
// The cost is one extra VM exit per sample and vCPU: a profile perturbs the boot it measures a
// little (tools/boot-profile samples only its profile run, never the timed ones). A kick that lands
// while the vCPU thread is outside KVM_RUN is taken at the vCPU's next exit, so a sample can be late;
// each sample carries the time it was taken, not the time it was asked for.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace microvm::vmm {

struct GuestSample {
  std::chrono::steady_clock::time_point when;
  unsigned vcpu = 0;
  std::uint64_t pc = 0;  // the guest's instruction pointer (x86: RIP)

  bool operator==(const GuestSample&) const = default;
};

class GuestSampler {
 public:
  static constexpr unsigned kMaxHz = 10'000;
  // Samples kept per vCPU: 60 s at 5 kHz. Later samples are counted in dropped(), not kept.
  static constexpr std::size_t kMaxSamplesPerVcpu = 300'000;

  // `kick(i)` makes vCPU i's thread leave KVM_RUN (a signal); `hz` in 1..kMaxHz.
  GuestSampler(unsigned hz, std::size_t vcpus, std::function<void(std::size_t)> kick);
  ~GuestSampler();  // stop()
  GuestSampler(const GuestSampler&) = delete;
  GuestSampler& operator=(const GuestSampler&) = delete;

  void start();
  void stop();  // idempotent

  // On vCPU `vcpu`'s own thread after each exit: whether a sample is due (then record() it).
  [[nodiscard]] bool due(std::size_t vcpu) { return requested_[vcpu].exchange(false, std::memory_order_relaxed); }
  void record(std::size_t vcpu, std::uint64_t pc);

  [[nodiscard]] unsigned hz() const { return hz_; }
  // Every sample so far, ordered by time.
  [[nodiscard]] std::vector<GuestSample> samples() const;
  [[nodiscard]] std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  void loop();

  const unsigned hz_;
  const std::function<void(std::size_t)> kick_;
  std::vector<std::atomic<bool>> requested_;
  mutable std::mutex samples_mutex_;
  std::vector<std::vector<GuestSample>> samples_;  // per vCPU, under samples_mutex_
  std::atomic<std::uint64_t> dropped_{0};
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // under stop_mutex_
  std::thread thread_;
};

}  // namespace microvm::vmm
