// VmResources: the one configuration of a microVM (Firecracker calls its own the same). The CLI
// parses its flags into it, a --config-file and every API PUT/PATCH patch it, GET /vm/config prints
// it, and the VM builder (Machine::create) consumes it. Nothing else holds VM configuration.
//
// It holds what the user said, field for field (Firecracker's resource shapes plus microvm's own
// container, console and guest-network fields); every default that depends on several fields — the
// kernel command line, which drive is /dev/vda, the container spec the guest's init gets — is
// decided by the functions below, in one place, for every front end.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "guest/protocol/spec.h"

namespace microvm::vmm {

// Limits every front end checks (the CLI and the API name their own flag or field).
inline constexpr unsigned kMinVcpus = 1;
inline constexpr unsigned kMaxVcpus = 32;
inline constexpr std::uint64_t kMinMemoryMib = 32;
// 1 TiB: far above any host microvm runs on, low enough that MiB -> bytes cannot overflow.
inline constexpr std::uint64_t kMaxMemoryMib = 1ULL << 20;
inline constexpr unsigned kDefaultVcpus = 1;
inline constexpr std::uint64_t kDefaultMemoryMib = 128;

// The drive id the CLI gives --rootfs (and so the serial its virtio-blk device reports).
inline constexpr std::string_view kCliRootDriveId = "rootfs";
// Container mode: the workload's PATH unless its env sets one (Docker's default for Linux
// containers), and its hostname unless one is given.
inline constexpr std::string_view kDefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
inline constexpr std::string_view kDefaultHostname = "microvm";
// Container mode: SIGTERM to SIGKILL in the guest when the host asks the workload to stop.
inline constexpr std::uint32_t kStopGraceMs = 3000;

// PUT /boot-source (Firecracker's BootSource).
struct BootSource {
  std::string kernel_image_path;  // empty: the default kernel (container mode only)
  std::optional<std::string> boot_args;
  std::optional<std::string> initrd_path;

  bool operator==(const BootSource&) const = default;
};

// PUT|PATCH /machine-config (Firecracker's MachineConfiguration).
struct MachineSpec {
  unsigned vcpu_count = kDefaultVcpus;
  std::uint64_t mem_size_mib = kDefaultMemoryMib;
  bool smt = false;

  bool operator==(const MachineSpec&) const = default;
};

// PUT /drives/{drive_id} (Firecracker's Drive, virtio-blk).
struct DriveConfig {
  std::string drive_id;
  std::string path_on_host;
  bool is_root_device = false;
  bool is_read_only = false;

  bool operator==(const DriveConfig&) const = default;
};

// PUT /network-interfaces/{iface_id} (Firecracker's NetworkInterface on a TAP), plus microvm's
// container-mode fields: how microvm-init configures the guest's side (ethN in interface order).
struct NetworkInterfaceConfig {
  std::string iface_id;
  std::string host_dev_name;             // the TAP (created when missing)
  std::optional<std::string> guest_mac;  // "xx:xx:xx:xx:xx:xx"; default 02:4d:56:00:00:<position+1>
  std::optional<std::string> guest_ip;   // "A.B.C.D/PREFIX"
  std::optional<std::string> guest_gateway;
  std::optional<std::string> guest_dns;

  bool operator==(const NetworkInterfaceConfig&) const = default;
};

// A small file microvm-init writes into the container's root before the workload starts: how the
// OCI runtime delivers the engine's own files (/etc/hosts, /etc/hostname, /etc/resolv.conf,
// /run/.containerenv), which runc bind-mounts from the host (runtime/oci/bundle.h).
struct ContainerFile {
  std::string path;  // absolute, in the container
  std::string contents;
  std::uint32_t mode = 0644;

  bool operator==(const ContainerFile&) const = default;
};

// PUT /snapshot/load's network_overrides (Firecracker's NetworkOverride): interface `iface_id` of
// the snapshot's configuration gets another TAP.
struct NetworkOverride {
  std::string iface_id;
  std::string host_dev_name;

