// microvm: the command-line front end.
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "tools/cli/options.h"
#include "tools/cli/terminal.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitSignalBase = 128;  // like a shell: 128 + signal number

int run_start(const microvm::cli::StartOptions& options) {
  auto machine = microvm::vmm::Machine::create(options.machine);
  if (!machine) {
    fmt::print(stderr, "microvm: error: {}\n", machine.error().message);
    return kExitFailure;
  }
  microvm::vmm::MachineExit exit;
  {
    microvm::cli::RawTerminal raw(options.machine.console_input);
    exit = (*machine)->run();
  }
  spdlog::info("guest stopped: {}", exit.detail);
  switch (exit.reason) {
    case microvm::vmm::StopReason::kPowerOff:
    case microvm::vmm::StopReason::kReboot: return 0;
    case microvm::vmm::StopReason::kSignal:
      fmt::print(stderr, "microvm: {}\n", exit.detail);
      return kExitSignalBase + exit.signal;
    case microvm::vmm::StopReason::kError: break;
  }
  fmt::print(stderr, "microvm: error: {}\n", exit.detail);
  return kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  auto logger = spdlog::stderr_logger_st("microvm");
  logger->set_pattern("microvm: %l: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::warn);

  auto parsed = microvm::cli::parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed) {
    fmt::print(stderr, "microvm: error: {}\n", parsed.error().message);
    return 2;
  }
  if (parsed->help) {
    fmt::print("{}", parsed->help->text);
    return 0;
  }
  if (parsed->start->verbose) spdlog::set_level(spdlog::level::debug);
  return run_start(*parsed->start);
}
