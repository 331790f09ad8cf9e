// What the fuzz targets share: invariant checks that survive NDEBUG, quiet logging, and the guest
// memory a fuzz input fills.
#pragma once

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "devices/virtio/descriptor_chain.h"
#include "memory/guest_memory.h"

// FUZZ_CHECK(cond, "fmt", args...): an invariant that must hold for every input. Unlike assert() it
// stays in RelWithDebInfo builds; the abort is what libFuzzer reports as a crash (with the input).
#define FUZZ_CHECK(cond, ...)                                                                \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fmt::print(stderr, "fuzz invariant failed at {}:{}: {}: ", __FILE__, __LINE__, #cond); \
      fmt::print(stderr, __VA_ARGS__);                                                       \
      fmt::print(stderr, "\n");                                                              \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)

namespace microvm::fuzz {

// Guest RAM for one input: the low region is what the input fills (rings, descriptors, tables), then
// a one-page hole, then one more page. Anything straddling the hole or past the end must be refused.
inline constexpr std::uint64_t kLowSize = 64 * 1024;
inline constexpr GuestAddress kHighStart{kLowSize + 0x1000};
inline constexpr std::uint64_t kHighSize = 0x1000;

// The memory with `image` copied to guest address 0 (the rest zero). Aborts if it cannot be mapped:
// that is the harness failing, not the code under test.
inline GuestMemory make_memory(std::span<const std::uint8_t> image) {
  const std::vector ranges{MemoryRange{GuestAddress(0), kLowSize}, MemoryRange{kHighStart, kHighSize}};
  auto memory = GuestMemory::create(ranges);
  FUZZ_CHECK(memory.has_value(), "cannot create guest memory: {}", memory.error().message);
  const auto bytes = std::as_bytes(image.first(std::min<std::size_t>(image.size(), kLowSize)));
  auto written = memory->write(GuestAddress(0), bytes);
  FUZZ_CHECK(written.has_value(), "cannot fill guest memory: {}", written.error().message);
  return std::move(*memory);
}

// What a device does with a popped chain: reads every device-readable segment and fills every
// device-writable one with `fill` (also where the guest pointed them at its own rings). Every segment
// must be guest memory: descriptor_chain.h promises so.
inline void use_chain(const GuestMemory& memory, std::span<const devices::virtio::Segment> segments, std::byte fill) {
  for (const devices::virtio::Segment& segment : segments) {
    auto bytes = memory.slice(segment.addr, segment.len);
    FUZZ_CHECK(bytes.has_value(), "chain segment {:#x}+{:#x}: {}", segment.addr.value, segment.len,
               bytes.error().message);
    if (segment.device_writable) {
      std::ranges::fill(*bytes, fill);
    } else {
      std::byte seen{0};
      for (const std::byte b : *bytes) seen ^= b;
      [[maybe_unused]] const volatile std::byte sink = seen;  // the reads are not optimized away
    }
  }
}

// Guest-triggerable warnings (a bad queue configuration, say) would flood the fuzzer's output.
inline void silence_logging() {
  spdlog::set_level(spdlog::level::off);
}

}  // namespace microvm::fuzz
