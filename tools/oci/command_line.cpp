#include "tools/oci/command_line.h"

#include <signal.h>
#include <string.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <charconv>
#include <filesystem>

#include "base/error.h"

namespace microvm::oci {

namespace {

// runc's global flags (urfave/cli, so `--root DIR` and `--root=DIR` alike).
constexpr std::array kGlobalFlags{"--root",  "--log",  "--log-format", "--systemd-cgroup",
                                  "--debug", "--criu", "--rootless"};
constexpr std::array kGlobalFlagsWithValue{"--root", "--log", "--log-format", "--criu", "--rootless"};
// Verbs only the OCI runtime has: what we implement, then runc's others (so they get "not
// supported" rather than microvm's "unknown command").
constexpr std::array kOciOnlyVerbs{"create", "state",  "kill", "delete", "run",    "list",       "features", "exec",
                                   "pause",  "resume", "ps",   "events", "update", "checkpoint", "restore",  "spec"};
constexpr std::array kImplementedVerbs{"create", "start", "state", "kill", "delete", "run", "list", "features"};
constexpr std::array kOciArgv0{"microvm-oci", "runc"};

bool is_global_flag(std::string_view arg) {
  return std::ranges::any_of(kGlobalFlags, [arg](std::string_view flag) {
    return arg == flag || (arg.starts_with(flag) && arg.size() > flag.size() && arg[flag.size()] == '=');
  });
}

bool takes_value(std::string_view arg) {
  return std::ranges::find(kGlobalFlagsWithValue, arg) != kGlobalFlagsWithValue.end();
}

template <std::size_t N>
bool one_of(std::string_view word, const std::array<const char*, N>& words) {
  return std::ranges::any_of(words, [word](std::string_view w) { return w == word; });
}

}  // namespace

bool is_oci_invocation(std::string_view argv0, const std::vector<std::string>& args) {
  if (one_of(std::filesystem::path(argv0).filename().string(), kOciArgv0)) return true;
  if (args.empty()) return false;
  if (is_global_flag(args[0]) || args[0] == "--version") return true;
  if (one_of(args[0], kOciOnlyVerbs)) return true;
  return args[0] == "start" && args.size() == 2 && !args[1].empty() && !args[1].starts_with('-');
}

Result<int> parse_signal(std::string_view text) {
  int number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec == std::errc() && end == text.data() + text.size()) {
    if (number >= 1 && number < NSIG) return number;
    return fail("invalid signal number {}: signals are 1 to {}", number, NSIG - 1);
  }
  std::string name(text);
  std::ranges::transform(name, name.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (name.starts_with("SIG")) name.erase(0, 3);
  for (int signal = 1; signal < SIGRTMIN; ++signal) {
    const char* abbrev = ::sigabbrev_np(signal);
    if (abbrev != nullptr && name == abbrev) return signal;
  }
  return fail("unknown signal '{}': give a name like TERM or KILL, or a number", text);
}

Result<OciCommand> parse_oci_command_line(const std::vector<std::string>& args) {
  OciCommand command;
  GlobalOptions& global = command.global;
  // The global flags, by hand: CLI11 would take `--debug start` as a flag and a subcommand alike,
  // but `--log-format json` must not swallow the verb, and runc takes them only before it.
  std::size_t next = 0;
  std::string log_format = "text";
  for (; next < args.size() && args[next].starts_with("--"); ++next) {
    std::string flag = args[next];
    std::optional<std::string> value;
    if (const auto equals = flag.find('='); equals != std::string::npos) {
      value = flag.substr(equals + 1);
      flag.resize(equals);
    }
    if (flag == "--version") {
      command.verb = Verb::kVersion;
      return command;
    }
    if (!is_global_flag(flag)) return fail("unknown global flag '{}'; see 'microvm --help'", args[next]);
    if (takes_value(flag) && !value) {
      if (next + 1 >= args.size()) return fail("flag {} needs a value", flag);
      value = args[++next];
    }
    if (flag == "--root") global.root = *value;
    if (flag == "--log") global.log = *value;
    if (flag == "--log-format") log_format = *value;
    if (flag == "--systemd-cgroup") global.systemd_cgroup = value.value_or("true") != "false";
    if (flag == "--debug") global.debug = value.value_or("true") != "false";
  }
  if (log_format == "json") {
    global.log_format = LogFormat::kJson;
  } else if (log_format != "text") {
    return fail("--log-format '{}' is not text or json", log_format);
  }
  if (global.root.empty()) return fail("--root must not be empty");
  if (next >= args.size()) return fail("no command given: create, start, state, kill, delete, run, list or features");
  const std::string& verb = args[next];
  if (!one_of(verb, kImplementedVerbs)) {
    if (one_of(verb, kOciOnlyVerbs)) return fail("'{}' is not supported by microvm's OCI runtime yet", verb);
    return fail("unknown command '{}'", verb);
  }

  CLI::App app{"microvm as an OCI runtime", "microvm " + verb};
  std::string signal = "TERM", format = "table";
  bool ignored_flag = false;  // runc flags accepted without effect
  if (verb == "create" || verb == "run") {
    app.add_option("--bundle,-b", command.bundle, "The bundle directory (holds config.json)");
    app.add_option("--pid-file", command.pid_file, "Write the VMM's pid here");
    app.add_option("--console-socket", command.console_socket, "Unix socket for the terminal's master fd");
    app.add_flag("--no-pivot", command.no_pivot, "Accepted (the guest's init switches root)");
    app.add_flag("--no-new-keyring", command.no_new_keyring, "Accepted (the guest kernel's keyrings are its own)");
    if (verb == "run") app.add_flag("--detach,-d", command.detach, "Return once the container runs");
    // runc's flags for features microvm has no counterpart for, accepted as runc does nothing
    // with them either in the common case.
    app.add_flag("--no-subreaper", ignored_flag, "Accepted");
    app.add_option("--preserve-fds", "Accepted when 0")->check(CLI::IsMember({"0"}));
  }
  if (verb == "kill") app.add_flag("--all,-a", command.all, "Signal every process of the container");
  if (verb == "delete") app.add_flag("--force,-f", command.force, "Kill a running container first");
  if (verb == "list") {
    app.add_option("--format,-f", format, "table or json")->check(CLI::IsMember({"table", "json"}));
    app.add_flag("--quiet,-q", ignored_flag, "Accepted");
  }
  if (verb != "list" && verb != "features") app.add_option("id", command.id, "The container ID")->required();
  if (verb == "kill") app.add_option("signal", signal, "Signal name or number (default TERM)");
  std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(next) + 1, args.end());
  std::ranges::reverse(rest);  // CLI11 wants argv order reversed in a vector
  try {
    app.parse(rest);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return fail("{}", app.help());
    return fail("{}: {}", verb, e.what());
  }
  if (verb == "create") command.verb = Verb::kCreate;
  if (verb == "start") command.verb = Verb::kStart;
  if (verb == "state") command.verb = Verb::kState;
  if (verb == "kill") command.verb = Verb::kKill;
  if (verb == "delete") command.verb = Verb::kDelete;
  if (verb == "run") command.verb = Verb::kRun;
  if (verb == "list") command.verb = Verb::kList;
  if (verb == "features") command.verb = Verb::kFeatures;
  if (command.verb == Verb::kKill) command.signal = TRY(parse_signal(signal));
  command.json = format == "json";
  return command;
}

}  // namespace microvm::oci
