// The VMM side of the API socket: api::Controller over a Machine. Before InstanceStart it patches
// the one configuration (vmm::VmResources: from command-line flags, a --config-file, or PUT
// requests); InstanceStart builds the Machine from it on the event loop; then it pauses, resumes,
// stops and reports it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "api/controller.h"
#include "runtime/container_supervisor.h"
#include "tools/cli/options.h"
#include "vmm/machine.h"

namespace microvm::cli {

// Where the defaults of container mode are on this host: tools/prepare-defaults puts the kernel and
// rootfs in $MICROVM_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/microvm, then "default/".
[[nodiscard]] vmm::HostDefaults host_defaults();
// microvm-init sits next to the microvm binary (the build puts both in build/); MICROVM_INIT overrides.
[[nodiscard]] std::string init_binary();
// What a Machine needs of this process: its console fds, --verbose, the init.
[[nodiscard]] vmm::MachineEnvironment machine_environment(const StartOptions& options);

// The metrics document of GET /microvm/metrics (without "state"): exits by kind, drive and network
// counters, and the boot markers in ms since `process_start`.
[[nodiscard]] nlohmann::json metrics_json(const vmm::MachineMetrics& metrics,
                                          std::chrono::steady_clock::time_point process_start);
// Writes `metrics` to `path` as JSON (--metrics-file), replacing what was there.
[[nodiscard]] Result<void> write_metrics_file(const std::string& path, const nlohmann::json& metrics);

class VmmController final : public api::Controller {
 public:
  // `options.vm` is the configuration the API starts from (the flags', or a --config-file's); the
  // rest of `options` is what only this process knows (console fds, --verbose, --metrics-file).
  VmmController(boost::asio::io_context& io, StartOptions options, std::chrono::steady_clock::time_point process_start);

  [[nodiscard]] vmm::Machine* machine() { return machine_.get(); }
  // Container mode: the workload's exit status once it ended.
  [[nodiscard]] std::optional<int> workload_exit_code() const {
    return supervisor_ ? supervisor_->exit_code() : std::nullopt;
  }
  // After the event loop stopped: joins the VM and says how it ended.
  [[nodiscard]] vmm::MachineExit finish();
  [[nodiscard]] bool container_mode() const { return machine_ != nullptr && machine_->resources().container_mode(); }

  api::InstanceInfo instance_info() override;
  vmm::MachineSpec machine_config() override { return options_.vm.machine_config; }
  Result<void> put_machine_config(const vmm::MachineSpec& config) override;
  Result<void> put_boot_source(const vmm::BootSource& source) override;
  Result<void> put_drive(const vmm::DriveConfig& drive) override;
  Result<void> put_network_interface(const vmm::NetworkInterfaceConfig& interface) override;
  Result<void> put_container(const vmm::ContainerSpec& spec) override;
  Result<void> put_console(vmm::ConsoleKind kind) override;
  Result<void> start() override;
  Result<void> send_ctrl_alt_del() override;
  Result<void> flush_metrics() override;
  Result<void> pause() override;
  Result<void> resume() override;
  // Paused only: the VM to a state file and a memory file (Machine::save_snapshot).
  Result<void> create_snapshot(const api::SnapshotCreateParams& params) override;
  // Only on a fresh process (no VM, nothing configured): the VM of a snapshot, paused unless
  // `resume_vm`; its configuration is the snapshot's (GET /vm/config shows it).
  Result<void> load_snapshot(const api::SnapshotLoadParams& params) override;
  // Before InstanceStart: the configuration with the defaults it would boot with (where they exist);
  // after: what runs.
  vmm::VmResources vm_config() override;
  api::Status status() override;
  nlohmann::json metrics() override;

 private:
  // Before InstanceStart: the check every put_* makes (and marks the configuration as touched,
  // which rules out a snapshot load).
  [[nodiscard]] Result<void> before_start(std::string_view what);
  [[nodiscard]] std::string state() const;
  [[nodiscard]] vmm::MachineMetrics machine_metrics() const;
  // Container mode, warm (runtime/warm_start.h): restores the template of `resources`' key, or boots
  // one and saves it when the init asks for its spec; either way this run then gets `resources`.
  [[nodiscard]] Result<void> start_warm(const vmm::VmResources& resources);
  [[nodiscard]] Result<void> run_restored(const vmm::VmResources& resources);
  // On the event loop, when the template's init waits for its spec: pause, save, publish, go on.
  void save_template_and_run(const vmm::VmResources& resources, bool replace_usable);

  boost::asio::io_context& io_;
  StartOptions options_;
  std::chrono::steady_clock::time_point process_start_;
  bool configured_ = false;  // a put_* was accepted, or the command line configured a VM
  std::optional<vmm::MachineMetrics::WarmStart> warm_start_;  // a warm-start run: what it did
  std::string template_inputs_;                               // and what its key was made of
  // Container mode. Declared before machine_ so that it outlives it: the machine's vCPU threads call
  // into it until the machine is destroyed (which joins them).
  std::unique_ptr<runtime::ContainerSupervisor> supervisor_;
  std::unique_ptr<vmm::Machine> machine_;
};

}  // namespace microvm::cli
