// Both sides of the spec exchange on the status port (status_port.h has the registers): how a
// template-booted microvm-init gets its container spec from the host at run time, after the host
// restored it from a snapshot. The host's side (SpecChannel) is the registers' state; the guest's
// side (receive_spec) drives them through a PortIo, which the init implements with inl/outl/insb and
// the unit tests connect straight to a SpecChannel.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string>

#include "guest/protocol/result.h"

namespace microvm::guest::status_port {

// One `rep insb` reads at most this much: KVM makes one exit per page of string I/O.
inline constexpr std::size_t kSpecChunkBytes = 4096;

// The host's side: the spec bytes and the cursor. Thread-safe (vCPU threads read, the event loop sets).
class SpecChannel {
 public:
  // Publishes `spec` (the guest sees a non-zero length from now on) and rewinds the cursor.
  void set(std::string spec);
  void clear();
  [[nodiscard]] bool has_spec() const;

  // A register access at `offset` (relative to kBase) of `size` bytes; false: not a spec register
  // (the caller handles or ignores it).
  bool read(std::uint64_t offset, std::span<std::uint8_t> data);
  bool write(std::uint64_t offset, std::span<const std::uint8_t> data);

 private:
  mutable std::mutex mutex_;
  std::string spec_;
  std::size_t cursor_ = 0;
};

// How the guest reaches the registers (offsets relative to kBase).
class PortIo {
 public:
  virtual ~PortIo() = default;
  virtual std::uint32_t in32(std::uint16_t offset) = 0;
  virtual void out32(std::uint16_t offset, std::uint32_t value) = 0;
  // String input of bytes.size() 8-bit reads at `offset` (`rep insb`).
  virtual void in8_string(std::uint16_t offset, std::span<std::uint8_t> bytes) = 0;
};

// The guest's side: polls the length until it is non-zero (calling `wait` between polls, which
// sleeps and returns false once the init gives up), then reads the spec in kSpecChunkBytes runs.
// A length above `max_bytes`, or a length of all ones (no status device), is an error.
[[nodiscard]] Result<std::string> receive_spec(PortIo& io, std::size_t max_bytes, const std::function<bool()>& wait);

}  // namespace microvm::guest::status_port
