// What the API tests share: a Controller that records its calls, and helpers to call handle().
#pragma once

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "api/controller.h"
#include "api/handler.h"
#include "base/error.h"

namespace microvm::api::test {

using nlohmann::json;

using namespace std::chrono_literals;

// Records every call; each put/action fails with `fail_with` (of kind `fail_kind_value`) when set.
// Guarded by a mutex because the socket tests call it on the VMM loop's thread and inspect it on the
// test's.
class FakeController : public Controller {
 public:
  InstanceInfo instance_info() override {
    std::lock_guard lock(mutex);
    return InstanceInfo{"vm-1", state, "0.1.0", "microvm"};
  }
  MachineSpec machine_config() override {
    std::lock_guard lock(mutex);
    return config.machine_config;
  }
  Result<void> put_machine_config(const MachineSpec& value) override {
    return record("machine-config", [&] { config.machine_config = value; });
  }
  Result<void> put_boot_source(const BootSource& value) override {
    return record("boot-source", [&] { config.boot_source = value; });
  }
  Result<void> put_drive(const DriveConfig& value) override {
    return record("drive " + value.drive_id, [&] { config.drives.push_back(value); });
  }
  Result<void> put_network_interface(const NetworkInterfaceConfig& value) override {
    return record("iface " + value.iface_id, [&] { config.network_interfaces.push_back(value); });
  }
  Result<void> put_container(const ContainerSpec& value) override {
    return record("container", [&] { config.container = value; });
  }
  Result<void> put_console(ConsoleKind value) override {
    return record("console", [&] { config.console = value; });
  }
  Result<void> start() override {
    return record("start", [&] { state = "Running"; });
  }
  Result<void> send_ctrl_alt_del() override {
    return record("ctrl-alt-del", [] {});
  }
  Result<void> flush_metrics() override {
    return record("flush-metrics", [] {});
  }
  Result<void> pause() override {
    return record("pause", [&] { state = "Paused"; });
  }
  Result<void> resume() override {
    return record("resume", [&] { state = "Running"; });
  }
  Result<void> create_snapshot(const SnapshotCreateParams& value) override {
    return record("snapshot-create " + value.snapshot_path + " " + value.mem_file_path, [&] { created = value; });
  }
  Result<void> load_snapshot(const SnapshotLoadParams& value) override {
    return record("snapshot-load " + value.snapshot_path + " " + value.mem_file_path, [&] {
      loaded = value;
      state = value.resume_vm ? "Running" : "Paused";
    });
  }
  VmResources vm_config() override {
    std::lock_guard lock(mutex);
    return config;
  }
  Status status() override {
    std::lock_guard lock(mutex);
    return Status{state, exit_code};
  }
  json metrics() override {
    std::lock_guard lock(mutex);
    if (throw_on_metrics) throw std::runtime_error("metrics exploded");
    return metrics_value;
  }

  std::vector<std::string> calls_made() {
    std::lock_guard lock(mutex);
    return calls;
  }

  std::mutex mutex;
  std::vector<std::string> calls;
  VmResources config;
  std::optional<SnapshotCreateParams> created;
  std::optional<SnapshotLoadParams> loaded;
  std::string state = "Not started";
  std::optional<int> exit_code;
  std::optional<std::string> fail_with;
  ErrorKind fail_kind_value = ErrorKind::kInvalidArgument;  // the kind of fail_with's error
  json metrics_value = json{{"vcpus", json{{"exits", 12}}}};
  bool throw_on_metrics = false;
  std::chrono::milliseconds delay{0};  // how long each put/action takes (set before any thread calls)

 private:
  template <typename Apply>
  Result<void> record(const std::string& call, Apply apply) {
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    std::lock_guard lock(mutex);
    calls.push_back(call);
    if (fail_with) return fail_kind(fail_kind_value, "{}", *fail_with);
    apply();
    return {};
  }
};

inline Response call(Controller& controller, std::string method, std::string target, std::string body = {}) {
  return handle(controller, Request{std::move(method), std::move(target), std::move(body)});
}

inline json body_of(const Response& response) {
  return json::parse(response.body);
}

inline std::string fault(const Response& response) {
  const json body = json::parse(response.body);
  if (!body.contains("fault_message")) return "<no fault_message in " + response.body + ">";
  return body["fault_message"].get<std::string>();
}

}  // namespace microvm::api::test
