#include "tools/cli/controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace microvm::cli {

namespace {

constexpr unsigned kStopGraceMs = 3000;  // SIGTERM to SIGKILL when microvm is asked to stop
constexpr const char* kRootDriveId = "rootfs";
constexpr const char* kVersion = MICROVM_VERSION;  // CMake's project(VERSION), tools/CMakeLists.txt

// Where tools/prepare-defaults puts the default kernel and rootfs: $MICROVM_CACHE, else
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

std::string format_mac(const devices::virtio::MacAddress& mac) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

// PUT semantics for a list keyed by id (Firecracker's /drives/{id}, /network-interfaces/{id}):
// replaces the entry with the same key, or appends a new one.
template <typename T, typename Key>
void put_by_key(std::vector<T>& items, const T& item, Key key) {
  auto same = std::find_if(items.begin(), items.end(), [&](const T& existing) { return key(existing) == key(item); });
  if (same != items.end()) {
    *same = item;
  } else {
    items.push_back(item);
  }
}

double ms_since(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace

Result<void> resolve_defaults(StartOptions& options) {
  const bool container = !options.container.command.empty();
  if (!options.kernel_given) {
    options.machine.kernel_path = default_asset("vmlinux");
    if (!std::filesystem::exists(options.machine.kernel_path)) {
      return fail(
          "no kernel given and the default kernel {} does not exist: run tools/prepare-defaults, or pass --kernel",
          options.machine.kernel_path);
    }
  }
  if (!container) return {};
  const bool has_root = !options.machine.drives.empty() && options.machine.drives.front().id == kRootDriveId;
  if (!has_root) {
    const std::string rootfs = default_asset("rootfs.ext4");
    if (!std::filesystem::exists(rootfs)) {
      return fail(
          "no root drive given and the default rootfs {} does not exist: run tools/prepare-defaults, or pass "
          "--rootfs",
          rootfs);
    }
    options.machine.drives.insert(options.machine.drives.begin(),
                                  devices::virtio::BlockOptions{rootfs, true, kRootDriveId});
  }
  options.machine.container =
      vmm::ContainerConfig{init_binary(), container_spec_json(options, kStopGraceMs), kStopGraceMs};
  return {};
}

api::VmConfig to_vm_config(const StartOptions& options) {
  api::VmConfig config;
  const vmm::MachineConfig& m = options.machine;
  if (options.kernel_given) config.boot_source = api::BootSource{m.kernel_path, m.cmdline, m.initrd_path};
  config.machine_config.vcpu_count = m.vcpus;
  config.machine_config.mem_size_mib = m.memory_bytes >> 20;
  for (const devices::virtio::BlockOptions& drive : m.drives) {
    config.drives.push_back(api::Drive{drive.id, drive.path, drive.id == kRootDriveId, drive.read_only});
  }
  for (std::size_t i = 0; i < m.nets.size(); ++i) {
    std::optional<std::string> mac;
    if (m.nets[i].mac) mac = format_mac(*m.nets[i].mac);
    config.network_interfaces.push_back(api::NetworkInterface{fmt::format("eth{}", i), m.nets[i].tap, mac});
  }
  if (!options.container.command.empty()) {
    const ContainerOptions& c = options.container;
    config.container = api::ContainerSpec{c.command, c.env, c.workdir, c.user, c.hostname};
  }
  return config;
}

Result<StartOptions> to_start_options(const api::VmConfig& config, const StartOptions& base) {
  StartOptions options;
  options.verbose = base.verbose;
  options.machine.console = base.machine.console;
  options.machine.console_input = base.machine.console_input;
  options.machine.console_output = base.machine.console_output;
  options.machine.vcpus = config.machine_config.vcpu_count;
  options.machine.memory_bytes = config.machine_config.mem_size_mib << 20;
  const bool container = config.container.has_value();
  if (container) {
    const api::ContainerSpec& spec = *config.container;
    options.container.command = spec.args;
    options.container.env = spec.env;
    options.container.workdir = spec.cwd.value_or("/");
    options.container.user = spec.user.value_or("");
    options.container.hostname = spec.hostname.value_or(std::string(kDefaultHostname));
  }
  const bool virtio_console = base.machine.console == vmm::ConsoleKind::kVirtio;
  options.machine.cmdline = std::string(container        ? kDefaultContainerCmdline
                                        : virtio_console ? kDefaultVirtioConsoleCmdline
                                                         : kDefaultCmdline);
  if (config.boot_source) {
    options.kernel_given = true;
    options.machine.kernel_path = config.boot_source->kernel_image_path;
    if (config.boot_source->boot_args) options.machine.cmdline = *config.boot_source->boot_args;
    options.machine.initrd_path = config.boot_source->initrd_path;
  } else if (!container) {
    return fail(
        "no boot source: PUT /boot-source with kernel_image_path first (or PUT /microvm/container to run a "
        "command with the default kernel)");
  }
  // The root drive goes first (/dev/vda), the others in the order they were added.
  std::vector<api::Drive> drives = config.drives;
  std::stable_partition(drives.begin(), drives.end(), [](const api::Drive& d) { return d.is_root_device; });
  for (const api::Drive& drive : drives) {
    devices::virtio::BlockOptions block{drive.path_on_host, drive.is_read_only || (container && drive.is_root_device),
                                        drive.is_root_device ? kRootDriveId : drive.drive_id};
    if (drive.is_root_device && !container && options.machine.cmdline.find("root=") == std::string::npos) {
      options.machine.cmdline += drive.is_read_only ? " root=/dev/vda ro" : " root=/dev/vda rw";
    }
    options.machine.drives.push_back(std::move(block));
  }
  for (const api::NetworkInterface& interface : config.network_interfaces) {
    vmm::NetConfig net;
    net.tap = interface.host_dev_name;
    if (interface.guest_mac) net.mac = TRY(devices::virtio::parse_mac(*interface.guest_mac));
    options.machine.nets.push_back(std::move(net));
  }
  return options;
}

VmmController::VmmController(boost::asio::io_context& io, StartOptions base, api::VmConfig config,
                             std::chrono::steady_clock::time_point process_start)
    : io_(io), base_(std::move(base)), config_(std::move(config)), process_start_(process_start) {}

Result<void> VmmController::before_start(std::string_view what) const {
  if (machine_) return fail("cannot change {} after InstanceStart: the VM is {}", what, state());
  return {};
}

std::string VmmController::state() const {
  if (!machine_) return "Not started";
  return machine_->paused() ? "Paused" : "Running";
}

api::InstanceInfo VmmController::instance_info() {
  return api::InstanceInfo{"microvm", state(), kVersion, "microvm"};
}

Result<void> VmmController::put_machine_config(const api::MachineConfig& config) {
  TRY_VOID(before_start("the machine configuration"));
  if (config.smt) return fail("smt is not supported: microvm gives each vCPU its own core");
  config_.machine_config = config;
  return {};
}

Result<void> VmmController::put_boot_source(const api::BootSource& source) {
  TRY_VOID(before_start("the boot source"));
  config_.boot_source = source;
  return {};
}

Result<void> VmmController::put_drive(const api::Drive& drive) {
  TRY_VOID(before_start("drives"));
  if (drive.is_root_device) {
    for (const api::Drive& d : config_.drives) {
      if (d.is_root_device && d.drive_id != drive.drive_id) {
        return fail("drive {} is already the root device; only one drive can be", d.drive_id);
      }
    }
  }
  put_by_key(config_.drives, drive, [](const api::Drive& d) { return d.drive_id; });
  return {};
}

Result<void> VmmController::put_network_interface(const api::NetworkInterface& interface) {
  TRY_VOID(before_start("network interfaces"));
  put_by_key(config_.network_interfaces, interface, [](const api::NetworkInterface& n) { return n.iface_id; });
  return {};
}

Result<void> VmmController::put_container(const api::ContainerSpec& spec) {
  TRY_VOID(before_start("the container"));
  config_.container = spec;
  return {};
}

Result<void> VmmController::start() {
  if (machine_) return fail("the VM is already started (InstanceStart was sent before)");
  StartOptions options = TRY(to_start_options(config_, base_));
  TRY_VOID(resolve_defaults(options));
  machine_ = TRY(vmm::Machine::create(options.machine, io_));
  container_mode_ = options.machine.container.has_value();
  machine_->start();
  return {};
}

Result<void> VmmController::send_ctrl_alt_del() {
  if (!machine_) return fail("the VM is not started: send InstanceStart first");
  if (container_mode_) {
    machine_->request_workload_stop();  // the init stops the workload (SIGTERM, then SIGKILL), then the VM
  } else {
    machine_->power_off("the API stopped the VM (SendCtrlAltDel)");  // no keyboard to press: stop it
  }
  return {};
}

Result<void> VmmController::flush_metrics() {
  if (base_.metrics_file.empty()) {
    return fail("no metrics file is configured: start microvm with --metrics-file, or read GET /microvm/metrics");
  }
  return write_metrics_file(base_.metrics_file, metrics());
}

Result<void> VmmController::pause() {
  if (!machine_) return fail("the VM is not started: send InstanceStart first");
  return machine_->pause();
}

Result<void> VmmController::resume() {
  if (!machine_) return fail("the VM is not started: send InstanceStart first");
  machine_->resume();
  return {};
}

api::Status VmmController::status() {
  api::Status status{state(), std::nullopt};
  if (machine_) status.exit_code = machine_->metrics().workload_exit_code;
  return status;
}

nlohmann::json VmmController::metrics() {
  if (!machine_) return nlohmann::json{{"state", state()}};
  nlohmann::json out = metrics_json(machine_->metrics(), machine_->config(), process_start_);
  out["state"] = state();
  return out;
}

nlohmann::json metrics_json(const vmm::MachineMetrics& m, const vmm::MachineConfig& config,
                            std::chrono::steady_clock::time_point process_start) {
  nlohmann::json out = nlohmann::json::object();
  nlohmann::json exits = nlohmann::json::object();
  for (std::size_t i = 0; i < m.exits.size(); ++i) exits[vmm::kExitNames[i]] = m.exits[i];
  out["vcpu_exits"] = exits;
  nlohmann::json drives = nlohmann::json::array();
  const auto& drive_config = config.drives;
  for (std::size_t i = 0; i < m.drives.size(); ++i) {
    const auto& d = m.drives[i];
    drives.push_back({{"drive_id", i < drive_config.size() ? drive_config[i].id : ""},
                      {"requests", d.requests},
                      {"read_bytes", d.read_bytes},
                      {"written_bytes", d.written_bytes},
                      {"flushes", d.flushes},
                      {"errors", d.errors}});
  }
  out["drives"] = drives;
  nlohmann::json nets = nlohmann::json::array();
  for (std::size_t i = 0; i < m.nets.size(); ++i) {
    const auto& n = m.nets[i];
    nets.push_back({{"iface_id", fmt::format("eth{}", i)},
                    {"rx_frames", n.rx_frames},
                    {"rx_bytes", n.rx_bytes},
                    {"tx_frames", n.tx_frames},
                    {"tx_bytes", n.tx_bytes},
                    {"rx_dropped", n.rx_dropped},
                    {"tx_dropped", n.tx_dropped}});
  }
  out["network_interfaces"] = nets;
  // Boot markers, in ms since microvm started (null: not reached).
  nlohmann::json markers = nlohmann::json::object();
  auto mark = [&](const char* name, const std::optional<vmm::BootMarkers::TimePoint>& when) {
    markers[name] = when ? nlohmann::json(ms_since(process_start, *when)) : nlohmann::json(nullptr);
  };
  mark("vcpus_started_ms", m.markers.vcpus_started);
  mark("init_started_ms", m.markers.init_started);
  mark("workload_started_ms", m.markers.workload_started);
  mark("workload_exited_ms", m.markers.workload_exited);
  // Where "ms since microvm started" begins on CLOCK_MONOTONIC (std::chrono::steady_clock on Linux),
  // so a caller on the same host can line the markers up with its own clock.
  markers["process_start_monotonic_ns"] =
      std::chrono::duration_cast<std::chrono::nanoseconds>(process_start.time_since_epoch()).count();
  out["boot_markers"] = markers;
  if (m.workload_exit_code) out["workload_exit_code"] = *m.workload_exit_code;
  return out;
}

Result<void> write_metrics_file(const std::string& path, const nlohmann::json& metrics) {
  std::ofstream file(path, std::ios::trunc);
  if (!file) return fail("cannot write the metrics file {}: {}", path, errno_text(errno));
  file << metrics.dump(2) << '\n';
  file.close();
  if (!file) return fail("cannot write the metrics file {}: {}", path, errno_text(errno));
  return {};
}

}  // namespace microvm::cli
