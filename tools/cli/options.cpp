#include "tools/cli/options.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>

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

Result<devices::virtio::BlockOptions> parse_drive(std::string_view text) {
  const std::vector<std::string_view> parts = split(text, ',');
  devices::virtio::BlockOptions drive;
  drive.path = std::string(parts[0]);
  if (drive.path.empty()) return fail("invalid drive '{}': expected PATH or PATH,ro", text);
  for (std::size_t i = 1; i < parts.size(); ++i) {
    if (parts[i] == "ro")
      drive.read_only = true;
    else if (parts[i] == "rw")
      drive.read_only = false;
    else
      return fail("invalid drive option '{}' in '{}': the only options are ro and rw", parts[i], text);
  }
  return drive;
}

Result<vmm::NetConfig> parse_net(std::string_view text) {
  vmm::NetConfig net;
  for (std::string_view part : split(text, ',')) {
    if (part.starts_with("tap=")) {
      net.tap = std::string(part.substr(4));
    } else if (part.starts_with("mac=")) {
      net.mac = TRY_CONTEXT(fmt::format("--net {}", text), devices::virtio::parse_mac(part.substr(4)));
    } else if (part.starts_with("ip=")) {
      net.address = std::string(part.substr(3));
      if (net.address.find('/') == std::string::npos) {
        return fail("--net {}: ip= needs a prefix length, e.g. ip=169.254.0.2/16", text);
      }
    } else if (part.starts_with("gw=")) {
      net.gateway = std::string(part.substr(3));
    } else if (part.starts_with("dns=")) {
      net.dns = std::string(part.substr(4));
    } else {
      return fail(
          "invalid --net option '{}' in '{}': expected tap=NAME[,mac=MAC][,ip=ADDR/PREFIX][,gw=ADDR][,dns=ADDR]", part,
          text);
    }
  }
  if (net.tap.empty()) return fail("--net {} names no TAP device: expected tap=NAME[,mac=MAC]", text);
  return net;
}

std::string container_spec_json(const StartOptions& options, unsigned stop_grace_ms) {
  const ContainerOptions& c = options.container;
  std::vector<std::string> env;
  const bool has_path =
      std::any_of(c.env.begin(), c.env.end(), [](const std::string& v) { return v.starts_with("PATH="); });
  if (!has_path) env.emplace_back(kDefaultPath);
  env.push_back("HOSTNAME=" + c.hostname);
  env.insert(env.end(), c.env.begin(), c.env.end());
  nlohmann::json network = nlohmann::json::array();
  for (std::size_t i = 0; i < options.machine.nets.size(); ++i) {
    const vmm::NetConfig& net = options.machine.nets[i];
    if (net.address.empty()) continue;
    nlohmann::json interface {
      {"interface", fmt::format("eth{}", i)}, { "address", net.address }
    };
    if (!net.gateway.empty()) interface["gateway"] = net.gateway;
    interface["dns"] = net.dns.empty() ? nlohmann::json::array() : nlohmann::json::array({net.dns});
    network.push_back(interface);
  }
  const nlohmann::json spec{
      {"args", c.command},      {"env", env},
      {"cwd", c.workdir},       {"user", c.user},
      {"hostname", c.hostname}, {"root", {{"device", "/dev/vda"}, {"fstype", "ext4"}, {"writable_overlay", true}}},
      {"network", network},     {"stop_grace_ms", stop_grace_ms},
  };
  return spec.dump();
}

