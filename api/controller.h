// What the API server drives: the abstract Controller the VMM implements, and the plain structs of
// what it reports. The API knows nothing about KVM; the VMM knows nothing about HTTP or JSON parsing.
//
// Threading contract: the Controller is only ever called on the VMM thread, one call at a time. The
// Server (api/http/server.h) does its HTTP I/O on a thread of its own and posts each parsed request
// onto the VMM's event loop, where handle() makes the Controller call; the response goes back to the
// API thread, which writes it. So a Controller needs no locks, and a slow guest or device never
// stalls the API's sockets. A call must still return promptly: it may start work (boot the VM, pause
// the vCPUs) but must not wait for anything slow (guest I/O, a vCPU that does not stop, the network),
// because while it runs every other request, and every other event on the VMM loop, waits (a request
// the loop has not taken within Limits::vmm_timeout is answered 503 and never applied).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "vmm/vm_resources.h"

namespace microvm::api {

// The resources the API reads and writes are the VMM's one configuration (vmm/vm_resources.h).
using vmm::BootSource;
using vmm::ConsoleKind;
using vmm::ContainerSpec;
using vmm::DriveConfig;
using vmm::MachineSpec;
using vmm::NetworkInterfaceConfig;
using vmm::VmResources;

// GET / (Firecracker's InstanceInfo).
struct InstanceInfo {
  std::string id;
  std::string state;  // Firecracker's values: "Not started", "Running", "Paused"
  std::string vmm_version;
  std::string app_name = "microvm";
};

// PUT /snapshot/create (Firecracker's SnapshotCreateParams; only "Full" snapshots).
struct SnapshotCreateParams {
  std::string snapshot_path;  // the state file
  std::string mem_file_path;  // the memory file

  bool operator==(const SnapshotCreateParams&) const = default;
};

// PUT /snapshot/load (Firecracker's SnapshotLoadParams; the memory file from `mem_backend` of type
// File or the older `mem_file_path`).
struct SnapshotLoadParams {
  std::string snapshot_path;
  std::string mem_file_path;
  bool resume_vm = false;
  std::vector<vmm::NetworkOverride> network_overrides;

  bool operator==(const SnapshotLoadParams&) const = default;
};

// GET /microvm/status (microvm's own).
struct Status {
  std::string state;             // as InstanceInfo::state, plus whatever the VMM reports after the end
  std::optional<int> exit_code;  // once the workload (or the guest) ended
};

// Implemented by the VMM. The API has validated every field's syntax and range before a put_* call;
// the controller decides everything that depends on state (a second InstanceStart, a drive change
// after start, a path that cannot be opened) and returns an Error, which the client gets as
// {"fault_message": message} with the status of its kind (http_status, api/status.h: 400 for the
// client's input or timing, 500 for the host, KVM or a bug). An exception thrown by a call becomes
// 500 (it is a bug).
class Controller {
 public:
  virtual ~Controller() = default;

  virtual InstanceInfo instance_info() = 0;                                       // GET /, GET /version
  virtual MachineSpec machine_config() = 0;                                       // GET /machine-config
  virtual Result<void> put_machine_config(const MachineSpec&) = 0;                // PUT|PATCH /machine-config
  virtual Result<void> put_boot_source(const BootSource&) = 0;                    // PUT /boot-source
  virtual Result<void> put_drive(const DriveConfig&) = 0;                         // PUT /drives/{id}
  virtual Result<void> put_network_interface(const NetworkInterfaceConfig&) = 0;  // PUT /network-interfaces/{id}
  virtual Result<void> put_container(const ContainerSpec&) = 0;                   // PUT /microvm/container
  virtual Result<void> put_console(ConsoleKind) = 0;                              // PUT /microvm/console
  virtual Result<void> start() = 0;                                               // PUT /actions InstanceStart
  virtual Result<void> send_ctrl_alt_del() = 0;                                   // PUT /actions SendCtrlAltDel
  virtual Result<void> flush_metrics() = 0;                                       // PUT /actions FlushMetrics
  virtual Result<void> pause() = 0;                                               // PATCH /vm {"state": "Paused"}
  virtual Result<void> resume() = 0;                                              // PATCH /vm {"state": "Resumed"}
  virtual Result<void> create_snapshot(const SnapshotCreateParams&) = 0;          // PUT /snapshot/create
  virtual Result<void> load_snapshot(const SnapshotLoadParams&) = 0;              // PUT /snapshot/load
  virtual VmResources vm_config() = 0;                                            // GET /vm/config
  virtual Status status() = 0;                                                    // GET /microvm/status
  virtual nlohmann::json metrics() = 0;                                           // GET /microvm/metrics: a JSON object
};

}  // namespace microvm::api
