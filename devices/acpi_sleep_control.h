// The hardware-reduced ACPI sleep control and status registers (ACPI 6.4 §4.8.3.7-8) that the FADT
// points at: writing SLP_TYP=S5 with SLP_EN ends the VM, which is how Linux powers off.
// Offset 0 is the control register, offset 1 the status register.
#pragma once

#include <cstdint>
#include <functional>

#include "devices/bus_device.h"

namespace microvm::devices {

class AcpiSleepControl final : public BusDevice {
 public:
  static constexpr std::uint64_t kControlOffset = 0;
  static constexpr std::uint64_t kStatusOffset = 1;

  explicit AcpiSleepControl(std::function<void()> on_power_off) : on_power_off_(std::move(on_power_off)) {}

  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

 private:
  std::function<void()> on_power_off_;
};

}  // namespace microvm::devices
