#include "vmm/vm_builder.h"

#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "base/error.h"
#include "boot/initramfs.h"
#include "boot/layout.h"
#include "boot/x86_64/acpi.h"
#include "guest/protocol/spec.h"
#include "guest/protocol/status_port.h"
#include "vmm/x86_64/vcpu_setup.h"

namespace microvm::vmm {

namespace {

namespace layout = boot::layout;

constexpr std::uint32_t kMaxRegionSlots = 8;
constexpr std::uint32_t kConsoleMajor = 5;  // /dev/console is char 5:1 (Linux Documentation/admin-guide/devices.txt)
constexpr std::uint32_t kConsoleMinor = 1;

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
  // A warm-start template's init gets its spec from the host at run time (guest/protocol/spec.h).
  const std::string spec_json =
      resources.warm_template ? std::string() : guest::spec_to_json(TRY(resources.container_spec()));
  const auto* spec = reinterpret_cast<const std::byte*>(spec_json.data());
  const std::string spec_name(resources.warm_template ? guest::kSpecFromHostPath.substr(1)
                                                      : guest::kSpecPath.substr(1));
  const std::vector<boot::CpioEntry> entries{
      {"dev", S_IFDIR | 0755, {}, 0, 0},
      {"dev/console", S_IFCHR | 0600, {}, kConsoleMajor, kConsoleMinor},
      {"proc", S_IFDIR | 0555, {}, 0, 0},
      {"sys", S_IFDIR | 0555, {}, 0, 0},
      {"mnt", S_IFDIR | 0755, {}, 0, 0},
      {"microvm", S_IFDIR | 0755, {}, 0, 0},
      {spec_name, S_IFREG | 0644, std::vector<std::byte>(spec, spec + spec_json.size()), 0, 0},
      {"init", S_IFREG | 0755, std::vector<std::byte>(init.bytes().begin(), init.bytes().end()), 0, 0},
  };
  return boot::build_cpio(entries);
}

Result<std::unique_ptr<Machine>> VmBuilder::build(const VmResources& resources, const MachineEnvironment& env,
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
  HostResources host = TRY(open_host(resources, io));
  const std::size_t virtio_count = virtio_device_count(resources);
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
  std::unique_ptr<Machine> machine =
      std::make_unique<Machine>(Machine::Key{}, resources, env, io, std::move(kvm), std::move(vm), std::move(memory));
  TRY_VOID(wire(*machine, &boot_info.cpu, std::move(host)));
  setup.vm_ready = std::chrono::steady_clock::now();
  machine->setup_markers_ = setup;  // no vCPU thread runs yet
  return machine;
}

std::size_t VmBuilder::virtio_device_count(const VmResources& resources) {
  return resources.drives.size() + resources.network_interfaces.size() +
         (resources.console == ConsoleKind::kVirtio ? 1 : 0);
}

Result<VmBuilder::HostResources> VmBuilder::open_host(const VmResources& resources, boost::asio::io_context& io) {
  const std::size_t virtio_count = virtio_device_count(resources);
  if (virtio_count > layout::kVirtioIrqs.size()) {
    return fail("too many virtio devices ({}): microvm supports {} drives, network interfaces and consoles together",
                virtio_count, layout::kVirtioIrqs.size());
  }
  HostResources host;
  for (const DriveConfig& drive : resources.drives_in_guest_order()) {
    const devices::virtio::BlockOptions options{drive.path_on_host, drive.is_read_only, drive.drive_id};
    host.drives.push_back(resources.warm_template
                              ? TRY(devices::virtio::BlockDevice::open_empty(options, io.get_executor()))
                              : TRY(devices::virtio::BlockDevice::open(options, io.get_executor())));
  }
  for (const NetworkInterfaceConfig& net : resources.network_interfaces) {
    host.taps.push_back(TRY_CONTEXT(fmt::format("network interface {}", net.host_dev_name),
                                    devices::virtio::Tap::open(net.host_dev_name)));
  }
  return host;
}

Result<void> VmBuilder::wire(Machine& m, const boot::BootCpuState* boot_cpu, HostResources host) {
  // Order matters (api.rst): TSS and identity map, then the irqchip before any vCPU exists.
  TRY_VOID(m.vm_.set_tss_address(layout::kKvmTss));
  TRY_VOID(m.vm_.set_identity_map_address(layout::kKvmIdentityMap));
  TRY_VOID(m.vm_.create_irqchip());
  TRY_VOID(m.vm_.create_pit());
  std::uint32_t slot = 0;
  for (const GuestMemory::Region& region : m.memory_.regions()) {
    if (slot == kMaxRegionSlots) return fail("too many guest memory regions");
    TRY_VOID(m.vm_.set_user_memory_region(slot++, region.range.start, region.range.size, region.mapping.data()));
  }

  TRY_VOID(m.pio_bus_.insert(layout::kPortCom1, devices::Serial::kRegisterCount, m.serial_, "serial"));
  TRY_VOID(m.pio_bus_.insert(layout::kPortI8042Data, devices::I8042::kCommandOffset + 1, m.i8042_, "i8042"));
  TRY_VOID(m.pio_bus_.insert(layout::kPortAcpiPm1Event, devices::AcpiPm::kSize, m.acpi_pm_, "acpi-pm"));
  TRY_VOID(m.pio_bus_.insert(guest::status_port::kBase, guest::status_port::kSize, m.status_port_, "status-port"));

  // virtio devices in command-line order (see create()): drives, network interfaces, console.
  for (auto& drive : host.drives) {
    m.drives_.push_back(drive.get());
    TRY_VOID(add_virtio(m, std::move(drive), "virtio-blk"));
  }
  m.taps_ = std::move(host.taps);
  for (std::size_t i = 0; i < m.taps_.size(); ++i) {
    devices::virtio::Tap& tap = m.taps_[i];
    devices::virtio::MacAddress mac = default_mac(i);
    if (const auto& text = m.resources_.network_interfaces[i].guest_mac) {
      mac = TRY_CONTEXT(fmt::format("network interface {}", m.resources_.network_interfaces[i].iface_id),
                        devices::virtio::parse_mac(*text));
    }
    UniqueFd backend(::dup(tap.fd()));
    if (!backend.valid()) return fail_host("dup of the TAP fd failed: {}", errno_text(errno));
    auto net = std::make_unique<devices::virtio::NetDevice>(m.io_.get_executor(), std::move(backend), mac,
                                                            tap.supports_offloads(),
                                                            [&tap](unsigned flags) { return tap.set_offloads(flags); });
    m.nets_.push_back(net.get());
    TRY_VOID(add_virtio(m, std::move(net), "virtio-net"));
  }
  if (m.resources_.console == ConsoleKind::kVirtio) {
    auto console = std::make_unique<devices::virtio::ConsoleDevice>(
        m.io_.get_executor(), [&m](std::span<const std::uint8_t> bytes) { m.console_.write(bytes); });
    m.virtio_console_ = console.get();
    TRY_VOID(add_virtio(m, std::move(console), "virtio-console"));
  }

  const std::size_t mmap_size = TRY(m.kvm_.vcpu_mmap_size());
  const std::vector<kvm_cpuid_entry2> cpuid = TRY(m.kvm_.supported_cpuid());
  const bool tsc_deadline_timer = m.kvm_.check_extension(KVM_CAP_TSC_DEADLINE_TIMER) > 0;
  std::vector<Vcpu> vcpus;
  for (unsigned id = 0; id < m.resources_.machine_config.vcpu_count; ++id) {
    Vcpu vcpu = TRY(m.vm_.create_vcpu(id, mmap_size));
    if (boot_cpu != nullptr) {  // a restore sets the whole vCPU state from the snapshot instead
      TRY_VOID(setup_vcpu_platform(vcpu, cpuid, m.resources_.machine_config.vcpu_count, tsc_deadline_timer));
      if (id == 0) TRY_VOID(setup_boot_registers(vcpu, *boot_cpu));
    }
    vcpus.push_back(std::move(vcpu));
  }
  m.vcpus_ = std::make_unique<VcpuSet>(
      std::move(vcpus), m.pio_bus_, m.mmio_bus_,
      [&m](StopReason reason, std::string detail) { m.stop(reason, std::move(detail)); }, m.env_.guest_sample_hz);

  const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return fail_host("eventfd failed: {}", errno_text(errno));
  m.stop_event_.reset(efd);
  return {};
}

Result<void> VmBuilder::add_virtio(Machine& m, std::unique_ptr<devices::virtio::VirtioDevice> device,
                                   std::string_view name) {
  const std::size_t index = m.virtio_.size();
  auto wired = TRY(VirtioMmioDevice::create(m.vm_, m.io_, m.memory_, std::move(device), virtio_base(index),
                                            layout::kVirtioIrqs[index]));
  TRY_VOID(m.mmio_bus_.insert(wired->base().value, devices::virtio::MmioTransport::kWindowSize, wired->transport(),
                              fmt::format("{}@{:#x}", name, wired->base().value)));
  spdlog::debug("{} at {:#x}, IRQ {}", name, wired->base().value, wired->irq());
  m.virtio_.push_back(std::move(wired));
  return {};
}

}  // namespace microvm::vmm
