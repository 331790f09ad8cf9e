#include "vmm/snapshot/crc64.h"

#include <array>

namespace microvm::snapshot {

namespace {

// One table entry per byte value: the CRC of that byte alone, built at compile time.
constexpr std::array<std::uint64_t, 256> make_table() {
  std::array<std::uint64_t, 256> table{};
  for (std::uint64_t i = 0; i < table.size(); ++i) {
    std::uint64_t value = i;
    for (int bit = 0; bit < 8; ++bit) value = (value & 1) != 0 ? (value >> 1) ^ kCrc64Polynomial : value >> 1;
    table[i] = value;
  }
  return table;
}
constexpr std::array<std::uint64_t, 256> kTable = make_table();

}  // namespace

std::uint64_t crc64(std::span<const std::byte> bytes, std::uint64_t crc) {
  std::uint64_t value = ~crc;
  for (std::byte b : bytes) value = kTable[(value ^ static_cast<std::uint64_t>(b)) & 0xff] ^ (value >> 8);
  return ~value;
}

}  // namespace microvm::snapshot
