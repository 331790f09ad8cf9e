// Container mode on top of a Machine: what microvm-init reports through the status port (init
// started, workload started, workload exited with a status: guest/protocol/status_port.h), and the
// stop protocol — a first stop request (Ctrl-C, SIGTERM, the API's SendCtrlAltDel) asks the init to
// stop the workload (SIGTERM, SIGKILL after its grace period) so it exits on its own terms; a second
// signal, or a guest that does not finish in time, ends the VM.
//
// Threads: status events arrive on vCPU threads; everything else runs on the VMM's event loop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>

#include "devices/status_port.h"
#include "vmm/machine.h"

namespace microvm::runtime {

class ContainerSupervisor {
 public:
  // How long the VMM waits, after asking the init to stop the workload, beyond the init's own grace.
  static constexpr std::chrono::seconds kStopMargin{5};

  // Wires itself into `machine` (its status listener and stop-signal handler): call before
  // machine.start(). `quiet`: once the workload exited, the rest of the console (the kernel
  // powering off) is not the workload's output and is dropped.
  ContainerSupervisor(boost::asio::io_context& io, vmm::Machine& machine, bool quiet);
  ContainerSupervisor(const ContainerSupervisor&) = delete;
  ContainerSupervisor& operator=(const ContainerSupervisor&) = delete;

  // A template boot's init waits for its spec (status port kSpecWanted): `handler` runs once, on the
  // event loop (runtime/warm_start.h saves the template there, then hands the init its run).
  void on_spec_wanted(std::function<void()> handler) { spec_wanted_ = std::move(handler); }

  // Asks the init to stop the workload; `signal` (0: the API asked) ends the VM at once if it is the
  // second signal. The VM is stopped when the guest does not finish within its grace plus kStopMargin.
  void request_stop(int signal);

  // The guest's markers (init_started, workload_started, workload_exited; vcpus_started is the
  // machine's) and the workload's exit status once it ended.
  [[nodiscard]] vmm::BootMarkers markers() const;
  [[nodiscard]] std::optional<int> exit_code() const;

 private:
  void on_status(devices::StatusPort::Event event, std::uint32_t payload, vmm::BootMarkers::TimePoint when);

  boost::asio::io_context& io_;
  vmm::Machine& machine_;
  const bool quiet_;
  std::function<void()> spec_wanted_;  // set before machine.start(), then only read
  boost::asio::steady_timer deadline_;
  int pending_signal_ = 0;  // the loop's only
  bool stop_requested_ = false;

  mutable std::mutex mutex_;  // markers_ and exit_code_ (vCPU threads write them)
  vmm::BootMarkers markers_;
  std::optional<int> exit_code_;
};

}  // namespace microvm::runtime
