#include "tools/cli/options.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <charconv>
#include "base/error.h"
#include "devices/virtio/net.h"
#include "guest/protocol/ipv4.h"
#include "vmm/guest_sampler.h"

namespace microvm::cli {

Result<std::uint64_t> parse_memory_size(std::string_view text) {
  std::uint64_t number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || end == text.data()) {
    return fail("invalid memory size '{}': use a number with an optional K, M, G or T suffix, e.g. 256M", text);
  }
  std::string suffix(end, text.data() + text.size());
  std::transform(suffix.begin(), suffix.end(), suffix.begin(), [](unsigned char c) { return std::toupper(c); });
  unsigned shift = 0;
  if (suffix.empty() || suffix == "M" || suffix == "MB" || suffix == "MIB")
    shift = 20;
  else if (suffix == "G" || suffix == "GB" || suffix == "GIB")
    shift = 30;
  else if (suffix == "K" || suffix == "KB" || suffix == "KIB")
    shift = 10;
  else if (suffix == "T" || suffix == "TB" || suffix == "TIB")
    shift = 40;
  else
    return fail("invalid memory size '{}': unknown suffix '{}' (use K, M, G or T)", text, suffix);
  if (number > (UINT64_MAX >> shift)) return fail("memory size '{}' is too large", text);
  return number << shift;
}

namespace {

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    const std::size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

}  // namespace

Result<vmm::DriveConfig> parse_drive(std::string_view text) {
  const std::vector<std::string_view> parts = split(text, ',');
  vmm::DriveConfig drive;
  drive.path_on_host = std::string(parts[0]);
  if (drive.path_on_host.empty()) return fail("invalid drive '{}': expected PATH or PATH,ro", text);
  for (std::size_t i = 1; i < parts.size(); ++i) {
    if (parts[i] == "ro")
      drive.is_read_only = true;
    else if (parts[i] == "rw")
      drive.is_read_only = false;
    else
      return fail("invalid drive option '{}' in '{}': the only options are ro and rw", parts[i], text);
  }
  return drive;
}

Result<vmm::NetworkInterfaceConfig> parse_net(std::string_view text) {
  vmm::NetworkInterfaceConfig net;
  for (std::string_view part : split(text, ',')) {
    if (part.starts_with("tap=")) {
      net.host_dev_name = std::string(part.substr(4));
    } else if (part.starts_with("mac=")) {
      TRY_CONTEXT(fmt::format("--net {}", text), devices::virtio::parse_mac(part.substr(4)));
      net.guest_mac = std::string(part.substr(4));
    } else if (part.starts_with("ip=")) {
      net.guest_ip = std::string(part.substr(3));
      if (!guest::parse_ipv4_cidr(*net.guest_ip)) {
        return fail("--net {}: ip= needs an IPv4 address and a prefix length, e.g. ip=169.254.0.2/16", text);
      }
    } else if (part.starts_with("gw=")) {
      net.guest_gateway = std::string(part.substr(3));
      if (!guest::parse_ipv4(*net.guest_gateway)) return fail("--net {}: gw= needs an IPv4 address", text);
    } else if (part.starts_with("dns=")) {
      net.guest_dns = std::string(part.substr(4));
      if (!guest::parse_ipv4(*net.guest_dns)) return fail("--net {}: dns= needs an IPv4 address", text);
    } else {
      return fail(
          "invalid --net option '{}' in '{}': expected tap=NAME[,mac=MAC][,ip=ADDR/PREFIX][,gw=ADDR][,dns=ADDR]", part,
          text);
    }
  }
  if (net.host_dev_name.empty()) return fail("--net {} names no TAP device: expected tap=NAME[,mac=MAC]", text);
  return net;
}

