#include "runtime/oci/runtime.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "base/error.h"
#include "base/unique_fd.h"
#include "runtime/oci/bundle.h"
#include "runtime/oci/rootfs_image.h"
#include "runtime/oci/state.h"

namespace microvm::oci {

namespace {

constexpr mode_t kRootMode = 0711;
constexpr mode_t kContainerDirMode = 0711;
constexpr mode_t kFifoMode = 0600;
constexpr char kStartByte = '0';  // what start writes into exec.fifo (runc writes the same)
constexpr char kReadyByte = 'r';
constexpr auto kPollStep = std::chrono::milliseconds(20);
constexpr int kExitSignalBase = 128;
constexpr int kHookExecFailed = 127;  // a hook that could not be executed, as a shell says

// Removes a half-made container directory unless dismissed.
class DirGuard {
 public:
  explicit DirGuard(std::filesystem::path dir) : dir_(std::move(dir)) {}
  DirGuard(const DirGuard&) = delete;
  DirGuard& operator=(const DirGuard&) = delete;
  ~DirGuard() {
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }
  void dismiss() { dir_.clear(); }

 private:
  std::filesystem::path dir_;
};

Result<void> write_pid_file(const std::filesystem::path& path, pid_t pid) {
  const std::filesystem::path temp = path.string() + fmt::format(".{}.tmp", ::getpid());
  {
    std::ofstream file(temp, std::ios::trunc);
    file << pid;
    file.close();
    if (!file) return fail("cannot write the pid file {}: {}", temp.string(), errno_text(errno));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return fail("cannot write the pid file {}: {}", path.string(), errno_text(errno));
  }
  return {};
}

bool wait_until_gone(const ContainerState& state, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (vmm_alive(state)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(kPollStep);
  }
  return true;
}

int exit_status_of(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return kExitSignalBase + WTERMSIG(wait_status);
  return 1;
}

// Blocks until exec.fifo has the start byte; false when reading it fails.
bool wait_for_start(const std::filesystem::path& fifo, UniqueFd fd) {
  while (true) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, -1) < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    char byte = 0;
    const ssize_t n = ::read(fd.get(), &byte, 1);
    if (n == 1 && byte == kStartByte) return true;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    // A writer came and went without the byte: reopen, or poll would report the hang-up forever.
    fd.reset(::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    if (!fd.valid()) return false;
  }
}

}  // namespace

