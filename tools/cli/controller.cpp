#include "tools/cli/controller.h"

#include <spdlog/spdlog.h>

#include "base/error.h"
#include "runtime/oci/rootfs_image.h"
#include "runtime/warm_start.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace microvm::cli {

namespace {

constexpr const char* kVersion = MICROVM_VERSION;  // CMake's project(VERSION), tools/CMakeLists.txt

// Where tools/prepare-defaults puts the default kernel and rootfs: $MICROVM_CACHE, else
// ${XDG_CACHE_HOME:-~/.cache}/microvm, then "default/". tools/cache-dir is the scripts' side of the
// same rule; tests/e2e/cli-errors checks that the two agree.
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

// The microvm binary running now (part of the warm-start template key).
std::string self_binary() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("/proc/self/exe") : self.string();
}

runtime::TemplateCache template_cache() {
  return runtime::TemplateCache((oci::cache_dir() / "templates").string());
}

double ms_since(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace

vmm::HostDefaults host_defaults() {
  return vmm::HostDefaults{default_asset("vmlinux"), default_asset("rootfs.ext4")};
}

std::string init_binary() {
  if (const char* path = std::getenv("MICROVM_INIT"); path != nullptr && *path != '\0') return path;
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (ec ? std::filesystem::path(".") : self.parent_path()) / "microvm-init";
}

vmm::MachineEnvironment machine_environment(const StartOptions& options) {
  return vmm::MachineEnvironment{options.console_input, options.console_output, options.verbose, init_binary(),
                                 options.guest_sample_hz};
}

VmmController::VmmController(boost::asio::io_context& io, StartOptions options,
                             std::chrono::steady_clock::time_point process_start)
    : io_(io),
      options_(std::move(options)),
      process_start_(process_start),
      configured_(options_.vm != vmm::VmResources{}) {}

Result<void> VmmController::before_start(std::string_view what) {
  if (machine_) return fail_state("cannot change {} after InstanceStart: the VM is {}", what, state());
  configured_ = true;
  return {};
}

std::string VmmController::state() const {
  if (!machine_) return "Not started";
  return machine_->paused() ? "Paused" : "Running";
}

api::InstanceInfo VmmController::instance_info() {
  return api::InstanceInfo{"microvm", state(), kVersion, "microvm"};
}

Result<void> VmmController::put_machine_config(const vmm::MachineSpec& config) {
  TRY_VOID(before_start("the machine configuration"));
  if (config.smt) return fail("smt is not supported: microvm gives each vCPU its own core");
  options_.vm.machine_config = config;
  return {};
}

Result<void> VmmController::put_boot_source(const vmm::BootSource& source) {
  TRY_VOID(before_start("the boot source"));
  options_.vm.boot_source = source;
  return {};
}

Result<void> VmmController::put_drive(const vmm::DriveConfig& drive) {
  TRY_VOID(before_start("drives"));
  return options_.vm.put_drive(drive);
}

Result<void> VmmController::put_network_interface(const vmm::NetworkInterfaceConfig& interface) {
  TRY_VOID(before_start("network interfaces"));
  options_.vm.put_network_interface(interface);
  return {};
}

Result<void> VmmController::put_container(const vmm::ContainerSpec& spec) {
  TRY_VOID(before_start("the container"));
  options_.vm.container = spec;
  return {};
}

Result<void> VmmController::put_console(vmm::ConsoleKind kind) {
  TRY_VOID(before_start("the console"));
  options_.vm.console = kind;
  return {};
}

Result<void> VmmController::start() {
  if (machine_) return fail_state("the VM is already started (InstanceStart was sent before)");
  if (!options_.vm.bootable()) {
    return fail(
        "no boot source: PUT /boot-source with kernel_image_path first (or PUT /microvm/container to run a "
        "command with the default kernel)");
  }
  const vmm::VmResources resources = TRY(vmm::with_defaults(options_.vm, host_defaults()));
  if (resources.container_mode() && options_.warm) return start_warm(resources);
  machine_ = TRY(vmm::Machine::create(resources, machine_environment(options_), io_));
  options_.vm = resources;
  if (resources.container_mode()) {
    supervisor_ = std::make_unique<runtime::ContainerSupervisor>(io_, *machine_, !options_.verbose);
  }
  machine_->start();
  return {};
}

Result<void> VmmController::start_warm(const vmm::VmResources& resources) {
  const runtime::TemplateInputs inputs =
      TRY(runtime::template_inputs(resources, self_binary(), init_binary(), options_.verbose));
  const std::string key = runtime::template_key(inputs);
  template_inputs_ = runtime::describe_inputs(inputs);
  warm_start_ = vmm::MachineMetrics::WarmStart{false, false, key};
  const runtime::TemplateCache cache = template_cache();
  bool replace_usable = false;
  {
    // Shared while the template's files are read and its memory mapped: it is not replaced meanwhile.
    auto lock = cache.lock_shared(key);
    if (!lock) {
      fmt::print(stderr, "microvm: warning: no warm start: {}\n", lock.error().message);
    } else if (const runtime::TemplateCache::Found found = cache.find(key);
               found.state == runtime::TemplateCache::Found::State::kReady) {
      std::vector<vmm::NetworkOverride> overrides;
      for (const vmm::NetworkInterfaceConfig& net : resources.network_interfaces) {
        overrides.push_back({net.iface_id, net.host_dev_name});
      }
      auto restored = vmm::Machine::restore({found.files, overrides}, machine_environment(options_), io_);
      if (restored) {
        machine_ = std::move(*restored);
        return run_restored(resources);
      }
      fmt::print(stderr, "microvm: warning: the warm-start template {} does not restore ({}); making it again\n",
                 cache.template_dir(key), restored.error().message);
      replace_usable = true;
    } else if (found.state == runtime::TemplateCache::Found::State::kBroken) {
      fmt::print(stderr, "microvm: warning: the warm-start template {} is broken ({}); making it again\n",
                 cache.template_dir(key), found.reason);
    }
  }
  // No template (or a broken one): boot one, which this run then continues as its own.
  machine_ = TRY(vmm::Machine::create(inputs.resources, machine_environment(options_), io_));
  options_.vm = resources;
  supervisor_ = std::make_unique<runtime::ContainerSupervisor>(io_, *machine_, !options_.verbose);
  supervisor_->on_spec_wanted([this, resources, replace_usable] { save_template_and_run(resources, replace_usable); });
  machine_->start();
  return {};
}

Result<void> VmmController::run_restored(const vmm::VmResources& resources) {
  TRY_VOID(machine_->begin_run(resources));
  options_.vm = resources;
  supervisor_ = std::make_unique<runtime::ContainerSupervisor>(io_, *machine_, !options_.verbose);
  machine_->start();
  machine_->resume();
  warm_start_->warm = true;
  spdlog::debug("warm start from template {}", warm_start_->template_key);
  return {};
}

void VmmController::save_template_and_run(const vmm::VmResources& resources, bool replace_usable) {
  if (auto paused = machine_->pause(); !paused) {
    machine_->stop(vmm::StopReason::kError, paused.error().context("pausing the template").message);
    return;
  }
  const auto started = std::chrono::steady_clock::now();
  const runtime::TemplateCache cache = template_cache();
  const std::string& key = warm_start_->template_key;
  const auto save = [&]() -> Result<bool> {
    const runtime::TemplateCache::Staging staging = TRY(cache.stage(key));
    if (auto saved = machine_->save_snapshot(staging.files); !saved) {
      cache.discard(staging);
      return std::unexpected(saved.error());
    }
    return cache.publish(staging, key, template_inputs_, replace_usable);
  };
  if (const Result<bool> published = save(); !published) {
    fmt::print(stderr, "microvm: warning: the warm-start template was not saved: {}\n", published.error().message);
  } else if (*published) {
    warm_start_->template_saved = true;
    fmt::print(stderr,
               "microvm: saved the warm-start template {} ({:.0f} ms); later runs like this one start from it\n",
               cache.template_dir(key), ms_since(started, std::chrono::steady_clock::now()));
  }
  if (auto run = machine_->begin_run(resources); !run) {
    machine_->stop(vmm::StopReason::kError, run.error().context("starting the container in the template").message);
    return;
  }
  machine_->resume();
}

vmm::MachineMetrics VmmController::machine_metrics() const {
  vmm::MachineMetrics m = machine_->metrics();
  if (supervisor_) {
    const vmm::BootMarkers guest = supervisor_->markers();
    m.markers.init_started = guest.init_started;
    m.markers.spec_wanted = guest.spec_wanted;
    m.markers.workload_started = guest.workload_started;
    m.markers.workload_exited = guest.workload_exited;
    m.workload_exit_code = supervisor_->exit_code();
  }
  m.warm_start = warm_start_;
  return m;
}

vmm::MachineExit VmmController::finish() {
  return machine_->finish();
}

vmm::VmResources VmmController::vm_config() {
  if (machine_) return machine_->resources();
  auto resolved = vmm::with_defaults(options_.vm, host_defaults());
  return resolved ? *resolved : options_.vm;
}

Result<void> VmmController::send_ctrl_alt_del() {
  if (!machine_) return fail_state("the VM is not started: send InstanceStart first");
  if (container_mode()) {
    supervisor_->request_stop(0);  // the init stops the workload (SIGTERM, then SIGKILL), then the VM
  } else {
    // No keyboard to press: stop it, as if it had powered off.
    machine_->stop(vmm::StopReason::kPowerOff, "the API stopped the VM (SendCtrlAltDel)");
  }
  return {};
}

Result<void> VmmController::flush_metrics() {
  if (options_.metrics_file.empty()) {
    return fail("no metrics file is configured: start microvm with --metrics-file, or read GET /microvm/metrics");
  }
  return write_metrics_file(options_.metrics_file, metrics());
}

Result<void> VmmController::pause() {
  if (!machine_) return fail_state("the VM is not started: send InstanceStart first");
  return machine_->pause();
}

Result<void> VmmController::resume() {
  if (!machine_) return fail_state("the VM is not started: send InstanceStart first");
  machine_->resume();
  return {};
}

Result<void> VmmController::create_snapshot(const api::SnapshotCreateParams& params) {
  if (!machine_) return fail_state("the VM is not started: a snapshot is made of a started VM, paused");
  if (!machine_->paused()) {
    return fail_state("the VM is {}: PATCH /vm {{\"state\": \"Paused\"}} before creating a snapshot", state());
  }
  return machine_->save_snapshot({params.snapshot_path, params.mem_file_path});
}

Result<void> VmmController::load_snapshot(const api::SnapshotLoadParams& params) {
  if (machine_) return fail_state("cannot load a snapshot: the VM is already {}", state());
  if (configured_) {
    return fail_state(
        "loading a snapshot is only possible on a fresh microvm, before any resource is configured (the snapshot "
        "brings its whole configuration)");
  }
  const vmm::SnapshotLoad load{{params.snapshot_path, params.mem_file_path}, params.network_overrides};
  machine_ = TRY(vmm::Machine::restore(load, machine_environment(options_), io_));
  options_.vm = machine_->resources();
  configured_ = true;
  if (options_.vm.container_mode()) {
    supervisor_ = std::make_unique<runtime::ContainerSupervisor>(io_, *machine_, !options_.verbose);
  }
  machine_->start();
  if (params.resume_vm) machine_->resume();
  return {};
}

api::Status VmmController::status() {
  api::Status status{state(), std::nullopt};
  if (supervisor_) status.exit_code = supervisor_->exit_code();
  return status;
}

nlohmann::json VmmController::metrics() {
  if (!machine_) return nlohmann::json{{"state", state()}};
  nlohmann::json out = metrics_json(machine_metrics(), process_start_);
  out["state"] = state();
  return out;
}

nlohmann::json metrics_json(const vmm::MachineMetrics& m, std::chrono::steady_clock::time_point process_start) {
  nlohmann::json out = nlohmann::json::object();
  nlohmann::json exits = nlohmann::json::object();
  for (std::size_t i = 0; i < m.exits.size(); ++i) exits[vmm::kExitNames[i]] = m.exits[i];
  out["vcpu_exits"] = exits;
  // I/O and MMIO exits by port or guest-physical address, most first (tools/boot-profile reads it).
  nlohmann::json by_address = nlohmann::json::array();
  for (const vmm::ExitStats::Entry& e : m.exits_by_address.entries) {
    by_address.push_back(
        {{"kind", vmm::kExitNames[e.kind]}, {"address", fmt::format("{:#x}", e.address)}, {"count", e.count}});
  }
  out["vcpu_exits_by_address"] = by_address;
  out["vcpu_exits_by_address_other"] = m.exits_by_address.other;
  nlohmann::json drives = nlohmann::json::array();
  for (const auto& [drive_id, d] : m.drives) {
    drives.push_back({{"drive_id", drive_id},
                      {"requests", d.requests},
                      {"read_bytes", d.read_bytes},
                      {"written_bytes", d.written_bytes},
                      {"flushes", d.flushes},
                      {"errors", d.errors}});
  }
  out["drives"] = drives;
  nlohmann::json nets = nlohmann::json::array();
  for (const auto& [iface_id, n] : m.nets) {
    nets.push_back({{"iface_id", iface_id},
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
  mark("setup_started_ms", m.markers.setup_started);
  mark("memory_ready_ms", m.markers.memory_ready);
  mark("kernel_loaded_ms", m.markers.kernel_loaded);
  mark("vm_ready_ms", m.markers.vm_ready);
  mark("vcpus_started_ms", m.markers.vcpus_started);
  mark("init_started_ms", m.markers.init_started);
  mark("spec_wanted_ms", m.markers.spec_wanted);
  mark("workload_started_ms", m.markers.workload_started);
  mark("workload_exited_ms", m.markers.workload_exited);
  // Where "ms since microvm started" begins on CLOCK_MONOTONIC (std::chrono::steady_clock on Linux),
  // so a caller on the same host can line the markers up with its own clock.
  markers["process_start_monotonic_ns"] =
      std::chrono::duration_cast<std::chrono::nanoseconds>(process_start.time_since_epoch()).count();
  out["boot_markers"] = markers;
  out["console"] = {{"written_bytes", m.console.written_bytes},
                    {"dropped_bytes", m.console.dropped_bytes},
                    {"buffered_bytes", m.console.buffered_bytes}};
  if (m.workload_exit_code) out["workload_exit_code"] = *m.workload_exit_code;
  if (m.guest_sample_hz > 0) {
    // --sample-guest: [ms since microvm started, vCPU, guest program counter] per sample, by time.
    nlohmann::json samples = nlohmann::json::array();
    for (const vmm::GuestSample& sample : m.guest_samples) {
      samples.push_back(nlohmann::json::array({ms_since(process_start, sample.when), sample.vcpu, sample.pc}));
    }
    out["guest_samples"] = {{"hz", m.guest_sample_hz}, {"dropped", m.guest_samples_dropped}, {"samples", samples}};
  }
  if (m.warm_start) {
    out["warm_start"] = {{"warm", m.warm_start->warm},
                         {"template_saved", m.warm_start->template_saved},
                         {"template_key", m.warm_start->template_key}};
  }
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
