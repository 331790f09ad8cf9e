// Machine::save_snapshot and VmBuilder::restore: a paused VM to a state file and a memory file, and
// back (Firecracker's snapshot flow, vmm/src/persist.rs, in microvm's shapes). The sections are
// those of state_file.h, each encoded by its owner: the resources and devices by machine_state.h,
// the vCPUs and the VM by vmm/x86_64/vcpu_state.h.
#include <fcntl.h>
#include <linux/virtio_ids.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "base/error.h"
#include "boot/layout.h"
#include "vmm/machine.h"
#include "vmm/snapshot/machine_state.h"
#include "vmm/snapshot/state_file.h"
#include "vmm/vm_builder.h"
#include "vmm/x86_64/vcpu_state.h"

namespace microvm::vmm {

namespace {

using snapshot::SectionId;

// Decodes section `id` of `file` with `decode`, insisting that it is read to its end.
template <typename Decode>
auto decode_section(const snapshot::StateFile& file, SectionId id, std::uint32_t version, Decode decode)
    -> decltype(decode(std::declval<snapshot::Decoder&>())) {
  const std::span<const std::byte> payload = TRY(file.section(id, version));
  snapshot::Decoder in(payload, fmt::format("its {} section", snapshot::section_name(id)));
  auto value = TRY(decode(in));
  TRY_VOID(in.finish());
  return value;
}

const char* virtio_name(std::uint32_t id) {
  switch (id) {
    case VIRTIO_ID_BLOCK: return "virtio-blk";
    case VIRTIO_ID_NET: return "virtio-net";
    case VIRTIO_ID_CONSOLE: return "virtio-console";
    default: return "virtio";
  }
}

}  // namespace

Result<void> Machine::save_snapshot(const SnapshotFiles& files) {
  if (!vcpus_->pause_requested() || !vcpus_->all_parked()) {
    return fail_state("the VM is not paused: PATCH /vm {{\"state\": \"Paused\"}} before creating a snapshot");
  }
  if (files.state_path == files.memory_path) return fail("the state file and the memory file are the same path");
  const auto started = std::chrono::steady_clock::now();
  // The images must hold everything the guest was told is written.
  for (devices::virtio::BlockDevice* drive : drives_) drive->drain();

  snapshot::StateFile file;
  {
    snapshot::Encoder out;
    snapshot::encode(out, resources_);
    file.add(SectionId::kResources, snapshot::kResourcesVersion, out.take());
  }
  {
    const std::vector<std::uint32_t> kvm_msrs = TRY(kvm_.msr_index_list());
    const std::vector<std::uint32_t> msrs = msrs_to_save(kvm_msrs);
    const std::size_t xsave_size = vm_.xsave_size();
    snapshot::Encoder out;
    out.u32(static_cast<std::uint32_t>(vcpus_->size()));
    for (const Vcpu& vcpu : vcpus_->vcpus()) {
      const VcpuState state = TRY_CONTEXT(fmt::format("saving vCPU {}", vcpu.id()), save_vcpu(vcpu, msrs, xsave_size));
      encode(out, state);
    }
    file.add(SectionId::kVcpus, snapshot::kVcpusVersion, out.take());
  }
  {
    const VmState state = TRY_CONTEXT("saving the VM's irqchip, PIT and clock", save_vm(vm_));
    snapshot::Encoder out;
    encode(out, state);
    file.add(SectionId::kVm, snapshot::kVmVersion, out.take());
  }
  {
    snapshot::DevicesState devices;
    devices.serial = serial_.state();
    devices.i8042 = i8042_.state();
    devices.acpi_pm = acpi_pm_.state();
    devices.status_port = status_port_.state();
    for (const std::unique_ptr<VirtioMmioDevice>& wired : virtio_) {
      snapshot::VirtioState v;
      devices::virtio::VirtioDevice& device = wired->device();
      v.device_id = device.device_id();
      v.transport = wired->transport().state();
      if (auto* block = dynamic_cast<devices::virtio::BlockDevice*>(&device)) {
        v.device = block->state();
      } else if (auto* net = dynamic_cast<devices::virtio::NetDevice*>(&device)) {
        v.device = net->state();
      } else if (auto* console = dynamic_cast<devices::virtio::ConsoleDevice*>(&device)) {
        v.device = console->state();
      } else {
        return fail_kind(ErrorKind::kInternal, "virtio device {} has no snapshot state", v.device_id);
      }
      devices.virtio.push_back(std::move(v));
    }
    snapshot::Encoder out;
    encode(out, devices);
    file.add(SectionId::kDevices, snapshot::kDevicesVersion, out.take());
  }
  {
    snapshot::ReplacementFile memory_file = TRY(snapshot::ReplacementFile::create(files.memory_path));
    const std::vector<GuestMemory::FileRange> ranges =
        TRY(memory_.save_to(memory_file.fd(), fmt::format("memory file {}", files.memory_path)));
    std::vector<snapshot::MemoryRegionState> regions;
    for (const GuestMemory::FileRange& range : ranges) {
      regions.push_back({range.range.start.value, range.range.size, range.file_offset});
    }
    snapshot::Encoder out;
    encode(out, regions);
    file.add(SectionId::kMemory, snapshot::kMemoryVersion, out.take());
    TRY_VOID(memory_file.commit());
  }
  TRY_VOID(snapshot::write_file(files.state_path, file.serialize(snapshot::host_cpu_model())));
  spdlog::debug(
      "snapshot of {} MiB and {} vCPU(s) written to {} and {} in {} ms", memory_.size() >> 20, vcpus_->size(),
      files.state_path, files.memory_path,
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
  return {};
}

Result<std::unique_ptr<Machine>> VmBuilder::restore(const SnapshotLoad& load, const MachineEnvironment& env,
                                                    boost::asio::io_context& io) {
  BootMarkers setup;
  setup.setup_started = std::chrono::steady_clock::now();
  const std::string what = fmt::format("state file {}", load.files.state_path);
  const std::vector<std::byte> bytes = TRY(snapshot::read_state_file(load.files.state_path));
  const snapshot::StateFile file = TRY_CONTEXT(what, snapshot::StateFile::parse(bytes, snapshot::host_cpu_model()));

  VmResources resources = TRY_CONTEXT(
      what, decode_section(file, SectionId::kResources, snapshot::kResourcesVersion, snapshot::decode_resources));
  for (const NetworkOverride& override_ : load.network_overrides) {
    auto found = std::ranges::find(resources.network_interfaces, override_.iface_id, &NetworkInterfaceConfig::iface_id);
    if (found == resources.network_interfaces.end()) {
      return fail("network_overrides: the snapshot has no network interface `{}`", override_.iface_id);
    }
    found->host_dev_name = override_.host_dev_name;
  }

  // Guest RAM: the layout this microvm gives that much memory, and where the file has each part.
  const std::vector<snapshot::MemoryRegionState> regions = TRY_CONTEXT(
      what, decode_section(file, SectionId::kMemory, snapshot::kMemoryVersion, snapshot::decode_memory_regions));
  const std::vector<MemoryRange> layout = boot::layout::ram_ranges(resources.machine_config.mem_size_mib << 20);
  if (regions.size() != layout.size()) {
    return fail("{}: {} guest memory regions for {} MiB, this microvm lays that out in {}", what, regions.size(),
                resources.machine_config.mem_size_mib, layout.size());
  }
  std::vector<GuestMemory::FileRange> ranges;
  for (std::size_t i = 0; i < regions.size(); ++i) {
    if (regions[i].guest_address != layout[i].start.value || regions[i].size != layout[i].size) {
      return fail("{}: guest memory region {} is {:#x}+{:#x}, this microvm puts it at {:#x}+{:#x}", what, i,
                  regions[i].guest_address, regions[i].size, layout[i].start.value, layout[i].size);
    }
    ranges.push_back({layout[i], regions[i].file_offset});
  }
  const std::string memory_what = fmt::format("memory file {}", load.files.memory_path);
  UniqueFd memory_fd(::open(load.files.memory_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!memory_fd.valid()) return fail("cannot open {}: {}", memory_what, errno_text(errno));
  GuestMemory memory = TRY(GuestMemory::from_file(ranges, memory_fd.get(), memory_what));

  HostResources host = TRY(open_host(resources, io));
  setup.memory_ready = std::chrono::steady_clock::now();

  Kvm kvm = TRY(Kvm::open());
  const unsigned vcpu_count = resources.machine_config.vcpu_count;
  if (const unsigned max_vcpus = kvm.max_vcpus(); vcpu_count > max_vcpus) {
    return fail("the snapshot has {} vCPUs, this host's KVM supports at most {}", vcpu_count, max_vcpus);
  }
  Vm vm = TRY(kvm.create_vm());
  std::unique_ptr<Machine> machine =
      std::make_unique<Machine>(Machine::Key{}, resources, env, io, std::move(kvm), std::move(vm), std::move(memory));
  Machine& m = *machine;
  TRY_VOID(wire(m, nullptr, std::move(host)));

  // vCPUs, then the VM's in-kernel devices (vcpu_state.h has the order and why).
  const std::size_t xsave_size = m.vm_.xsave_size();
  const auto decode_vcpus = [&](snapshot::Decoder& in) -> Result<std::vector<VcpuState>> {
    const std::uint32_t count = TRY(in.count(kMaxVcpus, "vCPUs"));
    if (count != vcpu_count) {
      return fail("{}: {} vCPUs saved, the machine configuration has {}", in.what(), count, vcpu_count);
    }
    std::vector<VcpuState> out;
    for (std::uint32_t i = 0; i < count; ++i) out.push_back(TRY(decode_vcpu_state(in, xsave_size)));
    return out;
  };
  const std::vector<VcpuState> vcpus =
      TRY_CONTEXT(what, decode_section(file, SectionId::kVcpus, snapshot::kVcpusVersion, decode_vcpus));
  for (std::size_t i = 0; i < vcpus.size(); ++i) {
    if (auto restored = restore_vcpu(m.vcpus_->vcpus()[i], vcpus[i]); !restored) {
      return std::unexpected(restored.error().context(fmt::format("restoring vCPU {}", i)));
    }
  }
  const VmState vm_state =
      TRY_CONTEXT(what, decode_section(file, SectionId::kVm, snapshot::kVmVersion, decode_vm_state));
  TRY_VOID(restore_vm(m.vm_, vm_state));

  // Devices: the platform ones, then each virtio device's own State before its transport's (which
  // activates it again).
  const snapshot::DevicesState devices =
      TRY_CONTEXT(what, decode_section(file, SectionId::kDevices, snapshot::kDevicesVersion, snapshot::decode_devices));
  TRY_VOID(m.serial_.restore(devices.serial));
  TRY_VOID(m.i8042_.restore(devices.i8042));
  TRY_VOID(m.acpi_pm_.restore(devices.acpi_pm));
  m.status_port_.restore(devices.status_port);
  if (devices.virtio.size() != m.virtio_.size()) {
    return fail("{}: {} virtio devices saved, its configuration has {}", what, devices.virtio.size(), m.virtio_.size());
  }
  for (std::size_t i = 0; i < devices.virtio.size(); ++i) {
    const snapshot::VirtioState& saved = devices.virtio[i];
    VirtioMmioDevice& wired = *m.virtio_[i];
    devices::virtio::VirtioDevice& device = wired.device();
    const std::string name = fmt::format("virtio device {} ({})", i, virtio_name(device.device_id()));
    if (saved.device_id != device.device_id()) {
      return fail("{}: {} is a {} here, a {} in the snapshot", what, name, virtio_name(device.device_id()),
                  virtio_name(saved.device_id));
    }
    Result<void> restored;
    if (auto* block = dynamic_cast<devices::virtio::BlockDevice*>(&device)) {
      const auto* state = std::get_if<devices::virtio::BlockDevice::State>(&saved.device);
      restored = state != nullptr ? block->restore(*state) : fail("no virtio-blk state");
    } else if (auto* net = dynamic_cast<devices::virtio::NetDevice*>(&device)) {
      const auto* state = std::get_if<devices::virtio::NetDevice::State>(&saved.device);
      if (state != nullptr) net->restore(*state);
      restored = state != nullptr ? Result<void>{} : fail("no virtio-net state");
    } else if (auto* console = dynamic_cast<devices::virtio::ConsoleDevice*>(&device)) {
      const auto* state = std::get_if<devices::virtio::ConsoleDevice::State>(&saved.device);
      restored = state != nullptr ? console->restore(*state) : fail("no virtio-console state");
    }
    if (restored) restored = wired.transport().restore(saved.transport);
    if (!restored) return std::unexpected(restored.error().context(fmt::format("{}: {}", what, name)));
  }

  m.vcpus_->request_pause();  // the caller resumes (PUT /snapshot/load resume_vm, or PATCH /vm)
  setup.vm_ready = std::chrono::steady_clock::now();
  m.setup_markers_ = setup;
  spdlog::debug("restored {} MiB and {} vCPU(s) from {} and {}", m.memory_.size() >> 20, vcpu_count,
                load.files.state_path, load.files.memory_path);
  return machine;
}

}  // namespace microvm::vmm
