#include "boot/x86_64/e820.h"

#include "boot/layout.h"

namespace microvm::boot {

std::vector<E820Entry> build_e820(const GuestMemory& memory) {
  std::vector<E820Entry> map;
  for (const GuestMemory::Region& region : memory.regions()) {
    const MemoryRange& r = region.range;
    if (r.start.value < layout::kHighMemory.value) {
      // Conventional memory up to the EBDA; the legacy area above it is not RAM for the OS.
      map.push_back({r.start.value, layout::kEbda.value - r.start.value, kE820Ram});
      map.push_back({layout::kAcpiTables.value, layout::kAcpiReserved, kE820Reserved});
      if (r.end() > layout::kHighMemory.value) {
        map.push_back({layout::kHighMemory.value, r.end() - layout::kHighMemory.value, kE820Ram});
      }
    } else {
      map.push_back({r.start.value, r.size, kE820Ram});
    }
  }
  return map;
}

}  // namespace microvm::boot
