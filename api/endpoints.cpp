#include "api/endpoints.h"

#include <fmt/format.h>

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/json.h"
#include "api/resources/action.h"
#include "api/resources/boot_source.h"
#include "api/resources/console.h"
#include "api/resources/container.h"
#include "api/resources/drive.h"
#include "api/resources/instance_info.h"
#include "api/resources/machine_config.h"
#include "api/resources/network_interface.h"
#include "api/resources/snapshot.h"
#include "api/resources/vm_config.h"
#include "api/resources/vm_state.h"
#include "base/error.h"

namespace microvm::api {
namespace {

using nlohmann::json;

Response json_response(const json& body) {
  return Response{kStatusOk, json_text(body)};
}

// The body of a PUT/PATCH as JSON.
Result<json> body_json(const Request& request) {
  if (request.body.empty()) return fail("{} {}: the request needs a JSON body", request.method, request.target);
  return parse_json(request.body);
}

// A PUT whose body is one resource: parsed by `parse` (its messages naming `what`), then handed to
// `put`.
template <typename T, typename Parse, typename Put>
Response put_resource(const Call& call, std::string_view what, Parse parse, Put put) {
  const auto body = body_json(call.request);
  if (!body) return error_response(body.error());
  const Result<T> value = parse(*body, std::string(what));
  if (!value) return error_response(value.error());
  return result_response(put(call.controller, *value));
}

// A resource named in its path names itself the same in its body (`field`: its id field).
Result<void> same_id(std::string_view what, std::string_view field, std::string_view body_id,
                     std::string_view path_id) {
  if (body_id == path_id) return {};
  return fail("{}: `{}` {} in the body differs from {} in the path", what, field, quote(body_id), quote(path_id));
}

Response machine_config(const Call& call, bool patch) {
  const auto body = body_json(call.request);
  if (!body) return error_response(body.error());
  std::optional<vmm::MachineSpec> base;
  if (patch) base = call.controller.machine_config();
  const auto config = parse_machine_config(*body, "machine-config", base ? &*base : nullptr);
  if (!config) return error_response(config.error());
  return result_response(call.controller.put_machine_config(*config));
}

}  // namespace

Response get_instance_info(const Call& call) {
  return json_response(to_json(call.controller.instance_info()));
}

Response get_version(const Call& call) {
  return json_response(version_json(call.controller.instance_info()));
}

Response get_machine_config(const Call& call) {
  return json_response(to_json(call.controller.machine_config()));
}

Response put_machine_config(const Call& call) {
  return machine_config(call, /*patch=*/false);
}

Response patch_machine_config(const Call& call) {
  return machine_config(call, /*patch=*/true);
}

Response put_boot_source(const Call& call) {
  return put_resource<vmm::BootSource>(
      call, "boot-source", parse_boot_source,
      [](Controller& controller, const vmm::BootSource& source) { return controller.put_boot_source(source); });
}

Response put_drive(const Call& call) {
  return put_resource<vmm::DriveConfig>(call, "drive", parse_drive,
                                        [&call](Controller& controller, const vmm::DriveConfig& drive) -> Result<void> {
                                          TRY_VOID(same_id("drive", "drive_id", drive.drive_id, call.id));
                                          return controller.put_drive(drive);
                                        });
}

Response put_network_interface(const Call& call) {
  return put_resource<vmm::NetworkInterfaceConfig>(
      call, "network-interface", parse_network_interface,
      [&call](Controller& controller, const vmm::NetworkInterfaceConfig& iface) -> Result<void> {
        TRY_VOID(same_id("network-interface", "iface_id", iface.iface_id, call.id));
        return controller.put_network_interface(iface);
      });
}

Response put_action(const Call& call) {
  const auto body = body_json(call.request);
  if (!body) return error_response(body.error());
  const auto action = parse_action(*body);
  if (!action) return error_response(action.error());
  switch (*action) {
    case Action::kInstanceStart: return result_response(call.controller.start());
    case Action::kSendCtrlAltDel: return result_response(call.controller.send_ctrl_alt_del());
    case Action::kFlushMetrics: return result_response(call.controller.flush_metrics());
  }
  return error_response(kStatusInternalError, "unhandled action");
}

Response patch_vm(const Call& call) {
  const auto body = body_json(call.request);
  if (!body) return error_response(body.error());
  const auto state = parse_vm_state(*body);
  if (!state) return error_response(state.error());
  switch (*state) {
    case VmState::kPaused: return result_response(call.controller.pause());
    case VmState::kResumed: return result_response(call.controller.resume());
  }
  return error_response(kStatusInternalError, "unhandled vm state");
}

Response get_vm_config(const Call& call) {
  return json_response(to_json(call.controller.vm_config()));
}

Response put_snapshot_create(const Call& call) {
  const auto body = body_json(call.request);
  if (!body) return error_response(body.error());
  const auto params = parse_snapshot_create(*body);
  if (!params) return error_response(params.error());
  return result_response(call.controller.create_snapshot(*params));
}

Response put_snapshot_load(const Call& call) {
  const auto body = body_json(call.request);
  if (!body) return error_response(body.error());
  const auto params = parse_snapshot_load(*body);
  if (!params) return error_response(params.error());
  return result_response(call.controller.load_snapshot(*params));
}

Response put_container(const Call& call) {
  return put_resource<vmm::ContainerSpec>(
      call, "container", parse_container,
      [](Controller& controller, const vmm::ContainerSpec& spec) { return controller.put_container(spec); });
}

Response put_console(const Call& call) {
  return put_resource<vmm::ConsoleKind>(
      call, "console", parse_console,
      [](Controller& controller, vmm::ConsoleKind kind) { return controller.put_console(kind); });
}

Response get_status(const Call& call) {
  return json_response(to_json(call.controller.status()));
}

Response get_metrics(const Call& call) {
  const json metrics = call.controller.metrics();
  if (!metrics.is_object()) {
    return error_response(kStatusInternalError, fmt::format("metrics are {}, not a JSON object", describe(metrics)));
  }
  return json_response(metrics);
}

}  // namespace microvm::api
