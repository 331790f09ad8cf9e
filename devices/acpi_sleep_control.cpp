#include "devices/acpi_sleep_control.h"

#include "boot/x86_64/acpi.h"

namespace microvm::devices {

void AcpiSleepControl::read(std::uint64_t, std::span<std::uint8_t> data) {
  for (auto& byte : data) byte = 0;  // status: never woken (WAK_STS clear)
}

void AcpiSleepControl::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  if (offset != kControlOffset || data.empty()) return;
  const std::uint8_t value = data[0];
  const auto sleep_type = static_cast<std::uint8_t>((value & boot::kAcpiSleepTypeMask) >> boot::kAcpiSleepTypeShift);
  if ((value & boot::kAcpiSleepEnable) != 0 && sleep_type == boot::kAcpiSleepTypeS5) on_power_off_();
}

}  // namespace microvm::devices
