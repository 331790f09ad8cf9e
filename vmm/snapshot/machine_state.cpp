#include "vmm/snapshot/machine_state.h"

#include <linux/virtio_ids.h>

#include <cstring>

#include "base/error.h"

namespace microvm::snapshot {

namespace {

// --- small building blocks ------------------------------------------------------------------------

void encode_optional(Encoder& out, const std::optional<std::string>& value) {
  out.boolean(value.has_value());
  if (value) out.string(*value);
}

Result<std::optional<std::string>> decode_optional(Decoder& in, std::size_t max) {
  if (!TRY(in.boolean())) return std::optional<std::string>();
  return std::optional<std::string>(TRY(in.string(max)));
}

void encode_strings(Encoder& out, const std::vector<std::string>& values) {
  out.u32(static_cast<std::uint32_t>(values.size()));
  for (const std::string& value : values) out.string(value);
}

Result<std::vector<std::string>> decode_strings(Decoder& in, std::string_view thing) {
  const std::uint32_t count = TRY(in.count(kMaxListEntries, thing));
  std::vector<std::string> out;
  for (std::uint32_t i = 0; i < count; ++i) out.push_back(TRY(in.string(kMaxTextBytes)));
  return out;
}

void encode_bytes(Encoder& out, const std::vector<std::uint8_t>& bytes) {
  out.bytes(std::as_bytes(std::span(bytes)));
}

Result<std::vector<std::uint8_t>> decode_bytes(Decoder& in, std::size_t max) {
  const std::span<const std::byte> body = TRY(in.bytes(max));
  std::vector<std::uint8_t> out(body.size());
  std::memcpy(out.data(), body.data(), body.size());
  return out;
}

void encode_optional_u8(Encoder& out, const std::optional<std::uint8_t>& value) {
  out.boolean(value.has_value());
  out.u8(value.value_or(0));
}

Result<std::optional<std::uint8_t>> decode_optional_u8(Decoder& in) {
  const bool present = TRY(in.boolean());
  const std::uint8_t value = TRY(in.u8());
  if (!present) return std::optional<std::uint8_t>();
  return std::optional<std::uint8_t>(value);
}

// --- devices ---------------------------------------------------------------------------------------

void encode_queue(Encoder& out, const devices::virtio::Queue::State& q) {
  out.u16(q.size);
  out.boolean(q.ready);
  out.u64(q.desc_table);
  out.u64(q.avail_ring);
  out.u64(q.used_ring);
  out.boolean(q.event_idx);
  out.boolean(q.indirect);
  out.u16(q.next_avail);
  out.u16(q.next_used);
  out.u16(q.signalled_used);
}

Result<devices::virtio::Queue::State> decode_queue(Decoder& in) {
  devices::virtio::Queue::State q;
  q.size = TRY(in.u16());
  q.ready = TRY(in.boolean());
  q.desc_table = TRY(in.u64());
  q.avail_ring = TRY(in.u64());
  q.used_ring = TRY(in.u64());
  q.event_idx = TRY(in.boolean());
  q.indirect = TRY(in.boolean());
  q.next_avail = TRY(in.u16());
  q.next_used = TRY(in.u16());
  q.signalled_used = TRY(in.u16());
  return q;
}

void encode_transport(Encoder& out, const devices::virtio::MmioTransport::State& t) {
  out.u32(t.status);
  out.u32(t.device_features_select);
  out.u32(t.driver_features_select);
  out.u64(t.driver_features);
  out.u32(t.queue_select);
  out.u32(t.interrupt_status);
  out.u32(t.config_generation);
  out.boolean(t.activated);
  out.boolean(t.device_failed);
  out.u32(static_cast<std::uint32_t>(t.queue_configs.size()));
  for (const auto& c : t.queue_configs) {
    out.u16(c.size);
    out.boolean(c.ready);
    out.u64(c.descriptors);
    out.u64(c.driver_area);
    out.u64(c.device_area);
  }
  out.u32(static_cast<std::uint32_t>(t.queues.size()));
  for (const auto& q : t.queues) encode_queue(out, q);
}

Result<devices::virtio::MmioTransport::State> decode_transport(Decoder& in) {
  devices::virtio::MmioTransport::State t;
  t.status = TRY(in.u32());
  t.device_features_select = TRY(in.u32());
  t.driver_features_select = TRY(in.u32());
  t.driver_features = TRY(in.u64());
  t.queue_select = TRY(in.u32());
  t.interrupt_status = TRY(in.u32());
  t.config_generation = TRY(in.u32());
  t.activated = TRY(in.boolean());
  t.device_failed = TRY(in.boolean());
  const std::uint32_t configs = TRY(in.count(kMaxQueues, "queue configurations"));
  for (std::uint32_t i = 0; i < configs; ++i) {
    devices::virtio::MmioTransport::QueueConfigState c;
    c.size = TRY(in.u16());
    c.ready = TRY(in.boolean());
    c.descriptors = TRY(in.u64());
    c.driver_area = TRY(in.u64());
    c.device_area = TRY(in.u64());
    t.queue_configs.push_back(c);
  }
  const std::uint32_t queues = TRY(in.count(kMaxQueues, "queues"));
  for (std::uint32_t i = 0; i < queues; ++i) t.queues.push_back(TRY(decode_queue(in)));
  return t;
}

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};

void encode_virtio(Encoder& out, const VirtioState& v) {
  out.u32(v.device_id);
  encode_transport(out, v.transport);
  std::visit(Overloaded{
                 [&](const devices::virtio::BlockDevice::State& s) {
                   out.u64(s.capacity_sectors);
                   out.boolean(s.read_only);
                 },
                 [&](const devices::virtio::NetDevice::State& s) { out.raw(s.mac.data(), s.mac.size()); },
                 [&](const devices::virtio::ConsoleDevice::State& s) {
                   encode_bytes(out, s.input);
                   out.u16(s.cols);
                   out.u16(s.rows);
                 },
             },
             v.device);
}

Result<VirtioState> decode_virtio(Decoder& in) {
  VirtioState v;
  v.device_id = TRY(in.u32());
  v.transport = TRY(decode_transport(in));
  switch (v.device_id) {
    case VIRTIO_ID_BLOCK: {
      devices::virtio::BlockDevice::State s;
      s.capacity_sectors = TRY(in.u64());
      s.read_only = TRY(in.boolean());
      v.device = s;
      break;
    }
    case VIRTIO_ID_NET: {
      devices::virtio::NetDevice::State s;
      const std::span<const std::byte> mac = TRY(in.take(s.mac.size()));
      std::memcpy(s.mac.data(), mac.data(), s.mac.size());
      v.device = s;
      break;
    }
    case VIRTIO_ID_CONSOLE: {
      devices::virtio::ConsoleDevice::State s;
      s.input = TRY(decode_bytes(in, devices::virtio::ConsoleDevice::kInputCapacity));
      s.cols = TRY(in.u16());
      s.rows = TRY(in.u16());
      v.device = s;
      break;
    }
    default: return fail("{}: virtio device type {} is not one microvm has", in.what(), v.device_id);
  }
  return v;
}

}  // namespace

