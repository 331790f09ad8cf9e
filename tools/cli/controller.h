// The VMM side of the API socket: api::Controller over a Machine. Before InstanceStart it collects
// the configuration (from command-line flags, a --config-file, or PUT requests); InstanceStart
// builds the Machine on the event loop; then it pauses, resumes, stops and reports it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>

#include "api/controller.h"
#include "tools/cli/options.h"
#include "vmm/machine.h"

namespace microvm::cli {

// Fills in what `microvm start` leaves to defaults: the default kernel and rootfs
// (tools/prepare-defaults) and, in container mode, the init and the container spec.
[[nodiscard]] Result<void> resolve_defaults(StartOptions& options);

// The API's view of start options, and back (drives keep their ids; the root drive is "rootfs").
[[nodiscard]] api::VmConfig to_vm_config(const StartOptions& options);
[[nodiscard]] Result<StartOptions> to_start_options(const api::VmConfig& config, const StartOptions& base);

// The metrics document of GET /microvm/metrics (without "state"): exits by kind, drive and network
// counters, and the boot markers in ms since `process_start`.
[[nodiscard]] nlohmann::json metrics_json(const vmm::MachineMetrics& metrics, const vmm::MachineConfig& config,
                                          std::chrono::steady_clock::time_point process_start);
// Writes `metrics` to `path` as JSON (--metrics-file), replacing what was there.
[[nodiscard]] Result<void> write_metrics_file(const std::string& path, const nlohmann::json& metrics);

class VmmController final : public api::Controller {
 public:
  // `base` carries what only flags set (console fds and kind, --verbose); `config` the VM itself.
  VmmController(boost::asio::io_context& io, StartOptions base, api::VmConfig config,
                std::chrono::steady_clock::time_point process_start);

  [[nodiscard]] vmm::Machine* machine() { return machine_.get(); }
  [[nodiscard]] bool container_mode() const { return container_mode_; }

  api::InstanceInfo instance_info() override;
  api::MachineConfig machine_config() override { return config_.machine_config; }
  Result<void> put_machine_config(const api::MachineConfig& config) override;
  Result<void> put_boot_source(const api::BootSource& source) override;
  Result<void> put_drive(const api::Drive& drive) override;
  Result<void> put_network_interface(const api::NetworkInterface& interface) override;
  Result<void> put_container(const api::ContainerSpec& spec) override;
  Result<void> start() override;
  Result<void> send_ctrl_alt_del() override;
  Result<void> flush_metrics() override;
  Result<void> pause() override;
  Result<void> resume() override;
  api::VmConfig vm_config() override { return config_; }
  api::Status status() override;
  nlohmann::json metrics() override;

 private:
  [[nodiscard]] Result<void> before_start(std::string_view what) const;
  [[nodiscard]] std::string state() const;

  boost::asio::io_context& io_;
  StartOptions base_;
  api::VmConfig config_;
  std::chrono::steady_clock::time_point process_start_;
  std::unique_ptr<vmm::Machine> machine_;
  bool container_mode_ = false;
};

}  // namespace microvm::cli
