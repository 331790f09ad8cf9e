#include "vmm/kvm.h"

#include "vmm/kvm_abi.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace microvm::vmm {

namespace {

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

constexpr std::size_t kMaxCpuidEntries = 256;
constexpr std::size_t kMaxMsrEntries = 64;

// Whether /dev/kvm is PVM ("pagetable-based virtual machine"): KVM without hardware virtualization,
// found on some cloud hosts. It only runs PVM-aware guest kernels; a stock Linux guest dies at its
// first exception with an emulation failure, so say so up front.
bool is_pvm_only(const std::string& sysfs_modules) {
  namespace fs = std::filesystem;
  std::error_code ec;
  return fs::exists(sysfs_modules + "/kvm_pvm", ec) && !fs::exists(sysfs_modules + "/kvm_intel", ec) &&
         !fs::exists(sysfs_modules + "/kvm_amd", ec);
}

// A kernel-layout "header with a count, then that many entries" argument (kvm_abi.h).
template <typename Header, typename Entry>
std::vector<std::byte> counted_array(std::span<const Entry> entries) {
  std::vector<std::byte> buffer(sizeof(Header) + entries.size_bytes());
  const Header header{static_cast<std::uint32_t>(entries.size()), 0};
  std::memcpy(buffer.data(), &header, sizeof(header));
  std::memcpy(buffer.data() + sizeof(header), entries.data(), entries.size_bytes());
  return buffer;
}

Result<void> check(int rc, const char* what) {
  if (rc < 0) return fail("{} failed: {}", what, errno_text(errno));
  return {};
}

}  // namespace

Result<Kvm> Kvm::open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) {
      return fail(
          "{} does not exist: KVM is unavailable here (virtualization off in firmware, kvm module not "
          "loaded, or no nested virtualization); run through the nested sandbox: tools/sandbox -- microvm ...",
          path);
    }
    if (err == EACCES || err == EPERM) {
      return fail("no permission to open {}: add your user to the 'kvm' group (usermod -aG kvm $USER) and log in again",
                  path);
    }
    return fail("cannot open {}: {}", path, errno_text(err));
  }
  if (is_pvm_only("/sys/module")) {
    return fail(
        "{} is backed by PVM (kvm_pvm, no hardware virtualization), which cannot run a stock Linux guest; "
        "run through the nested sandbox: tools/sandbox -- microvm ...",
        path);
  }
  // KVM_GET_API_VERSION takes no argument.
  const int version = ::ioctl(fd.get(), KVM_GET_API_VERSION, 0);
  if (version != kApiVersion) return fail("{} speaks KVM API version {}, microvm needs {}", path, version, kApiVersion);
  Kvm kvm(std::move(fd));
  for (const Capability& cap : kRequiredCapabilities) {
    if (kvm.check_extension(cap.id) <= 0) {
      return fail("this host's KVM lacks {}, which microvm needs; use a newer host kernel", cap.name);
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
  if (result.nent > kMaxCpuidEntries) return fail("KVM_GET_SUPPORTED_CPUID returned {} entries", result.nent);
  std::vector<kvm_cpuid_entry2> entries(result.nent);
  std::memcpy(entries.data(), buffer.data() + sizeof(abi::Cpuid2Header), result.nent * sizeof(kvm_cpuid_entry2));
  return entries;
}

Result<std::size_t> Kvm::vcpu_mmap_size() const {
  const int size = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size <= 0) return fail("KVM_GET_VCPU_MMAP_SIZE failed: {}", errno_text(errno));
  return static_cast<std::size_t>(size);
}

Result<Vm> Kvm::create_vm() const {
  // Machine type 0: the default x86 VM.
  const int fd = ::ioctl(fd_.get(), KVM_CREATE_VM, 0);
  if (fd < 0) return fail("KVM_CREATE_VM failed: {}", errno_text(errno));
  return Vm(UniqueFd(fd));
}

Result<void> Vm::set_user_memory_region(std::uint32_t slot, GuestAddress guest, std::uint64_t size, void* host) const {
  // `host` is a live mapping of `size` bytes owned by GuestMemory, which outlives the Vm.
  kvm_userspace_memory_region region{slot, 0, guest.value, size, reinterpret_cast<std::uint64_t>(host)};
  return check(::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region), "KVM_SET_USER_MEMORY_REGION");
}

