#include "vmm/machine.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <functional>

#include "boot/initramfs.h"
#include "boot/layout.h"
#include "boot/linux_boot.h"
#include "boot/x86_64/acpi.h"
#include "guest/protocol/spec.h"
#include "guest/protocol/status_port.h"
#include "vmm/x86_64/vcpu_setup.h"

namespace microvm::vmm {

namespace {

namespace layout = boot::layout;

// The signal that kicks a vCPU thread out of KVM_RUN; its handler does nothing.
int kick_signal() {
  return SIGRTMIN;
}

void install_kick_handler() {
  struct sigaction action {};
  action.sa_handler = [](int) {};
  sigemptyset(&action.sa_mask);
  ::sigaction(kick_signal(), &action, nullptr);  // no SA_RESTART: KVM_RUN returns EINTR
}

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};

constexpr std::uint32_t kMaxRegionSlots = 8;
constexpr std::uint32_t kConsoleMajor = 5;  // /dev/console is char 5:1 (Linux Documentation/admin-guide/devices.txt)
constexpr std::uint32_t kConsoleMinor = 1;
constexpr std::size_t kConsoleTailLines = 20;  // guest lines kept for a crash report
// How long the VMM waits, after asking the init to stop the workload, beyond the init's own grace.
constexpr std::chrono::seconds kStopMargin{5};
constexpr std::chrono::milliseconds kPauseTimeout{2000};  // for every vCPU to leave KVM_RUN

GuestAddress virtio_base(std::size_t index) {
  return GuestAddress(layout::kVirtioMmioBase.value + layout::kVirtioMmioStride * index);
}

// A locally administered unicast address (IEEE 802: bit 1 of the first octet set, bit 0 clear),
// "MV" and the interface's position.
devices::virtio::MacAddress default_mac(std::size_t index) {
  return {0x02, 0x4d, 0x56, 0x00, 0x00, static_cast<std::uint8_t>(index + 1)};
}

// The FADT (boot/) and the PM device (devices/) must agree on where PM1a_CNT is and what S5 means.
static_assert(layout::kPortAcpiPm1Control == layout::kPortAcpiPm1Event + devices::AcpiPm::kControlBlockOffset);
static_assert(boot::kAcpiSleepTypeS5 == devices::AcpiPm::kSleepTypeS5);

}  // namespace

// The container-mode initramfs: microvm-init as /init, the spec, and the directories and console
// node the init needs before it mounts anything (the kernel opens /dev/console for PID 1).
Result<std::vector<std::byte>> build_container_initramfs(const std::string& init_path, const VmResources& resources) {
  const Mapping init = TRY_CONTEXT(fmt::format("container init {}", init_path), Mapping::file_read_only(init_path));
  const std::string spec_json = guest::spec_to_json(TRY(resources.container_spec()));
  const auto* spec = reinterpret_cast<const std::byte*>(spec_json.data());
  const std::vector<boot::CpioEntry> entries{
      {"dev", S_IFDIR | 0755, {}, 0, 0},
      {"dev/console", S_IFCHR | 0600, {}, kConsoleMajor, kConsoleMinor},
      {"proc", S_IFDIR | 0555, {}, 0, 0},
      {"sys", S_IFDIR | 0555, {}, 0, 0},
      {"mnt", S_IFDIR | 0755, {}, 0, 0},
      {"microvm", S_IFDIR | 0755, {}, 0, 0},
      {"microvm/spec.json", S_IFREG | 0644, std::vector<std::byte>(spec, spec + spec_json.size()), 0, 0},
      {"init", S_IFREG | 0755, std::vector<std::byte>(init.bytes().begin(), init.bytes().end()), 0, 0},
  };
  return boot::build_cpio(entries);
}

