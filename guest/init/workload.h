// What the init decides about the workload without touching the system: its environment, where its
// executable is, the exit status it reports, and when a requested stop turns into SIGKILL. The
// system calls around these (fork, exec, signals) stay in main.cpp.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace microvm::guest {

// Exit statuses, as `docker run` reports them.
inline constexpr int kExitSetupFailed = 125;    // the init could not start the workload
inline constexpr int kExitCannotExecute = 126;  // found, but not executable (or exec failed)
inline constexpr int kExitNotFound = 127;       // no such executable
inline constexpr int kExitSignalBase = 128;     // killed by signal N: 128 + N

// Docker's PATH for Linux containers, used for the search when the spec's env has no PATH.
inline constexpr std::string_view kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The value of KEY in a "KEY=VALUE" list (the last one wins), or nullopt.
[[nodiscard]] std::optional<std::string_view> env_value(const std::vector<std::string>& env, std::string_view key);

// The workload's environment: `env` with later duplicates replacing earlier ones in place, plus
// HOSTNAME=<hostname> (after a leading PATH, as Docker orders it; not when hostname is empty) and
// HOME=<home> at the end, each unless `env` has it.
[[nodiscard]] std::vector<std::string> workload_environment(const std::vector<std::string>& env,
                                                            std::string_view hostname, std::string_view home);

struct ExecFailure {
  int exit_code = kExitCannotExecute;
  std::string message;  // one line: exec "foo": executable file not found in $PATH
  friend bool operator==(const ExecFailure&, const ExecFailure&) = default;
};

// execvp's search with the workload's PATH (not the init's): a name with a '/' is checked as is;
// otherwise each PATH entry ("" = ".") is tried in order and the first executable regular file wins.
// Uses access(X_OK), so call it with the workload's credentials and working directory.
//   not found anywhere                      -> 127 exec "foo": executable file not found in $PATH
//   "dir/foo" missing                       -> 127 exec "dir/foo": no such file or directory
//   only non-executable files (or a dir/)   -> 126 exec "foo": permission denied / is a directory
struct LookupResult {
  std::optional<std::string> path;
  std::optional<ExecFailure> failure;
};
[[nodiscard]] LookupResult find_executable(std::string_view name, std::string_view path_variable);

// When execve(2) of `name` failed with `err` (a missing ELF interpreter is ENOENT: 127; EACCES,
// ENOEXEC and the rest: 126).
[[nodiscard]] ExecFailure exec_failure(std::string_view name, int err);

// The status the init reports for a waitpid() status: the exit code, or 128 + the signal number.
[[nodiscard]] int exit_status_from_wait(int wait_status);

// A host's stop request: SIGTERM at once, SIGKILL once the grace period has passed.
class StopSequence {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Action { kNone, kTerminate, kKill };

  explicit StopSequence(std::chrono::milliseconds grace) : grace_(grace) {}

  // Called on every loop turn: kTerminate the first time a stop is requested, kKill once when the
  // grace period has passed after that, kNone otherwise.
  [[nodiscard]] Action update(Clock::time_point now, bool stop_requested);
  // When the next kKill is due (for the poll timeout), if one is pending.
  [[nodiscard]] std::optional<Clock::time_point> kill_deadline() const;

 private:
  std::chrono::milliseconds grace_;
  std::optional<Clock::time_point> kill_at_;
  bool killed_ = false;
};

}  // namespace microvm::guest
