#include "devices/status_port.h"

#include <algorithm>
#include <cstring>

namespace microvm::devices {

namespace status = microvm::guest::status_port;

void StatusPort::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  if (spec_.read(offset, data)) return;
  std::uint32_t value = 0;
  if (offset == 0 && data.size() == sizeof(value) && stop_requested_.load()) value = status::kStopRequested;
  std::memset(data.data(), 0, data.size());
  std::memcpy(data.data(), &value, std::min(data.size(), sizeof(value)));
}

void StatusPort::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  if (spec_.write(offset, data)) return;
  std::uint32_t value = 0;
  if (offset != 0 || data.size() != sizeof(value)) return;  // only 32-bit writes at the base mean anything
  std::memcpy(&value, data.data(), sizeof(value));
  switch (const auto event = static_cast<Event>(status::event_of(value))) {
    case Event::kInitStarted:
    case Event::kWorkloadStarted:
    case Event::kWorkloadExited:
    case Event::kSpecWanted: listener_(event, status::payload_of(value), std::chrono::steady_clock::now()); break;
    default: break;  // unknown events are ignored: the guest cannot confuse the VMM with them
  }
}

}  // namespace microvm::devices
