#include "vmm/x86_64/cpuid.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>

namespace microvm::vmm {

namespace {
constexpr std::uint32_t kLeafVendor = 0x0;
constexpr std::uint32_t kLeafFeatures = 0x1;
constexpr std::uint32_t kLeafCacheParameters = 0x4;  // Intel deterministic cache parameters
constexpr std::uint32_t kLeafTopology = 0xb;         // extended topology
constexpr std::uint32_t kLeafTopologyV2 = 0x1f;
constexpr std::uint32_t kLeafAmdSizeIdentifiers = 0x80000008;
constexpr std::uint32_t kLeafAmdTopology = 0x8000001e;
constexpr std::uint32_t kEcxHypervisor = 1U << 31;   // leaf 1 ECX: running under a hypervisor
constexpr std::uint32_t kEdxHtt = 1U << 28;          // leaf 1 EDX: EBX[23:16] is valid
constexpr std::uint32_t kEcxTscDeadline = 1U << 24;  // leaf 1 ECX: TSC-deadline LAPIC timer mode
constexpr std::uint32_t kTopologyLevelSmt = 1;       // leaf 0xb ECX[15:8] level types
constexpr std::uint32_t kTopologyLevelCore = 2;

unsigned bits_for(unsigned count) {
  return count <= 1 ? 0 : static_cast<unsigned>(std::bit_width(count - 1));
}

bool is_amd(const std::vector<kvm_cpuid_entry2>& entries) {
  for (const auto& e : entries) {
    if (e.function == kLeafVendor) {
      char vendor[12];
      std::memcpy(vendor, &e.ebx, 4);
      std::memcpy(vendor + 4, &e.edx, 4);
      std::memcpy(vendor + 8, &e.ecx, 4);
      return std::memcmp(vendor, "AuthenticAMD", 12) == 0 || std::memcmp(vendor, "HygonGenuine", 12) == 0;
    }
  }
  return false;
}
}  // namespace

std::vector<kvm_cpuid_entry2> vcpu_cpuid(std::vector<kvm_cpuid_entry2> entries, const CpuidOptions& options) {
  const unsigned vcpu_count = options.vcpu_count;
  const std::uint32_t apic_id = options.vcpu_index;
  const unsigned core_bits = bits_for(vcpu_count);
  const bool amd = is_amd(entries);
  for (auto& e : entries) {
    switch (e.function) {
      case kLeafFeatures:
        e.ebx = (e.ebx & 0x0000ffff) | (apic_id << 24) | (std::min(vcpu_count, 255U) << 16);
        e.ecx |= kEcxHypervisor;
        if (options.tsc_deadline_timer) e.ecx |= kEcxTscDeadline;
        if (vcpu_count > 1)
          e.edx |= kEdxHtt;
        else
          e.edx &= ~kEdxHtt;
        break;
      case kLeafCacheParameters: {
        // EAX[31:26]: cores per package - 1; EAX[25:14]: logical CPUs sharing this cache - 1.
        const std::uint32_t level = (e.eax >> 5) & 0x7;
        const std::uint32_t sharing = level >= 3 ? vcpu_count - 1 : 0;
        e.eax = (e.eax & 0x3fff) | (sharing << 14) | ((vcpu_count - 1) << 26);
        break;
      }
      case kLeafTopology:
      case kLeafTopologyV2:
        e.edx = apic_id;
        if (e.index == 0) {  // SMT level: one thread per core
          e.eax = 0;
          e.ebx = 1;
          e.ecx = (kTopologyLevelSmt << 8) | e.index;
        } else if (e.index == 1) {  // core level: all vCPUs in one package
          e.eax = core_bits;
          e.ebx = vcpu_count;
          e.ecx = (kTopologyLevelCore << 8) | e.index;
        } else {  // no further levels
          e.eax = 0;
          e.ebx = 0;
          e.ecx = e.index;
        }
        break;
      case kLeafAmdSizeIdentifiers:
        if (amd) e.ecx = (e.ecx & ~0xf0ffU) | (core_bits << 12) | (vcpu_count - 1);  // ApicIdSize, NC
        break;
      case kLeafAmdTopology:
        if (amd) {
          e.eax = apic_id;         // extended APIC ID
          e.ebx = apic_id & 0xff;  // core ID; threads per core - 1 = 0
          e.ecx = 0;               // one node
        }
        break;
      case kLeafHypervisorBase:
        if (options.tsc_khz != 0) e.eax = std::max(e.eax, kLeafHypervisorTiming);
        break;
      default: break;
    }
  }
  // The timing leaf, when the frequency is known and KVM's signature leaf is there to announce it.
  const bool has_base = std::ranges::any_of(entries, [](const auto& e) { return e.function == kLeafHypervisorBase; });
  if (options.tsc_khz != 0 && has_base) {
    std::erase_if(entries, [](const auto& e) { return e.function == kLeafHypervisorTiming; });
    kvm_cpuid_entry2 timing{};
    timing.function = kLeafHypervisorTiming;
    timing.eax = options.tsc_khz;
    timing.ebx = kKvmLapicTimerKhz;
    entries.push_back(timing);
  }
  return entries;
}

}  // namespace microvm::vmm
