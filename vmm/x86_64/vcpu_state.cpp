#include "vmm/x86_64/vcpu_state.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdlib>

#include "base/error.h"
#include "vmm/kvm_ioctl.h"
#include "vmm/snapshot/x86_64/cpu_model.h"

namespace microvm::vmm {

namespace {

// [first, first + count) of MSR numbers (Intel SDM vol. 4; AMD APM vol. 2 appendix A).
struct MsrRange {
  std::uint32_t first;
  std::uint32_t count;
  [[nodiscard]] constexpr bool contains(std::uint32_t index) const { return index >= first && index - first < count; }
};

constexpr std::uint32_t kMsrIa32McgCtl = 0x17b;  // machine-check global control: KVM refuses some writes

constexpr MsrRange kSavedMsrs[] = {
    {0x0, 2},          // IA32_P5_MC_ADDR, IA32_P5_MC_TYPE
    {kMsrIa32Tsc, 1},  // IA32_TIME_STAMP_COUNTER
    {0x17, 1},         // IA32_PLATFORM_ID
    {0x1b, 1},         // IA32_APIC_BASE
    {0x2a, 1},         // MSR_EBL_CR_POWERON
    {0x2c, 1},         // MSR_EBC_FREQUENCY_ID
    {0x34, 1},         // MSR_SMI_COUNT
    {0x3a, 2},         // IA32_FEATURE_CONTROL, IA32_TSC_ADJUST
    {0x48, 2},         // IA32_SPEC_CTRL, IA32_PRED_CMD
    {0x79, 1},         // IA32_BIOS_UPDT_TRIG
    {0x8b, 1},         // IA32_BIOS_SIGN_ID
    {0x9e, 1},         // IA32_SMBASE
    {0xcd, 2},         // MSR_FSB_FREQ, MSR_PLATFORM_INFO
    {0xe2, 1},         // MSR_PKG_CST_CONFIG_CONTROL
    {0xe7, 2},         // IA32_MPERF, IA32_APERF
    {0xfe, 1},         // IA32_MTRRCAP
    {0x11e, 1},        // MSR_BBL_CR_CTL3
    {0x122, 1},        // IA32_TSX_CTRL
    {0x140, 1},        // MSR_MISC_FEATURES_ENABLES
    {0x174, 3},        // IA32_SYSENTER_CS, _ESP, _EIP
    {0x179, 3},        // IA32_MCG_CAP, IA32_MCG_STATUS, IA32_MCG_CTL (left out below)
    {0x198, 1},        // IA32_PERF_STATUS
    {0x1a0, 1},        // IA32_MISC_ENABLE
    {0x1a4, 1},        // MSR_MISC_FEATURE_CONTROL
    {0x1aa, 1},        // MSR_MISC_PWR_MGMT
    {0x1ad, 2},        // MSR_TURBO_RATIO_LIMIT, _LIMIT1
    {0x1d9, 1},        // IA32_DEBUGCTL
    {0x1db, 4},        // last branch / last interrupt from and to IPs
    {0x1fc, 1},        // MSR_POWER_CTL
    {0x200, 0x100},    // MTRR physical base/mask pairs, fixed-range MTRRs, IA32_PAT, MTRR default type
    {0x3fc, 3},        // MSR_CORE_C3/C6/C7_RESIDENCY
    {0x400, 0x80},     // IA32_MC0_CTL ... the machine-check banks
    {0x606, 1},        // MSR_RAPL_POWER_UNIT
    {0x60a, 3},        // MSR_PKGC3/C6/C7_IRTL
    {0x610, 2},        // MSR_PKG_POWER_LIMIT, MSR_PKG_ENERGY_STATUS
    {0x613, 2},        // MSR_PKG_PERF_STATUS, MSR_PKG_POWER_INFO
    {0x618, 2},        // MSR_DRAM_POWER_LIMIT, MSR_DRAM_ENERGY_STATUS
    {0x61b, 2},        // MSR_DRAM_PERF_STATUS, MSR_DRAM_POWER_INFO
    {0x648, 5},        // MSR_CONFIG_TDP_*, MSR_TURBO_ACTIVATION_RATIO
    {kMsrIa32TscDeadline, 1},
    {0x800, 0x400},   // the x2APIC registers
    {0xda0, 1},       // IA32_XSS
    {0xc0000080, 5},  // EFER, STAR, LSTAR, CSTAR, SFMASK
    {0xc0000100, 4},  // FS_BASE, GS_BASE, KERNEL_GS_BASE, TSC_AUX
    {0xc0010015, 1},  // AMD HWCR
    {kMsrKvmFirst, kMsrKvmLast - kMsrKvmFirst + 1},
};

constexpr std::int64_t kTscToleranceParts = 250;  // parts per million
constexpr std::int64_t kTscToleranceScale = 1'000'000;

// MSRs are read and written this many at a time (KVM's MAX_IO_MSRS is 256).
constexpr std::size_t kMsrChunk = 128;

// System-segment types (SDM 3A table 3-2, AMD APM 2 table 4-6): a 64-bit TSS, available and busy.
constexpr std::uint8_t kTssAvailable = 9;
constexpr std::uint8_t kTssBusy = 11;
constexpr std::array<char, 12> kAmdVendor{'A', 'u', 't', 'h', 'e', 'n', 't', 'i', 'c', 'A', 'M', 'D'};

Result<void> set_msr_entries(const Vcpu& vcpu, std::span<const kvm_msr_entry> entries) {
  for (std::size_t at = 0; at < entries.size(); at += kMsrChunk) {
    TRY_VOID(vcpu.set_msrs(entries.subspan(at, std::min(kMsrChunk, entries.size() - at))));
  }
  return {};
}

}  // namespace

bool msr_is_saved(std::uint32_t index) {
  if (index == kMsrIa32McgCtl) return false;
  return std::ranges::any_of(kSavedMsrs, [index](const MsrRange& range) { return range.contains(index); });
}

std::vector<std::uint32_t> msrs_to_save(std::span<const std::uint32_t> kvm_list) {
  std::vector<std::uint32_t> out;
  for (std::uint32_t index : kvm_list) {
    if (msr_is_saved(index)) out.push_back(index);
  }
  return out;
}

bool tsc_scaling_needed(std::uint32_t saved_khz, std::uint32_t host_khz) {
  if (saved_khz == 0 || host_khz == 0) return false;  // unknown: nothing to compare
  const std::int64_t diff = std::llabs(static_cast<std::int64_t>(host_khz) - static_cast<std::int64_t>(saved_khz));
  return diff * kTscToleranceScale > static_cast<std::int64_t>(saved_khz) * kTscToleranceParts;
}

kvm_sregs restorable_sregs(kvm_sregs sregs, const snapshot::CpuModel& host) {
  // On AMD, KVM reports TR as busy whatever the VMCB holds (svm_get_segment sets the busy bit: SVM
  // does not keep it), and SVM never checks the type on VMRUN; a CPU that looks at the type of its
  // cached TR afterwards — QEMU's TCG, whose I/O permission check wants an available TSS, as after
  // LTR — would then refuse every I/O port the guest's user space was granted (ioperm): microvm-init's
  // status port after a warm start (a "general protection fault" at its first IN). So on AMD TR goes
  // back with the available type, as QEMU's LTR leaves it in its cache; KVM's own I/O emulation
  // checks only TR's presence and limit. On Intel, VM entry requires the busy type (SDM 3C 26.3.1.2),
  // which KVM reports correctly there: TR is left alone.
  if (host.vendor == kAmdVendor && sregs.tr.type == kTssBusy) sregs.tr.type = kTssAvailable;
  return sregs;
}

Result<VcpuState> save_vcpu(const Vcpu& vcpu, std::span<const std::uint32_t> msrs, std::size_t xsave_size) {
  VcpuState state;
  state.mp_state = TRY(vcpu.get_mp_state());
  state.regs = TRY(vcpu.get_regs());
  state.sregs = TRY(vcpu.get_sregs());
  state.xsave = TRY(vcpu.get_xsave(xsave_size));
  state.xcrs = TRY(vcpu.get_xcrs());
  state.debug_regs = TRY(vcpu.get_debug_regs());
  state.lapic = TRY(vcpu.get_lapic());
  state.tsc_khz = vcpu.tsc_khz();
  state.cpuid = TRY(vcpu.get_cpuid());
  // KVM stops at the first MSR it cannot read: leave that one out and go on after it.
  for (std::size_t at = 0; at < msrs.size();) {
    const std::span<const std::uint32_t> chunk = msrs.subspan(at, std::min(kMsrChunk, msrs.size() - at));
    const std::vector<kvm_msr_entry> read = TRY(vcpu.get_msrs(chunk));
    state.msrs.insert(state.msrs.end(), read.begin(), read.end());
    at += read.size();
    if (read.size() < chunk.size()) {
      spdlog::debug("vCPU {}: KVM cannot read MSR {:#x}; it is left out of the snapshot", vcpu.id(), msrs[at]);
      ++at;
    }
  }
  state.events = TRY(vcpu.get_vcpu_events());
  return state;
}

Result<void> restore_vcpu(const Vcpu& vcpu, const VcpuState& state) {
  TRY_VOID(vcpu.set_cpuid(state.cpuid));
  TRY_VOID(vcpu.set_mp_state(state.mp_state));
  TRY_VOID(vcpu.set_regs(state.regs));
  TRY_VOID(vcpu.set_sregs(restorable_sregs(state.sregs, snapshot::host_cpu_model())));
  TRY_VOID(vcpu.set_xsave(state.xsave));
  TRY_VOID(vcpu.set_xcrs(state.xcrs));
  TRY_VOID(vcpu.set_debug_regs(state.debug_regs));
  TRY_VOID(vcpu.set_lapic(state.lapic));
  // IA32_TSC_DEADLINE after IA32_TSC: KVM arms the deadline timer against the TSC it has then.
  // A deadline of 0 with the LAPIC in TSC-deadline mode can be a timer that fired just before the
  // snapshot with its interrupt not yet taken; Firecracker found such vCPUs never got another tick.
  // Setting it to the TSC makes the timer fire once at once (Linux ignores a spurious tick).
  std::vector<kvm_msr_entry> msrs;
  std::vector<kvm_msr_entry> deferred;
  std::uint64_t tsc = 0;
  for (const kvm_msr_entry& entry : state.msrs) {
    if (entry.index == kMsrIa32Tsc) tsc = entry.data;
    (entry.index == kMsrIa32TscDeadline ? deferred : msrs).push_back(entry);
  }
  for (kvm_msr_entry& entry : deferred) {
    if (entry.data == 0) entry.data = tsc;
  }
  TRY_VOID(set_msr_entries(vcpu, msrs));
  TRY_VOID(set_msr_entries(vcpu, deferred));
  TRY_VOID(vcpu.set_vcpu_events(state.events));
  // Only advice to the guest; a guest without kvmclock refuses it.
  if (auto told = vcpu.kvmclock_ctrl(); !told) spdlog::debug("vCPU {}: {}", vcpu.id(), told.error().message);
  return {};
}

Result<VmState> save_vm(const Vm& vm) {
  VmState state;
  state.pit = TRY(vm.get_pit2());
  state.clock = TRY(vm.get_clock());
  state.pic_master = TRY(vm.get_irqchip(KVM_IRQCHIP_PIC_MASTER));
  state.pic_slave = TRY(vm.get_irqchip(KVM_IRQCHIP_PIC_SLAVE));
  state.ioapic = TRY(vm.get_irqchip(KVM_IRQCHIP_IOAPIC));
  return state;
}

Result<void> restore_vm(const Vm& vm, const VmState& state) {
  TRY_VOID(vm.set_pit2(state.pit));
  // The guest's clock goes on from where it was when the snapshot was taken.
  TRY_VOID(vm.set_clock(state.clock.clock));
  TRY_VOID(vm.set_irqchip(state.pic_master));
  TRY_VOID(vm.set_irqchip(state.pic_slave));
  TRY_VOID(vm.set_irqchip(state.ioapic));
  return {};
}

void encode(snapshot::Encoder& out, const VcpuState& state) {
  out.u32(static_cast<std::uint32_t>(state.cpuid.size()));
  for (const kvm_cpuid_entry2& entry : state.cpuid) out.pod(entry);
  out.pod(state.mp_state);
  out.pod(state.regs);
  out.pod(state.sregs);
  out.bytes(state.xsave);
  out.pod(state.xcrs);
  out.pod(state.debug_regs);
  out.pod(state.lapic);
  out.u32(static_cast<std::uint32_t>(state.msrs.size()));
  for (const kvm_msr_entry& entry : state.msrs) out.pod(entry);
  out.pod(state.events);
  out.u32(state.tsc_khz);
}

Result<VcpuState> decode_vcpu_state(snapshot::Decoder& in, std::size_t xsave_size) {
  VcpuState state;
  const std::uint32_t cpuid = TRY(in.count(kMaxSavedCpuidEntries, "CPUID entries"));
  for (std::uint32_t i = 0; i < cpuid; ++i) state.cpuid.push_back(TRY(in.pod<kvm_cpuid_entry2>("a CPUID entry")));
  state.mp_state = TRY(in.pod<kvm_mp_state>("kvm_mp_state"));
  state.regs = TRY(in.pod<kvm_regs>("kvm_regs"));
  state.sregs = TRY(in.pod<kvm_sregs>("kvm_sregs"));
  const std::span<const std::byte> xsave = TRY(in.bytes(kMaxXsaveBytes));
  if (xsave.size() != xsave_size) {
    return fail("{}: the XSAVE area is {} bytes, this host's KVM uses {}", in.what(), xsave.size(), xsave_size);
  }
  state.xsave.assign(xsave.begin(), xsave.end());
  state.xcrs = TRY(in.pod<kvm_xcrs>("kvm_xcrs"));
  if (state.xcrs.nr_xcrs > KVM_MAX_XCRS) {
    return fail("{}: {} XCRs, at most {} exist", in.what(), state.xcrs.nr_xcrs, KVM_MAX_XCRS);
  }
  state.debug_regs = TRY(in.pod<kvm_debugregs>("kvm_debugregs"));
  state.lapic = TRY(in.pod<kvm_lapic_state>("kvm_lapic_state"));
  const std::uint32_t msrs = TRY(in.count(kMaxSavedMsrs, "MSRs"));
  for (std::uint32_t i = 0; i < msrs; ++i) {
    const kvm_msr_entry entry = TRY(in.pod<kvm_msr_entry>("an MSR"));
    if (!msr_is_saved(entry.index)) {
      return fail("{}: MSR {:#x} is not one a snapshot saves", in.what(), entry.index);
    }
    state.msrs.push_back(entry);
  }
  state.events = TRY(in.pod<kvm_vcpu_events>("kvm_vcpu_events"));
  state.tsc_khz = TRY(in.u32());
  return state;
}

void encode(snapshot::Encoder& out, const VmState& state) {
  out.pod(state.pit);
  out.pod(state.clock);
  out.pod(state.pic_master);
  out.pod(state.pic_slave);
  out.pod(state.ioapic);
}

Result<VmState> decode_vm_state(snapshot::Decoder& in) {
  VmState state;
  state.pit = TRY(in.pod<kvm_pit_state2>("kvm_pit_state2"));
  state.clock = TRY(in.pod<kvm_clock_data>("kvm_clock_data"));
  state.pic_master = TRY(in.pod<kvm_irqchip>("the PIC master's kvm_irqchip"));
  state.pic_slave = TRY(in.pod<kvm_irqchip>("the PIC slave's kvm_irqchip"));
  state.ioapic = TRY(in.pod<kvm_irqchip>("the IOAPIC's kvm_irqchip"));
  const std::pair<const kvm_irqchip*, std::uint32_t> chips[] = {{&state.pic_master, KVM_IRQCHIP_PIC_MASTER},
                                                                {&state.pic_slave, KVM_IRQCHIP_PIC_SLAVE},
                                                                {&state.ioapic, KVM_IRQCHIP_IOAPIC}};
  for (const auto& [chip, id] : chips) {
    if (chip->chip_id != id) return fail("{}: irqchip {} where chip {} belongs", in.what(), chip->chip_id, id);
  }
  return state;
}

}  // namespace microvm::vmm
