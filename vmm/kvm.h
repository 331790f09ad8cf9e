// RAII wrappers over the KVM API (Documentation/virt/kvm/api.rst): Kvm (the /dev/kvm fd) creates
// a Vm, a Vm creates Vcpus. Every ioctl microvm issues lives in kvm.cpp; each call site says why
// passing its argument is sound.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "memory/guest_memory.h"
#include "base/mapping.h"
#include "base/unique_fd.h"

namespace microvm::vmm {

class Vm;
class Vcpu;

class Kvm {
 public:
  static constexpr int kApiVersion = 12;  // the only stable KVM API version (api.rst 4.1)

  // Opens /dev/kvm and checks the API version and every capability microvm relies on.
  static Result<Kvm> open(const std::string& path = "/dev/kvm");

  [[nodiscard]] int check_extension(long capability) const;
  [[nodiscard]] Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;
  [[nodiscard]] Result<std::size_t> vcpu_mmap_size() const;
  [[nodiscard]] unsigned max_vcpus() const;
  [[nodiscard]] Result<Vm> create_vm() const;

 private:
  explicit Kvm(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

class Vm {
 public:
  [[nodiscard]] Result<void> set_user_memory_region(std::uint32_t slot, GuestAddress guest, std::uint64_t size,
                                                    void* host) const;
  [[nodiscard]] Result<void> set_tss_address(GuestAddress address) const;
  [[nodiscard]] Result<void> set_identity_map_address(GuestAddress address) const;
  [[nodiscard]] Result<void> create_irqchip() const;
  [[nodiscard]] Result<void> create_pit() const;
  [[nodiscard]] Result<void> set_irq_line(std::uint32_t irq, bool level) const;
  // KVM_IOEVENTFD (api.rst 4.59): a guest write of `len` bytes equal to `datamatch` at MMIO
  // `address` signals `eventfd` inside KVM instead of exiting to the VMM.
  [[nodiscard]] Result<void> register_ioeventfd(GuestAddress address, std::uint32_t len, std::uint64_t datamatch,
                                                int eventfd) const;
  // KVM_IRQFD (api.rst 4.75): a write to `eventfd` injects an edge on interrupt line `gsi`.
  [[nodiscard]] Result<void> register_irqfd(int eventfd, std::uint32_t gsi) const;
  [[nodiscard]] Result<Vcpu> create_vcpu(unsigned id, std::size_t mmap_size) const;
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  friend class Kvm;
  explicit Vm(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// Why KVM_RUN returned, as a value. Data spans point into the vCPU's kvm_run page and are valid
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

class Vcpu {
 public:
  [[nodiscard]] Result<VcpuExit> run();
  // While set, KVM_RUN returns at once (EINTR): used with a signal to stop a vCPU race-free.
  void set_immediate_exit(bool value);

  [[nodiscard]] Result<void> set_cpuid(std::span<const kvm_cpuid_entry2> entries) const;
  [[nodiscard]] Result<void> set_msrs(std::span<const kvm_msr_entry> entries) const;
  [[nodiscard]] Result<kvm_regs> get_regs() const;
  [[nodiscard]] Result<void> set_regs(const kvm_regs& regs) const;
  [[nodiscard]] Result<kvm_sregs> get_sregs() const;
  [[nodiscard]] Result<void> set_sregs(const kvm_sregs& sregs) const;
  [[nodiscard]] Result<void> set_fpu(const kvm_fpu& fpu) const;
  [[nodiscard]] Result<kvm_lapic_state> get_lapic() const;
  [[nodiscard]] Result<void> set_lapic(const kvm_lapic_state& lapic) const;
  // The vCPU's TSC frequency in kHz (KVM_GET_TSC_KHZ, api.rst 4.56); 0 when KVM cannot tell.
  [[nodiscard]] std::uint32_t tsc_khz() const;
  [[nodiscard]] unsigned id() const { return id_; }

 private:
  friend class Vm;
  Vcpu(unsigned id, UniqueFd fd, Mapping run) : id_(id), fd_(std::move(fd)), run_(std::move(run)) {}
  [[nodiscard]] kvm_run* run_struct() const { return reinterpret_cast<kvm_run*>(run_.data()); }

  unsigned id_;
  UniqueFd fd_;
  Mapping run_;  // the shared kvm_run structure (KVM_GET_VCPU_MMAP_SIZE bytes)
};

}  // namespace microvm::vmm
