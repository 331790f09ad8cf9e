#include "vmm/guest_sampler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace microvm::vmm {
namespace {

using namespace std::chrono_literals;

// Two stand-in vCPU threads that take a sample whenever one is due, as VcpuSet::run does after
// each exit; their "program counter" says which thread they are.
TEST(GuestSampler, EveryVcpuIsSampledByItsOwnThreadInTimeOrder) {
  std::atomic<int> kicks[2]{};
  GuestSampler sampler(1000, 2, [&](std::size_t vcpu) { kicks[vcpu].fetch_add(1); });
  EXPECT_EQ(sampler.hz(), 1000U);
  std::atomic<bool> done{false};
  auto vcpu = [&](std::size_t id) {
    while (!done.load()) {
      if (sampler.due(id)) sampler.record(id, 0xffffffff81000000ULL + id);
      std::this_thread::sleep_for(100us);
    }
  };
  std::thread a(vcpu, 0), b(vcpu, 1);
  sampler.start();
  const auto deadline = std::chrono::steady_clock::now() + 10s;  // generous: a loaded CI host
  while (sampler.samples().size() < 20 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  sampler.stop();
  done.store(true);
  a.join();
  b.join();

  const std::vector<GuestSample> samples = sampler.samples();
  ASSERT_GE(samples.size(), 20U);
  std::size_t per_vcpu[2]{};
  for (std::size_t i = 0; i < samples.size(); ++i) {
    ASSERT_LT(samples[i].vcpu, 2U);
    EXPECT_EQ(samples[i].pc, 0xffffffff81000000ULL + samples[i].vcpu);
    if (i > 0) {
      EXPECT_LE(samples[i - 1].when, samples[i].when);
    }
    ++per_vcpu[samples[i].vcpu];
  }
  EXPECT_GT(per_vcpu[0], 0U);
  EXPECT_GT(per_vcpu[1], 0U);
  // A sample is only ever taken after a kick asked for one.
  EXPECT_LE(per_vcpu[0], static_cast<std::size_t>(kicks[0].load()));
  EXPECT_LE(per_vcpu[1], static_cast<std::size_t>(kicks[1].load()));
  EXPECT_EQ(sampler.dropped(), 0U);

  // Stopped: no more kicks, and a second stop is harmless.
  const int after_stop = kicks[0].load();
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(kicks[0].load(), after_stop);
  sampler.stop();
}

TEST(GuestSampler, NothingIsDueBeforeAKick) {
  GuestSampler sampler(100, 1, [](std::size_t) {});
  EXPECT_FALSE(sampler.due(0));
  EXPECT_TRUE(sampler.samples().empty());
}

TEST(GuestSampler, RateIsClampedToTheSupportedRange) {
  EXPECT_EQ(GuestSampler(0, 1, [](std::size_t) {}).hz(), 1U);
  EXPECT_EQ(GuestSampler(GuestSampler::kMaxHz + 1, 1, [](std::size_t) {}).hz(), GuestSampler::kMaxHz);
}

TEST(GuestSampler, SamplesBeyondTheCapAreCountedNotKept) {
  GuestSampler sampler(100, 1, [](std::size_t) {});
  for (std::size_t i = 0; i < GuestSampler::kMaxSamplesPerVcpu + 3; ++i) sampler.record(0, i);
  EXPECT_EQ(sampler.samples().size(), GuestSampler::kMaxSamplesPerVcpu);
  EXPECT_EQ(sampler.dropped(), 3U);
}

}  // namespace
}  // namespace microvm::vmm
