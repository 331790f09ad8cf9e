// CRC-64/XZ (ECMA-182 polynomial, reflected, initial value and final XOR all ones): the checksum that
// ends every state file (state_file.h). Check value: crc64("123456789") == 0x995dc9bbdf1939fa.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace microvm::snapshot {

inline constexpr std::uint64_t kCrc64Polynomial = 0xc96c5795d7870f42;  // ECMA-182, bit-reversed

// The CRC of `bytes`, continuing from `crc` (the value a previous call returned; 0 to start).
[[nodiscard]] std::uint64_t crc64(std::span<const std::byte> bytes, std::uint64_t crc = 0);

}  // namespace microvm::snapshot
