// A running VM: what vm_builder.cpp made of a VmResources (KVM VM, guest memory, the platform and
// virtio devices, the vCPUs), and its lifecycle on the VMM's event loop — start, stop signals and
// console input, pause/resume, how it ended, its metrics. The pieces it holds live in rooms of their
// own: vCPU threads and exit dispatch (vcpu_set.h), the console's way out (console_output.h), the
// devices (devices/), and, above it, the container supervisor (runtime/).
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/unique_fd.h"
#include "devices/acpi_pm.h"
#include "devices/i8042.h"
#include "devices/serial.h"
#include "devices/status_port.h"
#include "devices/virtio/block.h"
#include "devices/virtio/console.h"
#include "devices/virtio/net.h"
#include "devices/virtio/tap.h"
#include "memory/guest_memory.h"
#include "vmm/bus.h"
#include "vmm/console_output.h"
#include "vmm/kvm.h"
#include "vmm/kvm_irq_line.h"
#include "vmm/vcpu_set.h"
#include "vmm/virtio_mmio_device.h"
#include "vmm/vm_resources.h"

namespace microvm::vmm {

// What the machine needs from the process that runs it, beside the VM's configuration.
struct MachineEnvironment {
  int console_input = 0;         // fd the guest's console input comes from; -1 for none
  int console_output = 1;        // fd the guest's console output goes to
  bool verbose = false;          // kernel messages on in container mode (VmResources::kernel_cmdline)
  std::string init_path;         // container mode: the static microvm-init binary
  unsigned guest_sample_hz = 0;  // > 0: sample where the guest runs (vmm/guest_sampler.h), for the boot profile
};

// When things happened, on the host's monotonic clock (unset: did not happen). The guest's markers
// come from the status port (container mode only: runtime/container_supervisor.h).
struct BootMarkers {
  using TimePoint = std::chrono::steady_clock::time_point;
  // The VMM's own set-up, in VmBuilder::build (tools/boot-profile prints each step).
  std::optional<TimePoint> setup_started;     // the builder entered
  std::optional<TimePoint> memory_ready;      // guest RAM mapped, drives and TAPs opened
  std::optional<TimePoint> kernel_loaded;     // kernel, initrd and boot structures in guest memory
  std::optional<TimePoint> vm_ready;          // KVM VM, irqchip, memory slots, devices and vCPUs set up
  std::optional<TimePoint> vcpus_started;     // the vCPU threads were started (first KVM_RUN follows)
  std::optional<TimePoint> init_started;      // microvm-init reported in
  std::optional<TimePoint> spec_wanted;       // a template boot's init asked for its spec
  std::optional<TimePoint> workload_started;  // it forked the workload
  std::optional<TimePoint> workload_exited;   // the workload ended
};

struct MachineExit {
  StopReason reason = StopReason::kError;
  std::string detail;
  int signal = 0;
  std::vector<std::string> last_console_lines;  // the guest's last lines, for a crash report
};

// What GET /microvm/metrics reports: exits by kind (indexed like VcpuExit), per-device counters,
// the console, the boot markers.
struct MachineMetrics {
  struct Drive {
    std::string drive_id;
    devices::virtio::BlockStats stats;
  };
  struct Net {
    std::string iface_id;
    devices::virtio::NetDevice::Stats stats;
  };
  VcpuSet::ExitCounts exits{};
  ExitStats::Snapshot exits_by_address;  // I/O and MMIO exits by port or address
  std::vector<Drive> drives;             // in guest order (vda, vdb, ...)
  std::vector<Net> nets;                 // in guest order (eth0, eth1, ...)
  ConsoleOutput::Stats console;
  BootMarkers markers;
  std::optional<int> workload_exit_code;   // container mode (filled in by the supervisor's owner)
  unsigned guest_sample_hz = 0;            // 0: the guest was not sampled
  std::vector<GuestSample> guest_samples;  // by time
  std::uint64_t guest_samples_dropped = 0;
  // Container mode from the command line (runtime/warm_start.h; filled in by the machine's owner):
  // whether this run was restored from a template, and whether it saved one.
  struct WarmStart {
    bool warm = false;
    bool template_saved = false;
    std::string template_key;
  };
  std::optional<WarmStart> warm_start;
};

// Where a snapshot lives: the state file (everything but guest RAM: vmm/snapshot/state_file.h) and
// the memory file (guest RAM, sparse where it is zero).
struct SnapshotFiles {
  std::string state_path;
  std::string memory_path;
};

// What a restore is given (PUT /snapshot/load).
struct SnapshotLoad {
  SnapshotFiles files;
  std::vector<NetworkOverride> network_overrides;
};

// The container-mode initramfs the machine boots: microvm-init (`init_path`) as /init, the spec as
// /microvm/spec.json, and the nodes the init needs first. (`microvm start --write-initramfs` saves it.)
[[nodiscard]] Result<std::vector<std::byte>> build_container_initramfs(const std::string& init_path,
                                                                       const VmResources& resources);

class Machine {
 public:
  using StatusListener = devices::StatusPort::Listener;
  using SignalHandler = std::function<void(int signal)>;

