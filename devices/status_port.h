// microvm's paravirtual status port: how the container init (guest/init) tells the VMM where it
// is (init started, workload started, workload exited with a status) and how the VMM asks it to
// stop the workload. The register layout is defined once, in guest/protocol/status_port.h, which the
// init and this device both use. Each event is one 32-bit OUT: one VM exit, timestamped here on
// arrival with the host's monotonic clock (the benchmark harness reads these markers). A template
// boot's init reads its spec from here too (guest/protocol/spec_channel.h).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>

#include "devices/bus_device.h"
#include "guest/protocol/spec_channel.h"
#include "guest/protocol/status_port.h"

namespace microvm::devices {

class StatusPort final : public BusDevice {
 public:
  using Event = guest::status_port::Event;
  // Called on the vCPU thread that wrote the event, with the host time it arrived.
  using Listener = std::function<void(Event event, std::uint32_t payload, std::chrono::steady_clock::time_point when)>;

  explicit StatusPort(Listener listener) : listener_(std::move(listener)) {}

  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  struct State {
    bool stop_requested = false;

    bool operator==(const State&) const = default;
  };
  [[nodiscard]] State state() const { return State{stop_requested_.load()}; }
  void restore(const State& state) { stop_requested_.store(state.stop_requested); }

  // The host wants the workload stopped (Ctrl-C, SIGTERM, an API stop): the init polls for this.
  void request_stop() { stop_requested_.store(true); }
  [[nodiscard]] bool stop_requested() const { return stop_requested_.load(); }

  // A template boot's spec (the kSpecWanted exchange): published for the init to read. Not part of
  // State: a snapshot is taken before the host has one, and each restored run sets its own.
  void set_spec(std::string spec_json) { spec_.set(std::move(spec_json)); }

 private:
  Listener listener_;
  std::atomic<bool> stop_requested_{false};
  guest::status_port::SpecChannel spec_;
};

}  // namespace microvm::devices
