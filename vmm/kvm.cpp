#include "vmm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "vmm/kvm_abi.h"
#include "vmm/kvm_ioctl.h"

namespace microvm::vmm {

using detail::check;
using detail::kMaxCpuidEntries;

namespace {

constexpr std::uint32_t kMaxMsrIndices = 4096;  // KVM lists a few hundred; more is not a KVM we know

struct Capability {
  long id;
  const char* name;
};
// Everything the VMM relies on, checked once at start so a missing one is one clear message.
constexpr Capability kRequiredCapabilities[] = {
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_HLT, "KVM_CAP_HLT"},
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
};

// Whether /dev/kvm is PVM ("pagetable-based virtual machine"): KVM without hardware virtualization,
// found on some cloud hosts. It only runs PVM-aware guest kernels; a stock Linux guest dies at its
// first exception with an emulation failure, so say so up front.
bool is_pvm_only(const std::string& sysfs_modules) {
  namespace fs = std::filesystem;
  std::error_code ec;
  return fs::exists(sysfs_modules + "/kvm_pvm", ec) && !fs::exists(sysfs_modules + "/kvm_intel", ec) &&
         !fs::exists(sysfs_modules + "/kvm_amd", ec);
}

}  // namespace

Result<Kvm> Kvm::open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) {
      return fail_host(
          "{} does not exist: KVM is unavailable here (virtualization off in firmware, kvm module not "
          "loaded, or no nested virtualization); run through the nested sandbox: tools/sandbox -- microvm ...",
          path);
    }
    if (err == EACCES || err == EPERM) {
      return fail_host(
          "no permission to open {}: add your user to the 'kvm' group (usermod -aG kvm $USER) and log in again", path);
    }
    return fail_host("cannot open {}: {}", path, errno_text(err));
  }
  if (is_pvm_only("/sys/module")) {
    return fail_host(
        "{} is backed by PVM (kvm_pvm, no hardware virtualization), which cannot run a stock Linux guest; "
        "run through the nested sandbox: tools/sandbox -- microvm ...",
        path);
  }
  // KVM_GET_API_VERSION takes no argument.
  const int version = ::ioctl(fd.get(), KVM_GET_API_VERSION, 0);
  if (version != kApiVersion)
    return fail_kvm("{} speaks KVM API version {}, microvm needs {}", path, version, kApiVersion);
  Kvm kvm(std::move(fd));
  for (const Capability& cap : kRequiredCapabilities) {
    if (kvm.check_extension(cap.id) <= 0) {
      return fail_kvm("this host's KVM lacks {}, which microvm needs; use a newer host kernel", cap.name);
    }
  }
  return kvm;
}

int Kvm::check_extension(long capability) const {
  // KVM_CHECK_EXTENSION takes the capability number by value.
  return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
}

unsigned Kvm::max_vcpus() const {
  const int max = check_extension(KVM_CAP_MAX_VCPUS);
  return max > 0 ? static_cast<unsigned>(max) : static_cast<unsigned>(std::max(check_extension(KVM_CAP_NR_VCPUS), 1));
}

Result<std::vector<kvm_cpuid_entry2>> Kvm::supported_cpuid() const {
  // Header + kMaxCpuidEntries entries, laid out as the kernel's C struct (see kvm_abi.h).
  std::vector<std::byte> buffer(sizeof(abi::Cpuid2Header) + kMaxCpuidEntries * sizeof(kvm_cpuid_entry2));
  const abi::Cpuid2Header header{kMaxCpuidEntries, 0};
  std::memcpy(buffer.data(), &header, sizeof(header));
  // KVM writes at most nent entries behind the header, into the buffer sized for them.
  TRY_VOID(check(::ioctl(fd_.get(), abi::kGetSupportedCpuid, buffer.data()), "KVM_GET_SUPPORTED_CPUID"));
  abi::Cpuid2Header result;
  std::memcpy(&result, buffer.data(), sizeof(result));
  if (result.nent > kMaxCpuidEntries) return fail_kvm("KVM_GET_SUPPORTED_CPUID returned {} entries", result.nent);
  std::vector<kvm_cpuid_entry2> entries(result.nent);
  std::memcpy(entries.data(), buffer.data() + sizeof(abi::Cpuid2Header), result.nent * sizeof(kvm_cpuid_entry2));
  return entries;
}

Result<std::vector<std::uint32_t>> Kvm::msr_index_list() const {
  // First with room for none: KVM fails with E2BIG and says how many there are.
  abi::MsrListHeader probe{0};
  // KVM reads nmsrs and, the array being too small, writes only the needed count back.
  if (::ioctl(fd_.get(), abi::kGetMsrIndexList, &probe) < 0 && errno != E2BIG) {
    return fail_kvm("KVM_GET_MSR_INDEX_LIST failed: {}", errno_text(errno));
  }
  if (probe.nmsrs > kMaxMsrIndices) return fail_kvm("KVM_GET_MSR_INDEX_LIST reports {} MSRs", probe.nmsrs);
  std::vector<std::uint32_t> buffer(1 + probe.nmsrs);
  buffer[0] = probe.nmsrs;
  // KVM writes at most nmsrs indices behind the header, into the buffer sized for them.
  TRY_VOID(check(::ioctl(fd_.get(), abi::kGetMsrIndexList, buffer.data()), "KVM_GET_MSR_INDEX_LIST"));
  const std::uint32_t count = std::min(buffer[0], probe.nmsrs);
  return std::vector<std::uint32_t>(buffer.begin() + 1, buffer.begin() + 1 + count);
}

Result<std::size_t> Kvm::vcpu_mmap_size() const {
  // No argument; returns the size of the kvm_run mapping (api.rst 4.5).
  const int size = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size <= 0) return fail_kvm("KVM_GET_VCPU_MMAP_SIZE failed: {}", errno_text(errno));
  return static_cast<std::size_t>(size);
}

Result<Vm> Kvm::create_vm() const {
  // Machine type 0: the default x86 VM.
  const int fd = ::ioctl(fd_.get(), KVM_CREATE_VM, 0);
  if (fd < 0) return fail_kvm("KVM_CREATE_VM failed: {}", errno_text(errno));
  return Vm(UniqueFd(fd));
}

}  // namespace microvm::vmm
