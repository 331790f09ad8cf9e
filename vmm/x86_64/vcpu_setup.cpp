#include "vmm/x86_64/vcpu_setup.h"

#include <cstring>

#include "vmm/x86_64/cpuid.h"

namespace microvm::vmm {

namespace {
// MSR numbers: Intel SDM vol. 4.
constexpr std::uint32_t kMsrTsc = 0x10;
constexpr std::uint32_t kMsrSysenterCs = 0x174;
constexpr std::uint32_t kMsrSysenterEsp = 0x175;
constexpr std::uint32_t kMsrSysenterEip = 0x176;
constexpr std::uint32_t kMsrMiscEnable = 0x1a0;
constexpr std::uint64_t kMiscEnableFastString = 1;  // IA32_MISC_ENABLE bit 0
constexpr std::uint32_t kMsrMtrrDefType = 0x2ff;
constexpr std::uint64_t kMtrrEnableWriteBack = (1U << 11) | 6;  // MTRRs on, default type WB
constexpr std::uint32_t kMsrStar = 0xc0000081;
constexpr std::uint32_t kMsrLstar = 0xc0000082;
constexpr std::uint32_t kMsrCstar = 0xc0000083;
constexpr std::uint32_t kMsrSyscallMask = 0xc0000084;
constexpr std::uint32_t kMsrKernelGsBase = 0xc0000102;

// Control register and EFER bits: Intel SDM vol. 3, 2.5.
constexpr std::uint64_t kCr0ProtectionEnable = 1ULL << 0;
constexpr std::uint64_t kCr0ExtensionType = 1ULL << 4;
constexpr std::uint64_t kCr0Paging = 1ULL << 31;
constexpr std::uint64_t kCr4Pae = 1ULL << 5;
constexpr std::uint64_t kEferLme = 1ULL << 8;
constexpr std::uint64_t kEferLma = 1ULL << 10;
constexpr std::uint64_t kRflagsReserved = 1ULL << 1;  // bit 1 is always set

constexpr std::uint16_t kFpuControlWord = 0x37f;  // x87 default after FNINIT
constexpr std::uint32_t kMxcsrDefault = 0x1f80;   // all SSE exceptions masked

// Local APIC registers (Intel SDM vol. 3, 10.5.1): LVT LINT0/LINT1 and their delivery mode field.
constexpr std::size_t kApicLvtLint0 = 0x350;
constexpr std::size_t kApicLvtLint1 = 0x360;
constexpr std::uint32_t kApicDeliveryModeMask = 0x700;
constexpr std::uint32_t kApicDeliveryExtInt = 0x700;  // LINT0 -> the 8259 PIC
constexpr std::uint32_t kApicDeliveryNmi = 0x400;     // LINT1 -> NMI

std::uint32_t lapic_get(const kvm_lapic_state& s, std::size_t reg) {
  std::uint32_t v;
  std::memcpy(&v, s.regs + reg, sizeof(v));
  return v;
}
void lapic_set(kvm_lapic_state& s, std::size_t reg, std::uint32_t v) {
  std::memcpy(s.regs + reg, &v, sizeof(v));
}
}  // namespace

kvm_segment to_kvm_segment(const boot::Segment& s) {
  kvm_segment k{};
  k.base = s.base;
  k.limit = s.limit;
  k.selector = s.selector;
  k.type = s.type;
  k.present = s.present;
  k.dpl = s.dpl;
  k.db = s.db;
  k.s = s.s;
  k.l = s.l;
  k.g = s.g;
  k.avl = s.avl;
  k.unusable = s.present ? 0 : 1;
  return k;
}

Result<void> setup_vcpu_platform(const Vcpu& vcpu, const std::vector<kvm_cpuid_entry2>& supported, unsigned vcpu_count,
                                 bool tsc_deadline_timer) {
  TRY_VOID(vcpu.set_cpuid(vcpu_cpuid(supported, {vcpu.id(), vcpu_count, tsc_deadline_timer, vcpu.tsc_khz()})));

  const kvm_msr_entry msrs[] = {
      {kMsrSysenterCs, 0, 0},
      {kMsrSysenterEsp, 0, 0},
      {kMsrSysenterEip, 0, 0},
      {kMsrStar, 0, 0},
      {kMsrCstar, 0, 0},
      {kMsrKernelGsBase, 0, 0},
      {kMsrSyscallMask, 0, 0},
      {kMsrLstar, 0, 0},
      {kMsrTsc, 0, 0},
      {kMsrMiscEnable, 0, kMiscEnableFastString},
      {kMsrMtrrDefType, 0, kMtrrEnableWriteBack},
  };
  TRY_VOID(vcpu.set_msrs(msrs));

  kvm_fpu fpu{};
  fpu.fcw = kFpuControlWord;
  fpu.mxcsr = kMxcsrDefault;
  TRY_VOID(vcpu.set_fpu(fpu));

  kvm_lapic_state lapic = TRY(vcpu.get_lapic());
  lapic_set(lapic, kApicLvtLint0, (lapic_get(lapic, kApicLvtLint0) & ~kApicDeliveryModeMask) | kApicDeliveryExtInt);
  lapic_set(lapic, kApicLvtLint1, (lapic_get(lapic, kApicLvtLint1) & ~kApicDeliveryModeMask) | kApicDeliveryNmi);
  return vcpu.set_lapic(lapic);
}

Result<void> setup_boot_registers(const Vcpu& vcpu, const boot::BootCpuState& state) {
  kvm_sregs sregs = TRY(vcpu.get_sregs());
  const boot::BootSegments& seg = state.segments;
  sregs.cs = to_kvm_segment(seg.code);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = to_kvm_segment(seg.data);
  sregs.tr = to_kvm_segment(seg.tss);
  sregs.gdt.base = seg.gdt_base.value;
  sregs.gdt.limit = seg.gdt_limit;
  sregs.idt.base = seg.idt_base.value;
  sregs.idt.limit = seg.idt_limit;
  sregs.cr0 |= kCr0ProtectionEnable | kCr0ExtensionType | kCr0Paging;
  sregs.cr3 = state.cr3;
  sregs.cr4 |= kCr4Pae;
  sregs.efer |= kEferLme | kEferLma;
  TRY_VOID(vcpu.set_sregs(sregs));

  kvm_regs regs{};
  regs.rflags = kRflagsReserved;
  regs.rip = state.rip;
  regs.rsi = state.rsi;
  regs.rsp = regs.rbp = state.rsp;
  return vcpu.set_regs(regs);
}

}  // namespace microvm::vmm
