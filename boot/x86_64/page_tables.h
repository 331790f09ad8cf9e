// Identity page tables for the 64-bit entry: [0, 4 GiB) mapped with 2 MiB pages (Intel SDM vol. 3,
// 4.5 "4-level paging"). Linux replaces them early; they only need to cover the kernel, the zero
// page and the command line.
#pragma once

#include <cstdint>

#include "memory/guest_memory.h"

namespace microvm::boot {

inline constexpr std::uint64_t kPtePresent = 1ULL << 0;   // P
inline constexpr std::uint64_t kPteWritable = 1ULL << 1;  // R/W
inline constexpr std::uint64_t kPteHuge = 1ULL << 7;      // PS: 2 MiB page in a PD entry
inline constexpr std::uint64_t kHugePageSize = 2ULL << 20;
inline constexpr std::uint64_t kEntriesPerTable = 512;

// Writes PML4, PDPT and page directories at their layout addresses; returns the CR3 value.
[[nodiscard]] Result<std::uint64_t> write_identity_page_tables(const GuestMemory& memory);

}  // namespace microvm::boot
