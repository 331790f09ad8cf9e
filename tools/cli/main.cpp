// microvm: the command-line front end.
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/http/client.h"
#include "api/http/server.h"
#include "api/json.h"
#include "api/resources/vm_config.h"
#include "runtime/oci/rootfs_image.h"
#include "tools/cli/controller.h"
#include "tools/cli/options.h"
#include "tools/cli/terminal.h"
#include "tools/oci/command_line.h"
#include "tools/oci/oci_main.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitSignalBase = 128;        // like a shell: 128 + signal number
constexpr int kExitContainerFailure = 125;  // like `docker run`: the runtime failed, not the workload

int error(const std::string& message) {
  fmt::print(stderr, "microvm: error: {}\n", message);
  return kExitFailure;
}

enum class Stage {
  kCommandLine,  // parsing the command line
  kRun,          // everything after it
};

// The exit status for an Error microvm stops on, decided here for every kind. A command line that
// does not parse is a usage error whatever its kind; past that every kind is microvm's own failure
// (the message says whose fault it was). A VM that ran and ended is exit_status()'s.
constexpr int exit_code(microvm::ErrorKind kind, Stage stage) {
  if (stage == Stage::kCommandLine) return kExitUsage;
  switch (kind) {
    case microvm::ErrorKind::kInvalidArgument:
    case microvm::ErrorKind::kWrongState:
    case microvm::ErrorKind::kHost:
    case microvm::ErrorKind::kKvm:
    case microvm::ErrorKind::kGuest:
    case microvm::ErrorKind::kInternal: return kExitFailure;
  }
  return kExitFailure;
}

// Prints `failure` as microvm's one line on stderr; its exit status.
int error(const microvm::Error& failure, Stage stage = Stage::kRun) {
  fmt::print(stderr, "microvm: error: {}\n", failure.message);
  return exit_code(failure.kind, stage);
}

// How microvm exits for a VM that ended: the workload's status in container mode, else 0 for a
// guest that powered off or rebooted, 128 + N for signal N, 1 for a failure.
int exit_status(const microvm::vmm::MachineExit& exit, bool container, std::optional<int> workload_exit_code) {
  using microvm::vmm::StopReason;
  if (container) {
    if (workload_exit_code) return *workload_exit_code;
    if (exit.reason == StopReason::kSignal) {
      fmt::print(stderr, "microvm: {}\n", exit.detail);
      return kExitSignalBase + exit.signal;
    }
    fmt::print(stderr, "microvm: error: the guest stopped before its workload finished ({}); its last console lines:\n",
               exit.detail);
    for (const std::string& line : exit.last_console_lines) fmt::print(stderr, "  | {}\n", line);
    return kExitContainerFailure;
  }
  switch (exit.reason) {
    case StopReason::kPowerOff:
    case StopReason::kReboot: return 0;
    case StopReason::kSignal: fmt::print(stderr, "microvm: {}\n", exit.detail); return kExitSignalBase + exit.signal;
    case StopReason::kError: break;
  }
  return error(exit.detail);
}

// --write-initramfs: the container initramfs microvm would boot, saved instead of booted; the
// kernel command line it would boot with goes to stdout (without the virtio-mmio device entries,
// which name microvm's own devices).
int write_initramfs(const microvm::cli::StartOptions& options) {
  auto image = microvm::vmm::build_container_initramfs(microvm::cli::init_binary(), options.vm);
  if (!image) return error(image.error());
  std::ofstream file(options.write_initramfs, std::ios::binary | std::ios::trunc);
  file.write(reinterpret_cast<const char*>(image->data()), static_cast<std::streamsize>(image->size()));
  file.close();
  if (!file) {
    return error(
        fmt::format("cannot write the initramfs to {}: {}", options.write_initramfs, microvm::errno_text(errno)));
  }
  fmt::print("{}\n", options.vm.kernel_cmdline(options.verbose));
  return 0;
}

// --metrics-file: the final metrics of a VM that ended. A failure is reported, not fatal: the
// workload's exit status is what microvm returns.
void save_final_metrics(const microvm::cli::StartOptions& options, const nlohmann::json& metrics) {
  if (options.metrics_file.empty()) return;
  if (auto written = microvm::cli::write_metrics_file(options.metrics_file, metrics); !written) {
    fmt::print(stderr, "microvm: warning: {}\n", written.error().message);
  }
}

