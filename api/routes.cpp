#include "api/routes.h"

#include <algorithm>
#include <iterator>

#include "api/endpoints.h"

namespace microvm::api {
namespace {

constexpr Route kRoutes[] = {
    {"/", "GET", get_instance_info},
    {"/version", "GET", get_version},
    {"/machine-config", "GET", get_machine_config},
    {"/machine-config", "PUT", put_machine_config},
    {"/machine-config", "PATCH", patch_machine_config},
    {"/boot-source", "PUT", put_boot_source},
    {"/drives/{drive_id}", "PUT", put_drive},
    {"/network-interfaces/{iface_id}", "PUT", put_network_interface},
    {"/actions", "PUT", put_action},
    {"/vm", "PATCH", patch_vm},
    {"/vm/config", "GET", get_vm_config},
    {"/snapshot/create", "PUT", put_snapshot_create},
    {"/snapshot/load", "PUT", put_snapshot_load},
    {"/microvm/container", "PUT", put_container},
    {"/microvm/console", "PUT", put_console},
    {"/microvm/status", "GET", get_status},
    {"/microvm/metrics", "GET", get_metrics},
};

constexpr std::string_view kFirecrackerOnly[] = {"/balloon",
                                                 "/balloon/statistics",
                                                 "/balloon/hinting/start",
                                                 "/balloon/hinting/status",
                                                 "/balloon/hinting/stop",
                                                 "/cpu-config",
                                                 "/logger",
                                                 "/metrics",
                                                 "/mmds",
                                                 "/mmds/config",
                                                 "/entropy",
                                                 "/serial",
                                                 "/hotplug/memory",
                                                 "/vsock"};
// Firecracker's /pmem/{id}.
constexpr std::string_view kFirecrackerOnlyPrefix = "/pmem/";

}  // namespace

std::span<const Route> routes() {
  return kRoutes;
}

std::string_view id_name(std::string_view pattern) {
  const auto open = pattern.find('{');
  if (open == std::string_view::npos || !pattern.ends_with('}')) return {};
  return pattern.substr(open + 1, pattern.size() - open - 2);
}

bool match(std::string_view pattern, std::string_view path, std::string_view& id) {
  const auto open = pattern.find('{');
  if (open == std::string_view::npos) return path == pattern;
  const std::string_view prefix = pattern.substr(0, open);  // "/drives/"
  if (!path.starts_with(prefix) || path.find('/', prefix.size()) != std::string_view::npos) return false;
  id = path.substr(prefix.size());
  return true;
}

std::string allowed_methods(std::string_view path) {
  std::string out;
  std::string_view id;
  for (const Route& route : kRoutes) {
    if (!match(route.pattern, path, id)) continue;
    if (!out.empty()) out += ", ";
    out += route.method;
  }
  return out;
}

bool is_firecracker_only(std::string_view path) {
  return std::ranges::find(kFirecrackerOnly, path) != std::end(kFirecrackerOnly) ||
         path.starts_with(kFirecrackerOnlyPrefix);
}

}  // namespace microvm::api