Result<std::unique_ptr<Machine>> Machine::create(const VmResources& resources, const MachineEnvironment& env,
                                                 boost::asio::io_context& io) {
  BootMarkers setup;
  setup.setup_started = std::chrono::steady_clock::now();
  // Everything that needs no KVM comes first, so a bad file or size is reported on any host.
  const unsigned vcpus = resources.machine_config.vcpu_count;
  const std::uint64_t memory_bytes = resources.machine_config.mem_size_mib << 20;
  if (vcpus < kMinVcpus || vcpus > kMaxVcpus) {
    return fail("{} vCPUs is out of range: microvm supports {} to {}", vcpus, kMinVcpus, kMaxVcpus);
  }
  if (resources.machine_config.mem_size_mib < kMinMemoryMib || resources.machine_config.mem_size_mib > kMaxMemoryMib) {
    return fail("{} MiB of guest memory is out of range: microvm supports {} MiB to {} MiB",
                resources.machine_config.mem_size_mib, kMinMemoryMib, kMaxMemoryMib);
  }
  const auto host_bytes =
      static_cast<std::uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  if (memory_bytes > host_bytes) {
    return fail("guest memory of {} MiB is more than this host's {} MiB of RAM", memory_bytes >> 20, host_bytes >> 20);
  }
  const std::string& kernel_path = resources.boot_source.kernel_image_path;
  if (kernel_path.empty()) return fail("no kernel: PUT /boot-source with kernel_image_path, or pass --kernel");
  const std::optional<std::string>& initrd_path = resources.boot_source.initrd_path;
  GuestMemory memory = TRY(GuestMemory::create(layout::ram_ranges(memory_bytes)));

  // Drives and TAPs open now, before KVM, so a bad path is reported on any host.
  const std::vector<DriveConfig> drives = resources.drives_in_guest_order();
  const std::size_t virtio_count =
      drives.size() + resources.network_interfaces.size() + (resources.console == ConsoleKind::kVirtio ? 1 : 0);
  if (virtio_count > layout::kVirtioIrqs.size()) {
    return fail("too many virtio devices ({}): microvm supports {} drives, network interfaces and consoles together",
                virtio_count, layout::kVirtioIrqs.size());
  }
  HostResources host;
  for (const DriveConfig& drive : drives) {
    host.drives.push_back(TRY(devices::virtio::BlockDevice::open({drive.path_on_host, drive.is_read_only, drive.drive_id})));
  }
  for (const NetworkInterfaceConfig& net : resources.network_interfaces) {
    host.taps.push_back(TRY_CONTEXT(fmt::format("network interface {}", net.host_dev_name),
                                    devices::virtio::Tap::open(net.host_dev_name)));
  }
  setup.memory_ready = std::chrono::steady_clock::now();
  // Announce the devices first: parameters after a " -- " in the user's command line would go to init.
  std::string cmdline;
  for (std::size_t index = 0; index < virtio_count; ++index) {
    cmdline += virtio_mmio_cmdline(virtio_base(index), layout::kVirtioIrqs[index]) + " ";
  }
  cmdline += resources.kernel_cmdline(env.verbose);

  const Mapping kernel = TRY_CONTEXT("kernel", Mapping::file_read_only(kernel_path));
  std::optional<Mapping> initrd;
  if (initrd_path) initrd = TRY_CONTEXT("initrd", Mapping::file_read_only(*initrd_path));
  std::vector<std::byte> container_initramfs;
  if (resources.container_mode()) {
    if (initrd_path) return fail("--initrd cannot be combined with a container command (-- CMD)");
    container_initramfs = TRY(build_container_initramfs(env.init_path, resources));
  }
  boot::LinuxBootConfig boot_config{kernel.bytes(), std::nullopt, cmdline, vcpus};
  if (initrd) boot_config.initrd = initrd->bytes();
  if (resources.container_mode()) boot_config.initrd = std::span<const std::byte>(container_initramfs);
  const boot::LinuxBootInfo boot_info = TRY_CONTEXT(kernel_path, boot::setup_linux_boot(memory, boot_config));
  setup.kernel_loaded = std::chrono::steady_clock::now();

  Kvm kvm = TRY(Kvm::open());
  if (const unsigned max_vcpus = kvm.max_vcpus(); vcpus > max_vcpus) {
    return fail("{} vCPUs is out of range: this host's KVM supports at most {}", vcpus, max_vcpus);
  }
  spdlog::debug("{} kernel {} loaded, entry {:#x}; initrd {} bytes at {:#x}; {} MiB, {} vCPU(s); command line: {}",
                boot_info.format == boot::KernelFormat::kElf ? "ELF" : "bzImage", kernel_path, boot_info.cpu.rip,
                boot_info.initrd_size, boot_info.initrd_address.value, memory_bytes >> 20, vcpus, cmdline);
  Vm vm = TRY(kvm.create_vm());
  auto machine = std::make_unique<Machine>(Key{}, resources, env, io, std::move(kvm), std::move(vm), std::move(memory));
  TRY_VOID(machine->build(boot_info, std::move(host)));
  setup.vm_ready = std::chrono::steady_clock::now();
  machine->markers_ = setup;  // no vCPU thread runs yet
  return machine;
}

