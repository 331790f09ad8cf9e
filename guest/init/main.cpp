// microvm-init: PID 1 of a container-mode microVM. Reads /microvm/spec.json from the initramfs,
// assembles the container's root from the image drive, runs the one workload the spec names the
// way `docker run` would, reaps every process, forwards signals, honours the host's stop request
// (status port), reports the workload's exit status and powers the VM off. It never returns from
// main: PID 1 exiting panics the kernel.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "guest/init/files.h"
#include "guest/init/system.h"
#include "guest/init/workload.h"
#include "guest/protocol/spec.h"
#include "guest/protocol/status_port.h"
#include "guest/protocol/user.h"

namespace microvm::guest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using status_port::Event;

constexpr auto kStatusPollInterval = 100ms;  // how often the host's stop request is looked at
constexpr auto kReapAllTimeout = 2s;         // after kill(-1, SIGKILL), for the last zombies
constexpr std::size_t kMaxAccountFileBytes = 16U << 20;
constexpr unsigned kWorkdirMode = 0755;

// Signals PID 1 handles through its signalfd: SIGCHLD, and those it passes on to the workload.
constexpr int kForwardedSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT};

sigset_t supervised_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  for (const int signal : kForwardedSignals) sigaddset(&set, signal);
  return set;
}

// Everything the workload's process needs, resolved before the fork.
struct Workload {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string path_variable;  // the PATH to search args[0] in
  std::string cwd;
  Credentials credentials;
};

// The forked child: becomes the workload or exits with Docker's status for why it could not.
[[noreturn]] void exec_workload(const Workload& workload) {
  const auto die = [](int code, const std::string& message) {
    sys::print_error(message);
    ::_exit(code);
  };
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::setsid();
  sys::StatusPort::drop_access();

  const int null = ::open("/dev/null", O_RDONLY);
  if (null < 0 || ::dup2(null, STDIN_FILENO) < 0) die(kExitSetupFailed, "cannot open /dev/null for stdin");
  if (null != STDIN_FILENO) ::close(null);

  const Credentials& who = workload.credentials;
  const std::vector<gid_t> groups(who.supplementary_gids.begin(), who.supplementary_gids.end());
  if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(who.gid) != 0 || ::setuid(who.uid) != 0) {
    const int err = errno;
    die(kExitSetupFailed, "cannot switch to uid " + std::to_string(who.uid) + " gid " + std::to_string(who.gid) + ": " +
                              std::strerror(err));
  }
  if (::chdir(workload.cwd.c_str()) != 0) {
    const int err = errno;
    die(kExitSetupFailed, "cannot enter the working directory " + in_quotes(workload.cwd) + ": " + std::strerror(err));
  }

  const LookupResult found = find_executable(workload.args.front(), workload.path_variable);
  if (!found.path) die(found.failure->exit_code, found.failure->message);
  std::vector<char*> argv;
  for (const std::string& arg : workload.args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& entry : workload.env) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);
  ::execve(found.path->c_str(), argv.data(), envp.data());
  const ExecFailure failure = exec_failure(workload.args.front(), errno);
  die(failure.exit_code, failure.message);
  __builtin_unreachable();
}

// Reaps every child that has exited; returns the workload's exit status once it is among them.
std::optional<int> reap(pid_t workload) {
  std::optional<int> workload_status;
  int status = 0;
  pid_t pid = 0;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    if (pid == workload) workload_status = exit_status_from_wait(status);
  }
  return workload_status;
}

// Signals that arrived since the last call; SIGCHLD only wakes the loop up.
std::vector<int> read_signals(int signal_fd) {
  std::vector<int> signals;
  signalfd_siginfo info{};
  while (::read(signal_fd, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
    if (info.ssi_signo != SIGCHLD) signals.push_back(static_cast<int>(info.ssi_signo));
  }
  return signals;
}

int poll_timeout_ms(Clock::time_point now, Clock::time_point until) {
  if (until <= now) return 0;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(until - now).count());
}

// PID 1's loop while the workload runs: reaps, forwards signals, and turns the host's stop request
// into SIGTERM, then SIGKILL after the grace period. Returns the workload's exit status.
int supervise(pid_t workload, int signal_fd, const sys::StatusPort& port, std::chrono::milliseconds grace) {
  StopSequence stop(grace);
  Clock::time_point next_status_poll = Clock::now();
  while (true) {
    if (const auto status = reap(workload)) return *status;
    const Clock::time_point now = Clock::now();
    bool stop_requested = false;
    if (now >= next_status_poll) {
      stop_requested = port.stop_requested();
      next_status_poll = now + kStatusPollInterval;
    }
    switch (stop.update(now, stop_requested)) {
      case StopSequence::Action::kTerminate: ::kill(workload, SIGTERM); break;
      case StopSequence::Action::kKill: ::kill(workload, SIGKILL); break;
      case StopSequence::Action::kNone: break;
    }
    Clock::time_point wake = next_status_poll;
    if (const auto deadline = stop.kill_deadline(); deadline && *deadline < wake) wake = *deadline;
    pollfd fds{signal_fd, POLLIN, 0};
    if (::poll(&fds, 1, poll_timeout_ms(now, wake)) > 0) {
      for (const int signal : read_signals(signal_fd)) ::kill(workload, signal);
    }
  }
}

