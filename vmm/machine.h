// The VM lifecycle: build a KVM VM with guest memory, the platform devices and a Linux boot, run
// one thread per vCPU, serve the console on the event loop, and report how the guest ended.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "boot/linux_boot.h"
#include "devices/acpi_pm.h"
#include "devices/i8042.h"
#include "devices/serial.h"
#include "devices/status_port.h"
#include "devices/virtio/block.h"
#include "devices/virtio/console.h"
#include "devices/virtio/net.h"
#include "devices/virtio/tap.h"
#include "vmm/bus.h"
#include "vmm/exit_stats.h"
#include "vmm/kvm.h"
#include "vmm/kvm_irq_line.h"
#include "memory/guest_memory.h"
#include "vmm/vm_resources.h"
#include "vmm/virtio_mmio_device.h"

namespace microvm::vmm {

// What the machine needs from the process that runs it, beside the VM's configuration.
struct MachineEnvironment {
  int console_input = 0;   // fd the guest's console input comes from; -1 for none
  int console_output = 1;  // fd the guest's console output goes to
  bool verbose = false;    // kernel messages on in container mode (VmResources::kernel_cmdline)
  std::string init_path;   // container mode: the static microvm-init binary
};

// When things happened, on the host's monotonic clock (unset: did not happen). The guest's markers
// come from the status port (container mode only).
struct BootMarkers {
  using TimePoint = std::chrono::steady_clock::time_point;
  // The VMM's own set-up, in Machine::create (tools/boot-profile prints each step).
  std::optional<TimePoint> setup_started;     // Machine::create entered
  std::optional<TimePoint> memory_ready;      // guest RAM mapped, drives and TAPs opened
  std::optional<TimePoint> kernel_loaded;     // kernel, initrd and boot structures in guest memory
  std::optional<TimePoint> vm_ready;          // KVM VM, irqchip, memory slots, devices and vCPUs set up
  std::optional<TimePoint> vcpus_started;     // the vCPU threads were started (first KVM_RUN follows)
  std::optional<TimePoint> init_started;      // microvm-init reported in
  std::optional<TimePoint> workload_started;  // it forked the workload
  std::optional<TimePoint> workload_exited;   // the workload ended
};

// What Machine::create opens on the host before it touches KVM (so a bad path is reported first).
struct HostResources {
  std::vector<std::unique_ptr<devices::virtio::BlockDevice>> drives;
  std::vector<devices::virtio::Tap> taps;
};

enum class StopReason {
  kPowerOff,  // ACPI S5 or a system-event shutdown
  kReboot,    // i8042 reset, triple fault or a system-event reset
  kSignal,    // the VMM was asked to stop (SIGINT/SIGTERM/SIGHUP)
  kError,     // the guest crashed or KVM failed
};

struct MachineExit {
  StopReason reason = StopReason::kError;
  std::string detail;
  int signal = 0;
  std::optional<int> workload_exit_code;  // container mode: what the workload exited with
  BootMarkers markers;
  std::vector<std::string> last_console_lines;  // the guest's last lines, for a crash report
};

// What GET /microvm/metrics reports: exits by kind (indexed like VcpuExit), per-device counters,
// the boot markers.
struct MachineMetrics {
  struct Drive {
    std::string drive_id;
    devices::virtio::BlockStats stats;
  };
  struct Net {
    std::string iface_id;
    devices::virtio::NetDevice::Stats stats;
  };
  std::array<std::uint64_t, std::variant_size_v<VcpuExit>> exits{};
  ExitStats::Snapshot exits_by_address;  // I/O and MMIO exits by port or address
  std::vector<Drive> drives;  // in guest order (vda, vdb, ...)
  std::vector<Net> nets;      // in guest order (eth0, eth1, ...)
  BootMarkers markers;
  std::optional<int> workload_exit_code;
};
// The container-mode initramfs the machine boots: microvm-init (`init_path`) as /init, the spec as
// /microvm/spec.json, and the nodes the init needs first. (`microvm start --write-initramfs` saves it.)
[[nodiscard]] Result<std::vector<std::byte>> build_container_initramfs(const std::string& init_path,
                                                                      const VmResources& resources);

// Names for MachineMetrics::exits, in VcpuExit order.
inline constexpr std::array<const char*, std::variant_size_v<VcpuExit>> kExitNames{
    "io_in",        "io_out",     "mmio_read",      "mmio_write",  "hlt",    "shutdown",
    "system_event", "fail_entry", "internal_error", "interrupted", "unknown"};

class Machine {
 public:
  // Builds the VM `resources` describe (with_defaults() applied: a kernel is named). The machine's
  // devices and event handlers live on `io` (the VMM's event loop), which must outlive it and be run
  // by one thread.
  static Result<std::unique_ptr<Machine>> create(const VmResources& resources, const MachineEnvironment& env,
                                                 boost::asio::io_context& io);