Result<ParsedCommand> parse_command_line(const std::vector<std::string>& args) {
  CLI::App app{"microvm: run a Linux kernel in a KVM microVM", "microvm"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");

  StartOptions start;
  std::string memory = "128M";
  std::string kernel, initrd, cmdline, workdir, user, hostname;
  unsigned cpus = vmm::kDefaultVcpus;
  std::vector<std::string> command, env;
  CLI::App* start_cmd = app.add_subcommand("start", "Boot a kernel; the guest's serial console is stdin/stdout");
  start_cmd->add_option("--kernel", kernel,
                        "Kernel image: ELF vmlinux or bzImage (default in container mode: the kernel "
                        "tools/prepare-defaults made)");
  start_cmd->add_option("--initrd", initrd, "Initial ramdisk (cpio archive, optionally compressed)");
  start_cmd->add_option("--cmdline", cmdline, "Kernel command line")
      ->default_str(vmm::VmResources{}.kernel_cmdline(false) +
                    " (container mode: loglevel=1 for quiet; --verbose: neither)");
  start_cmd->add_option("--cpus", cpus, "Number of vCPUs")->default_str("1");
  start_cmd->add_option("--memory", memory, "Guest memory, e.g. 256M or 1G")->default_str("128M");
  std::string rootfs, console = "serial";
  std::vector<std::string> drives, nets;
  start_cmd->add_option("--rootfs", rootfs,
                        "Root filesystem image, PATH[,ro]: the first virtio drive (/dev/vda), with root=/dev/vda "
                        "added to the command line");
  // Repeatable options take one value per occurrence, so "--net X -- CMD ARGS" leaves CMD alone.
  start_cmd->add_option("--drive", drives, "Another virtio drive, PATH[,ro] (repeatable: vdb, vdc, ...)")
      ->allow_extra_args(false);
  start_cmd
      ->add_option("--net", nets,
                   "virtio-net on a host TAP, tap=NAME[,mac=MAC][,ip=ADDR/PREFIX,gw=ADDR,dns=ADDR] (repeatable; "
                   "ip/gw/dns configure the guest in container mode)")
      ->allow_extra_args(false);
  start_cmd->add_option("--console", console, "Guest console: serial (ttyS0) or virtio (hvc0)")
      ->check(CLI::IsMember({"serial", "virtio"}))
      ->default_str("serial");
  start_cmd->add_flag("--verbose,-v", start.verbose, "Log VMM diagnostics to stderr");
  start_cmd->add_option("--api-sock", start.api_sock,
                        "Serve the Firecracker-compatible API on this Unix socket; without --kernel or a command, "
                        "wait for InstanceStart");
  start_cmd->add_option("--config-file", start.config_file,
                        "Boot from a Firecracker-style config file (boot-source, drives, machine-config, "
                        "network-interfaces; microvm's container and console)");
  start_cmd->add_option("--metrics-file", start.metrics_file,
                        "Write the VM's metrics (as GET /microvm/metrics: exits, devices, boot markers) to this "
                        "JSON file when the VM ends, and on the API's FlushMetrics");
  start_cmd->add_option("--write-initramfs", start.write_initramfs,
                        "Container mode: write the initramfs microvm would boot (microvm-init and the spec for "
                        "-- CMD) to this file, print the kernel command line and exit without starting a VM, e.g. to "
                        "run the same init under another VMM");
  start_cmd
      ->add_option("--sample-guest", start.guest_sample_hz,
                   "Sample where the guest runs HZ times a second into the metrics (--metrics-file, GET "
                   "/microvm/metrics: guest_samples), for tools/boot-profile; each sample costs one VM exit")
      ->check(CLI::Range(1U, vmm::GuestSampler::kMaxHz));
  start_cmd->add_option("--restore", start.restore,
                        "Resume the VM saved by 'microvm snapshot --out DIR' from DIR (its configuration is the "
                        "snapshot's: no kernel, drives or command here)");
  bool cold = false;
  start_cmd->add_flag("--cold", cold,
                      "Container mode: boot the kernel from scratch, without the warm-start template (neither "
                      "restore one nor make one)");
  start_cmd->add_option("--env,-e", env, "Container mode: set K=V for the workload (repeatable)")
      ->allow_extra_args(false);
  start_cmd->add_option("--workdir,-w", workdir, "Container mode: the workload's working directory")->default_str("/");
  start_cmd->add_option("--user,-u", user, "Container mode: USER[:GROUP] or UID[:GID] to run as");
  start_cmd->add_option("--hostname", hostname, "Container mode: the guest's hostname")
      ->default_str(std::string(vmm::kDefaultHostname));
  start_cmd->add_option("command", command,
                        "Container mode: -- CMD [ARGS...] runs CMD from --rootfs under microvm's init");

  CtlOptions ctl;
  CLI::App* ctl_cmd = app.add_subcommand("ctl", "Drive a running microvm over its API socket");
  ctl_cmd->add_option("--sock", ctl.sock, "The API socket (microvm start --api-sock)")->required();
  ctl_cmd->add_option("action", ctl.action, "status | pause | resume | stop | config | metrics")
      ->required()
      ->check(CLI::IsMember({"status", "pause", "resume", "stop", "config", "metrics"}));

  SnapshotOptions snapshot;
  CLI::App* snapshot_cmd =
      app.add_subcommand("snapshot", "Save a running microvm (paused first) for 'microvm start --restore DIR'");
  snapshot_cmd->add_option("--sock", snapshot.sock, "The API socket (microvm start --api-sock)")->required();
  snapshot_cmd->add_option("--out", snapshot.out, "The directory for vm.state and vm.mem (made if missing)")
      ->required();
  snapshot_cmd->add_flag("--resume", snapshot.resume, "Resume the VM afterwards (default: it stays paused)");

  RootfsBuildOptions rootfs_build;
  CLI::App* rootfs_cmd = app.add_subcommand("rootfs", "Root filesystem images");
  rootfs_cmd->require_subcommand(1);
  CLI::App* build_cmd = rootfs_cmd->add_subcommand(
      "build", "Make an ext4 image from a directory, a tar (docker export) or a docker save archive");
  build_cmd->add_option("source", rootfs_build.source, "Directory, tar file or docker save archive")->required();
  build_cmd->add_option("-o,--output", rootfs_build.output, "The ext4 image to write")->required();
  build_cmd->add_option("--size", rootfs_build.size, "Image size, e.g. 512M (default: content + 30% + 16 MiB)");
  build_cmd->add_option("--label", rootfs_build.label, "Filesystem label");

  if (!args.empty() && !args[0].starts_with('-') && args[0] != start_cmd->get_name() &&
      args[0] != ctl_cmd->get_name() && args[0] != rootfs_cmd->get_name() && args[0] != snapshot_cmd->get_name()) {
    return fail("unknown command '{}'; see 'microvm --help'", args[0]);
  }
  // CLI11 wants argv order reversed in a vector.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    return ParsedCommand{.help = HelpRequested{app.help()}};
  } catch (const CLI::CallForAllHelp&) {
    return ParsedCommand{.help = HelpRequested{app.help("", CLI::AppFormatMode::All)}};
  } catch (const CLI::ParseError& e) {
    if (start_cmd->parsed() && e.get_exit_code() == 0) return ParsedCommand{.help = HelpRequested{start_cmd->help()}};
    if (ctl_cmd->parsed() && e.get_exit_code() == 0) return ParsedCommand{.help = HelpRequested{ctl_cmd->help()}};
    if (snapshot_cmd->parsed() && e.get_exit_code() == 0) {
      return ParsedCommand{.help = HelpRequested{snapshot_cmd->help()}};
    }
    if (e.get_exit_code() == 0) return ParsedCommand{.help = HelpRequested{app.help()}};
    return fail("{}; see 'microvm {} --help'", e.what(),
                ctl_cmd->parsed()        ? "ctl"
                : snapshot_cmd->parsed() ? "snapshot"
                : rootfs_cmd->parsed()   ? "rootfs build"
                                         : "start");
  }
  if (ctl_cmd->parsed()) return ParsedCommand{.ctl = ctl};
  if (snapshot_cmd->parsed()) return ParsedCommand{.snapshot = snapshot};
  if (build_cmd->parsed()) return ParsedCommand{.rootfs_build = rootfs_build};
  if (start_cmd->get_help_ptr() != nullptr && start_cmd->get_help_ptr()->count() > 0) {
    return ParsedCommand{.help = HelpRequested{start_cmd->help()}};
  }
  const auto given = [start_cmd](const char* name) { return start_cmd->get_option(name)->count() > 0; };
  if (!start.restore.empty()) {
    // The snapshot brings the whole VM: anything that would configure another one is a mistake.
    for (const char* name :
         {"--kernel", "--initrd", "--cmdline", "--cpus", "--memory", "--rootfs", "--drive", "--net", "--console",
          "--config-file", "--write-initramfs", "--env", "--workdir", "--user", "--hostname", "command"}) {
      if (given(name)) {
        return fail("--restore brings the snapshot's whole VM: it cannot be combined with {}",
                    std::string_view(name) == "command" ? "a command (-- CMD)" : name);
      }
    }
    return ParsedCommand{.start = start};
  }
  vmm::VmResources& vm = start.vm;
  if (cpus < vmm::kMinVcpus || cpus > vmm::kMaxVcpus) {
    return fail("--cpus {} is out of range: microvm supports {} to {}", cpus, vmm::kMinVcpus, vmm::kMaxVcpus);
  }
  vm.machine_config.vcpu_count = cpus;
  const std::uint64_t memory_bytes = TRY(parse_memory_size(memory));
  if (memory_bytes % (1ULL << 20) != 0) return fail("--memory {} is not a whole number of MiB", memory);
  if (memory_bytes >> 20 < vmm::kMinMemoryMib) {
    return fail("--memory {} MiB is too small: a Linux guest needs at least {} MiB", memory_bytes >> 20,
                vmm::kMinMemoryMib);
  }
  const auto host_bytes =
      static_cast<std::uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  if (memory_bytes > host_bytes) {
    return fail("--memory {} MiB is more than this host's {} MiB of RAM", memory_bytes >> 20, host_bytes >> 20);
  }
  if (memory_bytes >> 20 > vmm::kMaxMemoryMib) {
    return fail("--memory {} is more than microvm supports ({} MiB)", memory, vmm::kMaxMemoryMib);
  }
  vm.machine_config.mem_size_mib = memory_bytes >> 20;
  vm.boot_source.kernel_image_path = kernel;
  if (given("--cmdline")) vm.boot_source.boot_args = cmdline;
  if (!initrd.empty()) vm.boot_source.initrd_path = initrd;
  vm.console = console == "virtio" ? vmm::ConsoleKind::kVirtio : vmm::ConsoleKind::kSerial;
  const bool container_mode = !command.empty();
  if (container_mode) {
    if (command.front().empty()) return fail("the container command is empty; see 'microvm start --help'");
    if (!initrd.empty()) return fail("--initrd cannot be combined with a container command (-- CMD)");
    for (const std::string& variable : env) {
      if (variable.empty() || variable.front() == '=') return fail("--env '{}' is not NAME=VALUE", variable);
      if (variable.find('=') == std::string::npos) {
        return fail("--env '{}' has no value: use NAME=VALUE", variable);
      }
    }
    if (!start.write_initramfs.empty() && (!start.api_sock.empty() || !start.config_file.empty())) {
      return fail("--write-initramfs writes a file and exits: it cannot be combined with --api-sock or --config-file");
    }
    if (given("--workdir") && (workdir.empty() || workdir.front() != '/')) {
      return fail("--workdir '{}' must be an absolute path", workdir);
    }
    vmm::ContainerSpec spec{command, env, std::nullopt, std::nullopt, std::nullopt};
    if (given("--workdir")) spec.cwd = workdir;
    if (given("--user")) spec.user = user;
    if (given("--hostname")) spec.hostname = hostname;
    vm.container = std::move(spec);
    // Warm start (runtime/warm_start.h) for a command the command line runs; the API's container
    // mode, a config file and --write-initramfs boot as they always did.
    start.warm = !cold && start.api_sock.empty() && start.config_file.empty() && start.write_initramfs.empty();
  } else if (cold) {
    return fail("--cold needs a container command: microvm start --cold -- CMD");
  } else if (!start.write_initramfs.empty()) {
    return fail("--write-initramfs needs a container command: microvm start --write-initramfs FILE -- CMD");
  } else if (kernel.empty() && start.api_sock.empty() && start.config_file.empty()) {
    return fail(
        "--kernel is required unless a container command follows '--' (microvm start -- CMD), or the VM "
        "is configured over --api-sock or by --config-file");
  }
  if (!rootfs.empty()) {
    vmm::DriveConfig root = TRY_CONTEXT("--rootfs", parse_drive(rootfs));
    root.drive_id = std::string(vmm::kCliRootDriveId);
    root.is_root_device = true;
    TRY_VOID(vm.put_drive(root));
  }
  for (const std::string& text : drives) {
    vmm::DriveConfig drive = TRY_CONTEXT("--drive", parse_drive(text));
    drive.drive_id = fmt::format("drive{}", vm.drives.size());
    TRY_VOID(vm.put_drive(drive));
  }
  for (const std::string& text : nets) {
    vmm::NetworkInterfaceConfig net = TRY(parse_net(text));
    net.iface_id = fmt::format("eth{}", vm.network_interfaces.size());
    vm.put_network_interface(net);
  }
  return ParsedCommand{.start = start};
}

}  // namespace microvm::cli