Result<void> run_hook(const Hook& hook, const std::string& state_json) {
  const std::string& kind = hook.kind;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return fail_host("cannot create a pipe: {}", errno_text(errno));
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  std::vector<char*> argv;
  for (const std::string& arg : hook.args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& entry : hook.env) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return fail_host("cannot fork the {} hook {}: {}", kind, hook.path, errno_text(errno));
  if (pid == 0) {
    ::dup2(read_end.get(), STDIN_FILENO);
    ::dup2(STDERR_FILENO, STDOUT_FILENO);
    ::execve(hook.path.c_str(), argv.data(), envp.data());
    fmt::print(stderr, "microvm: error: cannot run the {} hook {}: {}\n", kind, hook.path, errno_text(errno));
    ::_exit(kHookExecFailed);
  }
  read_end.reset();
  // A hook that does not read its stdin gets EPIPE (SIGPIPE is ignored by microvm's main).
  std::string_view rest = state_json;
  while (!rest.empty()) {
    const ssize_t n = ::write(write_end.get(), rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  write_end.reset();
  const UniqueFd child(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (hook.timeout_seconds > 0 && child.valid()) {
    pollfd p{child.get(), POLLIN, 0};
    const int timeout_ms = hook.timeout_seconds * 1000;
    int ready = 0;
    while ((ready = ::poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
    }
    if (ready == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return fail("the {} hook {} did not end within its timeout of {} s", kind, hook.path, hook.timeout_seconds);
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  if (WIFSIGNALED(status)) return fail("the {} hook {} was killed by signal {}", kind, hook.path, WTERMSIG(status));
  return fail("the {} hook {} failed with exit status {}", kind, hook.path, WEXITSTATUS(status));
}

Result<void> check_container_id(std::string_view id) {
  const bool ok = !id.empty() && id != "." && id != ".." && std::ranges::all_of(id, [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '_' || c == '+' || c == '-' || c == '.';
  });
  if (!ok) return fail("invalid container ID format: '{}'", id);
  return {};
}

Result<std::filesystem::path> Runtime::existing_container(const std::string& id) const {
  TRY_VOID(check_container_id(id));
  const std::filesystem::path dir = container_dir(id);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return fail("container \"{}\" does not exist", id);
  return dir;
}

int Runtime::vmm_main(const std::filesystem::path& dir, vmm::VmResources resources, int fifo_fd,
                      const RunVm& run_vm) const {
  if (!wait_for_start(dir / kExecFifoName, UniqueFd(fifo_fd))) {
    fmt::print(stderr, "microvm: error: waiting for start on {} failed: {}\n", (dir / kExecFifoName).string(),
               errno_text(errno));
    return 1;
  }
  const int status = run_vm(std::move(resources));
  // Recorded for `state`; the directory may be gone already (delete --force).
  if (auto state = read_state(dir)) {
    state->exit_status = status;
    if (auto written = write_state(dir, *state); !written) {
      spdlog::warn("cannot record the exit status for `state`: {}", written.error().message);
    }
  }
  return status;
}

Result<int> Runtime::create_vmm(const CreateRequest& request, const RunVm& run_vm, pid_t& vmm_pid) {
  TRY_VOID(check_container_id(request.id));
  Bundle bundle = TRY(load_bundle(request.bundle));
  std::error_code ec;
  std::filesystem::create_directories(env_.root, ec);
  if (ec) return fail("cannot create the state directory {}: {}", env_.root.string(), ec.message());
  ::chmod(env_.root.c_str(), kRootMode);
  const std::filesystem::path dir = container_dir(request.id);
  if (::mkdir(dir.c_str(), kContainerDirMode) != 0) {
    if (errno == EEXIST) return fail_state("container with id exists: {}", request.id);
    return fail("cannot create {}: {}", dir.string(), errno_text(errno));
  }
  DirGuard guard(dir);
  for (const std::string& warning : bundle.warnings) spdlog::warn("{}", warning);
  ContainerState state;
  state.id = request.id;
  state.bundle = bundle.dir.string();
  state.rootfs = bundle.rootfs.string();
  state.annotations = bundle.annotations;
  state.created = rfc3339_now();
  TRY_VOID(write_state(dir, state));

  const RootfsImage image =
      TRY(rootfs_image(bundle.rootfs, std::filesystem::absolute(env_.image_cache), dir, env_.rootfs_builder));
  vmm::VmResources resources = bundle.resources;
  if (!resources.boot_source.kernel_image_path.empty()) {
    std::filesystem::path kernel(resources.boot_source.kernel_image_path);
    if (kernel.is_relative()) resources.boot_source.kernel_image_path = (bundle.dir / kernel).string();
  }
  TRY_VOID(
      resources.put_drive(vmm::DriveConfig{std::string(vmm::kDefaultRootDriveId), image.path.string(), true, true}));
  resources = TRY(vmm::with_defaults(std::move(resources), env_.defaults));

  const std::filesystem::path fifo = dir / kExecFifoName;
  if (::mkfifo(fifo.c_str(), kFifoMode) != 0)
    return fail_host("cannot create {}: {}", fifo.string(), errno_text(errno));
  int ready_fds[2];
  if (::pipe2(ready_fds, O_CLOEXEC) != 0) return fail_host("cannot create a pipe: {}", errno_text(errno));
  UniqueFd ready_read(ready_fds[0]);
  UniqueFd ready_write(ready_fds[1]);

  const pid_t pid = ::fork();
  if (pid < 0) return fail_host("cannot fork the VMM: {}", errno_text(errno));
  if (pid == 0) {
    guard.dismiss();
    ready_read.reset();
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);  // `run` holds the signals it forwards
    ::setsid();  // out of the caller's session and process group: its terminal's signals are not ours
    if (bundle.has_oom_score_adj) {
      std::ofstream("/proc/self/oom_score_adj") << bundle.oom_score_adj;
    }
    // Open for reading before create returns, so that start's non-blocking open finds a reader.
    const int fifo_fd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fifo_fd < 0) {
      fmt::print(stderr, "microvm: error: cannot open {}: {}\n", fifo.string(), errno_text(errno));
      return 1;
    }
    const char byte = kReadyByte;
    if (::write(ready_write.get(), &byte, 1) != 1) return 1;
    ready_write.reset();
    vmm_pid = 0;
    return vmm_main(dir, std::move(resources), fifo_fd, run_vm);
  }
  ready_write.reset();
  char byte = 0;
  ssize_t n = 0;
  while ((n = ::read(ready_read.get(), &byte, 1)) < 0 && errno == EINTR) {
  }
  if (n != 1) {
    int status = 0;
    ::waitpid(pid, &status, WNOHANG);
    return fail_host("the VMM process ended before it was ready (status {})", status);
  }
  state.pid = pid;
  const auto start_time = live_process_start_time(pid);
  if (!start_time) return fail_host("the VMM process {} ended before it was ready", pid);
  state.pid_start_time = *start_time;
  TRY_VOID(write_state(dir, state));
  // prestart and createRuntime: the VMM exists, the workload has not run (runc runs them here too).
  for (const Hook& hook : bundle.create_hooks) {
    if (auto ran = run_hook(hook, state_report(state, Status::kCreated).dump()); !ran) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
      return std::unexpected(ran.error());
    }
  }
  if (!request.pid_file.empty()) TRY_VOID(write_pid_file(request.pid_file, pid));
  guard.dismiss();
  vmm_pid = pid;
  return 0;
}

Result<int> Runtime::create(const CreateRequest& request, const RunVm& run_vm) {
  pid_t pid = 0;
  return create_vmm(request, run_vm, pid);
}

Result<void> Runtime::start(const std::string& id) {
  const std::filesystem::path dir = TRY(existing_container(id));
  const ContainerState state = TRY(read_state(dir));
  switch (status_of(state, dir)) {
    case Status::kCreated: break;
    case Status::kCreating: return fail_state("container \"{}\" is still being created", id);
    case Status::kRunning: return fail_state("cannot start an already running container");
    case Status::kStopped: return fail_state("cannot start a container that has stopped");
  }
  const std::filesystem::path fifo = dir / kExecFifoName;
  const UniqueFd fd(::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENXIO) return fail_state("cannot start a container that has stopped");
    return fail_host("cannot open {}: {}", fifo.string(), errno_text(errno));
  }
  const char byte = kStartByte;
  if (::write(fd.get(), &byte, 1) != 1) return fail_host("cannot write {}: {}", fifo.string(), errno_text(errno));
  // Gone before start returns: from here `state` says running.
  ::unlink(fifo.c_str());
  return {};
}

Result<nlohmann::json> Runtime::state(const std::string& id) {
  const std::filesystem::path dir = TRY(existing_container(id));
  const ContainerState state = TRY(read_state(dir));
  return state_report(state, status_of(state, dir));
}

Result<void> Runtime::kill(const std::string& id, int signal) {
  const std::filesystem::path dir = TRY(existing_container(id));
  const ContainerState state = TRY(read_state(dir));
  const Status status = status_of(state, dir);
  if (status != Status::kCreated && status != Status::kRunning) return fail_state("container not running");
  if (::kill(state.pid, signal) != 0) {
    if (errno == ESRCH) return fail_state("container not running");
    return fail_host("cannot signal the VMM {}: {}", state.pid, errno_text(errno));
  }
  return {};
}

Result<void> Runtime::remove(const std::string& id, bool force) {
  TRY_VOID(check_container_id(id));
  const std::filesystem::path dir = container_dir(id);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    if (force) return {};
    return fail("container \"{}\" does not exist", id);
  }
  auto state = read_state(dir);
  if (state) {
    const Status status = status_of(*state, dir);
    // runc: a created container is killed and removed; a running one only with --force.
    if (status == Status::kRunning && !force) {
      return fail_state("cannot delete container {} that is not stopped: running", id);
    }
    if (status == Status::kCreated || status == Status::kRunning) {
      ::kill(state->pid, SIGKILL);
      if (!wait_until_gone(*state, kVmmExitWaitMs)) {
        return fail_host("the VMM {} of container {} did not end after SIGKILL", state->pid, id);
      }
    }
  }
  std::filesystem::remove_all(dir, ec);
  if (ec) return fail_host("cannot remove {}: {}", dir.string(), ec.message());
  return {};
}

Result<std::vector<nlohmann::json>> Runtime::list() {
  std::vector<nlohmann::json> out;
  std::error_code ec;
  if (!std::filesystem::is_directory(env_.root, ec)) return out;
  std::vector<std::filesystem::path> dirs;
  for (const auto& entry : std::filesystem::directory_iterator(env_.root, ec)) {
    if (entry.is_directory()) dirs.push_back(entry.path());
  }
  std::ranges::sort(dirs);
  for (const std::filesystem::path& dir : dirs) {
    auto state = read_state(dir);
    if (!state) continue;  // not a container (or one half removed)
    out.push_back(state_report(*state, status_of(*state, dir)));
  }
  return out;
}

Result<int> Runtime::run(const CreateRequest& request, bool detach, const RunVm& run_vm) {
  // Signals for the VMM are held from before the fork; the VMM unblocks them.
  sigset_t forwarded;
  sigemptyset(&forwarded);
  for (const int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&forwarded, s);
  sigset_t previous;
  if (!detach) ::sigprocmask(SIG_BLOCK, &forwarded, &previous);
  pid_t pid = 0;
  auto created = create_vmm(request, run_vm, pid);
  if (!created) {
    if (!detach) ::sigprocmask(SIG_SETMASK, &previous, nullptr);
    return std::unexpected(created.error());
  }
  if (pid == 0) return created;  // the VMM's own exit status
  TRY_VOID(start(request.id));
  if (detach) return 0;
  const UniqueFd signals(::signalfd(-1, &forwarded, SFD_CLOEXEC | SFD_NONBLOCK));
  const UniqueFd child(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!signals.valid() || !child.valid()) return fail_host("cannot watch the VMM: {}", errno_text(errno));
  int status = 0;
  while (true) {
    pollfd fds[2] = {{child.get(), POLLIN, 0}, {signals.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return fail_host("poll: {}", errno_text(errno));
    signalfd_siginfo info{};
    while (::read(signals.get(), &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
      ::kill(pid, static_cast<int>(info.ssi_signo));
    }
    if (::waitpid(pid, &status, WNOHANG) == pid) break;
  }
  ::sigprocmask(SIG_SETMASK, &previous, nullptr);
  if (auto removed = remove(request.id, true); !removed) {
    spdlog::warn("cannot delete container {} after its run: {}", request.id, removed.error().message);
  }
  return exit_status_of(status);
}

nlohmann::json Runtime::features() {
  return {
      {"ociVersionMin", "1.0.0"},
      {"ociVersionMax", kOciVersion},
      {"hooks", nlohmann::json::array()},
      {"mountOptions", nlohmann::json::array()},
      {"linux",
       {{"namespaces", {"cgroup", "ipc", "mount", "network", "pid", "uts"}},
        {"capabilities", nlohmann::json::array()},
        {"cgroup", {{"v1", false}, {"v2", false}, {"systemd", false}, {"systemdUser", false}}},
        {"seccomp", {{"enabled", false}}},
        {"apparmor", {{"enabled", false}}},
        {"selinux", {{"enabled", false}}}}},
      {"annotations",
       {{std::string(kKernelAnnotation), "guest kernel image (ELF vmlinux or bzImage)"},
        {std::string(kVcpusAnnotation), "vCPUs"},
        {std::string(kMemoryAnnotation), "guest RAM in MiB"}}},
  };
}

}  // namespace microvm::oci
