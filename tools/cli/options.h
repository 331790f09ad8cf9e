// Command-line parsing for `microvm`, kept apart from main() so it is unit-tested.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/machine.h"
#include "base/error.h"

namespace microvm::cli {

// The guest command line used when --cmdline is not given: serial console, reboot through the
// i8042 (which microvm emulates), reboot 1 s after a panic, no PCI probing.
inline constexpr std::string_view kDefaultCmdline = "console=ttyS0 reboot=k panic=1 pci=off";
// The same with --console virtio: the guest console is the virtio console's first port.
inline constexpr std::string_view kDefaultVirtioConsoleCmdline = "console=hvc0 reboot=k panic=1 pci=off";
inline constexpr unsigned kDefaultVcpus = 1;
inline constexpr std::uint64_t kDefaultMemoryBytes = 128ULL << 20;

// The command line in container mode (`microvm start ... -- CMD`): the kernel stays quiet so the
// workload's output is all the user sees (--verbose drops "quiet").
inline constexpr std::string_view kDefaultContainerCmdline = "console=ttyS0 loglevel=1 reboot=k panic=1 pci=off";
// The workload's PATH unless --env sets one (Docker's default for Linux containers).
inline constexpr std::string_view kDefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
inline constexpr std::string_view kDefaultHostname = "microvm";

// Container mode: what the workload runs with (guest/protocol/spec.h documents the spec it becomes).
struct ContainerOptions {
  std::vector<std::string> command;  // after "--"; empty: whole-system mode
  std::vector<std::string> env;      // K=V
  std::string workdir = "/";
  std::string user;  // "" (root), NAME, UID, NAME:GROUP, UID:GID
  std::string hostname = std::string(kDefaultHostname);
};

struct StartOptions {
  vmm::MachineConfig machine;
  bool verbose = false;
  std::string api_sock;         // --api-sock: serve the API here
  std::string config_file;      // --config-file: Firecracker's full-config JSON
  std::string metrics_file;     // --metrics-file: the final metrics JSON goes here (and on FlushMetrics)
  std::string write_initramfs;  // --write-initramfs: container mode, write the init's initramfs and exit
  bool kernel_given = false;    // false: use the default kernel (see default_asset)
  ContainerOptions container;
};

// The container spec (/microvm/spec.json in the guest) for these options.
[[nodiscard]] std::string container_spec_json(const StartOptions& options, unsigned stop_grace_ms);

struct HelpRequested {
  std::string text;
};

// "128M", "1G", "512MiB", "65536K", or a plain number of MiB (like QEMU's -m).
[[nodiscard]] Result<std::uint64_t> parse_memory_size(std::string_view text);

// "PATH" or "PATH,ro" (--drive, --rootfs).
[[nodiscard]] Result<devices::virtio::BlockOptions> parse_drive(std::string_view text);
// "tap=NAME[,mac=02:00:00:00:00:01][,ip=ADDR/PREFIX][,gw=ADDR][,dns=ADDR]" (--net; ip/gw/dns are for
// container mode, where microvm's init configures the interface).
[[nodiscard]] Result<vmm::NetConfig> parse_net(std::string_view text);

// Parses argv (without argv[0]). Returns the options for `start`, or help text, or an Error whose
// message is the one line to print.
// `microvm ctl --sock PATH ACTION`: a thin client of the API socket.
struct CtlOptions {
  std::string sock;
  std::string action;  // status, pause, resume, stop, config, metrics
};

// `microvm rootfs build SRC -o IMG [--size S] [--label L]`: tools/rootfs-build does the work.
struct RootfsBuildOptions {
  std::string source;
  std::string output;
  std::string size;
  std::string label;
};

struct ParsedCommand {  // exactly one is set
  std::optional<StartOptions> start = std::nullopt;
  std::optional<HelpRequested> help = std::nullopt;
  std::optional<CtlOptions> ctl = std::nullopt;
  std::optional<RootfsBuildOptions> rootfs_build = std::nullopt;
};
[[nodiscard]] Result<ParsedCommand> parse_command_line(const std::vector<std::string>& args);

}  // namespace microvm::cli