microvm::Result<microvm::vmm::VmResources> read_config_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) return microvm::fail("cannot read config file {}: {}", path, microvm::errno_text(errno));
  std::stringstream text;
  text << file.rdbuf();
  const nlohmann::json json = TRY_CONTEXT(fmt::format("config file {}", path), microvm::api::parse_json(text.str()));
  return TRY_CONTEXT(fmt::format("config file {}", path), microvm::api::parse_vm_config(json));
}

// A VM from flags, a config file, and/or driven over the API socket.
int run_vm(microvm::cli::StartOptions options, std::chrono::steady_clock::time_point process_start) {
  if (!options.write_initramfs.empty()) {
    auto resolved = microvm::vmm::with_defaults(options.vm, microvm::cli::host_defaults());
    if (!resolved) return error(resolved.error());
    options.vm = std::move(*resolved);
    return write_initramfs(options);
  }
  bool start_now = options.vm.bootable();  // a kernel or a command on the command line
  if (!options.config_file.empty()) {
    auto from_file = read_config_file(options.config_file);
    if (!from_file) return error(from_file.error());
    options.vm = std::move(*from_file);
    start_now = true;  // like Firecracker: a config file boots at once
  }
  // The VMM's event loop, run by this thread: the controller is only ever called here. The API server
  // serves its socket on a thread of its own and posts each request onto this loop.
  boost::asio::io_context io;
  microvm::cli::VmmController controller(io, options, process_start);
  std::unique_ptr<microvm::api::Server> server;
  if (!options.api_sock.empty()) {
    auto created = microvm::api::Server::create(io, options.api_sock, controller);
    if (!created) return error(created.error().context(fmt::format("API socket {}", options.api_sock)));
    server = std::move(*created);
    spdlog::debug("API on {}", options.api_sock);
  }
  if (!options.restore.empty()) {
    // As PUT /snapshot/load with resume_vm on a fresh process (a refusal is the same one line).
    const std::filesystem::path dir(options.restore);
    const microvm::api::SnapshotLoadParams load{(dir / microvm::cli::kSnapshotStateFile).string(),
                                                (dir / microvm::cli::kSnapshotMemoryFile).string(),
                                                true,
                                                {}};
    if (auto loaded = controller.load_snapshot(load); !loaded) {
      return error(loaded.error().context(fmt::format("--restore {}", options.restore)));
    }
  } else if (start_now) {
    if (auto started = controller.start(); !started) return error(started.error());
  }
  // Until the VM starts, a stop signal ends microvm; afterwards the machine handles them.
  int signal_before_start = 0;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec || controller.machine() != nullptr) return;
    signal_before_start = signal;
    io.stop();
  });
  {
    microvm::cli::RawTerminal raw(options.console_input);
    io.run();
  }
  server.reset();  // the API thread stops before the loop its requests go to is gone (and the socket with it)
  if (controller.machine() == nullptr) {
    fmt::print(stderr, "microvm: stopped by signal {} before the VM was started\n", signal_before_start);
    return kExitSignalBase + signal_before_start;
  }
  const microvm::vmm::MachineExit exit = controller.finish();
  spdlog::info("guest stopped: {}", exit.detail);
  save_final_metrics(options, controller.metrics());
  return exit_status(exit, controller.container_mode(), controller.workload_exit_code());
}

// One API request; the answer's body, or an Error with the fault_message of a refusal.
microvm::Result<std::string> call_api(const std::string& sock, const char* method, const char* target,
                                      const std::string& body, std::string_view what) {
  auto response = microvm::api::request(sock, method, target, body);
  if (!response) return std::unexpected(response.error());
  if (response->status >= 300) {
    std::string message = response->body;
    if (auto json = microvm::api::parse_json(response->body); json && json->contains("fault_message")) {
      message = (*json)["fault_message"].get<std::string>();
    }
    return microvm::fail("{} failed ({}): {}", what, response->status, message);
  }
  return response->body;
}

// `microvm ctl`: one request, the answer's body on stdout (status, config, metrics), one line on failure.
int run_ctl(const microvm::cli::CtlOptions& ctl) {
  struct Call {
    const char* method;
    const char* target;
    const char* body;
  };
  Call call{"GET", "/microvm/status", ""};
  if (ctl.action == "pause") call = {"PATCH", "/vm", R"({"state": "Paused"})"};
  if (ctl.action == "resume") call = {"PATCH", "/vm", R"({"state": "Resumed"})"};
  if (ctl.action == "stop") call = {"PUT", "/actions", R"({"action_type": "SendCtrlAltDel"})"};
  if (ctl.action == "config") call = {"GET", "/vm/config", ""};
  if (ctl.action == "metrics") call = {"GET", "/microvm/metrics", ""};
  auto body = call_api(ctl.sock, call.method, call.target, call.body, ctl.action);
  if (!body) return error(body.error());
  if (!body->empty()) fmt::print("{}\n", *body);
  return 0;
}

