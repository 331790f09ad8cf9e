// The vCPUs of one VM: a thread each running KVM_RUN, exits dispatched to the PIO and MMIO buses
// (kvm-ioctls style: the exit is a value, vcpu_exit.h), the kick that gets a thread out of KVM_RUN
// (immediate_exit + a signal), pause/resume (threads parked outside KVM_RUN), and exit counts.
// An exit that ends the VM (power-off, reset, triple fault, a KVM failure) goes to the stop callback.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "vmm/bus.h"
#include "vmm/exit_stats.h"
#include "vmm/guest_sampler.h"
#include "vmm/vcpu.h"

namespace microvm::vmm {

enum class StopReason {
  kPowerOff,  // ACPI S5 or a system-event shutdown
  kReboot,    // i8042 reset, triple fault or a system-event reset
  kSignal,    // the VMM was asked to stop (SIGINT/SIGTERM/SIGHUP)
  kError,     // the guest crashed or KVM failed
};

// Names for VcpuSet::exit_counts(), in VcpuExit order.
inline constexpr std::array<const char*, std::variant_size_v<VcpuExit>> kExitNames{
    "io_in",        "io_out",     "mmio_read",      "mmio_write",  "hlt",    "shutdown",
    "system_event", "fail_entry", "internal_error", "interrupted", "unknown"};

class VcpuSet {
 public:
  using ExitCounts = std::array<std::uint64_t, std::variant_size_v<VcpuExit>>;
  using StopFn = std::function<void(StopReason, std::string)>;

  // The buses outlive the set; `stop` may be called from any vCPU thread. `sample_hz` > 0 samples
  // where the guest runs that many times a second (GuestSampler; 0: no sampling, no extra exits).
  VcpuSet(std::vector<Vcpu> vcpus, const Bus& pio, const Bus& mmio, StopFn stop, unsigned sample_hz = 0);
  ~VcpuSet();  // join()
  VcpuSet(const VcpuSet&) = delete;
  VcpuSet& operator=(const VcpuSet&) = delete;

  // Starts one thread per vCPU. Threads end after join() or after their vCPU ended the VM.
  void start();
  // Stops and joins every thread (idempotent; any thread but a vCPU's).
  void join();

  // Parks every vCPU outside KVM_RUN (asynchronously: all_parked() says when they are); resume()
  // lets them go.
  void request_pause();
  void resume();
  [[nodiscard]] bool pause_requested() const;
  [[nodiscard]] bool all_parked() const;
  // Waits up to `timeout` for every vCPU to park (for a caller that may block).
  [[nodiscard]] bool wait_parked(std::chrono::milliseconds timeout);

  [[nodiscard]] ExitCounts exit_counts() const;
  // I/O and MMIO exits by port or address, all vCPUs merged (the boot profile).
  [[nodiscard]] ExitStats::Snapshot exits_by_address() const;
  [[nodiscard]] std::size_t size() const { return vcpus_.size(); }
  // The guest profile so far (empty without sampling); its rate (0: off) and the samples not kept.
  [[nodiscard]] std::vector<GuestSample> guest_samples() const;
  [[nodiscard]] unsigned guest_sample_hz() const { return sampler_ ? sampler_->hz() : 0; }
  [[nodiscard]] std::uint64_t guest_samples_dropped() const { return sampler_ ? sampler_->dropped() : 0; }
  // The vCPUs, for saving and restoring their state while every thread is parked (or before start()).
  [[nodiscard]] const std::vector<Vcpu>& vcpus() const { return vcpus_; }

 private:
  void run(Vcpu& vcpu);
  void park_if_paused();
  void kick();  // makes every vCPU thread leave (or not enter) KVM_RUN
  void handle_io_in(std::uint16_t port, std::span<std::uint8_t> data, std::uint32_t count);
  void handle_io_out(std::uint16_t port, std::span<const std::uint8_t> data, std::uint32_t count);
  void note_unclaimed(const char* access, std::uint64_t port);
  void stop(StopReason reason, std::string detail);

  std::vector<Vcpu> vcpus_;
  const Bus& pio_;
  const Bus& mmio_;
  const StopFn stop_;
  std::vector<std::thread> threads_;

  std::atomic<bool> stopping_{false};
  mutable std::mutex pause_mutex_;
  std::condition_variable pause_cv_;
  bool pause_requested_ = false;  // under pause_mutex_
  std::size_t parked_ = 0;        // threads waiting in park_if_paused (under pause_mutex_)
  std::array<std::atomic<std::uint64_t>, std::variant_size_v<VcpuExit>> exit_counts_{};
  std::vector<ExitStats> exit_stats_;  // by port/address, one per vCPU (same index as vcpus_)
  std::mutex unclaimed_mutex_;
  std::set<std::uint64_t> unclaimed_ports_;  // logged once each (--verbose)
  std::unique_ptr<GuestSampler> sampler_;    // with sample_hz > 0; started by start(), stopped by join()
};

}  // namespace microvm::vmm
