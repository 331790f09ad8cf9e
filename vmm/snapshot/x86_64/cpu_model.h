// The host CPU a state file was made on, as CPUID describes it (Intel SDM vol. 2A "CPUID"; AMD APM
// vol. 3 appendix E): vendor, family/model/stepping, and the feature words a guest's saved state
// depends on. A snapshot holds the guest's CPUID and its XSAVE area laid out for the host it ran on;
// restored on a CPU that lacks a feature the guest saw (or lays out XSAVE differently), the guest
// would fault at its first AVX instruction or KVM would refuse its state. So a state file from
// another CPU model, or from the same model with other features enabled, is refused up front.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "base/result.h"
#include "vmm/snapshot/codec.h"

namespace microvm::snapshot {

// One 32-bit CPUID output register the comparison covers. `mask` drops bits that describe the host
// OS rather than the CPU (OSXSAVE, OSPKE: mirrors of CR4 bits).
struct CpuFeatureWord {
  std::uint32_t leaf;
  std::uint32_t subleaf;
  char reg;  // 'a', 'b', 'c', 'd': EAX..EDX
  std::uint32_t mask;
  const char* name;  // "CPUID.7.0:EBX"
};

inline constexpr std::uint32_t kOsxsaveBit = 1U << 27;  // CPUID.1:ECX.OSXSAVE: CR4.OSXSAVE (SDM 2A table 3-10)
inline constexpr std::uint32_t kOspkeBit = 1U << 4;     // CPUID.7.0:ECX.OSPKE: CR4.PKE (SDM 2A table 3-8)

inline constexpr std::array<CpuFeatureWord, 9> kCpuFeatureWords{{
    {0x1, 0, 'c', ~kOsxsaveBit, "CPUID.1:ECX"},
    {0x1, 0, 'd', ~0U, "CPUID.1:EDX"},
    {0x7, 0, 'b', ~0U, "CPUID.7.0:EBX"},
    {0x7, 0, 'c', ~kOspkeBit, "CPUID.7.0:ECX"},
    {0x7, 0, 'd', ~0U, "CPUID.7.0:EDX"},
    {0xd, 0, 'a', ~0U, "CPUID.0xd.0:EAX"},  // XCR0 bits the CPU supports: which XSAVE components exist
    {0xd, 1, 'a', ~0U, "CPUID.0xd.1:EAX"},  // XSAVEOPT, XSAVEC, XGETBV1, XSAVES
    {0x80000001, 0, 'c', ~0U, "CPUID.0x80000001:ECX"},
    {0x80000001, 0, 'd', ~0U, "CPUID.0x80000001:EDX"},
}};

struct CpuModel {
  std::array<char, 12> vendor{};  // "GenuineIntel", "AuthenticAMD"
  std::uint32_t family = 0;       // display family: base, plus the extended family when base is 0xf
  std::uint32_t model = 0;        // display model: with the extended model for family 6 and 0xf
  std::uint32_t stepping = 0;
  std::array<std::uint32_t, kCpuFeatureWords.size()> features{};  // masked, in kCpuFeatureWords order

  bool operator==(const CpuModel&) const = default;

  [[nodiscard]] std::string vendor_name() const;
  // "GenuineIntel family 6 model 85 stepping 7"
  [[nodiscard]] std::string describe() const;
};

// This host's CPU, read with the CPUID instruction (leaves the CPU does not have read as zero).
[[nodiscard]] CpuModel host_cpu_model();

// Decodes family/model/stepping from CPUID.1:EAX (SDM 2A figure 3-6).
[[nodiscard]] CpuModel decode_signature(std::uint32_t leaf1_eax, CpuModel model);

// Nothing when `saved` and `host` are the same model with the same features; else the one line
// saying what differs ("made on GenuineIntel family 6 model 85 stepping 7, this host is ...", or the
// first feature word that differs).
[[nodiscard]] Result<void> check_same_cpu(const CpuModel& saved, const CpuModel& host);

void encode(Encoder& out, const CpuModel& model);
[[nodiscard]] Result<CpuModel> decode_cpu_model(Decoder& in);

}  // namespace microvm::snapshot