// Kills whatever the workload left behind and reaps it (bounded: a process stuck in the kernel
// must not keep the VM up).
void kill_everything(int signal_fd) {
  ::kill(-1, SIGKILL);
  const Clock::time_point deadline = Clock::now() + kReapAllTimeout;
  while (true) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) continue;
    if (pid < 0) return;  // ECHILD: nobody left
    const Clock::time_point now = Clock::now();
    if (now >= deadline || signal_fd < 0) return;
    pollfd fds{signal_fd, POLLIN, 0};
    if (::poll(&fds, 1, poll_timeout_ms(now, deadline)) > 0) (void)read_signals(signal_fd);
  }
}

[[noreturn]] void finish(const sys::StatusPort& port, int signal_fd, int exit_status) {
  kill_everything(signal_fd);
  sys::drain_console(STDOUT_FILENO);
  ::sync();  // the VMM may end the VM the moment it has the report (status_port.h)
  port.report(Event::kWorkloadExited, static_cast<std::uint32_t>(exit_status));
  sys::power_off();
}

Result<Workload> prepare_workload(const Spec& spec) {
  auto passwd = read_optional_file("/etc/passwd", kMaxAccountFileBytes);
  if (!passwd) return std::unexpected(passwd.error());
  auto group = read_optional_file("/etc/group", kMaxAccountFileBytes);
  if (!group) return std::unexpected(group.error());
  const auto as_view = [](const std::optional<std::string>& text) {
    return text ? std::optional<std::string_view>(*text) : std::nullopt;
  };
  auto credentials = resolve_user(spec.user, as_view(*passwd), as_view(*group));
  if (!credentials) return std::unexpected(credentials.error());
  for (const std::uint32_t gid : spec.additional_gids) {
    std::vector<std::uint32_t>& groups = credentials->supplementary_gids;
    if (std::find(groups.begin(), groups.end(), gid) == groups.end()) groups.push_back(gid);
  }
  if (auto made = sys::make_directories(spec.cwd, kWorkdirMode); !made) {
    return std::unexpected(made.error().context("working directory"));
  }
  Workload workload;
  workload.args = spec.args;
  workload.env = workload_environment(spec.env, spec.hostname, credentials->home);
  workload.path_variable = std::string(env_value(spec.env, "PATH").value_or(kDefaultPath));
  workload.cwd = spec.cwd;
  workload.credentials = std::move(*credentials);
  return workload;
}

// Steps 3-7: everything from reading the spec to the workload's end. An error here is the init's
// own failure (status 125).
Result<int> run(const sys::StatusPort& port, int signal_fd) {
  // A template boot (the initramfs says so) gets its spec from the host: possibly much later, in a
  // VM restored from a snapshot of this very moment (runtime/warm_start.h).
  const bool from_host = ::access(std::string(kSpecFromHostPath).c_str(), F_OK) == 0;
  auto text = from_host ? port.receive_spec(kMaxSpecBytes) : read_file(std::string(kSpecPath), kMaxSpecBytes);
  if (!text) return std::unexpected(text.error());
  auto spec = parse_spec(*text);
  if (!spec) return std::unexpected(spec.error());
  if (spec->realtime_ns) {
    if (auto ok = sys::set_wall_clock(*spec->realtime_ns); !ok) return std::unexpected(ok.error());
  }
  if (from_host) {
    if (auto ok = sys::wait_for_media(spec->root.device); !ok) return std::unexpected(ok.error());
  }

  if (auto ok = sys::prepare_root(spec->root, all_dns_servers(*spec)); !ok) return std::unexpected(ok.error());
  if (auto ok = sys::install_files(spec->files); !ok) return std::unexpected(ok.error());
  if (auto ok = sys::switch_root(sys::kNewRoot); !ok) return std::unexpected(ok.error());
  if (auto ok = sys::set_hostname(spec->hostname); !ok) return std::unexpected(ok.error());
  if (auto ok = sys::configure_network(spec->network); !ok) return std::unexpected(ok.error());

  auto workload = prepare_workload(*spec);
  if (!workload) return std::unexpected(workload.error());
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    return fail_errno("cannot fork the workload", err);
  }
  if (pid == 0) exec_workload(*workload);
  port.report(Event::kWorkloadStarted, static_cast<std::uint32_t>(pid));
  return supervise(pid, signal_fd, port, std::chrono::milliseconds(spec->stop_grace_ms));
}

[[noreturn]] void init_main() {
  // Signals stay blocked in PID 1 and are read from a signalfd (a blocked signal is queued for
  // init even without a handler); the workload's child unblocks them before exec.
  const sigset_t signals = supervised_signals();
  ::sigprocmask(SIG_BLOCK, &signals, nullptr);
  const UniqueFd signal_fd(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
  const int signalfd_errno = errno;

  sys::StatusPort port;
  const auto early = sys::mount_early();
  auto opened = sys::StatusPort::open();
  if (opened) {
    port = *opened;
  } else {
    sys::print_error("warning: " + opened.error().message);
  }
  port.report(Event::kInitStarted, 0);
  if (!early) {
    sys::print_error(early.error().message);
    finish(port, signal_fd.get(), kExitSetupFailed);
  }
  if (auto ok = sys::make_console_byte_exact(STDOUT_FILENO); !ok) sys::print_error("warning: " + ok.error().message);
  if (!signal_fd.valid()) {
    sys::print_error(std::string("cannot create a signalfd: ") + std::strerror(signalfd_errno));
    finish(port, -1, kExitSetupFailed);
  }
  const auto status = run(port, signal_fd.get());
  if (!status) sys::print_error(status.error().message);
  finish(port, signal_fd.get(), status ? *status : kExitSetupFailed);
}

}  // namespace
}  // namespace microvm::guest

int main() {
  microvm::guest::init_main();
}