  // Builds the VM `resources` describe (with_defaults() applied: a kernel is named); vm_builder.cpp.
  // The machine's devices and event handlers live on `io` (the VMM's event loop), which must outlive
  // it and be run by one thread.
  static Result<std::unique_ptr<Machine>> create(const VmResources& resources, const MachineEnvironment& env,
                                                 boost::asio::io_context& io);
  // Builds the VM a snapshot describes (vmm/snapshot/machine_snapshot.cpp): the VmResources it was
  // made with (TAPs as `load` overrides them), its devices' State, every vCPU's and the VM's state,
  // guest RAM mapped MAP_PRIVATE from the memory file (read on demand; the file is never written and
  // must not change while the VM runs). A state file of another format version, from another CPU
  // model, with a bad checksum, or that does not fit this host or its files, is refused with one
  // line saying which. The machine's vCPUs are paused: start(), then resume().
  static Result<std::unique_ptr<Machine>> restore(const SnapshotLoad& load, const MachineEnvironment& env,
                                                  boost::asio::io_context& io);
  // Only VmBuilder makes a Key, so only it constructs a Machine (through std::make_unique).
  class Key {
    Key() = default;
    friend class VmBuilder;
  };
  Machine(Key, const VmResources& resources, const MachineEnvironment& env, boost::asio::io_context& io, Kvm kvm, Vm vm,
          GuestMemory memory);
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // Before start(): who hears the status port (container mode), and what a stop signal
  // (SIGINT/SIGTERM/SIGHUP) does — by default it ends the VM at once.
  void set_status_listener(StatusListener listener);
  void set_signal_handler(SignalHandler handler);

  // Runs the guest until it powers off, reboots or fails, or stop() is called: start(), io.run(),
  // finish().
  MachineExit run();
  // Starts the vCPUs and the machine's event handlers; when the VM ends, the machine stops `io`.
  void start();
  // After `io` stopped: joins the vCPUs, drains the console and says how the VM ended.
  MachineExit finish();
  // Ends the VM (any thread); the first reason given is the one reported.
  void stop(StopReason reason, std::string detail, int signal = 0);

  // Parks every vCPU outside KVM_RUN (returns once they are, or fails after 2 s); resume() lets them go.
  [[nodiscard]] Result<void> pause();
  void resume();
  [[nodiscard]] bool paused() const;

  // Paused only (else a kWrongState error): the whole VM to `files` — guest RAM to the memory file,
  // then the vCPUs, the VM's in-kernel devices, every device's State and the VmResources to the
  // state file. Each file is written beside its path and renamed into place (a reader never sees a
  // torn file, and a VM restored from these same files keeps its mapping of the old one). virtio-blk
  // drains its in-flight requests first (so the images hold everything the guest was told is
  // written). Runs on the event loop; takes as long as writing guest RAM does.
  [[nodiscard]] Result<void> save_snapshot(const SnapshotFiles& files);
  // A warm-start template (resources().warm_template) becomes this run's container (runtime/
  // warm_start.h): `run` must have the template's machine, kernel and device set (drives by id,
  // position and mode; network interfaces by id and MAC; the console); each empty drive gets its
  // image from `run` (a virtio configuration change tells the guest), and the status port gets
  // `run`'s spec with the host's wall clock for the init, which has been polling for it. Call on
  // the event loop with the vCPUs paused or not yet started; from then on resources() is `run`.
  [[nodiscard]] Result<void> begin_run(const VmResources& run);
  // Container mode: raises the status port's stop request, which microvm-init polls.
  void request_guest_stop() { status_port_.request_stop(); }

  [[nodiscard]] MachineMetrics metrics() const;
  [[nodiscard]] const VmResources& resources() const { return resources_; }
  [[nodiscard]] ConsoleOutput& console() { return console_; }
  // The virtio devices, in the order they were announced on the command line.
  [[nodiscard]] const std::vector<std::unique_ptr<VirtioMmioDevice>>& virtio_devices() const { return virtio_; }

 private:
  friend class VmBuilder;
  struct LoopState;

  std::size_t deliver_input(std::span<const std::uint8_t> bytes);
  void on_status(devices::StatusPort::Event event, std::uint32_t payload, BootMarkers::TimePoint when);

  VmResources resources_;  // replaced once by begin_run (on the event loop, vCPUs paused)
  const MachineEnvironment env_;
  boost::asio::io_context& io_;  // the event loop: console input, signals, virtio notifications and backends
  Kvm kvm_;
  Vm vm_;
  GuestMemory memory_;
  ConsoleOutput console_;
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
  std::unique_ptr<VcpuSet> vcpus_;

  StatusListener status_listener_;  // set before start(), read by vCPU threads after
  SignalHandler signal_handler_;
  std::unique_ptr<LoopState> loop_;
  mutable std::mutex exit_mutex_;
  std::optional<MachineExit> exit_;
  std::optional<BootMarkers::TimePoint> vcpus_started_;  // under exit_mutex_
  BootMarkers setup_markers_;                            // the builder's set-up steps (written before any thread runs)
  UniqueFd stop_event_;                                  // eventfd: wakes the event loop when the guest ends
};

}  // namespace microvm::vmm