// --- resources -------------------------------------------------------------------------------------

void encode(Encoder& out, const vmm::VmResources& r) {
  out.string(r.boot_source.kernel_image_path);
  encode_optional(out, r.boot_source.boot_args);
  encode_optional(out, r.boot_source.initrd_path);
  out.u32(r.machine_config.vcpu_count);
  out.u64(r.machine_config.mem_size_mib);
  out.boolean(r.machine_config.smt);
  out.u32(static_cast<std::uint32_t>(r.drives.size()));
  for (const vmm::DriveConfig& d : r.drives) {
    out.string(d.drive_id);
    out.string(d.path_on_host);
    out.boolean(d.is_root_device);
    out.boolean(d.is_read_only);
  }
  out.u32(static_cast<std::uint32_t>(r.network_interfaces.size()));
  for (const vmm::NetworkInterfaceConfig& n : r.network_interfaces) {
    out.string(n.iface_id);
    out.string(n.host_dev_name);
    encode_optional(out, n.guest_mac);
    encode_optional(out, n.guest_ip);
    encode_optional(out, n.guest_gateway);
    encode_optional(out, n.guest_dns);
  }
  out.boolean(r.container.has_value());
  if (r.container) {
    encode_strings(out, r.container->args);
    encode_strings(out, r.container->env);
    encode_optional(out, r.container->cwd);
    encode_optional(out, r.container->user);
    encode_optional(out, r.container->hostname);
    out.u32(static_cast<std::uint32_t>(r.container->additional_gids.size()));
    for (const std::uint32_t gid : r.container->additional_gids) out.u32(gid);
    out.u32(static_cast<std::uint32_t>(r.container->files.size()));
    for (const vmm::ContainerFile& file : r.container->files) {
      out.string(file.path);
      out.string(file.contents);
      out.u32(file.mode);
    }
    out.boolean(r.container->read_only_root);
  }
  out.u8(r.console == vmm::ConsoleKind::kVirtio ? 1 : 0);
  out.boolean(r.warm_template);  // since version 2
}