Machine::Machine(Key, const VmResources& resources, const MachineEnvironment& env, boost::asio::io_context& io,
                 Kvm kvm, Vm vm, GuestMemory memory)
    : resources_(resources),
      env_(env),
      io_(io),
      kvm_(std::move(kvm)),
      vm_(std::move(vm)),
      memory_(std::move(memory)),
      serial_irq_(vm_, layout::kIrqCom1),
      serial_(serial_irq_, [this](std::span<const std::uint8_t> bytes) { write_console(bytes); }),
      i8042_([this] { stop(StopReason::kReboot, "the guest reset the machine (i8042)"); }),
      acpi_pm_([this] { stop(StopReason::kPowerOff, "the guest powered off (ACPI S5)"); }),
      status_port_([this](devices::StatusPort::Event event, std::uint32_t payload, BootMarkers::TimePoint when) {
        on_status(event, payload, when);
      }),
      exit_stats_(resources.machine_config.vcpu_count) {}

Machine::~Machine() {
  join_vcpus();
}

void Machine::join_vcpus() {
  stopping_.store(true);
  {
    std::lock_guard lock(pause_mutex_);
    pause_cv_.notify_all();  // parked vCPUs see stopping_ and leave
  }
  kick_vcpus();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void Machine::kick_vcpus() {
  // immediate_exit covers a thread about to enter KVM_RUN; the signal, one already inside it.
  for (Vcpu& vcpu : vcpus_) vcpu.set_immediate_exit(true);
  for (std::thread& t : threads_) ::pthread_kill(t.native_handle(), kick_signal());
}

Result<void> Machine::build(const boot::LinuxBootInfo& boot_info, HostResources resources) {
  // Order matters (api.rst): TSS and identity map, then the irqchip before any vCPU exists.
  TRY_VOID(vm_.set_tss_address(layout::kKvmTss));
  TRY_VOID(vm_.set_identity_map_address(layout::kKvmIdentityMap));
  TRY_VOID(vm_.create_irqchip());
  TRY_VOID(vm_.create_pit());
  std::uint32_t slot = 0;
  for (const GuestMemory::Region& region : memory_.regions()) {
    if (slot == kMaxRegionSlots) return fail("too many guest memory regions");
    TRY_VOID(vm_.set_user_memory_region(slot++, region.range.start, region.range.size, region.mapping.data()));
  }

  TRY_VOID(pio_bus_.insert(layout::kPortCom1, devices::Serial::kRegisterCount, serial_, "serial"));
  TRY_VOID(pio_bus_.insert(layout::kPortI8042Data, devices::I8042::kCommandOffset + 1, i8042_, "i8042"));
  TRY_VOID(pio_bus_.insert(layout::kPortAcpiPm1Event, devices::AcpiPm::kSize, acpi_pm_, "acpi-pm"));
  TRY_VOID(pio_bus_.insert(guest::status_port::kBase, guest::status_port::kSize, status_port_, "status-port"));

  // virtio devices in command-line order (see create()): drives, network interfaces, console.
  for (auto& drive : resources.drives) {
    drives_.push_back(drive.get());
    TRY_VOID(add_virtio(std::move(drive), "virtio-blk"));
  }
  taps_ = std::move(resources.taps);
  for (std::size_t i = 0; i < taps_.size(); ++i) {
    devices::virtio::Tap& tap = taps_[i];
    devices::virtio::MacAddress mac = default_mac(i);
    if (const auto& text = resources_.network_interfaces[i].guest_mac) {
      mac = TRY_CONTEXT(fmt::format("network interface {}", resources_.network_interfaces[i].iface_id),
                        devices::virtio::parse_mac(*text));
    }
    UniqueFd backend(::dup(tap.fd()));
    if (!backend.valid()) return fail("dup of the TAP fd failed: {}", errno_text(errno));
    auto net = std::make_unique<devices::virtio::NetDevice>(
        io_.get_executor(), std::move(backend), mac, tap.supports_offloads(),
        [&tap](unsigned flags) { return tap.set_offloads(flags); });
    nets_.push_back(net.get());
    TRY_VOID(add_virtio(std::move(net), "virtio-net"));
  }
  if (resources_.console == ConsoleKind::kVirtio) {
    auto console = std::make_unique<devices::virtio::ConsoleDevice>(
        [this](std::span<const std::uint8_t> bytes) { write_console(bytes); });
    virtio_console_ = console.get();
    TRY_VOID(add_virtio(std::move(console), "virtio-console"));
  }

  const std::size_t mmap_size = TRY(kvm_.vcpu_mmap_size());
  const std::vector<kvm_cpuid_entry2> cpuid = TRY(kvm_.supported_cpuid());
  const bool tsc_deadline_timer = kvm_.check_extension(KVM_CAP_TSC_DEADLINE_TIMER) > 0;
  for (unsigned id = 0; id < resources_.machine_config.vcpu_count; ++id) {
    Vcpu vcpu = TRY(vm_.create_vcpu(id, mmap_size));
    TRY_VOID(setup_vcpu_platform(vcpu, cpuid, resources_.machine_config.vcpu_count, tsc_deadline_timer));
    if (id == 0) TRY_VOID(setup_boot_registers(vcpu, boot_info.cpu));
    vcpus_.push_back(std::move(vcpu));
  }

  const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return fail("eventfd failed: {}", errno_text(errno));
  stop_event_.reset(efd);
  return {};
}

Result<void> Machine::add_virtio(std::unique_ptr<devices::virtio::VirtioDevice> device, std::string_view name) {
  const std::size_t index = virtio_.size();
  auto wired = TRY(
      VirtioMmioDevice::create(vm_, io_, memory_, std::move(device), virtio_base(index), layout::kVirtioIrqs[index]));
  TRY_VOID(mmio_bus_.insert(wired->base().value, devices::virtio::MmioTransport::kWindowSize, wired->transport(),
                            fmt::format("{}@{:#x}", name, wired->base().value)));
  spdlog::debug("{} at {:#x}, IRQ {}", name, wired->base().value, wired->irq());
  virtio_.push_back(std::move(wired));
  return {};
}

std::size_t Machine::deliver_input(std::span<const std::uint8_t> bytes) {
  return virtio_console_ != nullptr ? virtio_console_->enqueue_input(bytes) : serial_.enqueue_input(bytes);
}

void Machine::on_status(devices::StatusPort::Event event, std::uint32_t payload, BootMarkers::TimePoint when) {
  bool workload_done = false;
  {
    std::lock_guard lock(exit_mutex_);
    switch (event) {
      case devices::StatusPort::Event::kInitStarted:
        if (!markers_.init_started) markers_.init_started = when;
        break;
      case devices::StatusPort::Event::kWorkloadStarted:
        if (!markers_.workload_started) markers_.workload_started = when;
        break;
      case devices::StatusPort::Event::kWorkloadExited:
        if (!markers_.workload_exited) {
          markers_.workload_exited = when;
          workload_exit_ = static_cast<int>(payload & 0xff);  // an exit status is 0-255
          workload_done = true;
          spdlog::debug("the workload exited with status {}", *workload_exit_);
        }
        break;
    }
  }
  // The init has drained the workload's output and synced the filesystems before it reports
  // (guest/protocol/status_port.h): the VM ends here, without waiting for the guest's own power-off
  // (device shutdown, ACPI S5: a third of a second in the nested sandbox). Whatever the guest prints
  // from now on ("reboot: Power down" shows even with loglevel=1) is not the workload's output.
  // (Under QEMU 7.2's TCG this early end went with lock-ups of the nested sandbox's kernel; under
  // QEMU 10 it did not, over the runs BENCHMARKS.md counts.)
  if (workload_done && resources_.container_mode()) {
    if (spdlog::get_level() > spdlog::level::debug) console_muted_.store(true);
    stop(StopReason::kPowerOff, "the workload exited");
  }
}

void Machine::write_console(std::span<const std::uint8_t> bytes) {
  if (console_muted_.load()) return;
  {
    std::lock_guard lock(console_mutex_);
    for (std::uint8_t c : bytes) {
      if (c == '\n') {
        console_tail_.push_back(std::move(console_partial_));
        console_partial_.clear();
        if (console_tail_.size() > kConsoleTailLines) console_tail_.pop_front();
      } else if (c != '\r' && console_partial_.size() < 512) {
        console_partial_.push_back(static_cast<char>(c));
      }
    }
  }
  while (!bytes.empty()) {
    const ssize_t n = ::write(env_.console_output, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // A terminal's stdout shares its open file description with stdin, which the event loop
      // made non-blocking: wait until it drains.
      pollfd writable{env_.console_output, POLLOUT, 0};
      ::poll(&writable, 1, -1);
      continue;
    }
    if (n <= 0) return;  // the reader went away: drop console output, keep the guest running
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
}

void Machine::stop(StopReason reason, std::string detail, int signal) {
  {
    std::lock_guard lock(exit_mutex_);
    if (!exit_) {
      exit_.emplace();
      exit_->reason = reason;
      exit_->detail = std::move(detail);
      exit_->signal = signal;
    }
  }
  stopping_.store(true);
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(stop_event_.get(), &one, sizeof(one));
}

void Machine::handle_io_in(std::uint16_t port, std::span<std::uint8_t> data, std::uint32_t count) {
  const std::size_t size = count == 0 ? 0 : data.size() / count;
  for (std::uint32_t i = 0; i < count; ++i) {
    auto element = data.subspan(i * size, size);
    if (!pio_bus_.read(port, element)) {
      std::fill(element.begin(), element.end(), 0xff);  // floating bus
      note_unclaimed("read", port);
    }
  }
}

void Machine::handle_io_out(std::uint16_t port, std::span<const std::uint8_t> data, std::uint32_t count) {
  const std::size_t size = count == 0 ? 0 : data.size() / count;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (!pio_bus_.write(port, data.subspan(i * size, size))) note_unclaimed("write", port);
  }
}

void Machine::note_unclaimed(const char* access, std::uint64_t port) {
  std::lock_guard lock(unclaimed_mutex_);
  if (unclaimed_ports_.insert(port).second)
    spdlog::debug("guest {} of unclaimed I/O port {:#x} (reads as 0xff)", access, port);
}

void Machine::vcpu_loop(Vcpu& vcpu) {
  while (!stopping_.load()) {
    park_if_paused();
    if (stopping_.load()) return;
    Result<VcpuExit> result = vcpu.run();
    if (!result) {
      stop(StopReason::kError, result.error().message);
      return;
    }
    exit_counts_[result->index()].fetch_add(1, std::memory_order_relaxed);
    exit_stats_[vcpu.id()].record(*result);
    std::visit(
        Overloaded{
            [&](const exit::IoIn& e) { handle_io_in(e.port, e.data, e.count); },
            [&](const exit::IoOut& e) { handle_io_out(e.port, e.data, e.count); },
            [&](const exit::MmioRead& e) {
              if (!mmio_bus_.read(e.address, e.data)) std::fill(e.data.begin(), e.data.end(), 0xff);
            },
            [&](const exit::MmioWrite& e) { mmio_bus_.write(e.address, e.data); },
            [&](const exit::Hlt&) { stop(StopReason::kPowerOff, fmt::format("vCPU {} halted", vcpu.id())); },
            [&](const exit::Shutdown&) {
              stop(StopReason::kReboot,
                   fmt::format("vCPU {} triple-faulted (shutdown): the guest rebooted", vcpu.id()));
            },
            [&](const exit::SystemEvent& e) {
              if (e.type == KVM_SYSTEM_EVENT_SHUTDOWN)
                stop(StopReason::kPowerOff, "the guest shut down");
              else if (e.type == KVM_SYSTEM_EVENT_RESET)
                stop(StopReason::kReboot, "the guest reset");
              else
                stop(StopReason::kError, fmt::format("the guest crashed (KVM system event {})", e.type));
            },
            [&](const exit::FailEntry& e) {
              stop(StopReason::kError, fmt::format("KVM could not enter vCPU {} (hardware entry failure reason {:#x}): "
                                                   "invalid vCPU state",
                                                   vcpu.id(), e.reason));
            },
            [&](const exit::InternalError& e) {
              const auto regs = vcpu.get_regs();
              stop(StopReason::kError,
                   fmt::format("KVM internal error on vCPU {} at RIP {:#x} (suberror {}{})", vcpu.id(),
                               regs ? regs->rip : 0, e.suberror,
                               e.suberror == KVM_INTERNAL_ERROR_EMULATION ? ": instruction emulation failed" : ""));
            },
            [&](const exit::Interrupted&) {},
            [&](const exit::Unknown& e) {
              stop(StopReason::kError,
                   fmt::format("vCPU {} exited with unexpected KVM exit reason {}", vcpu.id(), e.reason));
            },
        },
        *result);
  }
}

// What the event loop serves for a running machine: stop signals, the stop eventfd and console
// input. On the heap so handlers can refer to it while start() has long returned.
struct Machine::LoopState {
  explicit LoopState(boost::asio::io_context& io)
      : signals(io, SIGINT, SIGTERM, SIGHUP), stop_deadline(io), retry(io) {}

  boost::asio::signal_set signals;
  boost::asio::steady_timer stop_deadline;
  int pending_signal = 0;
  std::function<void()> wait_for_signal;
  std::optional<boost::asio::posix::stream_descriptor> stop_event;
  std::optional<boost::asio::posix::stream_descriptor> input;
  boost::asio::steady_timer retry;
  std::array<std::uint8_t, 1024> buffer{};
  std::span<const std::uint8_t> pending;
  std::function<void()> read_input;
  std::function<void()> deliver;
  int input_flags = -1;
};

void Machine::start() {
  install_kick_handler();
  {
    std::lock_guard lock(exit_mutex_);
    markers_.vcpus_started = std::chrono::steady_clock::now();
  }
  for (Vcpu& vcpu : vcpus_) {
    threads_.emplace_back([this, &vcpu] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, kick_signal());
      ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
      vcpu_loop(vcpu);
    });
  }

  loop_ = std::make_unique<LoopState>(io_);
  LoopState& s = *loop_;
  // A stop signal ends a whole-system VM at once. In container mode the first one asks the init to
  // stop the workload (SIGTERM, SIGKILL after the grace period) so it exits on its own terms; a
  // second signal, or a guest that does not finish in time, ends the VM.
  s.wait_for_signal = [this, &s] {
    s.signals.async_wait([this, &s](const boost::system::error_code& ec, int signal) {
      if (ec) return;
      if (!resources_.container_mode() || s.pending_signal != 0) {
        stop(StopReason::kSignal, fmt::format("stopped by signal {}", signal), signal);
        return;
      }
      s.pending_signal = signal;
      request_workload_stop();
      spdlog::debug("signal {}: asking the guest to stop its workload", signal);
      s.wait_for_signal();
    });
  };
  s.wait_for_signal();

  s.stop_event.emplace(io_, ::dup(stop_event_.get()));
  s.stop_event->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                           [this](const boost::system::error_code& ec) {
                             if (!ec) io_.stop();
                           });

  // Console input: host bytes go to the console device; when its buffer is full, retry shortly.
  s.deliver = [this, &s] {
    s.pending = s.pending.subspan(deliver_input(s.pending));
    if (s.pending.empty()) {
      s.read_input();
      return;
    }
    s.retry.expires_after(std::chrono::milliseconds(10));
    s.retry.async_wait([&s](const boost::system::error_code& ec) {
      if (!ec) s.deliver();
    });
  };
  s.read_input = [&s] {
    s.input->async_read_some(boost::asio::buffer(s.buffer), [&s](const boost::system::error_code& ec, std::size_t n) {
      if (ec) return;  // EOF or error: the guest simply gets no more input
      s.pending = std::span<const std::uint8_t>(s.buffer.data(), n);
      s.deliver();
    });
  };
  // The event loop makes the input's open file description non-blocking, which the shell that
  // started microvm shares: put its flags back afterwards.
  s.input_flags = env_.console_input >= 0 ? ::fcntl(env_.console_input, F_GETFL) : -1;
  if (env_.console_input >= 0) {
    UniqueFd input_fd(::dup(env_.console_input));
    boost::system::error_code ec;
    s.input.emplace(io_);
    s.input->assign(input_fd.get(), ec);
    if (ec) {
      spdlog::debug("console input is not pollable ({}); the guest gets no input", ec.message());
      s.input.reset();
    } else {
      static_cast<void>(input_fd.release());  // now owned by the stream descriptor
      s.read_input();
    }
  }
  if (stopping_.load()) io_.stop();  // the guest may have ended before the loop was set up
}

