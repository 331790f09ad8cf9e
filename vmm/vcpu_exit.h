// Why KVM_RUN returned, as a value (kvm-ioctls' VcpuExit): the vCPU loop dispatches on it instead
// of reading the kvm_run page itself.
#pragma once

#include <cstdint>
#include <span>
#include <variant>

namespace microvm::vmm {

// Data spans point into the vCPU's kvm_run page and are valid
// until the next run().
namespace exit {
struct IoIn {
  std::uint16_t port;
  std::span<std::uint8_t> data;
  std::uint32_t count;
};
struct IoOut {
  std::uint16_t port;
  std::span<const std::uint8_t> data;
  std::uint32_t count;
};
struct MmioRead {
  std::uint64_t address;
  std::span<std::uint8_t> data;
};
struct MmioWrite {
  std::uint64_t address;
  std::span<const std::uint8_t> data;
};
struct Hlt {};
struct Shutdown {};  // triple fault
struct SystemEvent {
  std::uint32_t type;
};  // KVM_SYSTEM_EVENT_*
struct FailEntry {
  std::uint64_t reason;
  std::uint32_t cpu;
};
struct InternalError {
  std::uint32_t suberror;
};
struct Interrupted {};  // a signal or immediate_exit kicked us out
struct Unknown {
  std::uint32_t reason;
};
}  // namespace exit
using VcpuExit =
    std::variant<exit::IoIn, exit::IoOut, exit::MmioRead, exit::MmioWrite, exit::Hlt, exit::Shutdown, exit::SystemEvent,
                 exit::FailEntry, exit::InternalError, exit::Interrupted, exit::Unknown>;

}  // namespace microvm::vmm
