#include "tools/oci/oci_main.h"

#include <spdlog/spdlog.h>

#include <fstream>

#include "runtime/oci/bundle.h"
#include "runtime/oci/state.h"
#include "tools/oci/command_line.h"

namespace microvm::oci {

namespace {

constexpr int kExitFailure = 1;  // runc's for every error
constexpr const char* kVersion = MICROVM_VERSION;

// One error line: on stderr, and appended to --log in its format (conmon and containerd's shim
// read the last error from there).
int report(const GlobalOptions& global, const std::string& message) {
  fmt::print(stderr, "microvm: error: {}\n", message);
  if (!global.log.empty()) {
    std::ofstream log(global.log, std::ios::app);
    const std::string time = rfc3339_now();
    if (global.log_format == LogFormat::kJson) {
      log << nlohmann::json{{"level", "error"}, {"msg", message}, {"time", time}}.dump() << '\n';
    } else {
      log << fmt::format("time=\"{}\" level=error msg={}\n", time, nlohmann::json(message).dump());
    }
  }
  return kExitFailure;
}

void print_list(const std::vector<nlohmann::json>& containers, bool json) {
  if (json) {
    fmt::print("{}\n", nlohmann::json(containers).dump());
    return;
  }
  fmt::print("{:<20} {:<10} {:<10} {:<40} {:<30} {}\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
  for (const nlohmann::json& c : containers) {
    fmt::print("{:<20} {:<10} {:<10} {:<40} {:<30} {}\n", c["id"].get<std::string>(), c["pid"].get<int>(),
               c["status"].get<std::string>(), c["bundle"].get<std::string>(), c["created"].get<std::string>(),
               c["owner"].get<std::string>());
  }
}

}  // namespace

int oci_main(const std::vector<std::string>& args, RuntimeEnvironment environment, const RunVm& run_vm) {
  auto parsed = parse_oci_command_line(args);
  if (!parsed) return report(GlobalOptions{}, parsed.error().message);
  const OciCommand& command = *parsed;
  const GlobalOptions& global = command.global;
  if (global.debug) spdlog::set_level(spdlog::level::debug);
  environment.root = global.root;
  Runtime runtime(std::move(environment));
  const CreateRequest request{command.id, command.bundle, command.pid_file};
  switch (command.verb) {
    case Verb::kVersion: fmt::print("microvm version {}\nspec: {}\n", kVersion, kOciVersion); return 0;
    case Verb::kFeatures: fmt::print("{}\n", Runtime::features().dump(2)); return 0;
    case Verb::kCreate:
    case Verb::kRun: {
      if (!command.console_socket.empty()) {
        return report(global, "--console-socket is not supported yet: microvm gives the workload no terminal");
      }
      auto status = command.verb == Verb::kCreate ? runtime.create(request, run_vm)
                                                  : runtime.run(request, command.detach, run_vm);
      if (!status) return report(global, status.error().message);
      return *status;
    }
    case Verb::kStart: {
      if (auto ok = runtime.start(command.id); !ok) return report(global, ok.error().message);
      return 0;
    }
    case Verb::kState: {
      auto state = runtime.state(command.id);
      if (!state) return report(global, state.error().message);
      fmt::print("{}\n", state->dump(2));
      return 0;
    }
    case Verb::kKill: {
      if (auto ok = runtime.kill(command.id, command.signal); !ok) return report(global, ok.error().message);
      return 0;
    }
    case Verb::kDelete: {
      if (auto ok = runtime.remove(command.id, command.force); !ok) return report(global, ok.error().message);
      return 0;
    }
    case Verb::kList: {
      auto containers = runtime.list();
      if (!containers) return report(global, containers.error().message);
      print_list(*containers, command.json);
      return 0;
    }
  }
  return report(global, "internal error: unknown verb");
}

}  // namespace microvm::oci
