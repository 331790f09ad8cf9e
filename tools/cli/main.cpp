// microvm: the command-line front end.
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "tools/cli/options.h"
#include "tools/cli/terminal.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitSignalBase = 128;  // like a shell: 128 + signal number

constexpr int kExitContainerFailure = 125;  // like `docker run`: the runtime failed, not the workload
constexpr unsigned kStopGraceMs = 3000;     // SIGTERM to SIGKILL when microvm is asked to stop

// Where tools/setup puts the default kernel and rootfs: $MICROVM_CACHE, else
// ${XDG_CACHE_HOME:-~/.cache}/microvm, then "default/".
std::string default_asset(std::string_view name) {
  std::string dir;
  if (const char* cache = std::getenv("MICROVM_CACHE"); cache != nullptr && *cache != '\0') {
    dir = cache;
  } else if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    dir = std::string(xdg) + "/microvm";
  } else {
    const char* home = std::getenv("HOME");
    dir = std::string(home != nullptr ? home : "/root") + "/.cache/microvm";
  }
  return fmt::format("{}/default/{}", dir, name);
}

// microvm-init sits next to the microvm binary (the build puts both in build/); MICROVM_INIT overrides.
std::string init_binary() {
  if (const char* path = std::getenv("MICROVM_INIT"); path != nullptr && *path != '\0') return path;
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (ec ? std::filesystem::path(".") : self.parent_path()) / "microvm-init";
}

microvm::Result<void> resolve_defaults(microvm::cli::StartOptions& options) {
  const bool container = !options.container.command.empty();
  if (!options.kernel_given) {
    options.machine.kernel_path = default_asset("vmlinux");
    if (!std::filesystem::exists(options.machine.kernel_path)) {
      return microvm::fail(
          "no --kernel given and the default kernel {} does not exist: run tools/setup, or pass --kernel",
          options.machine.kernel_path);
    }
  }
  if (!container) return {};
  const bool has_root = !options.machine.drives.empty() && options.machine.drives.front().id == "rootfs";
  if (!has_root) {
    const std::string rootfs = default_asset("rootfs.ext4");
    if (!std::filesystem::exists(rootfs)) {
      return microvm::fail(
          "no --rootfs given and the default rootfs {} does not exist: run tools/setup, or pass --rootfs", rootfs);
    }
    options.machine.drives.insert(options.machine.drives.begin(),
                                  microvm::devices::virtio::BlockOptions{rootfs, true, "rootfs"});
  }
  options.machine.container = microvm::vmm::ContainerConfig{
      init_binary(), microvm::cli::container_spec_json(options, kStopGraceMs), kStopGraceMs};
  return {};
}

int container_exit(const microvm::vmm::MachineExit& exit) {
  if (exit.workload_exit_code) return *exit.workload_exit_code;
  if (exit.reason == microvm::vmm::StopReason::kSignal) {
    fmt::print(stderr, "microvm: {}\n", exit.detail);
    return kExitSignalBase + exit.signal;
  }
  fmt::print(stderr, "microvm: error: the guest stopped before its workload finished ({}); its last console lines:\n",
             exit.detail);
  for (const std::string& line : exit.last_console_lines) fmt::print(stderr, "  | {}\n", line);
  return kExitContainerFailure;
}

int run_start(microvm::cli::StartOptions options) {
  if (auto resolved = resolve_defaults(options); !resolved) {
    fmt::print(stderr, "microvm: error: {}\n", resolved.error().message);
    return kExitFailure;
  }
  auto machine = microvm::vmm::Machine::create(options.machine);
  if (!machine) {
    fmt::print(stderr, "microvm: error: {}\n", machine.error().message);
    return kExitFailure;
  }
  microvm::vmm::MachineExit exit;
  {
    microvm::cli::RawTerminal raw(options.machine.console_input);
    exit = (*machine)->run();
  }
  spdlog::info("guest stopped: {}", exit.detail);
  if (options.machine.container) return container_exit(exit);
  switch (exit.reason) {
    case microvm::vmm::StopReason::kPowerOff:
    case microvm::vmm::StopReason::kReboot: return 0;
    case microvm::vmm::StopReason::kSignal:
      fmt::print(stderr, "microvm: {}\n", exit.detail);
      return kExitSignalBase + exit.signal;
    case microvm::vmm::StopReason::kError: break;
  }
  fmt::print(stderr, "microvm: error: {}\n", exit.detail);
  return kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  auto logger = spdlog::stderr_logger_st("microvm");
  logger->set_pattern("microvm: %l: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::warn);

  auto parsed = microvm::cli::parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed) {
    fmt::print(stderr, "microvm: error: {}\n", parsed.error().message);
    return 2;
  }
  if (parsed->help) {
    fmt::print("{}", parsed->help->text);
    return 0;
  }
  if (parsed->start->verbose) spdlog::set_level(spdlog::level::debug);
  return run_start(*parsed->start);
}
