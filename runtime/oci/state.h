// A container's state on the host (runtime-spec runtime.md "State"): ROOT/ID/ holds
//   state.json   what create recorded (ociVersion, id, pid and its start time, bundle, rootfs,
//                annotations, created; once the VMM ended, its exit status), replaced atomically
//   exec.fifo    present from create until start: the VMM waits on it before it boots the guest
// The status is derived, as runc does: "creating" until create recorded the VMM's pid; then
// "stopped" once that process is gone, a zombie, or another process with the same pid (its start
// time differs); else "created" while exec.fifo exists, "running" after.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace microvm::oci {

inline constexpr std::string_view kStateFileName = "state.json";
inline constexpr std::string_view kExecFifoName = "exec.fifo";

enum class Status { kCreating, kCreated, kRunning, kStopped };
[[nodiscard]] std::string_view to_string(Status status);

struct ContainerState {
  std::string id;
  pid_t pid = 0;                     // the VMM; 0 while creating
  std::uint64_t pid_start_time = 0;  // /proc/PID/stat field 22: tells a reused pid apart
  std::string bundle;
  std::string rootfs;
  std::map<std::string, std::string> annotations;
  std::string created;             // RFC 3339, UTC
  std::optional<int> exit_status;  // recorded by the VMM when it ends

  bool operator==(const ContainerState&) const = default;
};

[[nodiscard]] nlohmann::json to_json(const ContainerState& state);
[[nodiscard]] Result<ContainerState> state_from_json(std::string_view text);

// ROOT/ID/state.json, written to a temporary file and renamed.
[[nodiscard]] Result<void> write_state(const std::filesystem::path& dir, const ContainerState& state);
[[nodiscard]] Result<ContainerState> read_state(const std::filesystem::path& dir);

// The start time of process `pid` (/proc/PID/stat), or nullopt when there is none or it is a zombie.
[[nodiscard]] std::optional<std::uint64_t> live_process_start_time(pid_t pid);
// Whether the state's VMM is the process alive under its pid.
[[nodiscard]] bool vmm_alive(const ContainerState& state);
[[nodiscard]] Status status_of(const ContainerState& state, const std::filesystem::path& dir);

// What `state` prints (runtime-spec's fields, runc's rootfs/created, and exitStatus once known).
[[nodiscard]] nlohmann::json state_report(const ContainerState& state, Status status);

// Now in RFC 3339 with nanoseconds, as runc writes "created".
[[nodiscard]] std::string rfc3339_now();

}  // namespace microvm::oci
