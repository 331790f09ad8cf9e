// ACPI fixed-hardware PM1 registers (ACPI 6.4 §4.8.3.1-2) at the blocks the FADT names:
//   offset 0: PM1a_STS (2 bytes)  offset 2: PM1a_EN (2 bytes)   -- the PM1a event block
//   offset 4: PM1a_CNT (2 bytes)                                 -- the PM1a control block
// SCI_EN always reads 1 (the platform is always in ACPI mode, FADT SMI_CMD = 0). Writing SLP_EN
// with SLP_TYP = S5 (the value of the DSDT's \_S5) ends the VM: that is Linux's power-off.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>

#include "base/result.h"
#include "devices/bus_device.h"

namespace microvm::devices {

class AcpiPm final : public BusDevice {
 public:
  static constexpr std::uint64_t kEventBlockOffset = 0;    // PM1a_EVT_BLK
  static constexpr std::uint64_t kEventBlockLength = 4;    // PM1_EVT_LEN
  static constexpr std::uint64_t kControlBlockOffset = 4;  // PM1a_CNT_BLK
  static constexpr std::uint64_t kControlBlockLength = 2;  // PM1_CNT_LEN
  static constexpr std::uint64_t kSize = 6;
  static constexpr std::uint16_t kSciEnable = 1U << 0;  // PM1_CNT.SCI_EN
  static constexpr std::uint16_t kSleepTypeShift = 10;  // PM1_CNT.SLP_TYPx, bits 10-12
  static constexpr std::uint16_t kSleepTypeMask = 7U << 10;
  static constexpr std::uint16_t kSleepEnable = 1U << 13;  // PM1_CNT.SLP_EN (write-only)
  static constexpr std::uint16_t kSleepTypeS5 = 5;         // must match \_S5 in the DSDT

  explicit AcpiPm(std::function<void()> on_power_off) : on_power_off_(std::move(on_power_off)) {}

  struct State {
    std::uint16_t enable = 0;   // PM1_EN
    std::uint16_t control = 0;  // PM1_CNT without SCI_EN and SLP_EN

    bool operator==(const State&) const = default;
  };
  [[nodiscard]] State state() const;
  [[nodiscard]] Result<void> restore(const State& state);

  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

 private:
  std::function<void()> on_power_off_;
  mutable std::mutex mutex_;
  std::uint16_t enable_ = 0;   // PM1_EN: stored, nothing ever fires
  std::uint16_t control_ = 0;  // PM1_CNT without SCI_EN and SLP_EN
};

// The register block as the FADT describes it (PM1_EVT_LEN, PM1_CNT_LEN) and PM1_CNT's fields at the
// positions of ACPI 6.4 table 4.16 (SLP_TYPx bits 10-12, SLP_EN bit 13). That kSleepTypeS5 is the
// DSDT's \_S5 and the blocks sit at the FADT's ports is checked where both meet (vmm/machine.cpp).
static_assert(AcpiPm::kControlBlockOffset == AcpiPm::kEventBlockOffset + AcpiPm::kEventBlockLength);
static_assert(AcpiPm::kSize == AcpiPm::kControlBlockOffset + AcpiPm::kControlBlockLength);
static_assert(AcpiPm::kSleepTypeShift == 10 && AcpiPm::kSleepTypeMask == 0x1c00 && AcpiPm::kSleepEnable == 0x2000);
static_assert(((AcpiPm::kSleepTypeS5 << AcpiPm::kSleepTypeShift) & ~AcpiPm::kSleepTypeMask) == 0);
static_assert((AcpiPm::kSciEnable & (AcpiPm::kSleepTypeMask | AcpiPm::kSleepEnable)) == 0);

}  // namespace microvm::devices
