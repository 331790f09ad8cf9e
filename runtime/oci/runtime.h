// The OCI runtime's operations (runtime-spec runtime.md, in runc's form) over container state dirs
// under ROOT (runtime/oci/state.h). Each call is one short-lived process, except the VMM: `create`
// forks it (it leaves the caller's session with setsid, so the caller's `create` returns while the
// VMM lives on, reparented to the caller's subreaper: conmon or containerd's shim, which reap it
// and read its exit status, the workload's). The VMM waits on exec.fifo until `start`, then boots
// the guest with RunVm — microvm's one run path — and records its exit status before it exits.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "runtime/oci/bundle.h"
#include "vmm/vm_resources.h"

namespace microvm::oci {

// Runs a VM in this process until it ends; returns the process's exit status (the workload's).
using RunVm = std::function<int(vmm::VmResources resources)>;

struct RuntimeEnvironment {
  std::filesystem::path root;            // --root: the state dirs
  std::filesystem::path image_cache;     // rootfs_image.h's cache directory
  std::filesystem::path rootfs_builder;  // tools/rootfs-build
  vmm::HostDefaults defaults;            // the default kernel (the rootfs is always the bundle's)
};

struct CreateRequest {
  std::string id;
  std::filesystem::path bundle;
  std::filesystem::path pid_file;  // empty: none
};

// How long `delete --force` and `kill KILL` users wait for a VMM to be gone.
inline constexpr int kVmmExitWaitMs = 10000;

class Runtime {
 public:
  explicit Runtime(RuntimeEnvironment environment) : env_(std::move(environment)) {}

  // Returns 0 in the caller once the VMM waits for `start`. In the VMM process it returns too,
  // with the VM's exit status, once the VM ended: the process then exits with it.
  [[nodiscard]] Result<int> create(const CreateRequest& request, const RunVm& run_vm);
  [[nodiscard]] Result<void> start(const std::string& id);
  [[nodiscard]] Result<nlohmann::json> state(const std::string& id);
  [[nodiscard]] Result<void> kill(const std::string& id, int signal);
  [[nodiscard]] Result<void> remove(const std::string& id, bool force);
  [[nodiscard]] Result<std::vector<nlohmann::json>> list();
  // create + start; without `detach`, waits for the VMM (forwarding SIGINT, SIGTERM and SIGHUP to
  // it), removes the container as runc run does, and returns the VMM's exit status.
  [[nodiscard]] Result<int> run(const CreateRequest& request, bool detach, const RunVm& run_vm);

  // runtime-spec features.md: what this runtime supports.
  [[nodiscard]] static nlohmann::json features();

 private:
  [[nodiscard]] std::filesystem::path container_dir(const std::string& id) const { return env_.root / id; }
  [[nodiscard]] Result<std::filesystem::path> existing_container(const std::string& id) const;
  // In the forked VMM: wait for start, run the VM, record its exit. Returns its exit status.
  [[nodiscard]] int vmm_main(const std::filesystem::path& dir, vmm::VmResources resources, int fifo_fd,
                             const RunVm& run_vm) const;
  // create without returning in the VMM process: sets `vmm_pid` in the caller.
  [[nodiscard]] Result<int> create_vmm(const CreateRequest& request, const RunVm& run_vm, pid_t& vmm_pid);

  RuntimeEnvironment env_;
};

// Runs `hook` on the host as runtime-spec config.md says: its args and env, `state_json` on its
// stdin, its stdout and stderr on our stderr (the container's stdout stays the workload's); fails
// when it cannot start, exits non-zero, is killed, or outlives its timeout (then it is killed).
[[nodiscard]] Result<void> run_hook(const Hook& hook, const std::string& state_json);

// runc's rule for container IDs: letters, digits, '_', '+', '-', '.', not "." or "..".
[[nodiscard]] Result<void> check_container_id(std::string_view id);

}  // namespace microvm::oci