Result<ParsedCommand> parse_command_line(const std::vector<std::string>& args) {
  CLI::App app{"microvm: run a Linux kernel in a KVM microVM", "microvm"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");

  StartOptions start;
  std::string memory = "128M";
  start.machine.cmdline = std::string(kDefaultCmdline);
  start.machine.vcpus = kDefaultVcpus;
  std::string initrd;
  CLI::App* start_cmd = app.add_subcommand("start", "Boot a kernel; the guest's serial console is stdin/stdout");
  start_cmd->add_option("--kernel", start.machine.kernel_path,
                        "Kernel image: ELF vmlinux or bzImage (default: the kernel tools/setup builds)");
  start_cmd->add_option("--initrd", initrd, "Initial ramdisk (cpio archive, optionally compressed)");
  start_cmd->add_option("--cmdline", start.machine.cmdline, "Kernel command line")
      ->default_str(std::string(kDefaultCmdline));
  start_cmd->add_option("--cpus", start.machine.vcpus, "Number of vCPUs")->default_str("1");
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
                        "network-interfaces; microvm's container)");
  start_cmd->add_option("--metrics-file", start.metrics_file,
                        "Write the VM's metrics (as GET /microvm/metrics: exits, devices, boot markers) to this "
                        "JSON file when the VM ends, and on the API's FlushMetrics");
  start_cmd->add_option("--write-initramfs", start.write_initramfs,
                        "Container mode: write the initramfs microvm would boot (microvm-init and the spec for "
                        "-- CMD) to this file, print the kernel command line and exit without starting a VM, e.g. to "
                        "run the same init under another VMM");
  ContainerOptions& container = start.container;
  start_cmd->add_option("--env,-e", container.env, "Container mode: set K=V for the workload (repeatable)")
      ->allow_extra_args(false);
  start_cmd->add_option("--workdir,-w", container.workdir, "Container mode: the workload's working directory")
      ->default_str("/");
  start_cmd->add_option("--user,-u", container.user, "Container mode: USER[:GROUP] or UID[:GID] to run as");
  start_cmd->add_option("--hostname", container.hostname, "Container mode: the guest's hostname")
      ->default_str(std::string(kDefaultHostname));
  start_cmd->add_option("command", container.command,
                        "Container mode: -- CMD [ARGS...] runs CMD from --rootfs under microvm's init");

  CtlOptions ctl;
  CLI::App* ctl_cmd = app.add_subcommand("ctl", "Drive a running microvm over its API socket");
  ctl_cmd->add_option("--sock", ctl.sock, "The API socket (microvm start --api-sock)")->required();
  ctl_cmd->add_option("action", ctl.action, "status | pause | resume | stop | config | metrics")
      ->required()
      ->check(CLI::IsMember({"status", "pause", "resume", "stop", "config", "metrics"}));

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
      args[0] != ctl_cmd->get_name() && args[0] != rootfs_cmd->get_name()) {
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
    if (e.get_exit_code() == 0) return ParsedCommand{.help = HelpRequested{app.help()}};
    return fail("{}; see 'microvm {} --help'", e.what(),
                ctl_cmd->parsed()      ? "ctl"
                : rootfs_cmd->parsed() ? "rootfs build"
                                       : "start");
  }
  if (ctl_cmd->parsed()) return ParsedCommand{.ctl = ctl};
  if (build_cmd->parsed()) return ParsedCommand{.rootfs_build = rootfs_build};
  if (start_cmd->get_help_ptr() != nullptr && start_cmd->get_help_ptr()->count() > 0) {
    return ParsedCommand{.help = HelpRequested{start_cmd->help()}};
  }
  start.machine.memory_bytes = TRY(parse_memory_size(memory));
  if (!initrd.empty()) start.machine.initrd_path = initrd;
  start.kernel_given = start_cmd->get_option("--kernel")->count() > 0;
  const bool default_cmdline = start_cmd->get_option("--cmdline")->count() == 0;
  const bool container_mode = !container.command.empty();
  if (container_mode) {
    if (container.command.front().empty()) return fail("the container command is empty; see 'microvm start --help'");
    if (!initrd.empty()) return fail("--initrd cannot be combined with a container command (-- CMD)");
    if (default_cmdline) {
      start.machine.cmdline = std::string(kDefaultContainerCmdline);
      if (start.verbose) start.machine.cmdline = "console=ttyS0 reboot=k panic=1 pci=off";
    }
    for (const std::string& variable : container.env) {
      if (variable.empty() || variable.front() == '=') return fail("--env '{}' is not NAME=VALUE", variable);
      if (variable.find('=') == std::string::npos) {
        return fail("--env '{}' has no value: use NAME=VALUE", variable);
      }
    }
    if (!start.write_initramfs.empty() && (!start.api_sock.empty() || !start.config_file.empty())) {
      return fail("--write-initramfs writes a file and exits: it cannot be combined with --api-sock or --config-file");
    }
    if (container.workdir.empty() || container.workdir.front() != '/') {
      return fail("--workdir '{}' must be an absolute path", container.workdir);
    }
  } else if (!start.write_initramfs.empty()) {
    return fail("--write-initramfs needs a container command: microvm start --write-initramfs FILE -- CMD");
  } else if (!start.kernel_given && start.api_sock.empty() && start.config_file.empty()) {
    return fail(
        "--kernel is required unless a container command follows '--' (microvm start -- CMD), or the VM "
        "is configured over --api-sock or by --config-file");
  }
  if (console == "virtio") {
    start.machine.console = vmm::ConsoleKind::kVirtio;
    if (default_cmdline) start.machine.cmdline = std::string(kDefaultVirtioConsoleCmdline);
  }
  if (!rootfs.empty()) {
    devices::virtio::BlockOptions root = TRY_CONTEXT("--rootfs", parse_drive(rootfs));
    root.id = "rootfs";
    // Container mode never writes the image: the init puts a tmpfs overlay on top of it.
    if (container_mode) root.read_only = true;
    // Like Firecracker's is_root_device: the kernel mounts the first drive as /, unless told otherwise
    // (in container mode the init mounts it).
    if (!container_mode && start.machine.cmdline.find("root=") == std::string::npos) {
      start.machine.cmdline += root.read_only ? " root=/dev/vda ro" : " root=/dev/vda rw";
    }
    start.machine.drives.push_back(std::move(root));
  }
  for (const std::string& text : drives) {
    devices::virtio::BlockOptions drive = TRY_CONTEXT("--drive", parse_drive(text));
    drive.id = fmt::format("drive{}", start.machine.drives.size());
    start.machine.drives.push_back(std::move(drive));
  }
  for (const std::string& text : nets) start.machine.nets.push_back(TRY(parse_net(text)));
  return ParsedCommand{.start = start};
}

}  // namespace microvm::cli