// `microvm snapshot`: pause (a VM already paused stays so), PUT /snapshot/create into DIR, and
// resume only with --resume. One line on stdout says where it went.
microvm::Result<void> snapshot_vm(const microvm::cli::SnapshotOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(options.out, ec);
  if (ec) return microvm::fail("cannot make the snapshot directory {}: {}", options.out, ec.message());
  const std::string info = TRY(call_api(options.sock, "GET", "/", "", "reading the VM's state"));
  const nlohmann::json instance = TRY(microvm::api::parse_json(info));
  const bool was_running = instance.value("state", "") == "Running";
  if (was_running) TRY_VOID(call_api(options.sock, "PATCH", "/vm", R"({"state": "Paused"})", "pause"));
  const std::string state = (fs::path(options.out) / microvm::cli::kSnapshotStateFile).string();
  const std::string memory = (fs::path(options.out) / microvm::cli::kSnapshotMemoryFile).string();
  const nlohmann::json body{{"snapshot_type", "Full"}, {"snapshot_path", state}, {"mem_file_path", memory}};
  TRY_VOID(call_api(options.sock, "PUT", "/snapshot/create", body.dump(), "snapshot/create"));
  if (options.resume) TRY_VOID(call_api(options.sock, "PATCH", "/vm", R"({"state": "Resumed"})", "resume"));
  fmt::print("microvm: snapshot in {} ({} and {}); the VM is {}\n", options.out, microvm::cli::kSnapshotStateFile,
             microvm::cli::kSnapshotMemoryFile, options.resume ? "running again" : "paused");
  return {};
}

// tools/rootfs-build (python3) in this source tree; MICROVM_ROOTFS_BUILD overrides where it is.
std::string rootfs_builder() {
  const char* override_path = std::getenv("MICROVM_ROOTFS_BUILD");
  return override_path != nullptr && *override_path != '\0' ? std::string(override_path)
                                                            : std::string(MICROVM_TOOLS_DIR) + "/rootfs-build";
}

// `microvm rootfs build`: tools/rootfs-build does it.
int run_rootfs_build(const microvm::cli::RootfsBuildOptions& options) {
  const std::string script = rootfs_builder();
  std::vector<std::string> args{script, options.source, "-o", options.output};
  if (!options.size.empty()) args.insert(args.end(), {"--size", options.size});
  if (!options.label.empty()) args.insert(args.end(), {"--label", options.label});
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  ::execv(script.c_str(), argv.data());
  return error(fmt::format("cannot run the rootfs builder {}: {}", script, microvm::errno_text(errno)));
}

}  // namespace

int main(int argc, char** argv) {
  const auto process_start = std::chrono::steady_clock::now();
  ::signal(SIGPIPE, SIG_IGN);
  auto logger = spdlog::stderr_logger_mt("microvm");  // the API thread logs too
  logger->set_pattern("microvm: %l: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::warn);

  const std::vector<std::string> args(argv + 1, argv + argc);
  // The same binary in runc's place (podman --runtime, containerd's BinaryName): tools/oci.
  if (microvm::oci::is_oci_invocation(argv[0], args)) {
    microvm::oci::RuntimeEnvironment environment{
        {}, microvm::oci::cache_dir(), rootfs_builder(), microvm::cli::host_defaults()};
    return microvm::oci::oci_main(args, std::move(environment), [process_start](microvm::vmm::VmResources resources) {
      microvm::cli::StartOptions options;
      options.vm = std::move(resources);
      options.verbose = spdlog::get_level() <= spdlog::level::debug;
      options.console_input = -1;  // the workload's stdin is /dev/null in the guest: leave the caller's alone
      return run_vm(std::move(options), process_start);
    });
  }
  auto parsed = microvm::cli::parse_command_line(args);
  if (!parsed) return error(parsed.error(), Stage::kCommandLine);
  if (parsed->help) {
    fmt::print("{}", parsed->help->text);
    return 0;
  }
  if (parsed->ctl) return run_ctl(*parsed->ctl);
  if (parsed->snapshot) {
    if (auto saved = snapshot_vm(*parsed->snapshot); !saved) return error(saved.error());
    return 0;
  }
  if (parsed->rootfs_build) return run_rootfs_build(*parsed->rootfs_build);
  if (parsed->start->verbose) spdlog::set_level(spdlog::level::debug);
  return run_vm(*parsed->start, process_start);
}
