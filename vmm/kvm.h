// RAII wrappers over the KVM API (Documentation/virt/kvm/api.rst), one file per fd as in rust-vmm's
// kvm-ioctls: Kvm (the /dev/kvm fd, here) creates a Vm (vm.h), a Vm creates Vcpus (vcpu.h). Every
// ioctl microvm issues lives in kvm.cpp, vm.cpp or vcpu.cpp; each call site says why passing its
// argument is sound. Failures are ErrorKind::kKvm (or kHost when /dev/kvm itself is missing).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/vm.h"

namespace microvm::vmm {

class Kvm {
 public:
  static constexpr int kApiVersion = 12;  // the only stable KVM API version (api.rst 4.1)

  // Opens /dev/kvm and checks the API version and every capability microvm relies on.
  static Result<Kvm> open(const std::string& path = "/dev/kvm");

  [[nodiscard]] int check_extension(long capability) const;
  [[nodiscard]] Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;
  // KVM_GET_MSR_INDEX_LIST (api.rst 4.3): every MSR KVM can save and restore for a vCPU.
  [[nodiscard]] Result<std::vector<std::uint32_t>> msr_index_list() const;
  [[nodiscard]] Result<std::size_t> vcpu_mmap_size() const;
  [[nodiscard]] unsigned max_vcpus() const;
  [[nodiscard]] Result<Vm> create_vm() const;

 private:
  explicit Kvm(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace microvm::vmm
