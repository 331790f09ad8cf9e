// The OCI runtime's command line, in the form runc takes it (conmon, containerd's runc shim and
// Docker call a runtime this way; runtime-spec runtime.md names the operations):
//
//   microvm [GLOBAL...] create --bundle B [--pid-file P] [--console-socket S] [--no-pivot] [--no-new-keyring] ID
//   microvm [GLOBAL...] start ID | state ID | kill [--all] ID [SIGNAL] | delete [--force] ID
//   microvm [GLOBAL...] run --bundle B [--pid-file P] [--detach] ID | list [--format table|json] | features
//   microvm --version
//   GLOBAL: --root DIR (default /run/microvm-oci), --log FILE, --log-format text|json, --systemd-cgroup,
//           --debug; runc's --criu PATH and --rootless true|false|auto are accepted and have no effect.
//
// The same binary is microvm's own CLI (tools/cli): is_oci_invocation() tells the two apart.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace microvm::oci {

// runc's default is /run/runc; ours is our own so the two never share state.
inline constexpr std::string_view kDefaultRoot = "/run/microvm-oci";

enum class LogFormat { kText, kJson };

struct GlobalOptions {
  std::string root = std::string(kDefaultRoot);
  std::string log;  // --log: errors are appended here too
  LogFormat log_format = LogFormat::kText;
  bool systemd_cgroup = false;  // accepted: the VMM stays in the caller's cgroup (README)
  bool debug = false;
};

enum class Verb { kCreate, kStart, kState, kKill, kDelete, kRun, kList, kFeatures, kVersion };

struct OciCommand {
  GlobalOptions global;
  Verb verb = Verb::kVersion;
  std::string id;
  // create, run
  std::string bundle = ".";  // runc's default: the current directory
  std::string pid_file;
  std::string console_socket;
  bool no_pivot = false;        // accepted: the guest's init switches root itself
  bool no_new_keyring = false;  // accepted: the guest kernel's keyrings are its own
  bool detach = false;          // run
  // kill
  int signal = 15;  // SIGTERM, runc's default
  bool all = false;
  // delete
  bool force = false;
  // list
  bool json = false;
};

// Whether argv is the OCI runtime's rather than microvm's own CLI: argv[0]'s basename is
// microvm-oci or runc; or a runc global flag (or --version) comes before the verb; or the verb is
// one only the OCI runtime has (create, state, kill, delete, run, list, features, and the runc verbs
// we do not implement yet, so that they get a clear error); or it is `start` with exactly one bare
// argument (an ID). `args` is argv without argv[0].
[[nodiscard]] bool is_oci_invocation(std::string_view argv0, const std::vector<std::string>& args);

// Parses the OCI command line (argv without argv[0]). The error is the one line to print.
[[nodiscard]] Result<OciCommand> parse_oci_command_line(const std::vector<std::string>& args);

// "TERM", "SIGTERM", "15", "KILL", ... (kill(1) names; runc accepts the same) -> the signal number.
[[nodiscard]] Result<int> parse_signal(std::string_view text);

}  // namespace microvm::oci
