// The byte-level encoding of everything in a state file (state_file.h): little-endian integers,
// length-prefixed byte strings, and KVM's fixed-layout structs as their raw bytes behind their size.
// Encoder appends; Decoder reads back with every length checked against what is left and against a
// caller's maximum, because a state file is input from outside: a short or oversized field is an
// error naming what was being read (`what`), never a read past the end.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "base/error.h"

namespace microvm::snapshot {

static_assert(std::endian::native == std::endian::little, "state files are little-endian, like the hosts we run on");

class Encoder {
 public:
  void u8(std::uint8_t value) { raw(&value, sizeof(value)); }
  void u16(std::uint16_t value) { raw(&value, sizeof(value)); }
  void u32(std::uint32_t value) { raw(&value, sizeof(value)); }
  void u64(std::uint64_t value) { raw(&value, sizeof(value)); }
  void boolean(bool value) { u8(value ? 1 : 0); }
  // A u32 length, then the bytes.
  void bytes(std::span<const std::byte> value);
  void string(std::string_view value) { bytes(std::as_bytes(std::span(value.data(), value.size()))); }
  // A fixed-layout struct (kvm_regs, ...): its size as a u32, then its bytes. The decoder insists on
  // the same size, so a struct that changed between kernels or builds is refused, not misread.
  template <typename T>
  requires std::is_trivially_copyable_v<T>
  void pod(const T& value) {
    u32(static_cast<std::uint32_t>(sizeof(T)));
    raw(&value, sizeof(T));
  }
  // Bytes as they are, without a length (the caller's format knows it).
  void raw(const void* data, std::size_t size);

  [[nodiscard]] std::size_t size() const { return out_.size(); }
  [[nodiscard]] std::vector<std::byte> take() { return std::move(out_); }

 private:
  std::vector<std::byte> out_;
};

class Decoder {
 public:
  // `what` names the data in error messages ("vcpus section").
  Decoder(std::span<const std::byte> data, std::string what) : data_(data), what_(std::move(what)) {}

  [[nodiscard]] Result<std::uint8_t> u8() { return integer<std::uint8_t>("u8"); }
  [[nodiscard]] Result<std::uint16_t> u16() { return integer<std::uint16_t>("u16"); }
  [[nodiscard]] Result<std::uint32_t> u32() { return integer<std::uint32_t>("u32"); }
  [[nodiscard]] Result<std::uint64_t> u64() { return integer<std::uint64_t>("u64"); }
  // 0 or 1; anything else is refused.
  [[nodiscard]] Result<bool> boolean();
  // A u32 count of at most `max` (of `thing`s, for the message).
  [[nodiscard]] Result<std::uint32_t> count(std::uint32_t max, std::string_view thing);
  // A length-prefixed byte string of at most `max` bytes.
  [[nodiscard]] Result<std::span<const std::byte>> bytes(std::size_t max);
  [[nodiscard]] Result<std::string> string(std::size_t max);
  template <typename T>
  requires std::is_trivially_copyable_v<T>
  [[nodiscard]] Result<T> pod(std::string_view name) {
    const std::uint32_t size = TRY(u32());
    if (size != sizeof(T)) {
      return fail("{}: {} is {} bytes, this microvm's is {}", what_, name, size, sizeof(T));
    }
    const std::span<const std::byte> body = TRY(take(sizeof(T)));
    T value;
    std::memcpy(&value, body.data(), sizeof(T));
    return value;
  }
  // The next `size` bytes as they are.
  [[nodiscard]] Result<std::span<const std::byte>> take(std::size_t size);
  // Fails unless everything was read (trailing bytes are a format mismatch).
  [[nodiscard]] Result<void> finish() const;

  [[nodiscard]] std::size_t remaining() const { return data_.size() - at_; }
  [[nodiscard]] const std::string& what() const { return what_; }

 private:
  template <typename T>
  Result<T> integer(const char*) {
    const std::span<const std::byte> body = TRY(take(sizeof(T)));
    T value;
    std::memcpy(&value, body.data(), sizeof(T));
    return value;
  }

  std::span<const std::byte> data_;
  std::size_t at_ = 0;
  std::string what_;
};

}  // namespace microvm::snapshot
