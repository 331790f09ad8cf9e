// Command-line parsing for `microvm`, kept apart from main() so it is unit-tested.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "vmm/vm_resources.h"

namespace microvm::cli {

// What `microvm start` was asked for: the VM itself (the one configuration, vmm/vm_resources.h)
// and what only this process needs (where the API listens, files it writes, its own console fds).
struct StartOptions {
  vmm::VmResources vm;
  bool verbose = false;
  std::string api_sock;          // --api-sock: serve the API here
  std::string config_file;       // --config-file: Firecracker's full-config JSON (replaces the flags' VM)
  std::string metrics_file;      // --metrics-file: the final metrics JSON goes here (and on FlushMetrics)
  std::string write_initramfs;   // --write-initramfs: container mode, write the init's initramfs and exit
  std::string restore;           // --restore DIR: the VM of `microvm snapshot --out DIR`, resumed (no boot)
  unsigned guest_sample_hz = 0;  // --sample-guest HZ: the guest profile in the metrics (0: off)
  // Container mode from the command line, unless --cold: restore the warm-start template of this
  // configuration, or make it (runtime/warm_start.h).
  bool warm = false;
  int console_input = 0;   // fd the guest's console input comes from; -1 for none
  int console_output = 1;  // fd the guest's console output goes to
};

struct HelpRequested {
  std::string text;
};

// "128M", "1G", "512MiB", "65536K", or a plain number of MiB (like QEMU's -m).
[[nodiscard]] Result<std::uint64_t> parse_memory_size(std::string_view text);

// "PATH" or "PATH,ro" (--drive, --rootfs): path and read-only flag of a drive (id and root set by
// the caller).
[[nodiscard]] Result<vmm::DriveConfig> parse_drive(std::string_view text);
// "tap=NAME[,mac=02:00:00:00:00:01][,ip=ADDR/PREFIX][,gw=ADDR][,dns=ADDR]" (--net; ip/gw/dns are for
// container mode, where microvm's init configures the interface). The iface_id is the caller's.
[[nodiscard]] Result<vmm::NetworkInterfaceConfig> parse_net(std::string_view text);

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

// The two files of a snapshot directory (`microvm snapshot --out DIR`, `microvm start --restore DIR`):
// the state file and the guest memory file of PUT /snapshot/create.
inline constexpr std::string_view kSnapshotStateFile = "vm.state";
inline constexpr std::string_view kSnapshotMemoryFile = "vm.mem";

// `microvm snapshot --sock PATH --out DIR [--resume]`: pause the VM behind the API socket (if it
// runs), write DIR/vm.state and DIR/vm.mem, and resume it only with --resume.
struct SnapshotOptions {
  std::string sock;
  std::string out;
  bool resume = false;
};

struct ParsedCommand {  // exactly one is set
  std::optional<StartOptions> start = std::nullopt;
  std::optional<HelpRequested> help = std::nullopt;
  std::optional<CtlOptions> ctl = std::nullopt;
  std::optional<RootfsBuildOptions> rootfs_build = std::nullopt;
  std::optional<SnapshotOptions> snapshot = std::nullopt;
};
[[nodiscard]] Result<ParsedCommand> parse_command_line(const std::vector<std::string>& args);

}  // namespace microvm::cli