Result<vmm::VmResources> decode_resources(Decoder& in) {
  vmm::VmResources r;
  r.boot_source.kernel_image_path = TRY(in.string(kMaxPathBytes));
  r.boot_source.boot_args = TRY(decode_optional(in, kMaxTextBytes));
  r.boot_source.initrd_path = TRY(decode_optional(in, kMaxPathBytes));
  r.machine_config.vcpu_count = TRY(in.u32());
  if (r.machine_config.vcpu_count < vmm::kMinVcpus || r.machine_config.vcpu_count > vmm::kMaxVcpus) {
    return fail("{}: {} vCPUs, microvm supports {} to {}", in.what(), r.machine_config.vcpu_count, vmm::kMinVcpus,
                vmm::kMaxVcpus);
  }
  r.machine_config.mem_size_mib = TRY(in.u64());
  if (r.machine_config.mem_size_mib < vmm::kMinMemoryMib || r.machine_config.mem_size_mib > vmm::kMaxMemoryMib) {
    return fail("{}: {} MiB of guest memory, microvm supports {} MiB to {} MiB", in.what(),
                r.machine_config.mem_size_mib, vmm::kMinMemoryMib, vmm::kMaxMemoryMib);
  }
  r.machine_config.smt = TRY(in.boolean());
  const std::uint32_t drives = TRY(in.count(kMaxListEntries, "drives"));
  for (std::uint32_t i = 0; i < drives; ++i) {
    vmm::DriveConfig d;
    d.drive_id = TRY(in.string(kMaxTextBytes));
    d.path_on_host = TRY(in.string(kMaxPathBytes));
    d.is_root_device = TRY(in.boolean());
    d.is_read_only = TRY(in.boolean());
    TRY_VOID(r.put_drive(d));  // one root drive at most, ids unique
  }
  if (r.drives.size() != drives) return fail("{}: two drives have the same id", in.what());
  const std::uint32_t nets = TRY(in.count(kMaxListEntries, "network interfaces"));
  for (std::uint32_t i = 0; i < nets; ++i) {
    vmm::NetworkInterfaceConfig n;
    n.iface_id = TRY(in.string(kMaxTextBytes));
    n.host_dev_name = TRY(in.string(kMaxTextBytes));
    n.guest_mac = TRY(decode_optional(in, kMaxTextBytes));
    n.guest_ip = TRY(decode_optional(in, kMaxTextBytes));
    n.guest_gateway = TRY(decode_optional(in, kMaxTextBytes));
    n.guest_dns = TRY(decode_optional(in, kMaxTextBytes));
    r.put_network_interface(n);
  }
  if (r.network_interfaces.size() != nets) return fail("{}: two network interfaces have the same id", in.what());
  if (TRY(in.boolean())) {
    vmm::ContainerSpec c;
    c.args = TRY(decode_strings(in, "container arguments"));
    c.env = TRY(decode_strings(in, "container environment entries"));
    c.cwd = TRY(decode_optional(in, kMaxPathBytes));
    c.user = TRY(decode_optional(in, kMaxTextBytes));
    c.hostname = TRY(decode_optional(in, kMaxTextBytes));
    const std::uint32_t gids = TRY(in.count(kMaxListEntries, "container additional gids"));
    for (std::uint32_t i = 0; i < gids; ++i) c.additional_gids.push_back(TRY(in.u32()));
    const std::uint32_t files = TRY(in.count(kMaxListEntries, "container files"));
    for (std::uint32_t i = 0; i < files; ++i) {
      vmm::ContainerFile file;
      file.path = TRY(in.string(kMaxPathBytes));
      file.contents = TRY(in.string(kMaxTextBytes));
      file.mode = TRY(in.u32());
      c.files.push_back(std::move(file));
    }
    c.read_only_root = TRY(in.boolean());
    if (c.args.empty()) return fail("{}: a container with no command", in.what());
    r.container = std::move(c);
  }
  const std::uint8_t console = TRY(in.u8());
  if (console > 1) return fail("{}: console kind {} is neither serial (0) nor virtio (1)", in.what(), console);
  r.console = console == 1 ? vmm::ConsoleKind::kVirtio : vmm::ConsoleKind::kSerial;
  r.warm_template = TRY(in.boolean());
  if (r.warm_template && !r.container) return fail("{}: a warm-start template without container mode", in.what());
  return r;
}

