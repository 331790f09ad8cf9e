#include "api/resources/instance_info.h"

namespace microvm::api {

nlohmann::json to_json(const InstanceInfo& info) {
  return {{"id", info.id}, {"state", info.state}, {"vmm_version", info.vmm_version}, {"app_name", info.app_name}};
}

nlohmann::json version_json(const InstanceInfo& info) {
  return {{"firecracker_version", info.vmm_version}};
}

nlohmann::json to_json(const Status& status) {
  nlohmann::json out = {{"state", status.state}};
  if (status.exit_code) out["exit_code"] = *status.exit_code;
  return out;
}

}  // namespace microvm::api