Result<void> Vm::set_tss_address(GuestAddress address) const {
  // The address is passed by value (api.rst 4.43).
  return check(::ioctl(fd_.get(), KVM_SET_TSS_ADDR, address.value), "KVM_SET_TSS_ADDR");
}

Result<void> Vm::set_identity_map_address(GuestAddress address) const {
  std::uint64_t value = address.value;
  return check(::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &value), "KVM_SET_IDENTITY_MAP_ADDR");
}

Result<void> Vm::create_irqchip() const {
  return check(::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP");
}

Result<void> Vm::create_pit() const {
  // The dummy speaker port (0x61) keeps PIT channel 2 calibration loops inside the kernel.
  kvm_pit_config config{};
  config.flags = KVM_PIT_SPEAKER_DUMMY;
  return check(::ioctl(fd_.get(), KVM_CREATE_PIT2, &config), "KVM_CREATE_PIT2");
}

Result<void> Vm::set_irq_line(std::uint32_t irq, bool level) const {
  kvm_irq_level irq_level{};
  irq_level.irq = irq;
  irq_level.level = level ? 1 : 0;
  return check(::ioctl(fd_.get(), KVM_IRQ_LINE, &irq_level), "KVM_IRQ_LINE");
}

Result<void> Vm::register_ioeventfd(GuestAddress address, std::uint32_t len, std::uint64_t datamatch,
                                    int eventfd) const {
  kvm_ioeventfd request{};
  request.datamatch = datamatch;
  request.addr = address.value;
  request.len = len;
  request.fd = eventfd;
  request.flags = KVM_IOEVENTFD_FLAG_DATAMATCH;  // MMIO (no PIO flag), one eventfd per written value
  if (::ioctl(fd_.get(), KVM_IOEVENTFD, &request) < 0) {
    return fail("KVM_IOEVENTFD at {:#x} failed: {}", address.value, errno_text(errno));
  }
  return {};
}

Result<void> Vm::register_irqfd(int eventfd, std::uint32_t gsi) const {
  kvm_irqfd request{};
  request.fd = static_cast<std::uint32_t>(eventfd);
  request.gsi = gsi;
  if (::ioctl(fd_.get(), KVM_IRQFD, &request) < 0)
    return fail("KVM_IRQFD for GSI {} failed: {}", gsi, errno_text(errno));
  return {};
}

Result<Vcpu> Vm::create_vcpu(unsigned id, std::size_t mmap_size) const {
  const int fd = ::ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
  if (fd < 0) return fail("KVM_CREATE_VCPU {} failed: {}", id, errno_text(errno));
  UniqueFd vcpu_fd(fd);
  Mapping run = TRY(Mapping::shared(vcpu_fd.get(), mmap_size));
  return Vcpu(id, std::move(vcpu_fd), std::move(run));
}

Result<VcpuExit> Vcpu::run() {
  if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
    if (errno == EINTR || errno == EAGAIN) return exit::Interrupted{};
    return fail("KVM_RUN on vCPU {} failed: {}", id_, errno_text(errno));
  }
  kvm_run* run = run_struct();
  auto* page = reinterpret_cast<std::uint8_t*>(run);
  switch (run->exit_reason) {
    case KVM_EXIT_IO: {
      // KVM guarantees data_offset + size * count lies inside the mapping it sized for us; check anyway.
      const std::uint64_t bytes = std::uint64_t{run->io.size} * run->io.count;
      if (run->io.data_offset > run_.size() || bytes > run_.size() - run->io.data_offset) {
        return fail("KVM reported an I/O exit whose data lies outside the kvm_run page");
      }
      std::span<std::uint8_t> data(page + run->io.data_offset, static_cast<std::size_t>(bytes));
      if (run->io.direction == KVM_EXIT_IO_IN) return exit::IoIn{run->io.port, data, run->io.count};
      return exit::IoOut{run->io.port, data, run->io.count};
    }
    case KVM_EXIT_MMIO: {
      const std::size_t len = std::min<std::size_t>(run->mmio.len, sizeof(run->mmio.data));
      if (run->mmio.is_write) return exit::MmioWrite{run->mmio.phys_addr, std::span(run->mmio.data, len)};
      return exit::MmioRead{run->mmio.phys_addr, std::span(run->mmio.data, len)};
    }
    case KVM_EXIT_HLT: return exit::Hlt{};
    case KVM_EXIT_SHUTDOWN: return exit::Shutdown{};
    case KVM_EXIT_SYSTEM_EVENT: return exit::SystemEvent{run->system_event.type};
    case KVM_EXIT_FAIL_ENTRY:
      return exit::FailEntry{run->fail_entry.hardware_entry_failure_reason, run->fail_entry.cpu};
    case KVM_EXIT_INTERNAL_ERROR: return exit::InternalError{run->internal.suberror};
    case KVM_EXIT_INTR: return exit::Interrupted{};
    default: return exit::Unknown{run->exit_reason};
  }
}

