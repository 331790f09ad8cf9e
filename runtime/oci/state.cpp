#include "runtime/oci/state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "runtime/oci/bundle.h"

namespace microvm::oci {

namespace {

// /proc/PID/stat: "pid (comm) state ... starttime" — starttime is field 22, state field 3; comm may
// hold spaces and parentheses, so fields are counted from the last ')'.
constexpr int kStateField = 3;
constexpr int kStartTimeField = 22;

}  // namespace

std::string_view to_string(Status status) {
  switch (status) {
    case Status::kCreating: return "creating";
    case Status::kCreated: return "created";
    case Status::kRunning: return "running";
    case Status::kStopped: return "stopped";
  }
  return "stopped";
}

nlohmann::json to_json(const ContainerState& state) {
  nlohmann::json out = {{"ociVersion", kOciVersion},
                        {"id", state.id},
                        {"pid", state.pid},
                        {"pidStartTime", state.pid_start_time},
                        {"bundle", state.bundle},
                        {"rootfs", state.rootfs},
                        {"annotations", state.annotations},
                        {"created", state.created}};
  if (state.exit_status) out["exitStatus"] = *state.exit_status;
  return out;
}

Result<ContainerState> state_from_json(std::string_view text) {
  try {
    const nlohmann::json json = nlohmann::json::parse(text);
    ContainerState state;
    state.id = json.at("id").get<std::string>();
    state.pid = json.at("pid").get<pid_t>();
    state.pid_start_time = json.at("pidStartTime").get<std::uint64_t>();
    state.bundle = json.at("bundle").get<std::string>();
    state.rootfs = json.at("rootfs").get<std::string>();
    state.annotations = json.at("annotations").get<std::map<std::string, std::string>>();
    state.created = json.at("created").get<std::string>();
    if (json.contains("exitStatus")) state.exit_status = json.at("exitStatus").get<int>();
    return state;
  } catch (const nlohmann::json::exception& e) {
    return fail("the container's state file is damaged: {}", e.what());
  }
}

Result<void> write_state(const std::filesystem::path& dir, const ContainerState& state) {
  const std::filesystem::path target = dir / kStateFileName;
  const std::filesystem::path temp = dir / fmt::format(".{}.{}", kStateFileName, ::getpid());
  {
    std::ofstream file(temp, std::ios::trunc);
    file << to_json(state).dump();
    file.close();
    if (!file) return fail_host("cannot write {}: {}", temp.string(), errno_text(errno));
  }
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    return fail_host("cannot replace {}: {}", target.string(), errno_text(err));
  }
  return {};
}

Result<ContainerState> read_state(const std::filesystem::path& dir) {
  std::ifstream file(dir / kStateFileName);
  if (!file) return fail("cannot read {}: {}", (dir / kStateFileName).string(), errno_text(errno));
  std::stringstream text;
  text << file.rdbuf();
  return state_from_json(text.str());
}

std::optional<std::uint64_t> live_process_start_time(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream file(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(file, line)) return std::nullopt;
  const std::size_t paren = line.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(paren + 1));
  std::string field;
  std::uint64_t start = 0;
  for (int index = kStateField; fields >> field; ++index) {
    if (index == kStateField && (field == "Z" || field == "X")) return std::nullopt;  // exited, not yet reaped
    if (index == kStartTimeField) {
      start = std::stoull(field);
      return start;
    }
  }
  return std::nullopt;
}

bool vmm_alive(const ContainerState& state) {
  const auto start = live_process_start_time(state.pid);
  return start && *start == state.pid_start_time;
}

Status status_of(const ContainerState& state, const std::filesystem::path& dir) {
  if (state.pid == 0) return state.exit_status ? Status::kStopped : Status::kCreating;
  if (!vmm_alive(state)) return Status::kStopped;
  struct stat st {};
  if (::lstat((dir / kExecFifoName).c_str(), &st) == 0) return Status::kCreated;
  return Status::kRunning;
}

nlohmann::json state_report(const ContainerState& state, Status status) {
  nlohmann::json out = {{"ociVersion", kOciVersion},   {"id", state.id},
                        {"status", to_string(status)}, {"pid", status == Status::kStopped ? 0 : state.pid},
                        {"bundle", state.bundle},      {"rootfs", state.rootfs},
                        {"created", state.created},    {"owner", ""}};
  if (!state.annotations.empty()) out["annotations"] = state.annotations;
  if (status == Status::kStopped && state.exit_status) out["exitStatus"] = *state.exit_status;
  return out;
}

std::string rfc3339_now() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  std::tm utc{};
  ::gmtime_r(&now.tv_sec, &utc);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:09}Z", date, now.tv_nsec);
}

}  // namespace microvm::oci
