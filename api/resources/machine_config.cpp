#include "api/resources/machine_config.h"

#include <cstdint>
#include <utility>

#include "api/fields.h"
#include "base/error.h"

namespace microvm::api {
namespace {

// Firecracker's limits (its swagger spec, MachineConfiguration), the VMM's own (vmm/vm_resources.h).
constexpr std::uint64_t kMinVcpus = vmm::kMinVcpus;
constexpr std::uint64_t kMaxVcpus = vmm::kMaxVcpus;
constexpr std::uint64_t kMinMemMib = vmm::kMinMemoryMib;
constexpr std::uint64_t kMaxMemMib = vmm::kMaxMemoryMib;

}  // namespace

Result<vmm::MachineSpec> parse_machine_config(const nlohmann::json& body, std::string what,
                                              const vmm::MachineSpec* base) {
  auto fields = TRY(Fields::of(body, std::move(what)));
  vmm::MachineSpec config = base != nullptr ? *base : vmm::MachineSpec{};
  if (base == nullptr) {
    config.vcpu_count = static_cast<unsigned>(TRY(fields.required_uint("vcpu_count", kMinVcpus, kMaxVcpus)));
    config.mem_size_mib = TRY(fields.required_uint("mem_size_mib", kMinMemMib, kMaxMemMib));
    config.smt = TRY(fields.optional_bool("smt")).value_or(false);
  } else {
    if (auto vcpus = TRY(fields.optional_uint("vcpu_count", kMinVcpus, kMaxVcpus))) {
      config.vcpu_count = static_cast<unsigned>(*vcpus);
    }
    if (auto mem = TRY(fields.optional_uint("mem_size_mib", kMinMemMib, kMaxMemMib))) config.mem_size_mib = *mem;
    if (auto smt = TRY(fields.optional_bool("smt"))) config.smt = *smt;
  }
  TRY_VOID(fields.only("cpu_template", {"None"}));
  TRY_VOID(fields.only("track_dirty_pages", {false}));
  TRY_VOID(fields.only("huge_pages", {"None"}));
  TRY_VOID(fields.finish());
  if (config.smt && config.vcpu_count > 1 && config.vcpu_count % 2 != 0) {
    return fail("{}: with `smt` enabled, `vcpu_count` must be 1 or even, got {}", fields.what(), config.vcpu_count);
  }
  return config;
}

nlohmann::json to_json(const vmm::MachineSpec& config) {
  return {{"vcpu_count", config.vcpu_count}, {"mem_size_mib", config.mem_size_mib}, {"smt", config.smt}};
}

}  // namespace microvm::api
