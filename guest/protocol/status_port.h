// microvm's status port: the one place that defines the register layout between the container
// init (guest/init, PID 1 in the guest) and the VMM's device (devices/status_port.h). Constants and
// constexpr helpers only, no guest-only includes, so both sides compile it.
//
// An x86 I/O port range of kSize bytes at kBase (the guest gets access with ioperm(kBase, kSize, 1)).
//   32-bit OUT at kBase (outl): value = (event << kEventShift) | (payload & kPayloadMask)
//     kInitStarted      payload 0: /init runs (it has mounted /proc, /sys and /dev)
//     kWorkloadStarted  payload = the workload's pid & kPayloadMask: it was forked
//     kWorkloadExited   payload = its exit status 0..255 (code, or 128 + signal; 125 when the init
//                       could not start it). Sent after every other guest process was killed, the
//                       console's output was drained and the filesystems were synced, right before
//                       the init powers the VM off (a VMM may end the VM as soon as it sees it).
//   32-bit IN at kBase (inl): bit 0 (kStopRequested) = the host asks the init to stop the workload
//     (SIGTERM, then SIGKILL after the spec's stop_grace_ms). Bits 1..31 read as zero. A read of all
//     ones (kNoDevice: what an unclaimed port returns) means "no status device" and never a stop.
//     kSpecWanted       payload 0: a template boot (the initramfs has no spec, guest/protocol/spec.h):
//                       the init has mounted /proc, /sys and /dev and now polls kSpecLengthOffset
//                       for its spec. The guest is quiescent from here until a spec arrives, so the
//                       host may pause and snapshot it (runtime/warm_start.h: the warm-start template).
//   The spec registers (spec_channel.h has both sides of the exchange):
//     32-bit IN  at kBase + kSpecLengthOffset: the spec's length in bytes, 0 while the host has none
//                (the init polls it, sleeping kSpecPollInterval between reads).
//     32-bit OUT at kBase + kSpecCursorOffset: sets the read cursor (a byte offset into the spec).
//     8-bit  IN  at kBase + kSpecDataOffset: the byte at the cursor, which then advances; past the end
//                it reads 0. String I/O (`rep insb`, up to a page per VM exit) reads a run of bytes.
//   Any other access size or offset is ignored by the device and reads as zero.
#pragma once

#include <cstdint>

namespace microvm::guest::status_port {

inline constexpr std::uint16_t kBase = 0x5a0;  // free in the PC's legacy I/O map
inline constexpr std::uint16_t kSize = 16;
inline constexpr std::uint16_t kStatusPortBase = kBase;
inline constexpr std::uint16_t kStatusPortSize = kSize;

enum class Event : std::uint8_t {
  kInitStarted = 1,
  kWorkloadStarted = 2,
  kWorkloadExited = 3,
  kSpecWanted = 4,
};

inline constexpr std::uint16_t kSpecLengthOffset = 4;
inline constexpr std::uint16_t kSpecCursorOffset = 8;
inline constexpr std::uint16_t kSpecDataOffset = 12;

inline constexpr unsigned kEventShift = 24;
inline constexpr std::uint32_t kPayloadMask = (std::uint32_t{1} << kEventShift) - 1;

inline constexpr std::uint32_t kStopRequested = 1U << 0;  // in the value read at kBase
inline constexpr std::uint32_t kNoDevice = 0xffffffffU;

// The 32-bit value the guest writes to report `event`; the payload is truncated to 24 bits.
[[nodiscard]] constexpr std::uint32_t encode(Event event, std::uint32_t payload) {
  return (static_cast<std::uint32_t>(event) << kEventShift) | (payload & kPayloadMask);
}
[[nodiscard]] constexpr std::uint8_t event_of(std::uint32_t value) {
  return static_cast<std::uint8_t>(value >> kEventShift);
}
[[nodiscard]] constexpr std::uint32_t payload_of(std::uint32_t value) {
  return value & kPayloadMask;
}

// Whether a value read at kBase asks for a stop.
[[nodiscard]] constexpr bool stop_requested(std::uint32_t read_value) {
  return read_value != kNoDevice && (read_value & kStopRequested) != 0;
}

}  // namespace microvm::guest::status_port