void Machine::request_workload_stop() {
  if (!resources_.container_mode()) return;
  status_port_.request_stop();
  if (loop_ == nullptr) return;
  loop_->stop_deadline.expires_after(std::chrono::milliseconds(kStopGraceMs) + kStopMargin);
  loop_->stop_deadline.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    const int signal = loop_->pending_signal;
    stop(signal != 0 ? StopReason::kSignal : StopReason::kError,
         "the guest did not stop its workload in time" + (signal != 0 ? fmt::format(" (signal {})", signal) : ""),
         signal);
  });
}

MachineExit Machine::finish() {
  if (loop_) {
    loop_->input.reset();
    if (loop_->input_flags >= 0) ::fcntl(env_.console_input, F_SETFL, loop_->input_flags);
    loop_.reset();
  }
  join_vcpus();
  std::lock_guard lock(exit_mutex_);
  MachineExit result;
  if (exit_) {
    result = *exit_;
  } else {
    result.reason = StopReason::kError;
    result.detail = "the VM stopped for no recorded reason";
  }
  result.markers = markers_;
  result.workload_exit_code = workload_exit_;
  std::lock_guard console_lock(console_mutex_);
  result.last_console_lines.assign(console_tail_.begin(), console_tail_.end());
  if (!console_partial_.empty()) result.last_console_lines.push_back(console_partial_);
  return result;
}

