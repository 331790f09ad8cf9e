#include "api/resources/vm_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/json.h"
#include "api/resources/boot_source.h"
#include "api/resources/console.h"
#include "api/resources/container.h"
#include "api/resources/drive.h"
#include "api/resources/machine_config.h"
#include "api/resources/network_interface.h"
#include "base/error.h"

namespace microvm::api {
namespace {

using nlohmann::json;

// The sections microvm reads.
constexpr std::string_view kSections[] = {"boot-source",        "machine-config", "drives",
                                          "network-interfaces", "container",      "console"};
// Firecracker config-file sections microvm does not implement.
constexpr std::string_view kFirecrackerOnlySections[] = {"balloon",        "cpu-config",  "logger", "metrics",
                                                         "memory-hotplug", "mmds-config", "pmem",   "serial",
                                                         "vsock",          "entropy"};

bool contains(std::span<const std::string_view> names, std::string_view name) {
  return std::ranges::find(names, name) != names.end();
}

// An optional section of the config file: absent or null is "not given".
const json* section(const json& config, std::string_view key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return nullptr;
  return &*it;
}

// A list section ("drives"): each entry parsed as "key[i]".
template <typename T, typename Parse>
Result<std::vector<T>> parse_list(const json& config, std::string_view key, Parse parse) {
  std::vector<T> out;
  const json* list = section(config, key);
  if (list == nullptr) return out;
  if (!list->is_array()) return fail("{}: expected an array, got {}", key, describe(*list));
  for (std::size_t i = 0; i < list->size(); ++i) out.push_back(TRY(parse((*list)[i], fmt::format("{}[{}]", key, i))));
  return out;
}

// `result`, its error prefixed with where it came from ("drives[0]: ...").
Result<void> in_section(std::string_view where, Result<void> result) {
  if (!result) return std::unexpected(result.error().context(where));
  return {};
}

// Adds each entry of a list section (`key`) with `add`, in order; each must name its own id (the
// member `id`, field `field` in messages): a second entry with the same id is refused, not merged.
template <typename T, typename Add>
Result<void> add_each(const std::vector<T>& list, std::string_view key, std::string T::*id, std::string_view field,
                      Add add) {
  for (std::size_t i = 0; i < list.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (list[j].*id == list[i].*id) {
        return fail("{}[{}]: `{}` {} is already used by {}[{}]", key, i, field, quote(list[i].*id), key, j);
      }
    }
    TRY_VOID(in_section(fmt::format("{}[{}]", key, i), add(list[i])));
  }
  return {};
}

Result<void> check_sections(const json& config) {
  for (const auto& [key, value] : config.items()) {
    if (contains(kSections, key)) continue;
    if (!contains(kFirecrackerOnlySections, key)) return fail("config: unknown section {}", quote(key));
    if (!value.is_null() && !(value.is_array() && value.empty())) {
      return fail("config: section `{}` is not supported by microvm (remove it or make it null)", key);
    }
  }
  return {};
}

}  // namespace

Result<vmm::VmResources> parse_vm_config(const json& config) {
  if (!config.is_object()) return fail("config: expected a JSON object, got {}", describe(config));
  TRY_VOID(check_sections(config));
  vmm::VmResources out;
  if (const json* source = section(config, "boot-source")) {
    out.boot_source = TRY(parse_boot_source(*source, "boot-source"));
  }
  if (const json* machine = section(config, "machine-config")) {
    out.machine_config = TRY(parse_machine_config(*machine, "machine-config", nullptr));
  }
  const auto drives = TRY(parse_list<vmm::DriveConfig>(config, "drives", parse_drive));
  const auto ifaces =
      TRY(parse_list<vmm::NetworkInterfaceConfig>(config, "network-interfaces", parse_network_interface));
  TRY_VOID(add_each(drives, "drives", &vmm::DriveConfig::drive_id, "drive_id",
                    [&out](const vmm::DriveConfig& drive) { return out.put_drive(drive); }));
  TRY_VOID(add_each(ifaces, "network-interfaces", &vmm::NetworkInterfaceConfig::iface_id, "iface_id",
                    [&out](const vmm::NetworkInterfaceConfig& iface) -> Result<void> {
                      out.put_network_interface(iface);
                      return {};
                    }));
  if (const json* container = section(config, "container")) {
    out.container = TRY(parse_container(*container, "container"));
  }
  if (const json* console = section(config, "console")) out.console = TRY(parse_console(*console, "console"));
  return out;
}

json to_json(const vmm::VmResources& config) {
  json drives = json::array();
  for (const vmm::DriveConfig& drive : config.drives) drives.push_back(to_json(drive));
  json ifaces = json::array();
  for (const vmm::NetworkInterfaceConfig& iface : config.network_interfaces) ifaces.push_back(to_json(iface));
  const bool has_boot_source = config.boot_source != vmm::BootSource{};
  return {{"boot-source", has_boot_source ? to_json(config.boot_source) : json(nullptr)},
          {"machine-config", to_json(config.machine_config)},
          {"drives", std::move(drives)},
          {"network-interfaces", std::move(ifaces)},
          {"container", config.container ? to_json(*config.container) : json(nullptr)},
          {"console", to_json(config.console)}};
}

Result<void> apply_config_file(Controller& controller, const json& config) {
  const vmm::VmResources parsed = TRY(parse_vm_config(config));
  if (section(config, "machine-config") != nullptr) {
    TRY_VOID(in_section("machine-config", controller.put_machine_config(parsed.machine_config)));
  }
  if (section(config, "boot-source") != nullptr) {
    TRY_VOID(in_section("boot-source", controller.put_boot_source(parsed.boot_source)));
  }
  for (std::size_t i = 0; i < parsed.drives.size(); ++i) {
    TRY_VOID(in_section(fmt::format("drives[{}]", i), controller.put_drive(parsed.drives[i])));
  }
  for (std::size_t i = 0; i < parsed.network_interfaces.size(); ++i) {
    TRY_VOID(in_section(fmt::format("network-interfaces[{}]", i),
                        controller.put_network_interface(parsed.network_interfaces[i])));
  }
  if (parsed.container) TRY_VOID(in_section("container", controller.put_container(*parsed.container)));
  if (section(config, "console") != nullptr) TRY_VOID(in_section("console", controller.put_console(parsed.console)));
  return {};
}

}  // namespace microvm::api
