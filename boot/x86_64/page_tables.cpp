#include "boot/x86_64/page_tables.h"

#include <array>

#include "boot/layout.h"

namespace microvm::boot {

namespace {
using Table = std::array<std::uint64_t, kEntriesPerTable>;
constexpr std::uint64_t kTableBytes = sizeof(Table);
constexpr std::uint64_t kPageDirectoryCount = layout::kIdentityMappedBytes / (kHugePageSize * kEntriesPerTable);
static_assert(kTableBytes == 4096);
static_assert(kPageDirectoryCount == 4);
static_assert(layout::kPageDirectories.value + kPageDirectoryCount * kTableBytes <= 0xf000, "PDs overrun their slot");
}  // namespace

Result<std::uint64_t> write_identity_page_tables(const GuestMemory& memory) {
  Table pml4{};
  pml4[0] = layout::kPdpt.value | kPtePresent | kPteWritable;
  TRY_VOID(memory.write_obj(layout::kPml4, pml4));

  Table pdpt{};
  for (std::uint64_t d = 0; d < kPageDirectoryCount; ++d) {
    const std::uint64_t pd_address = layout::kPageDirectories.value + d * kTableBytes;
    pdpt[d] = pd_address | kPtePresent | kPteWritable;
    Table pd{};
    for (std::uint64_t i = 0; i < kEntriesPerTable; ++i) {
      pd[i] = ((d * kEntriesPerTable + i) * kHugePageSize) | kPtePresent | kPteWritable | kPteHuge;
    }
    TRY_VOID(memory.write_obj(GuestAddress(pd_address), pd));
  }
  TRY_VOID(memory.write_obj(layout::kPdpt, pdpt));
  return layout::kPml4.value;
}

}  // namespace microvm::boot
