// What a snapshot's sections hold beside the vCPUs and the VM (vmm/x86_64/vcpu_state.h): the
// VmResources the machine was built from, where guest RAM lies in the memory file, and every
// device's State (ARCHITECTURE.md: "Every device has a State"). Each has an encoder and a decoder
// over the bounds-checked codec (codec.h); a decoder checks every count, length and enum it reads,
// so a state file from elsewhere is refused with one line, never misread. The devices' restore()
// then checks what only the device knows (a register value it cannot hold).
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

#include "base/result.h"
#include "devices/acpi_pm.h"
#include "devices/i8042.h"
#include "devices/serial.h"
#include "devices/status_port.h"
#include "devices/virtio/block.h"
#include "devices/virtio/console.h"
#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/net.h"
#include "memory/guest_memory.h"
#include "vmm/snapshot/codec.h"
#include "vmm/vm_resources.h"

namespace microvm::snapshot {

// Section versions (state_file.h SectionId): bump one when its encoding changes.
inline constexpr std::uint32_t kResourcesVersion = 2;  // 2: VmResources::warm_template
inline constexpr std::uint32_t kMemoryVersion = 1;
inline constexpr std::uint32_t kVmVersion = 1;
inline constexpr std::uint32_t kVcpusVersion = 1;
inline constexpr std::uint32_t kDevicesVersion = 1;

// Bounds on what a state file may claim, far above what a real one holds.
inline constexpr std::size_t kMaxPathBytes = 4096;       // PATH_MAX
inline constexpr std::size_t kMaxTextBytes = 64 * 1024;  // a kernel command line, an env entry
inline constexpr std::uint32_t kMaxListEntries = 4096;   // drives, interfaces, args, env entries
inline constexpr std::uint32_t kMaxMemoryRegions = 8;
inline constexpr std::uint32_t kMaxVirtioDevices = 64;
inline constexpr std::uint32_t kMaxQueues = 16;

void encode(Encoder& out, const vmm::VmResources& resources);
[[nodiscard]] Result<vmm::VmResources> decode_resources(Decoder& in);

// One guest RAM region and where its bytes are in the memory file.
struct MemoryRegionState {
  std::uint64_t guest_address = 0;
  std::uint64_t size = 0;
  std::uint64_t file_offset = 0;

  bool operator==(const MemoryRegionState&) const = default;
};
void encode(Encoder& out, const std::vector<MemoryRegionState>& regions);
[[nodiscard]] Result<std::vector<MemoryRegionState>> decode_memory_regions(Decoder& in);

// A virtio device on the MMIO bus: its transport, and its own State by type.
struct VirtioState {
  std::uint32_t device_id = 0;  // VIRTIO_ID_*: which alternative `device` holds
  devices::virtio::MmioTransport::State transport;
  std::variant<devices::virtio::BlockDevice::State, devices::virtio::NetDevice::State,
               devices::virtio::ConsoleDevice::State>
      device;

  bool operator==(const VirtioState&) const = default;
};

struct DevicesState {
  devices::Serial::State serial;
  devices::I8042::State i8042;
  devices::AcpiPm::State acpi_pm;
  devices::StatusPort::State status_port;
  std::vector<VirtioState> virtio;  // in bus order (the order the command line announces them)

  bool operator==(const DevicesState&) const = default;
};
void encode(Encoder& out, const DevicesState& state);
[[nodiscard]] Result<DevicesState> decode_devices(Decoder& in);

}  // namespace microvm::snapshot
