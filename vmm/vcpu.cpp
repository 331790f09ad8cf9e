#include "vmm/vcpu.h"

#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "vmm/kvm_abi.h"
#include "vmm/kvm_ioctl.h"

namespace microvm::vmm {

using detail::check;
using detail::counted_array;
using detail::kMaxCpuidEntries;
using detail::kMaxMsrEntries;

Result<VcpuExit> Vcpu::run() {
  // KVM_RUN takes no argument; its results land in the kvm_run page mapped in run_ (api.rst 4.10).
  if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
    if (errno == EINTR || errno == EAGAIN) return exit::Interrupted{};
    return fail_kvm("KVM_RUN on vCPU {} failed: {}", id_, errno_text(errno));
  }
  kvm_run* run = run_struct();
  auto* page = reinterpret_cast<std::uint8_t*>(run);
  switch (run->exit_reason) {
    case KVM_EXIT_IO: {
      // KVM guarantees data_offset + size * count lies inside the mapping it sized for us; check anyway.
      const std::uint64_t bytes = std::uint64_t{run->io.size} * run->io.count;
      if (run->io.data_offset > run_.size() || bytes > run_.size() - run->io.data_offset) {
        return fail_kvm("KVM reported an I/O exit whose data lies outside the kvm_run page");
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
  if (entries.size() > kMaxCpuidEntries)
    return fail_kind(ErrorKind::kInternal, "too many CPUID entries ({})", entries.size());
  std::vector<std::byte> buffer = counted_array<abi::Cpuid2Header>(entries);
  // KVM reads nent entries from behind the header (kernel C layout, see kvm_abi.h).
  return check(::ioctl(fd_.get(), abi::kSetCpuid2, buffer.data()), "KVM_SET_CPUID2");
}

Result<void> Vcpu::set_msrs(std::span<const kvm_msr_entry> entries) const {
  if (entries.size() > kMaxMsrEntries) return fail_kind(ErrorKind::kInternal, "too many MSRs ({})", entries.size());
  std::vector<std::byte> buffer = counted_array<abi::MsrsHeader>(entries);
  // KVM_SET_MSRS reads nmsrs entries from behind the header and returns how many it set.
  const int set = ::ioctl(fd_.get(), abi::kSetMsrs, buffer.data());
  if (set < 0) return fail_kvm("KVM_SET_MSRS failed: {}", errno_text(errno));
  if (static_cast<std::size_t>(set) != entries.size()) {
    return fail_kvm("KVM_SET_MSRS set {} of {} MSRs (MSR {:#x} refused)", set, entries.size(),
                    entries[static_cast<std::size_t>(set)].index);
  }
  return {};
}

Result<kvm_regs> Vcpu::get_regs() const {
  kvm_regs regs{};
  // KVM writes one struct kvm_regs into `regs` (api.rst 4.11).
  TRY_VOID(check(::ioctl(fd_.get(), KVM_GET_REGS, &regs), "KVM_GET_REGS"));
  return regs;
}
Result<std::uint64_t> Vcpu::program_counter() const {
  return TRY(get_regs()).rip;
}
Result<void> Vcpu::set_regs(const kvm_regs& regs) const {
  // KVM reads one struct kvm_regs from `regs` (api.rst 4.12).
  return check(::ioctl(fd_.get(), KVM_SET_REGS, &regs), "KVM_SET_REGS");
}
Result<kvm_sregs> Vcpu::get_sregs() const {
  kvm_sregs sregs{};
  // KVM writes one struct kvm_sregs into `sregs` (api.rst 4.13).
  TRY_VOID(check(::ioctl(fd_.get(), KVM_GET_SREGS, &sregs), "KVM_GET_SREGS"));
  return sregs;
}
Result<void> Vcpu::set_sregs(const kvm_sregs& sregs) const {
  // KVM reads one struct kvm_sregs from `sregs` (api.rst 4.14).
  return check(::ioctl(fd_.get(), KVM_SET_SREGS, &sregs), "KVM_SET_SREGS");
}
Result<void> Vcpu::set_fpu(const kvm_fpu& fpu) const {
  // KVM reads one struct kvm_fpu from `fpu` (api.rst 4.23).
  return check(::ioctl(fd_.get(), KVM_SET_FPU, &fpu), "KVM_SET_FPU");
}
Result<kvm_lapic_state> Vcpu::get_lapic() const {
  kvm_lapic_state lapic{};
  // KVM writes one struct kvm_lapic_state (1 KiB of registers) into `lapic` (api.rst 4.57).
  TRY_VOID(check(::ioctl(fd_.get(), KVM_GET_LAPIC, &lapic), "KVM_GET_LAPIC"));
  return lapic;
}
Result<void> Vcpu::set_lapic(const kvm_lapic_state& lapic) const {
  // KVM reads one struct kvm_lapic_state from `lapic` (api.rst 4.58).
  return check(::ioctl(fd_.get(), KVM_SET_LAPIC, &lapic), "KVM_SET_LAPIC");
}

Result<std::vector<kvm_cpuid_entry2>> Vcpu::get_cpuid() const {
  std::vector<std::byte> buffer(sizeof(abi::Cpuid2Header) + kMaxCpuidEntries * sizeof(kvm_cpuid_entry2));
  const abi::Cpuid2Header header{kMaxCpuidEntries, 0};
  std::memcpy(buffer.data(), &header, sizeof(header));
  // KVM writes at most nent entries behind the header and sets nent to how many (api.rst 4.46 for
  // the layout); the buffer is sized for kMaxCpuidEntries.
  TRY_VOID(check(::ioctl(fd_.get(), abi::kGetCpuid2, buffer.data()), "KVM_GET_CPUID2"));
  abi::Cpuid2Header result;
  std::memcpy(&result, buffer.data(), sizeof(result));
  if (result.nent > kMaxCpuidEntries) return fail_kvm("KVM_GET_CPUID2 returned {} entries", result.nent);
  std::vector<kvm_cpuid_entry2> entries(result.nent);
  std::memcpy(entries.data(), buffer.data() + sizeof(abi::Cpuid2Header), result.nent * sizeof(kvm_cpuid_entry2));
  return entries;
}

Result<std::vector<kvm_msr_entry>> Vcpu::get_msrs(std::span<const std::uint32_t> indices) const {
  if (indices.size() > kMaxMsrEntries) return fail_kind(ErrorKind::kInternal, "too many MSRs ({})", indices.size());
  std::vector<kvm_msr_entry> entries(indices.size());
  for (std::size_t i = 0; i < indices.size(); ++i) entries[i].index = indices[i];
  std::vector<std::byte> buffer = counted_array<abi::MsrsHeader>(std::span<const kvm_msr_entry>(entries));
  // KVM_GET_MSRS reads nmsrs entries' indices from behind the header, writes their values in place
  // and returns how many it read (api.rst 4.18); the buffer holds all nmsrs entries.
  const int read = ::ioctl(fd_.get(), abi::kGetMsrs, buffer.data());
  if (read < 0) return fail_kvm("KVM_GET_MSRS failed: {}", errno_text(errno));
  const auto count = std::min(static_cast<std::size_t>(read), entries.size());
  std::memcpy(entries.data(), buffer.data() + sizeof(abi::MsrsHeader), count * sizeof(kvm_msr_entry));
  entries.resize(count);
  return entries;
}

Result<kvm_mp_state> Vcpu::get_mp_state() const {
  kvm_mp_state state{};
  // KVM writes one struct kvm_mp_state (api.rst 4.38).
  TRY_VOID(check(::ioctl(fd_.get(), KVM_GET_MP_STATE, &state), "KVM_GET_MP_STATE"));
  return state;
}
Result<void> Vcpu::set_mp_state(const kvm_mp_state& state) const {
  // KVM reads one struct kvm_mp_state (api.rst 4.39).
  return check(::ioctl(fd_.get(), KVM_SET_MP_STATE, &state), "KVM_SET_MP_STATE");
}

Result<std::vector<std::byte>> Vcpu::get_xsave(std::size_t size) const {
  if (size < sizeof(abi::XsaveRegion)) return fail_kind(ErrorKind::kInternal, "XSAVE area of {} bytes", size);
  std::vector<std::byte> area(size);
  // KVM writes 4 KiB (KVM_GET_XSAVE, api.rst 4.42), or with KVM_GET_XSAVE2 (4.134) exactly the
  // KVM_CAP_XSAVE2 size of the VM, which `size` is: the buffer holds either.
  const bool extended = size > sizeof(abi::XsaveRegion);
  TRY_VOID(check(::ioctl(fd_.get(), extended ? abi::kGetXsave2 : abi::kGetXsave, area.data()),
                 extended ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE"));
  return area;
}
Result<void> Vcpu::set_xsave(std::span<const std::byte> area) const {
  if (area.size() < sizeof(abi::XsaveRegion)) {
    return fail_kind(ErrorKind::kInternal, "XSAVE area of {} bytes", area.size());
  }
  // KVM reads 4 KiB, or the VM's KVM_CAP_XSAVE2 size when that is larger (api.rst 4.43); the
  // caller checked that `area` has that size.
  return check(::ioctl(fd_.get(), abi::kSetXsave, area.data()), "KVM_SET_XSAVE");
}

Result<kvm_xcrs> Vcpu::get_xcrs() const {
  kvm_xcrs xcrs{};
  // KVM writes one struct kvm_xcrs (api.rst 4.44).
  TRY_VOID(check(::ioctl(fd_.get(), KVM_GET_XCRS, &xcrs), "KVM_GET_XCRS"));
  return xcrs;
}
Result<void> Vcpu::set_xcrs(const kvm_xcrs& xcrs) const {
  // KVM reads one struct kvm_xcrs and checks nr_xcrs against KVM_MAX_XCRS (api.rst 4.45).
  return check(::ioctl(fd_.get(), KVM_SET_XCRS, &xcrs), "KVM_SET_XCRS");
}

Result<kvm_debugregs> Vcpu::get_debug_regs() const {
  kvm_debugregs regs{};
  // KVM writes one struct kvm_debugregs (api.rst 4.33).
  TRY_VOID(check(::ioctl(fd_.get(), KVM_GET_DEBUGREGS, &regs), "KVM_GET_DEBUGREGS"));
  return regs;
}
Result<void> Vcpu::set_debug_regs(const kvm_debugregs& regs) const {
  // KVM reads one struct kvm_debugregs (api.rst 4.34).
  return check(::ioctl(fd_.get(), KVM_SET_DEBUGREGS, &regs), "KVM_SET_DEBUGREGS");
}

Result<kvm_vcpu_events> Vcpu::get_vcpu_events() const {
  kvm_vcpu_events events{};
  // KVM writes one struct kvm_vcpu_events (api.rst 4.31).
  TRY_VOID(check(::ioctl(fd_.get(), KVM_GET_VCPU_EVENTS, &events), "KVM_GET_VCPU_EVENTS"));
  return events;
}
Result<void> Vcpu::set_vcpu_events(const kvm_vcpu_events& events) const {
  // KVM reads one struct kvm_vcpu_events; its flags say which optional fields are valid (api.rst 4.32).
  return check(::ioctl(fd_.get(), KVM_SET_VCPU_EVENTS, &events), "KVM_SET_VCPU_EVENTS");
}

Result<void> Vcpu::set_tsc_khz(std::uint32_t khz) const {
  // The frequency is passed by value (api.rst 4.55).
  if (::ioctl(fd_.get(), KVM_SET_TSC_KHZ, static_cast<unsigned long>(khz)) < 0) {
    return fail_kvm("KVM_SET_TSC_KHZ {} kHz on vCPU {} failed: {}", khz, id_, errno_text(errno));
  }
  return {};
}

Result<void> Vcpu::kvmclock_ctrl() const {
  // No argument (api.rst 4.70).
  return check(::ioctl(fd_.get(), KVM_KVMCLOCK_CTRL, 0), "KVM_KVMCLOCK_CTRL");
}

std::uint32_t Vcpu::tsc_khz() const {
  // KVM_GET_TSC_KHZ takes no argument and returns the frequency (KVM_CAP_GET_TSC_KHZ); without the
  // capability it fails, which reads as "unknown".
  const int khz = ::ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
  return khz > 0 ? static_cast<std::uint32_t>(khz) : 0;
}

}  // namespace microvm::vmm
