#include "runtime/container_supervisor.h"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "guest/protocol/status_port.h"

namespace microvm::runtime {

namespace {

constexpr std::uint32_t kExitStatusMask = 0xff;  // an exit status is 0..255 (status_port.h)

}  // namespace

ContainerSupervisor::ContainerSupervisor(boost::asio::io_context& io, vmm::Machine& machine, bool quiet)
    : io_(io), machine_(machine), quiet_(quiet), deadline_(io) {
  machine_.set_status_listener([this](devices::StatusPort::Event event, std::uint32_t payload,
                                      vmm::BootMarkers::TimePoint when) { on_status(event, payload, when); });
  machine_.set_signal_handler([this](int signal) { request_stop(signal); });
}

void ContainerSupervisor::on_status(devices::StatusPort::Event event, std::uint32_t payload,
                                    vmm::BootMarkers::TimePoint when) {
  bool workload_done = false;
  bool spec_wanted = false;
  {
    std::lock_guard lock(mutex_);
    switch (event) {
      case devices::StatusPort::Event::kInitStarted:
        if (!markers_.init_started) markers_.init_started = when;
        break;
      case devices::StatusPort::Event::kWorkloadStarted:
        if (!markers_.workload_started) markers_.workload_started = when;
        break;
      case devices::StatusPort::Event::kWorkloadExited:
        if (!markers_.workload_exited) {
          markers_.workload_exited = when;
          exit_code_ = static_cast<int>(payload & kExitStatusMask);
          workload_done = true;
          spdlog::debug("the workload exited with status {}", *exit_code_);
        }
        break;
      case devices::StatusPort::Event::kSpecWanted:
        if (!markers_.spec_wanted) {
          markers_.spec_wanted = when;
          spec_wanted = true;
        }
        break;
    }
  }
  // The init has drained the workload's output and synced the filesystems before it reports
  // (guest/protocol/status_port.h): the VM ends here, without waiting for the guest's own power-off
  // (device shutdown, ACPI S5: a third of a second in the nested sandbox). Whatever the guest prints
  // from now on ("reboot: Power down" shows even with loglevel=1) is not the workload's output.
  // (Under QEMU 7.2's TCG this early end went with lock-ups of the nested sandbox's kernel; under
  // QEMU 10, which tools/setup installs, it did not.)
  if (spec_wanted && spec_wanted_) boost::asio::post(io_, spec_wanted_);
  if (workload_done) {
    if (quiet_) machine_.console().mute();
    machine_.stop(vmm::StopReason::kPowerOff, "the workload exited");
  }
}

void ContainerSupervisor::request_stop(int signal) {
  if (signal != 0 && pending_signal_ != 0) {
    machine_.stop(vmm::StopReason::kSignal, fmt::format("stopped by signal {}", signal), signal);
    return;
  }
  if (signal != 0) pending_signal_ = signal;
  if (stop_requested_) return;
  stop_requested_ = true;
  spdlog::debug("asking the guest to stop its workload{}", signal != 0 ? fmt::format(" (signal {})", signal) : "");
  machine_.request_guest_stop();
  deadline_.expires_after(std::chrono::milliseconds(vmm::kStopGraceMs) + kStopMargin);
  deadline_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    const int pending = pending_signal_;
    machine_.stop(pending != 0 ? vmm::StopReason::kSignal : vmm::StopReason::kError,
                  "the guest did not stop its workload in time" +
                      (pending != 0 ? fmt::format(" (signal {})", pending) : std::string()),
                  pending);
  });
}

vmm::BootMarkers ContainerSupervisor::markers() const {
  std::lock_guard lock(mutex_);
  return markers_;
}

std::optional<int> ContainerSupervisor::exit_code() const {
  std::lock_guard lock(mutex_);
  return exit_code_;
}

}  // namespace microvm::runtime
