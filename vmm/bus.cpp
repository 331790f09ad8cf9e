#include "vmm/bus.h"

#include <algorithm>

namespace microvm::vmm {

Result<void> Bus::insert(std::uint64_t base, std::uint64_t length, devices::BusDevice& device, std::string name) {
  if (length == 0 || base + length < base) return fail("device {}: empty or wrapping range at {:#x}", name, base);
  for (const Entry& e : entries_) {
    if (base < e.base + e.length && e.base < base + length) {
      return fail("device {} at {:#x}+{:#x} overlaps {} at {:#x}+{:#x}", name, base, length, e.name, e.base, e.length);
    }
  }
  auto at = std::lower_bound(entries_.begin(), entries_.end(), base,
                             [](const Entry& e, std::uint64_t b) { return e.base < b; });
  entries_.insert(at, Entry{base, length, &device, std::move(name)});
  return {};
}

const Bus::Entry* Bus::find(std::uint64_t address, std::size_t size) const {
  auto it = std::upper_bound(entries_.begin(), entries_.end(), address,
                             [](std::uint64_t a, const Entry& e) { return a < e.base; });
  if (it == entries_.begin()) return nullptr;
  --it;
  if (address - it->base >= it->length || size > it->length - (address - it->base)) return nullptr;
  return &*it;
}

bool Bus::read(std::uint64_t address, std::span<std::uint8_t> data) const {
  const Entry* e = find(address, data.size());
  if (e == nullptr) return false;
  e->device->read(address - e->base, data);
  return true;
}

bool Bus::write(std::uint64_t address, std::span<const std::uint8_t> data) const {
  const Entry* e = find(address, data.size());
  if (e == nullptr) return false;
  e->device->write(address - e->base, data);
  return true;
}

}  // namespace microvm::vmm