  bool operator==(const NetworkOverride&) const = default;
};

// PUT /microvm/container (microvm's own): the workload of container mode.
struct ContainerSpec {
  std::vector<std::string> args;  // non-empty
  std::vector<std::string> env;   // "KEY=VALUE"
  std::optional<std::string> cwd;
  std::optional<std::string> user;  // "", NAME, UID, NAME:GROUP or UID:GID (the guest resolves it)
  std::optional<std::string> hostname;
  std::vector<std::uint32_t> additional_gids = {};  // added to the user's supplementary groups (OCI additionalGids)
  std::vector<ContainerFile> files = {};
  bool read_only_root = false;  // no writable overlay: the root is the image, mounted read-only (OCI root.readonly)

  bool operator==(const ContainerSpec&) const = default;
};

enum class ConsoleKind {
  kSerial,  // COM1 (ttyS0)
  kVirtio,  // virtio-console (hvc0); COM1 stays present but gets no host input
};

struct VmResources {
  BootSource boot_source;
  MachineSpec machine_config;
  std::vector<DriveConfig> drives;  // in the order they were added
  std::vector<NetworkInterfaceConfig> network_interfaces;
  std::optional<ContainerSpec> container;
  ConsoleKind console = ConsoleKind::kSerial;
  // Container mode, booted as a warm-start template (runtime/warm_start.h): the initramfs has no
  // spec (microvm-init asks the status port for one) and every drive starts empty (capacity 0,
  // BlockDevice::open_empty) until Machine::begin_run attaches this run's images.
  bool warm_template = false;

  bool operator==(const VmResources&) const = default;

  [[nodiscard]] bool container_mode() const { return container.has_value(); }
  // Whether anything names a kernel: a boot source, or container mode (the default kernel).
  [[nodiscard]] bool bootable() const { return !boot_source.kernel_image_path.empty() || container_mode(); }

  // PUT semantics (Firecracker's): replace the entry with the same id, or append a new one. At most
  // one drive is the root device.
  [[nodiscard]] Result<void> put_drive(const DriveConfig& drive);
  void put_network_interface(const NetworkInterfaceConfig& interface);

  // --- every derived default, decided here ---------------------------------------------------------

  // The drives in the order the guest sees them (vda, vdb, ...): the root drive first, then the
  // others as added. In container mode the root drive is opened read-only: the init puts a tmpfs
  // overlay on top, so the image is never written.
  [[nodiscard]] std::vector<DriveConfig> drives_in_guest_order() const;
  [[nodiscard]] const DriveConfig* root_drive() const;
  // The kernel command line: boot_args when given, else the default for the mode and console
  // (`console=ttyS0|hvc0`; unless `verbose`, `loglevel=1` in container mode and `quiet` for a
  // whole system; `reboot=k panic=1 pci=off`; Firecracker's no-probe parameters for the 8250,
  // i8042 and crypto self-tests); in whole-system mode, `root=/dev/vda rw|ro` for a root drive
  // unless it has a root=.
  [[nodiscard]] std::string kernel_cmdline(bool verbose) const;
  // Container mode: the spec microvm-init gets (guest/protocol/spec.h). Fails on a guest_ip,
  // guest_gateway or guest_dns that is not IPv4 (the front ends check them first).
  [[nodiscard]] Result<guest::Spec> container_spec() const;
};

// Where the defaults of container mode live on this host (tools/prepare-defaults makes them).
struct HostDefaults {
  std::string kernel;  // the default guest kernel
  std::string rootfs;  // the default root filesystem image
};

// The default kernel and root drive of container mode, filled in where the user gave none; an
// error (run tools/prepare-defaults, or pass --kernel/--rootfs) when a needed default is missing.
// Idempotent; whole-system resources are returned unchanged.
[[nodiscard]] Result<VmResources> with_defaults(VmResources resources, const HostDefaults& defaults);

// The drive id of the default rootfs (with_defaults) and of the CLI's --rootfs.
inline constexpr std::string_view kDefaultRootDriveId = kCliRootDriveId;

}  // namespace microvm::vmm
