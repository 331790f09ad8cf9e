// What a bus routes guest PIO/MMIO accesses to. Offsets are relative to where the device sits;
// the VMM decides the address. Accesses come from vCPU threads: implementations synchronize.
#pragma once

#include <cstdint>
#include <span>

namespace microvm::devices {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // Fill `data` (1, 2, 4 or 8 bytes) with the register value at `offset`.
  virtual void read(std::uint64_t offset, std::span<std::uint8_t> data) = 0;
  virtual void write(std::uint64_t offset, std::span<const std::uint8_t> data) = 0;
};

}  // namespace microvm::devices
