// The device-specific configuration space as a driver reads it (virtio 1.2 §2.5, §4.2.2: the
// transport forwards every access at offset 0x100 and above). A device keeps its configuration as a
// struct or a byte array; read_config_window() copies the part of it a read covers. Every byte the
// read asks for outside the structure reads as 0, whatever the offset and length (no overflow, no
// partial garbage): a driver probing beyond the fields it knows sees zeros.
#pragma once

#include <cstdint>
#include <ranges>
#include <span>
#include <type_traits>

namespace microvm::devices::virtio {

// Bytes [offset, offset + out.size()) of `config` into `out`; zeros for those past its end.
void read_config_window(std::span<const std::byte> config, std::uint64_t offset, std::span<std::uint8_t> out);

// The same over a configuration struct (not a range: pass spans and arrays as bytes, above).
template <typename T>
requires(std::is_trivially_copyable_v<T> &&
         !std::ranges::range<T>) void read_config_window(const T& config, std::uint64_t offset,
                                                         std::span<std::uint8_t> out) {
  read_config_window(std::as_bytes(std::span(&config, 1)), offset, out);
}

}  // namespace microvm::devices::virtio
