// What the API server drives: plain structs for each resource and the abstract Controller the VMM
// implements. The API knows nothing about KVM; the VMM knows nothing about HTTP or JSON parsing.
//
// Threading contract: every Controller call comes on the io_context thread that runs the Server (the
// VMM's event loop), one at a time. A call must return promptly: it may start work (boot the VM, pause
// the vCPUs) but must not wait for anything slow (guest I/O, a vCPU that does not stop, the network),
// because while it runs no other API client and no other event on that loop is served.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace microvm::api {

// PUT|GET /machine-config (Firecracker's MachineConfiguration).
struct MachineConfig {
  unsigned vcpu_count = 1;           // 1..32
  std::uint64_t mem_size_mib = 128;  // >= 32
  bool smt = false;                  // with smt, vcpu_count is 1 or even

  bool operator==(const MachineConfig&) const = default;
};

// PUT /boot-source (Firecracker's BootSource).
struct BootSource {
  std::string kernel_image_path;
  std::optional<std::string> boot_args;
  std::optional<std::string> initrd_path;

  bool operator==(const BootSource&) const = default;
};

// PUT /drives/{drive_id} (Firecracker's Drive, virtio-block only).
struct Drive {
  std::string drive_id;  // [A-Za-z0-9_]{1,64}
  std::string path_on_host;
  bool is_root_device = false;
  bool is_read_only = false;

  bool operator==(const Drive&) const = default;
};

// PUT /network-interfaces/{iface_id} (Firecracker's NetworkInterface, TAP backend).
struct NetworkInterface {
  std::string iface_id;                  // [A-Za-z0-9_]{1,64}
  std::string host_dev_name;             // TAP device name, 1..15 bytes (IFNAMSIZ - 1)
  std::optional<std::string> guest_mac;  // "xx:xx:xx:xx:xx:xx" (hex, checked)

  bool operator==(const NetworkInterface&) const = default;
};

// PUT /microvm/container (microvm's own): the workload container mode runs.
struct ContainerSpec {
  std::vector<std::string> args;        // argv, non-empty
  std::vector<std::string> env;         // "KEY=VALUE", KEY non-empty
  std::optional<std::string> cwd;       // absolute path
  std::optional<std::string> user;      // "", NAME, UID, NAME:GROUP or UID:GID (the guest resolves it)
  std::optional<std::string> hostname;  // 1..64 bytes

  bool operator==(const ContainerSpec&) const = default;
};

// GET / (Firecracker's InstanceInfo).
struct InstanceInfo {
  std::string id;
  std::string state;  // Firecracker's values: "Not started", "Running", "Paused"
  std::string vmm_version;
  std::string app_name = "microvm";
};

// GET /microvm/status (microvm's own).
struct Status {
  std::string state;             // as InstanceInfo::state, plus whatever the VMM reports after the end
  std::optional<int> exit_code;  // once the workload (or the guest) ended
};

// GET /vm/config, and what a config file (--config-file) holds: Firecracker's full-config shape
// {"boot-source", "drives", "machine-config", "network-interfaces"} plus microvm's "container".
struct VmConfig {
  std::optional<BootSource> boot_source;
  MachineConfig machine_config;
  std::vector<Drive> drives;
  std::vector<NetworkInterface> network_interfaces;
  std::optional<ContainerSpec> container;

  bool operator==(const VmConfig&) const = default;
};

// Implemented by the VMM. The API has validated every field's syntax and range before a put_* call;
// the controller decides everything that depends on state (a second InstanceStart, a drive change
// after start, a path that cannot be opened) and returns an Error, which the client gets as
// 400 {"fault_message": message}. An exception thrown by a call becomes 500 (it is a bug).
class Controller {
 public:
  virtual ~Controller() = default;

  virtual InstanceInfo instance_info() = 0;                                 // GET /, GET /version
  virtual MachineConfig machine_config() = 0;                               // GET /machine-config
  virtual Result<void> put_machine_config(const MachineConfig&) = 0;        // PUT|PATCH /machine-config
  virtual Result<void> put_boot_source(const BootSource&) = 0;              // PUT /boot-source
  virtual Result<void> put_drive(const Drive&) = 0;                         // PUT /drives/{id}
  virtual Result<void> put_network_interface(const NetworkInterface&) = 0;  // PUT /network-interfaces/{id}
  virtual Result<void> put_container(const ContainerSpec&) = 0;             // PUT /microvm/container
  virtual Result<void> start() = 0;                                         // PUT /actions InstanceStart
  virtual Result<void> send_ctrl_alt_del() = 0;                             // PUT /actions SendCtrlAltDel
  virtual Result<void> flush_metrics() = 0;                                 // PUT /actions FlushMetrics
  virtual Result<void> pause() = 0;                                         // PATCH /vm {"state": "Paused"}
  virtual Result<void> resume() = 0;                                        // PATCH /vm {"state": "Resumed"}
  virtual VmConfig vm_config() = 0;                                         // GET /vm/config
  virtual Status status() = 0;                                              // GET /microvm/status
  virtual nlohmann::json metrics() = 0;                                     // GET /microvm/metrics: a JSON object
};

}  // namespace microvm::api
