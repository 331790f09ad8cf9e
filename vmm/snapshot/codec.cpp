#include "vmm/snapshot/codec.h"

namespace microvm::snapshot {

void Encoder::raw(const void* data, std::size_t size) {
  const auto* bytes = static_cast<const std::byte*>(data);
  out_.insert(out_.end(), bytes, bytes + size);
}

void Encoder::bytes(std::span<const std::byte> value) {
  u32(static_cast<std::uint32_t>(value.size()));
  raw(value.data(), value.size());
}

Result<std::span<const std::byte>> Decoder::take(std::size_t size) {
  if (size > remaining()) {
    return fail("{}: truncated at byte {} (needs {} more bytes, {} left)", what_, at_, size, remaining());
  }
  const std::span<const std::byte> out = data_.subspan(at_, size);
  at_ += size;
  return out;
}

Result<bool> Decoder::boolean() {
  const std::size_t at = at_;
  const std::uint8_t value = TRY(u8());
  if (value > 1) return fail("{}: byte {} should be a boolean (0 or 1), is {}", what_, at, value);
  return value == 1;
}

Result<std::uint32_t> Decoder::count(std::uint32_t max, std::string_view thing) {
  const std::uint32_t value = TRY(u32());
  if (value > max) return fail("{}: {} {}, at most {} are possible", what_, value, thing, max);
  return value;
}

Result<std::span<const std::byte>> Decoder::bytes(std::size_t max) {
  const std::uint32_t size = TRY(u32());
  if (size > max) return fail("{}: a field of {} bytes, at most {} are possible", what_, size, max);
  return take(size);
}

Result<std::string> Decoder::string(std::size_t max) {
  const std::span<const std::byte> body = TRY(bytes(max));
  std::string out(reinterpret_cast<const char*>(body.data()), body.size());
  if (out.find('\0') != std::string::npos) return fail("{}: a string contains a NUL byte", what_);
  return out;
}

Result<void> Decoder::finish() const {
  if (remaining() != 0) return fail("{}: {} unexpected bytes at the end", what_, remaining());
  return {};
}

}  // namespace microvm::snapshot