  // Only create() can make the key: construction that can fail goes through it.
  class Key {
    friend class Machine;
    Key() = default;
  };
  Machine(Key, const VmResources& resources, const MachineEnvironment& env, boost::asio::io_context& io, Kvm kvm,
          Vm vm, GuestMemory memory);

  // The virtio devices, in the order they were announced on the command line.
  [[nodiscard]] const std::vector<std::unique_ptr<VirtioMmioDevice>>& virtio_devices() const { return virtio_; }
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // Runs the guest until it powers off, reboots or fails, or the VMM gets a stop signal: start(),
  // io.run(), finish().
  MachineExit run();
  // Starts the vCPUs and the machine's event handlers; when the VM ends, the machine stops `io`.
  void start();
  // After `io` stopped: joins the vCPUs and says how the VM ended.
  MachineExit finish();

  // Parks every vCPU outside KVM_RUN (returns once they are, or fails after 2 s); resume() lets them go.
  [[nodiscard]] Result<void> pause();
  void resume();
  [[nodiscard]] bool paused() const;
  // Container mode: asks the init to stop the workload (it gets SIGTERM, then SIGKILL); the VM ends
  // when it has, or is stopped after the grace period plus a margin.
  void request_workload_stop();
  // Ends the VM now, as if it had powered off (the API's stop for a whole-system guest).
  void power_off(std::string why) { stop(StopReason::kPowerOff, std::move(why)); }
  [[nodiscard]] MachineMetrics metrics() const;
  [[nodiscard]] const VmResources& resources() const { return resources_; }

 private:
  struct LoopState;
  Result<void> build(const boot::LinuxBootInfo& boot_info, HostResources resources);
  void park_if_paused();
  Result<void> add_virtio(std::unique_ptr<devices::virtio::VirtioDevice> device, std::string_view name);
  std::size_t deliver_input(std::span<const std::uint8_t> bytes);
  void vcpu_loop(Vcpu& vcpu);
  void join_vcpus();  // stops and joins every vCPU thread (idempotent)
  void kick_vcpus();  // makes every vCPU thread leave (or not enter) KVM_RUN
  void handle_io_in(std::uint16_t port, std::span<std::uint8_t> data, std::uint32_t count);
  void handle_io_out(std::uint16_t port, std::span<const std::uint8_t> data, std::uint32_t count);
  void note_unclaimed(const char* access, std::uint64_t port);
  void stop(StopReason reason, std::string detail, int signal = 0);
  void write_console(std::span<const std::uint8_t> bytes);
  void on_status(devices::StatusPort::Event event, std::uint32_t payload, BootMarkers::TimePoint when);

  const VmResources resources_;
  const MachineEnvironment env_;
  boost::asio::io_context& io_;  // the event loop: console input, signals, virtio notifications and backends
  Kvm kvm_;
  Vm vm_;
  GuestMemory memory_;
  KvmIrqLine serial_irq_;
  devices::Serial serial_;
  devices::I8042 i8042_;
  devices::AcpiPm acpi_pm_;
  devices::StatusPort status_port_;
  Bus pio_bus_;
  Bus mmio_bus_;
  devices::virtio::ConsoleDevice* virtio_console_ = nullptr;  // owned by virtio_, when --console virtio
  std::vector<devices::virtio::BlockDevice*> drives_;         // owned by virtio_ (for metrics)
  std::vector<devices::virtio::NetDevice*> nets_;
  std::vector<devices::virtio::Tap> taps_;  // kept open for TUNSETOFFLOAD; the net devices use dups
  std::vector<std::unique_ptr<VirtioMmioDevice>> virtio_;
  std::vector<Vcpu> vcpus_;
  std::vector<std::thread> threads_;

  std::atomic<bool> stopping_{false};
  mutable std::mutex pause_mutex_;
  std::condition_variable pause_cv_;
  bool pause_requested_ = false;  // under pause_mutex_
  std::size_t parked_ = 0;        // vCPU threads waiting in park_if_paused (under pause_mutex_)
  std::array<std::atomic<std::uint64_t>, std::variant_size_v<VcpuExit>> exit_counts_{};  // by VcpuExit index
  std::vector<ExitStats> exit_stats_;  // by port/address, one per vCPU (indexed by vCPU id)
  std::unique_ptr<LoopState> loop_;
  mutable std::mutex exit_mutex_;
  std::optional<MachineExit> exit_;
  BootMarkers markers_;                     // under exit_mutex_
  std::optional<int> workload_exit_;        // under exit_mutex_
  std::mutex console_mutex_;                // console_tail_ and console_partial_ (vCPU threads and the loop write)
  std::deque<std::string> console_tail_;    // the guest's last complete output lines
  std::string console_partial_;             // the line being written
  std::atomic<bool> console_muted_{false};  // container mode: the workload ended, drop the rest
  UniqueFd stop_event_;                     // eventfd: wakes the event loop when the guest ends
  std::mutex unclaimed_mutex_;
  std::set<std::uint64_t> unclaimed_ports_;  // logged once each (--verbose)
};

}  // namespace microvm::vmm
