// The config file (Firecracker's full-config shape): parsed whole, checked before anything is
// applied, then applied through the same Controller calls as the endpoints.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/resources/vm_config.h"
#include "tests/unit/api_fake_controller.h"

namespace microvm::api {
namespace {

using nlohmann::json;
using test::body_of;
using test::call;
using test::FakeController;
using test::fault;

// --- config file ---------------------------------------------------------------------------------------------

TEST(ApiConfigFile, AppliesEverySectionInOrder) {
  FakeController controller;
  const json config = json::parse(R"({
    "boot-source": {"kernel_image_path": "/k", "boot_args": "console=ttyS0"},
    "drives": [{"drive_id": "root", "path_on_host": "/r", "is_root_device": true, "is_read_only": false}],
    "machine-config": {"vcpu_count": 2, "mem_size_mib": 256},
    "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0"}],
    "container": {"args": ["sh"]},
    "balloon": null, "logger": null, "metrics": null, "vsock": null, "pmem": []
  })");
  auto applied = apply_config_file(controller, config);
  ASSERT_TRUE(applied.has_value()) << applied.error().message;
  EXPECT_EQ(controller.calls,
            (std::vector<std::string>{"machine-config", "boot-source", "drive root", "iface eth0", "container"}));
  EXPECT_EQ(controller.config.machine_config, (MachineSpec{2, 256, false}));
  EXPECT_FALSE(controller.state == "Running") << "a config file does not start the VM";
}

TEST(ApiConfigFile, RejectsBeforeApplyingAnything) {
  struct Case {
    const char* config;
    const char* error_contains;
  };
  const Case cases[] = {
      {R"({"drives": [{"drive_id": "a", "path_on_host": "/a", "is_root_device": true},
                      {"drive_id": "b", "path_on_host": 7, "is_root_device": false}],
           "machine-config": {"vcpu_count": 1, "mem_size_mib": 64}})",
       "drives[1]: field `path_on_host` must be a string, got 7"},
      {R"({"drives": [{"drive_id": "a", "path_on_host": "/a", "is_root_device": true},
                      {"drive_id": "a", "path_on_host": "/b", "is_root_device": false}]})",
       "drives[1]: `drive_id` `a` is already used by drives[0]"},
      {R"({"network-interfaces": {"iface_id": "eth0"}})", "network-interfaces: expected an array, got an object"},
      {R"({"boot-source": {"kernel_image_path": "/k"}, "vsock": {"guest_cid": 3}})",
       "section `vsock` is not supported by microvm"},
      {R"({"boot-source": {"kernel_image_path": "/k"}, "boot_source": {}})", "config: unknown section `boot_source`"},
      {R"([])", "config: expected a JSON object"},
  };
  for (const Case& c : cases) {
    FakeController controller;
    auto applied = apply_config_file(controller, json::parse(c.config));
    ASSERT_FALSE(applied.has_value()) << c.config;
    EXPECT_NE(applied.error().message.find(c.error_contains), std::string::npos)
        << applied.error().message << "\nexpected: " << c.error_contains;
    EXPECT_TRUE(controller.calls.empty()) << c.config;
  }
}

TEST(ApiConfigFile, ControllerErrorsNameTheSection) {
  FakeController controller;
  controller.fail_with = "cannot open /r";
  auto applied = apply_config_file(
      controller, json::parse(R"({"drives": [{"drive_id": "root", "path_on_host": "/r", "is_root_device": true}]})"));
  ASSERT_FALSE(applied.has_value());
  EXPECT_EQ(applied.error().message, "drives[0]: cannot open /r");
}
}  // namespace
}  // namespace microvm::api
