#include "devices/virtio/config_space.h"

#include <algorithm>
#include <cstring>

namespace microvm::devices::virtio {

void read_config_window(std::span<const std::byte> config, std::uint64_t offset, std::span<std::uint8_t> out) {
  std::ranges::fill(out, std::uint8_t{0});
  if (out.empty() || offset >= config.size()) return;  // (memcpy must not see an empty span's null pointer)
  // offset < config.size(): neither the subtraction nor the pointer arithmetic can wrap.
  const std::size_t count = std::min<std::uint64_t>(out.size(), config.size() - offset);
  std::memcpy(out.data(), config.data() + offset, count);
}

}  // namespace microvm::devices::virtio