// --- memory ----------------------------------------------------------------------------------------

void encode(Encoder& out, const std::vector<MemoryRegionState>& regions) {
  out.u32(static_cast<std::uint32_t>(regions.size()));
  for (const MemoryRegionState& region : regions) {
    out.u64(region.guest_address);
    out.u64(region.size);
    out.u64(region.file_offset);
  }
}

Result<std::vector<MemoryRegionState>> decode_memory_regions(Decoder& in) {
  const std::uint32_t count = TRY(in.count(kMaxMemoryRegions, "memory regions"));
  if (count == 0) return fail("{}: no guest memory region", in.what());
  std::vector<MemoryRegionState> regions;
  for (std::uint32_t i = 0; i < count; ++i) {
    MemoryRegionState region;
    region.guest_address = TRY(in.u64());
    region.size = TRY(in.u64());
    region.file_offset = TRY(in.u64());
    if (region.size == 0 || region.guest_address + region.size < region.guest_address ||
        region.file_offset + region.size < region.file_offset) {
      return fail("{}: region {} ({:#x}+{:#x} at file offset {:#x}) is empty or wraps around", in.what(), i,
                  region.guest_address, region.size, region.file_offset);
    }
    regions.push_back(region);
  }
  return regions;
}

// --- devices ---------------------------------------------------------------------------------------

void encode(Encoder& out, const DevicesState& s) {
  const devices::Serial::State& serial = s.serial;
  out.u8(serial.ier);
  out.u8(serial.lcr);
  out.u8(serial.mcr);
  out.u8(serial.scratch);
  out.u8(serial.dll);
  out.u8(serial.dlm);
  out.boolean(serial.fifo_enabled);
  out.boolean(serial.thr_empty_interrupt);
  out.boolean(serial.irq_level);
  encode_bytes(out, serial.input);
  encode_optional_u8(out, s.i8042.output);
  encode_optional_u8(out, s.i8042.pending_command);
  out.u8(s.i8042.control);
  out.u16(s.acpi_pm.enable);
  out.u16(s.acpi_pm.control);
  out.boolean(s.status_port.stop_requested);
  out.u32(static_cast<std::uint32_t>(s.virtio.size()));
  for (const VirtioState& v : s.virtio) encode_virtio(out, v);
}

Result<DevicesState> decode_devices(Decoder& in) {
  DevicesState s;
  devices::Serial::State& serial = s.serial;
  serial.ier = TRY(in.u8());
  serial.lcr = TRY(in.u8());
  serial.mcr = TRY(in.u8());
  serial.scratch = TRY(in.u8());
  serial.dll = TRY(in.u8());
  serial.dlm = TRY(in.u8());
  serial.fifo_enabled = TRY(in.boolean());
  serial.thr_empty_interrupt = TRY(in.boolean());
  serial.irq_level = TRY(in.boolean());
  serial.input = TRY(decode_bytes(in, devices::Serial::kInputCapacity));
  s.i8042.output = TRY(decode_optional_u8(in));
  s.i8042.pending_command = TRY(decode_optional_u8(in));
  s.i8042.control = TRY(in.u8());
  s.acpi_pm.enable = TRY(in.u16());
  s.acpi_pm.control = TRY(in.u16());
  s.status_port.stop_requested = TRY(in.boolean());
  const std::uint32_t virtio = TRY(in.count(kMaxVirtioDevices, "virtio devices"));
  for (std::uint32_t i = 0; i < virtio; ++i) s.virtio.push_back(TRY(decode_virtio(in)));
  return s;
}

}  // namespace microvm::snapshot
