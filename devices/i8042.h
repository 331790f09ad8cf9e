// The part of an i8042 keyboard controller a microVM needs: Linux's `reboot=k` polls the status
// port until the input buffer is empty and then pulses the CPU reset line (command 0xfe), and its
// i8042 driver's self-tests get sane answers. No keyboard or mouse is attached.
// Ports: data at offset 0 (0x60), status/command at offset 4 (0x64); the VMM maps both.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>

#include "base/result.h"
#include "devices/bus_device.h"

namespace microvm::devices {

class I8042 final : public BusDevice {
 public:
  static constexpr std::uint64_t kDataOffset = 0;     // port 0x60
  static constexpr std::uint64_t kCommandOffset = 4;  // port 0x64

  explicit I8042(std::function<void()> on_reset) : on_reset_(std::move(on_reset)) {}

  struct State {
    std::optional<std::uint8_t> output;           // byte waiting in the output buffer
    std::optional<std::uint8_t> pending_command;  // 0x60 or 0xd1, waiting for its data byte
    std::uint8_t control = 0;

    bool operator==(const State&) const = default;
  };
  [[nodiscard]] State state() const;
  [[nodiscard]] Result<void> restore(const State& state);

  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

 private:
  std::function<void()> on_reset_;
  mutable std::mutex mutex_;
  std::optional<std::uint8_t> output_;           // byte waiting in the output buffer
  std::optional<std::uint8_t> pending_command_;  // command waiting for its data byte
  std::uint8_t control_ = 0x30;                  // controller configuration byte: both ports' clocks off
};

}  // namespace microvm::devices
