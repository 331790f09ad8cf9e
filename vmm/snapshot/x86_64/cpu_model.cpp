#include "vmm/snapshot/x86_64/cpu_model.h"

#include <cpuid.h>

#include <cstring>

#include "base/error.h"

namespace microvm::snapshot {

namespace {

constexpr std::uint32_t kLeafVendor = 0x0;
constexpr std::uint32_t kLeafSignature = 0x1;
constexpr std::uint32_t kLeafExtendedMax = 0x80000000;
constexpr std::uint32_t kFamilyExtendedBase = 0xf;  // SDM 2A: the extended family counts only then
constexpr std::uint32_t kFamilyP6 = 0x6;

struct Registers {
  std::uint32_t a = 0, b = 0, c = 0, d = 0;
};

// CPUID leaf/subleaf, or zeros for a leaf above the CPU's maximum (basic or extended range).
Registers cpuid(std::uint32_t leaf, std::uint32_t subleaf) {
  Registers r;
  const std::uint32_t range = leaf & kLeafExtendedMax;
  if (__get_cpuid_max(range, nullptr) < leaf) return r;
  __cpuid_count(leaf, subleaf, r.a, r.b, r.c, r.d);
  return r;
}

std::uint32_t pick(const Registers& r, char reg) {
  switch (reg) {
    case 'a': return r.a;
    case 'b': return r.b;
    case 'c': return r.c;
    default: return r.d;
  }
}

}  // namespace

std::string CpuModel::vendor_name() const {
  std::string name(vendor.data(), vendor.size());
  for (char& c : name) {
    if (c < 0x20 || c > 0x7e) c = '?';  // from a file: printable only
  }
  return name;
}

std::string CpuModel::describe() const {
  return fmt::format("{} family {} model {} stepping {}", vendor_name(), family, model, stepping);
}

CpuModel decode_signature(std::uint32_t eax, CpuModel model) {
  const std::uint32_t stepping = eax & 0xf;
  const std::uint32_t base_model = (eax >> 4) & 0xf;
  const std::uint32_t base_family = (eax >> 8) & 0xf;
  const std::uint32_t extended_model = (eax >> 16) & 0xf;
  const std::uint32_t extended_family = (eax >> 20) & 0xff;
  model.stepping = stepping;
  model.family = base_family == kFamilyExtendedBase ? base_family + extended_family : base_family;
  model.model =
      base_family == kFamilyP6 || base_family == kFamilyExtendedBase ? (extended_model << 4) | base_model : base_model;
  return model;
}

CpuModel host_cpu_model() {
  CpuModel model;
  const Registers vendor = cpuid(kLeafVendor, 0);
  std::memcpy(model.vendor.data(), &vendor.b, 4);  // "Genu" "ineI" "ntel": EBX, EDX, ECX
  std::memcpy(model.vendor.data() + 4, &vendor.d, 4);
  std::memcpy(model.vendor.data() + 8, &vendor.c, 4);
  model = decode_signature(cpuid(kLeafSignature, 0).a, model);
  for (std::size_t i = 0; i < kCpuFeatureWords.size(); ++i) {
    const CpuFeatureWord& word = kCpuFeatureWords[i];
    model.features[i] = pick(cpuid(word.leaf, word.subleaf), word.reg) & word.mask;
  }
  return model;
}

Result<void> check_same_cpu(const CpuModel& saved, const CpuModel& host) {
  if (saved.vendor != host.vendor || saved.family != host.family || saved.model != host.model ||
      saved.stepping != host.stepping) {
    return fail("it was made on another CPU model ({}); this host is {}", saved.describe(), host.describe());
  }
  for (std::size_t i = 0; i < kCpuFeatureWords.size(); ++i) {
    if (saved.features[i] != host.features[i]) {
      return fail("it was made on a {} with other CPU features ({} was {:#010x}, here {:#010x})", saved.describe(),
                  kCpuFeatureWords[i].name, saved.features[i], host.features[i]);
    }
  }
  return {};
}

void encode(Encoder& out, const CpuModel& model) {
  out.raw(model.vendor.data(), model.vendor.size());
  out.u32(model.family);
  out.u32(model.model);
  out.u32(model.stepping);
  out.u32(static_cast<std::uint32_t>(model.features.size()));
  for (std::uint32_t word : model.features) out.u32(word);
}

Result<CpuModel> decode_cpu_model(Decoder& in) {
  CpuModel model;
  const std::span<const std::byte> vendor = TRY(in.take(model.vendor.size()));
  std::memcpy(model.vendor.data(), vendor.data(), vendor.size());
  model.family = TRY(in.u32());
  model.model = TRY(in.u32());
  model.stepping = TRY(in.u32());
  const std::uint32_t words = TRY(in.u32());
  if (words != model.features.size()) {
    return fail("{}: the CPU model has {} feature words, this microvm compares {}", in.what(), words,
                model.features.size());
  }
  for (std::uint32_t& word : model.features) word = TRY(in.u32());
  return model;
}

}  // namespace microvm::snapshot
