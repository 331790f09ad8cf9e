#include "guest/protocol/spec_channel.h"

#include <algorithm>
#include <cstring>

#include "guest/protocol/status_port.h"

namespace microvm::guest::status_port {

void SpecChannel::set(std::string spec) {
  std::lock_guard lock(mutex_);
  spec_ = std::move(spec);
  cursor_ = 0;
}

void SpecChannel::clear() {
  set({});
}

bool SpecChannel::has_spec() const {
  std::lock_guard lock(mutex_);
  return !spec_.empty();
}

bool SpecChannel::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  if (offset == kSpecLengthOffset) {
    std::uint32_t value = 0;
    if (data.size() == sizeof(value)) {
      std::lock_guard lock(mutex_);
      value = static_cast<std::uint32_t>(std::min<std::size_t>(spec_.size(), UINT32_MAX - 1));
    }
    std::fill(data.begin(), data.end(), 0);
    std::memcpy(data.data(), &value, std::min(data.size(), sizeof(value)));
    return true;
  }
  if (offset == kSpecDataOffset) {
    std::fill(data.begin(), data.end(), 0);
    if (data.size() == 1) {
      std::lock_guard lock(mutex_);
      if (cursor_ < spec_.size()) data[0] = static_cast<std::uint8_t>(spec_[cursor_++]);
    }
    return true;
  }
  return false;
}

bool SpecChannel::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  if (offset != kSpecCursorOffset) return false;
  std::uint32_t value = 0;
  if (data.size() != sizeof(value)) return true;  // ignored, like every other odd access
  std::memcpy(&value, data.data(), sizeof(value));
  std::lock_guard lock(mutex_);
  cursor_ = std::min<std::size_t>(value, spec_.size());  // guest input: never past the end
  return true;
}

Result<std::string> receive_spec(PortIo& io, std::size_t max_bytes, const std::function<bool()>& wait) {
  std::uint32_t length = 0;
  while ((length = io.in32(kSpecLengthOffset)) == 0) {
    if (!wait()) return fail("no spec from the host (the status port's spec length stayed 0)");
  }
  if (length == kNoDevice) return fail("no status device: the spec cannot come from the host");
  if (length > max_bytes) {
    return fail("the host's spec is " + std::to_string(length) + " bytes, more than " + std::to_string(max_bytes));
  }
  std::string spec(length, '\0');
  for (std::size_t at = 0; at < spec.size(); at += kSpecChunkBytes) {
    const std::size_t n = std::min(kSpecChunkBytes, spec.size() - at);
    io.out32(kSpecCursorOffset, static_cast<std::uint32_t>(at));
    io.in8_string(kSpecDataOffset, std::span(reinterpret_cast<std::uint8_t*>(spec.data() + at), n));
  }
  return spec;
}

}  // namespace microvm::guest::status_port
