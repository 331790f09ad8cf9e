// Small helpers shared by the unit tests: guest memory of a given size, and typed access to
// byte buffers (images and tables built or inspected by the tests).
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "boot/layout.h"
#include "memory/guest_memory.h"

namespace microvm {
// So that failed expectations print guest addresses in hex instead of raw bytes.
inline void PrintTo(const GuestAddress& address, std::ostream* os) {
  *os << "GuestAddress(0x" << std::hex << address.value << std::dec << ")";
}
}  // namespace microvm

namespace microvm::test {

inline constexpr std::uint64_t kMiB = 1ULL << 20;
inline constexpr std::uint64_t kGiB = 1ULL << 30;

// Guest memory laid out the way the VMM does it (boot::layout::ram_ranges).
inline GuestMemory make_memory(std::uint64_t bytes) {
  auto memory = GuestMemory::create(boot::layout::ram_ranges(bytes));
  if (!memory) throw std::runtime_error("cannot create guest memory: " + memory.error().message);
  return std::move(*memory);
}

// Fills [addr, addr+len) with `value`, so tests can tell "written as zero" from "never written".
inline void fill(const GuestMemory& memory, GuestAddress addr, std::uint64_t len, std::uint8_t value) {
  auto host = memory.slice(addr, len);
  ASSERT_TRUE(host.has_value()) << host.error().message;
  std::memset(host->data(), value, host->size());
}

// Bytes of guest memory (empty on failure, which the caller's comparison then reports).
inline std::vector<std::byte> guest_bytes(const GuestMemory& memory, GuestAddress addr, std::uint64_t len) {
  std::vector<std::byte> out(len);
  auto result = memory.read(addr, out);
  EXPECT_TRUE(result.has_value()) << result.error().message;
  return out;
}

template <typename T>
T guest_obj(const GuestMemory& memory, GuestAddress addr) {
  auto value = memory.read_obj<T>(addr);
  EXPECT_TRUE(value.has_value()) << value.error().message;
  return value.value_or(T{});
}

// A recognisable, position-dependent byte pattern.
inline std::vector<std::byte> pattern(std::size_t size, std::uint8_t seed = 1) {
  std::vector<std::byte> out(size);
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<std::byte>((i * 7 + seed) & 0xff);
  return out;
}

inline std::vector<std::byte> to_bytes(std::string_view text) {
  std::vector<std::byte> out(text.size());
  std::memcpy(out.data(), text.data(), text.size());
  return out;
}

// Unaligned typed access to a byte buffer.
template <typename T>
T load(std::span<const std::byte> bytes, std::size_t offset) {
  T value{};
  EXPECT_LE(offset + sizeof(T), bytes.size()) << "read past the end of the buffer";
  if (offset + sizeof(T) <= bytes.size()) std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

template <typename T>
void store(std::span<std::byte> bytes, std::size_t offset, const T& value) {
  ASSERT_LE(offset + sizeof(T), bytes.size()) << "write past the end of the buffer";
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

// Read-modify-write of a T inside a byte buffer: edit<Elf64_Ehdr>(image, 0, [](auto& h) { ... }).
template <typename T, typename F>
void edit(std::vector<std::byte>& bytes, std::size_t offset, F&& change) {
  T value = load<T>(bytes, offset);
  change(value);
  store(bytes, offset, value);
}

inline std::string text_of(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace microvm::test

// Checks that `result` (a Result<T>) is an error whose message contains `word`.
#define EXPECT_ERROR_CONTAINS(result, word)                                                              \
  do {                                                                                                   \
    const auto& expect_error_result_ = (result);                                                         \
    ASSERT_FALSE(expect_error_result_.has_value()) << "expected an error mentioning '" << (word) << "'"; \
    EXPECT_NE(expect_error_result_.error().message.find(word), std::string::npos)                        \
        << "error '" << expect_error_result_.error().message << "' does not mention '" << (word) << "'"; \
  } while (false)