MachineExit Machine::run() {
  start();
  io_.run();
  return finish();
}

Result<void> Machine::pause() {
  std::unique_lock lock(pause_mutex_);
  if (pause_requested_) return {};
  pause_requested_ = true;
  kick_vcpus();
  // vCPUs leave KVM_RUN within microseconds of the kick; one that does not is stuck in a device.
  if (!pause_cv_.wait_for(lock, kPauseTimeout, [this] { return parked_ == threads_.size() || stopping_.load(); })) {
    pause_requested_ = false;
    for (Vcpu& vcpu : vcpus_) vcpu.set_immediate_exit(false);
    pause_cv_.notify_all();
    return fail("the vCPUs did not pause within {} ms", kPauseTimeout.count());
  }
  spdlog::debug("paused {} vCPU(s)", parked_);
  return {};
}

void Machine::resume() {
  std::lock_guard lock(pause_mutex_);
  if (!pause_requested_) return;
  pause_requested_ = false;
  if (!stopping_.load()) {
    for (Vcpu& vcpu : vcpus_) vcpu.set_immediate_exit(false);
  }
  pause_cv_.notify_all();
}

bool Machine::paused() const {
  std::lock_guard lock(pause_mutex_);
  return pause_requested_;
}

void Machine::park_if_paused() {
  std::unique_lock lock(pause_mutex_);
  if (!pause_requested_) return;
  ++parked_;
  pause_cv_.notify_all();
  pause_cv_.wait(lock, [this] { return !pause_requested_ || stopping_.load(); });
  --parked_;
}

MachineMetrics Machine::metrics() const {
  MachineMetrics m;
  for (std::size_t i = 0; i < exit_counts_.size(); ++i) m.exits[i] = exit_counts_[i].load(std::memory_order_relaxed);
  std::vector<ExitStats::Snapshot> per_vcpu;
  for (const ExitStats& stats : exit_stats_) per_vcpu.push_back(stats.snapshot());
  m.exits_by_address = ExitStats::merge(per_vcpu);
  const std::vector<DriveConfig> drives = resources_.drives_in_guest_order();
  for (std::size_t i = 0; i < drives_.size(); ++i) m.drives.push_back({drives[i].drive_id, drives_[i]->stats()});
  for (std::size_t i = 0; i < nets_.size(); ++i) {
    m.nets.push_back({resources_.network_interfaces[i].iface_id, nets_[i]->stats()});
  }
  std::lock_guard lock(exit_mutex_);
  m.markers = markers_;
  m.workload_exit_code = workload_exit_;
  return m;
}

}  // namespace microvm::vmm
