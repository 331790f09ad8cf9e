#include "devices/acpi_pm.h"

#include "base/error.h"

namespace microvm::devices {

namespace {
// PM1_STS (offset 0) reads 0 and ignores writes (they clear status bits; none is ever set).
constexpr std::uint64_t kEnable = 2;   // PM1_EN
constexpr std::uint64_t kControl = 4;  // PM1_CNT
}  // namespace

AcpiPm::State AcpiPm::state() const {
  std::lock_guard lock(mutex_);
  return State{enable_, control_};
}

Result<void> AcpiPm::restore(const State& state) {
  if ((state.control & (kSciEnable | kSleepEnable)) != 0) {
    return fail("ACPI PM: PM1_CNT {:#06x} holds SCI_EN or SLP_EN, which the device never stores", state.control);
  }
  std::lock_guard lock(mutex_);
  enable_ = state.enable;
  control_ = state.control;
  return {};
}

void AcpiPm::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  std::lock_guard lock(mutex_);
  const std::array<std::uint16_t, 3> registers{0, enable_, static_cast<std::uint16_t>(control_ | kSciEnable)};
  for (std::size_t i = 0; i < data.size(); ++i) {
    const std::uint64_t byte = offset + i;
    data[i] = byte < kSize ? static_cast<std::uint8_t>(registers[byte / 2] >> (8 * (byte % 2))) : 0xff;
  }
}

void AcpiPm::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  bool power_off = false;
  {
    std::lock_guard lock(mutex_);
    std::uint16_t written_control = control_;
    bool control_touched = false;
    for (std::size_t i = 0; i < data.size(); ++i) {
      const std::uint64_t byte = offset + i;
      const unsigned shift = 8 * (byte % 2);
      const auto mask = static_cast<std::uint16_t>(0xff << shift);
      const auto value = static_cast<std::uint16_t>(data[i] << shift);
      if (byte / 2 * 2 == kEnable) enable_ = static_cast<std::uint16_t>((enable_ & ~mask) | value);
      if (byte / 2 * 2 == kControl) {
        written_control = static_cast<std::uint16_t>((written_control & ~mask) | value);
        control_touched = true;
      }
    }
    if (control_touched) {
      control_ = static_cast<std::uint16_t>(written_control & ~(kSciEnable | kSleepEnable));
      const auto sleep_type = static_cast<std::uint16_t>((written_control & kSleepTypeMask) >> kSleepTypeShift);
      power_off = (written_control & kSleepEnable) != 0 && sleep_type == kSleepTypeS5;
    }
  }
  if (power_off) on_power_off_();
}

}  // namespace microvm::devices