void Vcpu::set_immediate_exit(bool value) {
  // A single byte in the shared page; KVM reads it on entry to KVM_RUN.
  __atomic_store_n(&run_struct()->immediate_exit, value ? 1 : 0, __ATOMIC_SEQ_CST);
}

Result<void> Vcpu::set_cpuid(std::span<const kvm_cpuid_entry2> entries) const {
  if (entries.size() > kMaxCpuidEntries) return fail("too many CPUID entries ({})", entries.size());
  std::vector<std::byte> buffer = counted_array<abi::Cpuid2Header>(entries);
  // KVM reads nent entries from behind the header (kernel C layout, see kvm_abi.h).
  return check(::ioctl(fd_.get(), abi::kSetCpuid2, buffer.data()), "KVM_SET_CPUID2");
}

Result<void> Vcpu::set_msrs(std::span<const kvm_msr_entry> entries) const {
  if (entries.size() > kMaxMsrEntries) return fail("too many MSRs ({})", entries.size());
  std::vector<std::byte> buffer = counted_array<abi::MsrsHeader>(entries);
  // KVM_SET_MSRS reads nmsrs entries from behind the header and returns how many it set.
  const int set = ::ioctl(fd_.get(), abi::kSetMsrs, buffer.data());
  if (set < 0) return fail("KVM_SET_MSRS failed: {}", errno_text(errno));
  if (static_cast<std::size_t>(set) != entries.size()) {
    return fail("KVM_SET_MSRS set {} of {} MSRs (MSR {:#x} refused)", set, entries.size(),
                entries[static_cast<std::size_t>(set)].index);
  }
  return {};
}

Result<kvm_regs> Vcpu::get_regs() const {
  kvm_regs regs{};
  TRY_VOID(check(::ioctl(fd_.get(), KVM_GET_REGS, &regs), "KVM_GET_REGS"));
  return regs;
}
Result<void> Vcpu::set_regs(const kvm_regs& regs) const {
  return check(::ioctl(fd_.get(), KVM_SET_REGS, &regs), "KVM_SET_REGS");
}
Result<kvm_sregs> Vcpu::get_sregs() const {
  kvm_sregs sregs{};
  TRY_VOID(check(::ioctl(fd_.get(), KVM_GET_SREGS, &sregs), "KVM_GET_SREGS"));
  return sregs;
}
Result<void> Vcpu::set_sregs(const kvm_sregs& sregs) const {
  return check(::ioctl(fd_.get(), KVM_SET_SREGS, &sregs), "KVM_SET_SREGS");
}
Result<void> Vcpu::set_fpu(const kvm_fpu& fpu) const {
  return check(::ioctl(fd_.get(), KVM_SET_FPU, &fpu), "KVM_SET_FPU");
}
Result<kvm_lapic_state> Vcpu::get_lapic() const {
  kvm_lapic_state lapic{};
  TRY_VOID(check(::ioctl(fd_.get(), KVM_GET_LAPIC, &lapic), "KVM_GET_LAPIC"));
  return lapic;
}
Result<void> Vcpu::set_lapic(const kvm_lapic_state& lapic) const {
  return check(::ioctl(fd_.get(), KVM_SET_LAPIC, &lapic), "KVM_SET_LAPIC");
}

std::uint32_t Vcpu::tsc_khz() const {
  // KVM_GET_TSC_KHZ takes no argument and returns the frequency (KVM_CAP_GET_TSC_KHZ); without the
  // capability it fails, which reads as "unknown".
  const int khz = ::ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
  return khz > 0 ? static_cast<std::uint32_t>(khz) : 0;
}

}  // namespace microvm::vmm
