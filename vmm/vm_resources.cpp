#include "vmm/vm_resources.h"

#include <algorithm>
#include <filesystem>
#include <iterator>

#include "base/error.h"
#include "guest/protocol/ipv4.h"

namespace microvm::vmm {

namespace {

// The parts of the default kernel command line.
constexpr std::string_view kSerialConsoleArg = "console=ttyS0";
constexpr std::string_view kVirtioConsoleArg = "console=hvc0";
// Quiet unless --verbose: every console byte is a VM exit (on the 8250 at least two: the LSR poll
// and the THR write). Container mode lets only emergencies through, so the workload's output is all
// the user sees; a whole system gets the usual `quiet` (errors still show), like a distribution's
// boot entry.
constexpr std::string_view kContainerQuietArg = "loglevel=1";
constexpr std::string_view kSystemQuietArg = "quiet";
// reboot=k: reboot through the i8042 reset line microvm emulates; panic=1: reboot 1 s after a panic;
// pci=off: no PCI probing (microvm has no PCI bus).
constexpr std::string_view kPlatformArgs = "reboot=k panic=1 pci=off";
// What the guest need not probe for, as Firecracker's default boot arguments have it: COM1 is the
// only UART (the 8250 driver would probe three more legacy ports); microvm's i8042 is a reset line
// only, so no AUX port, multiplexer, PnP lookup or keyboard probe; no crypto self-tests. Dotted
// (module) parameters a kernel lacks are ignored, not passed to init (Linux init/main.c).
constexpr std::string_view kNoProbeArgs =
    "8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd cryptomgr.notests";
constexpr std::string_view kRootArg = "root=";
constexpr std::string_view kRootDevice = "/dev/vda";  // the first virtio-blk drive

template <typename T, typename Key>
void put_by_key(std::vector<T>& items, const T& item, Key key) {
  auto same = std::ranges::find_if(items, [&](const T& existing) { return key(existing) == key(item); });
  if (same != items.end()) {
    *same = item;
  } else {
    items.push_back(item);
  }
}

}  // namespace

Result<void> VmResources::put_drive(const DriveConfig& drive) {
  if (drive.is_root_device) {
    for (const DriveConfig& d : drives) {
      if (d.is_root_device && d.drive_id != drive.drive_id) {
        return fail("drive {} is already the root device; only one drive can be", d.drive_id);
      }
    }
  }
  put_by_key(drives, drive, [](const DriveConfig& d) { return d.drive_id; });
  return {};
}

void VmResources::put_network_interface(const NetworkInterfaceConfig& interface) {
  put_by_key(network_interfaces, interface, [](const NetworkInterfaceConfig& n) { return n.iface_id; });
}

std::vector<DriveConfig> VmResources::drives_in_guest_order() const {
  // The root drive first, the others in the order they were added. (Not std::stable_partition:
  // libstdc++ 12's uses get_temporary_buffer, deprecated, which Clang's -Werror refuses.)
  std::vector<DriveConfig> ordered;
  ordered.reserve(drives.size());
  std::ranges::copy_if(drives, std::back_inserter(ordered), [](const DriveConfig& d) { return d.is_root_device; });
  std::ranges::copy_if(drives, std::back_inserter(ordered), [](const DriveConfig& d) { return !d.is_root_device; });
  if (container_mode() && !ordered.empty() && ordered.front().is_root_device) ordered.front().is_read_only = true;
  return ordered;
}

const DriveConfig* VmResources::root_drive() const {
  const auto root = std::ranges::find_if(drives, [](const DriveConfig& d) { return d.is_root_device; });
  return root == drives.end() ? nullptr : &*root;
}

std::string VmResources::kernel_cmdline(bool verbose) const {
  std::string cmdline;
  if (boot_source.boot_args) {
    cmdline = *boot_source.boot_args;
  } else {
    cmdline = console == ConsoleKind::kVirtio ? kVirtioConsoleArg : kSerialConsoleArg;
    if (!verbose) cmdline += fmt::format(" {}", container_mode() ? kContainerQuietArg : kSystemQuietArg);
    cmdline += fmt::format(" {} {}", kPlatformArgs, kNoProbeArgs);
  }
  // Like Firecracker's is_root_device: the kernel mounts the first drive as /, unless told
  // otherwise. In container mode the init mounts it.
  const DriveConfig* root = root_drive();
  if (root != nullptr && !container_mode() && cmdline.find(kRootArg) == std::string::npos) {
    cmdline +=
        fmt::format("{}{}{} {}", cmdline.empty() ? "" : " ", kRootArg, kRootDevice, root->is_read_only ? "ro" : "rw");
  }
  return cmdline;
}

Result<guest::Spec> VmResources::container_spec() const {
  if (!container) return fail_kind(ErrorKind::kInternal, "container_spec() without a container");
  const ContainerSpec& c = *container;
  guest::Spec spec;
  spec.args = c.args;
  const std::string hostname = c.hostname.value_or(std::string(kDefaultHostname));
  const bool has_path = std::ranges::any_of(c.env, [](const std::string& v) { return v.starts_with("PATH="); });
  if (!has_path) spec.env.emplace_back(kDefaultPath);
  spec.env.push_back("HOSTNAME=" + hostname);
  spec.env.insert(spec.env.end(), c.env.begin(), c.env.end());
  spec.cwd = c.cwd.value_or("/");
  spec.user = c.user.value_or("");
  spec.hostname = hostname;
  spec.root = guest::RootSpec{std::string(kRootDevice), "ext4", !c.read_only_root};
  spec.additional_gids = c.additional_gids;
  for (const ContainerFile& file : c.files) spec.files.push_back(guest::FileSpec{file.path, file.contents, file.mode});
  spec.stop_grace_ms = kStopGraceMs;
  for (std::size_t i = 0; i < network_interfaces.size(); ++i) {
    const NetworkInterfaceConfig& net = network_interfaces[i];
    if (!net.guest_ip) continue;
    guest::NetworkSpec entry;
    entry.interface = fmt::format("eth{}", i);
    entry.address = guest::parse_ipv4_cidr(*net.guest_ip);
    if (!entry.address)
      return fail("network interface {}: guest IP {} is not A.B.C.D/PREFIX", net.iface_id, *net.guest_ip);
    if (net.guest_gateway) {
      entry.gateway = guest::parse_ipv4(*net.guest_gateway);
      if (!entry.gateway) {
        return fail("network interface {}: gateway {} is not an IPv4 address", net.iface_id, *net.guest_gateway);
      }
    }
    if (net.guest_dns) {
      const auto dns = guest::parse_ipv4(*net.guest_dns);
      if (!dns) return fail("network interface {}: DNS server {} is not an IPv4 address", net.iface_id, *net.guest_dns);
      entry.dns.push_back(*dns);
    }
    spec.network.push_back(std::move(entry));
  }
  return spec;
}

Result<VmResources> with_defaults(VmResources resources, const HostDefaults& defaults) {
  if (!resources.container_mode()) return resources;
  if (resources.boot_source.kernel_image_path.empty()) {
    if (!std::filesystem::exists(defaults.kernel)) {
      return fail(
          "no kernel given and the default kernel {} does not exist: run tools/prepare-defaults, or pass --kernel",
          defaults.kernel);
    }
    resources.boot_source.kernel_image_path = defaults.kernel;
  }
  if (resources.root_drive() == nullptr) {
    if (!std::filesystem::exists(defaults.rootfs)) {
      return fail(
          "no root drive given and the default rootfs {} does not exist: run tools/prepare-defaults, or pass "
          "--rootfs",
          defaults.rootfs);
    }
    resources.drives.insert(resources.drives.begin(),
                            DriveConfig{std::string(kDefaultRootDriveId), defaults.rootfs, true, true});
  }
  return resources;
}

}  // namespace microvm::vmm
