// An OCI bundle (runtime-spec bundle.md, config.md) read into microvm's one configuration. The
// workload's process, root, hostname and resources become a vmm::VmResources in container mode;
// what a VM makes moot is accepted; what would change what the container sees and microvm does not
// do yet is refused with one line naming the field.
//
// Field by field:
//   process.args/env/cwd            the workload (args required; env exactly as given; cwd absolute)
//   process.user.uid/gid            "UID:GID" for microvm-init (HOME from the image's /etc/passwd);
//   process.user.additionalGids     the supplementary groups; umask only 0022 (the guest's default)
//   process.terminal                refused when true: no console socket yet
//   process.oomScoreAdj             applied to the VMM process (the host's OOM killer sees the VM)
//   process.rlimits                 not applied yet (the guest kernel's defaults hold): a warning
//   process.capabilities, noNewPrivileges, apparmorProfile, selinuxLabel, ioPriority, scheduler:
//                                   moot: they confine a process against the host kernel; here the
//                                   workload has a kernel of its own and the VM is the boundary (as
//                                   in Kata Containers, whose guest ignores seccomp by default)
//   root.path (relative to the bundle), root.readonly (the root mounted read-only, no overlay)
//   hostname                        the guest's hostname; domainname refused when set
//   mounts                          proc /proc, sysfs /sys (or rootless runc's bind of /sys), tmpfs
//                                   /dev, devpts /dev/pts, tmpfs or bind /dev/shm, mqueue
//                                   /dev/mqueue, cgroup /sys/fs/cgroup, tmpfs /run: microvm-init
//                                   mounts the guest's own (the guest kernel has no POSIX message
//                                   queues yet, so /dev/mqueue is absent). Bind mounts of a regular
//                                   file on /etc/hosts, /etc/hostname, /etc/resolv.conf or
//                                   /run/.containerenv (the engine's own files): copied into the
//                                   guest at create time. Any other mount: refused.
//   annotations                     microvm.kernel (kernel image), microvm.vcpus, microvm.memory_mib
//                                   (they win over linux.resources)
//   linux.resources.memory.limit    guest RAM, rounded up to a MiB, within vmm::kMinMemoryMib..kMaxMemoryMib
//   linux.resources.cpu             vCPUs: ceil(quota / period), or the CPUs in cpuset "cpus", the
//                                   smaller of the two when both are given, within vmm's limits
//   linux.resources.devices         moot: device cgroup rules; the guest has only its own devices
//   linux.resources (the rest), linux.sysctl: not applied yet (the guest kernel's sysctl defaults
//                                   hold): a warning naming them
//   linux.cgroupsPath               not applied yet: the VMM stays in its caller's cgroup
//   linux.namespaces                pid, ipc, uts, mount, cgroup, time, and network without a path:
//                                   moot, the VM has its own of each (no network device: only lo,
//                                   as in an empty network namespace). A path to join (another
//                                   container's namespace, an engine's network namespace) and
//                                   user namespaces (uidMappings/gidMappings): refused.
//   linux.devices                   refused when not empty
//   linux.seccomp, maskedPaths, readonlyPaths, mountLabel, rootfsPropagation, personality,
//   intelRdt:                       moot (host-kernel confinement, see above)
//   hooks.prestart, createRuntime   run on the host by `create`, in that order, once the VMM exists
//                                   (runtime-spec config.md: the state JSON on stdin; a hook that
//                                   fails or outlives its timeout fails create). Docker puts its
//                                   libnetwork-setkey in prestart of every container.
//   hooks (the others)              refused: createContainer and startContainer would run inside
//                                   the container (the guest), poststart/poststop not yet
// Unknown properties are ignored, as config.md requires of a runtime. A warning is one line for
// the caller's stderr: what the container asked for and will not get, where refusing would turn
// away every container an engine makes (podman sets rlimits and a pids limit on each).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "vmm/vm_resources.h"

namespace microvm::oci {

// The runtime-spec version microvm implements (runc 1.1 says the same).
inline constexpr std::string_view kOciVersion = "1.0.2-dev";
inline constexpr std::string_view kConfigFileName = "config.json";
// Annotations for microvm's own knobs.
inline constexpr std::string_view kKernelAnnotation = "microvm.kernel";
inline constexpr std::string_view kVcpusAnnotation = "microvm.vcpus";
inline constexpr std::string_view kMemoryAnnotation = "microvm.memory_mib";
// A bind-mounted engine file larger than this is refused (they are a few hundred bytes).
inline constexpr std::size_t kMaxCopiedFileBytes = 64 * 1024;
// The longest hook timeout config.json may ask for (a day).
inline constexpr int kMaxHookTimeoutSeconds = 24 * 60 * 60;

// One runtime-spec hook: run on the host with the container's state JSON on stdin.
struct Hook {
  std::string kind;  // "prestart" or "createRuntime"
  std::string path;  // absolute
  std::vector<std::string> args;
  std::vector<std::string> env;
  int timeout_seconds = 0;  // 0: none

  bool operator==(const Hook&) const = default;
};

struct Bundle {
  std::filesystem::path dir;     // absolute
  std::filesystem::path rootfs;  // root.path, absolute
  std::map<std::string, std::string> annotations;
  int oom_score_adj = 0;
  bool has_oom_score_adj = false;
  std::vector<std::string> warnings;  // "config.json: FIELD ...", one line each
  std::vector<Hook> create_hooks;     // hooks.prestart, then hooks.createRuntime
  // Container mode: container, machine_config and (microvm.kernel) boot_source; no root drive yet
  // (the rootfs image is made from `rootfs` at create).
  vmm::VmResources resources;
};

// Reads DIR/config.json.
[[nodiscard]] Result<Bundle> load_bundle(const std::filesystem::path& dir);
// The same from config.json's text; `dir` resolves a relative root.path and is what the state
// reports as the bundle.
[[nodiscard]] Result<Bundle> parse_bundle_config(std::string_view text, const std::filesystem::path& dir);

}  // namespace microvm::oci
