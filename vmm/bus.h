// A PIO or MMIO bus: routes a guest access at an absolute address to the device whose range holds
// it, with the offset into that range. Filled before the vCPUs start, read-only afterwards, so the
// vCPU threads look it up without locks.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "devices/bus_device.h"

namespace microvm::vmm {

class Bus {
 public:
  // Fails if [base, base + length) overlaps a device already on the bus.
  [[nodiscard]] Result<void> insert(std::uint64_t base, std::uint64_t length, devices::BusDevice& device,
                                    std::string name);

  // Return false when no device claims the address (the caller decides what the guest sees).
  bool read(std::uint64_t address, std::span<std::uint8_t> data) const;
  bool write(std::uint64_t address, std::span<const std::uint8_t> data) const;

 private:
  struct Entry {
    std::uint64_t base;
    std::uint64_t length;
    devices::BusDevice* device;
    std::string name;
  };
  [[nodiscard]] const Entry* find(std::uint64_t address, std::size_t size) const;

  std::vector<Entry> entries_;  // sorted by base
};

}  // namespace microvm::vmm
