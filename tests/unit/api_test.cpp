// The HTTP API (api/): routing and body parsing through handle() with a fake Controller, the
// config-file shape, the HTTP layer through serve_bytes(), and the socket server and client end to
// end on a temporary Unix socket (keep-alive, pipelining, limits, timeouts, many clients).
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/client.h"
#include "api/controller.h"
#include "api/handler.h"
#include "api/server.h"
#include "base/unique_fd.h"

namespace microvm::api {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Records every call; each put/action fails with `fail_with` when set. Guarded by a mutex because
// the socket tests call it on the server's thread and inspect it on the test's.
class FakeController : public Controller {
 public:
  InstanceInfo instance_info() override {
    std::lock_guard lock(mutex);
    return InstanceInfo{"vm-1", state, "0.1.0", "microvm"};
  }
  MachineSpec machine_config() override {
    std::lock_guard lock(mutex);
    return config.machine_config;
  }
  Result<void> put_machine_config(const MachineSpec& value) override {
    return record("machine-config", [&] { config.machine_config = value; });
  }
  Result<void> put_boot_source(const BootSource& value) override {
    return record("boot-source", [&] { config.boot_source = value; });
  }
  Result<void> put_drive(const DriveConfig& value) override {
    return record("drive " + value.drive_id, [&] { config.drives.push_back(value); });
  }
  Result<void> put_network_interface(const NetworkInterfaceConfig& value) override {
    return record("iface " + value.iface_id, [&] { config.network_interfaces.push_back(value); });
  }
  Result<void> put_container(const ContainerSpec& value) override {
    return record("container", [&] { config.container = value; });
  }
  Result<void> put_console(ConsoleKind value) override {
    return record("console", [&] { config.console = value; });
  }
  Result<void> start() override {
    return record("start", [&] { state = "Running"; });
  }
  Result<void> send_ctrl_alt_del() override {
    return record("ctrl-alt-del", [] {});
  }
  Result<void> flush_metrics() override {
    return record("flush-metrics", [] {});
  }
  Result<void> pause() override {
    return record("pause", [&] { state = "Paused"; });
  }
  Result<void> resume() override {
    return record("resume", [&] { state = "Running"; });
  }
  VmResources vm_config() override {
    std::lock_guard lock(mutex);
    return config;
  }
  Status status() override {
    std::lock_guard lock(mutex);
    return Status{state, exit_code};
  }
  json metrics() override {
    std::lock_guard lock(mutex);
    if (throw_on_metrics) throw std::runtime_error("metrics exploded");
    return metrics_value;
  }

  std::vector<std::string> calls_made() {
    std::lock_guard lock(mutex);
    return calls;
  }

  std::mutex mutex;
  std::vector<std::string> calls;
  VmResources config;
  std::string state = "Not started";
  std::optional<int> exit_code;
  std::optional<std::string> fail_with;
  json metrics_value = json{{"vcpus", json{{"exits", 12}}}};
  bool throw_on_metrics = false;

 private:
  template <typename Apply>
  Result<void> record(const std::string& call, Apply apply) {
    std::lock_guard lock(mutex);
    calls.push_back(call);
    if (fail_with) return fail("{}", *fail_with);
    apply();
    return {};
  }
};

Response call(Controller& controller, std::string method, std::string target, std::string body = {}) {
  return handle(controller, Request{std::move(method), std::move(target), std::move(body)});
}

json body_of(const Response& response) {
  return json::parse(response.body);
}

std::string fault(const Response& response) {
  const json body = json::parse(response.body);
  if (!body.contains("fault_message")) return "<no fault_message in " + response.body + ">";
  return body["fault_message"].get<std::string>();
}

// --- handle(): happy paths -------------------------------------------------------------------------------

TEST(ApiHandle, InstanceInfo) {
  FakeController controller;
  const Response response = call(controller, "GET", "/");
  ASSERT_EQ(response.status, kStatusOk) << response.body;
  EXPECT_EQ(body_of(response),
            (json{{"id", "vm-1"}, {"state", "Not started"}, {"vmm_version", "0.1.0"}, {"app_name", "microvm"}}));
}

TEST(ApiHandle, VersionUsesFirecrackersKey) {
  FakeController controller;
  const Response response = call(controller, "GET", "/version");
  ASSERT_EQ(response.status, kStatusOk);
  EXPECT_EQ(body_of(response), (json{{"firecracker_version", "0.1.0"}}));
}

TEST(ApiHandle, PutAndGetMachineConfig) {
  FakeController controller;
  const Response put = call(controller, "PUT", "/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 256})");
  ASSERT_EQ(put.status, kStatusNoContent) << put.body;
  EXPECT_TRUE(put.body.empty());
  EXPECT_EQ(controller.config.machine_config, (MachineSpec{2, 256, false}));

  const Response get = call(controller, "GET", "/machine-config");
  ASSERT_EQ(get.status, kStatusOk);
  EXPECT_EQ(body_of(get), (json{{"vcpu_count", 2}, {"mem_size_mib", 256}, {"smt", false}}));
}

TEST(ApiHandle, MachineConfigAcceptsFirecrackerDefaultsAndSmt) {
  FakeController controller;
  const Response put = call(controller, "PUT", "/machine-config",
                            R"({"vcpu_count": 4, "mem_size_mib": 32, "smt": true, "track_dirty_pages": false,
                                "huge_pages": "None", "cpu_template": null})");
  ASSERT_EQ(put.status, kStatusNoContent) << put.body;
  EXPECT_EQ(controller.config.machine_config, (MachineSpec{4, 32, true}));
}

TEST(ApiHandle, PatchMachineConfigChangesOnlyTheGivenFields) {
  FakeController controller;
  controller.config.machine_config = MachineSpec{2, 512, false};
  const Response patch = call(controller, "PATCH", "/machine-config", R"({"mem_size_mib": 1024})");
  ASSERT_EQ(patch.status, kStatusNoContent) << patch.body;
  EXPECT_EQ(controller.config.machine_config, (MachineSpec{2, 1024, false}));
}

TEST(ApiHandle, PutBootSource) {
  FakeController controller;
  const Response put = call(controller, "PUT", "/boot-source",
                            R"({"kernel_image_path": "/k/vmlinux", "boot_args": "console=ttyS0",
                                "initrd_path": "/k/initrd"})");
  ASSERT_EQ(put.status, kStatusNoContent) << put.body;
  EXPECT_EQ(controller.config.boot_source, (BootSource{"/k/vmlinux", "console=ttyS0", "/k/initrd"}));

  ASSERT_EQ(call(controller, "PUT", "/boot-source", R"({"kernel_image_path": "/k/bzImage"})").status, kStatusNoContent);
  EXPECT_EQ(controller.config.boot_source, (BootSource{"/k/bzImage", std::nullopt, std::nullopt}));
}

TEST(ApiHandle, PutDrive) {
  FakeController controller;
  const Response put = call(controller, "PUT", "/drives/rootfs",
                            R"({"drive_id": "rootfs", "path_on_host": "/img/root.ext4", "is_root_device": true,
                                "is_read_only": true, "cache_type": "Unsafe", "io_engine": "Sync"})");
  ASSERT_EQ(put.status, kStatusNoContent) << put.body;
  ASSERT_EQ(controller.config.drives.size(), 1U);
  EXPECT_EQ(controller.config.drives[0], (DriveConfig{"rootfs", "/img/root.ext4", true, true}));

  // is_read_only defaults to false.
  ASSERT_EQ(call(controller, "PUT", "/drives/data_1",
                 R"({"drive_id": "data_1", "path_on_host": "/img/data", "is_root_device": false})")
                .status,
            kStatusNoContent);
  EXPECT_EQ(controller.config.drives[1], (DriveConfig{"data_1", "/img/data", false, false}));
}

TEST(ApiHandle, PutNetworkInterface) {
  FakeController controller;
  const Response put = call(controller, "PUT", "/network-interfaces/eth0",
                            R"({"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:AC:10:00:02"})");
  ASSERT_EQ(put.status, kStatusNoContent) << put.body;
  ASSERT_EQ(controller.config.network_interfaces.size(), 1U);
  EXPECT_EQ(controller.config.network_interfaces[0], (NetworkInterfaceConfig{"eth0", "tap0", "06:00:AC:10:00:02", std::nullopt, std::nullopt, std::nullopt}));

  ASSERT_EQ(
      call(controller, "PUT", "/network-interfaces/eth1", R"({"iface_id": "eth1", "host_dev_name": "tap1"})").status,
      kStatusNoContent);
  EXPECT_FALSE(controller.config.network_interfaces[1].guest_mac.has_value());
}

TEST(ApiHandle, ActionsReachTheController) {
  FakeController controller;
  for (const char* action : {"InstanceStart", "SendCtrlAltDel", "FlushMetrics"}) {
    const Response response = call(controller, "PUT", "/actions", json{{"action_type", action}}.dump());
    EXPECT_EQ(response.status, kStatusNoContent) << action << ": " << response.body;
  }
  EXPECT_EQ(controller.calls, (std::vector<std::string>{"start", "ctrl-alt-del", "flush-metrics"}));
  EXPECT_EQ(controller.state, "Running");
}

TEST(ApiHandle, PatchVmPausesAndResumes) {
  FakeController controller;
  ASSERT_EQ(call(controller, "PATCH", "/vm", R"({"state": "Paused"})").status, kStatusNoContent);
  EXPECT_EQ(controller.state, "Paused");
  ASSERT_EQ(call(controller, "PATCH", "/vm", R"({"state": "Resumed"})").status, kStatusNoContent);
  EXPECT_EQ(controller.calls, (std::vector<std::string>{"pause", "resume"}));
}

TEST(ApiHandle, PutContainer) {
  FakeController controller;
  const Response put = call(controller, "PUT", "/microvm/container",
                            R"({"args": ["/bin/sh", "-c", "echo hi"], "env": ["PATH=/bin", "EMPTY="],
                                "cwd": "/srv", "user": "1000:1000", "hostname": "box"})");
  ASSERT_EQ(put.status, kStatusNoContent) << put.body;
  ASSERT_TRUE(controller.config.container.has_value());
  EXPECT_EQ(*controller.config.container,
            (ContainerSpec{{"/bin/sh", "-c", "echo hi"}, {"PATH=/bin", "EMPTY="}, "/srv", "1000:1000", "box"}));
  ASSERT_EQ(call(controller, "PUT", "/microvm/container", R"({"args": ["true"]})").status, kStatusNoContent);
  EXPECT_EQ(*controller.config.container, (ContainerSpec{{"true"}, {}, std::nullopt, std::nullopt, std::nullopt}));
}

TEST(ApiHandle, StatusAddsTheExitCodeOnceKnown) {
  FakeController controller;
  controller.state = "Running";
  Response response = call(controller, "GET", "/microvm/status");
  ASSERT_EQ(response.status, kStatusOk);
  EXPECT_EQ(body_of(response), (json{{"state", "Running"}}));

  controller.state = "Stopped";
  controller.exit_code = 3;
  response = call(controller, "GET", "/microvm/status");
  EXPECT_EQ(body_of(response), (json{{"state", "Stopped"}, {"exit_code", 3}}));
}

TEST(ApiHandle, Metrics) {
  FakeController controller;
  const Response response = call(controller, "GET", "/microvm/metrics");
  ASSERT_EQ(response.status, kStatusOk);
  EXPECT_EQ(body_of(response), controller.metrics_value);

  controller.metrics_value = json::array();
  EXPECT_EQ(call(controller, "GET", "/microvm/metrics").status, kStatusInternalError);
}

TEST(ApiHandle, VmConfigRoundTripsThroughTheConfigFileParser) {
  FakeController controller;
  controller.config = VmResources{BootSource{"/k", "quiet", std::nullopt},
                               MachineSpec{2, 64, false},
                               {DriveConfig{"root", "/r", true, false}, DriveConfig{"data", "/d", false, true}},
                               {NetworkInterfaceConfig{"eth0", "tap0", "02:00:00:00:00:01", "169.254.0.2/16",
                                                       "169.254.0.1", "169.254.0.53"}},
                               ContainerSpec{{"sh"}, {"A=1"}, "/", std::nullopt, "h"},
                               ConsoleKind::kVirtio};
  const Response response = call(controller, "GET", "/vm/config");
  ASSERT_EQ(response.status, kStatusOk);
  const json body = body_of(response);
  EXPECT_EQ(body["boot-source"], (json{{"kernel_image_path", "/k"}, {"boot_args", "quiet"}}));
  EXPECT_EQ(body["drives"].size(), 2U);
  EXPECT_EQ(body["network-interfaces"][0]["host_dev_name"], "tap0");
  EXPECT_EQ(body["network-interfaces"][0]["guest_ip"], "169.254.0.2/16");
  EXPECT_EQ(body["console"], (json{{"kind", "virtio"}}));
  auto parsed = parse_vm_config(body);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(*parsed, controller.config);
}

// --- handle(): bad input -----------------------------------------------------------------------------------

struct BadRequestCase {
  std::string name;
  std::string method;
  std::string target;
  std::string body;
  unsigned status;
  std::string fault_contains;  // the part of fault_message that says what is wrong
};

void PrintTo(const BadRequestCase& c, std::ostream* os) {
  *os << c.name;
}

class ApiBadRequest : public ::testing::TestWithParam<BadRequestCase> {};

TEST_P(ApiBadRequest, IsRejectedWithAMessageSayingWhy) {
  const BadRequestCase& c = GetParam();
  FakeController controller;
  const Response response = call(controller, c.method, c.target, c.body);
  EXPECT_EQ(response.status, c.status) << response.body;
  EXPECT_NE(fault(response).find(c.fault_contains), std::string::npos)
      << "fault_message: " << fault(response) << "\nexpected to contain: " << c.fault_contains;
  EXPECT_TRUE(controller.calls.empty()) << "the controller must not see a rejected request";
}

constexpr unsigned k400 = kStatusBadRequest;

INSTANTIATE_TEST_SUITE_P(
    Cases, ApiBadRequest,
    ::testing::Values(
        // Paths and methods.
        BadRequestCase{"UnknownPath", "GET", "/nope", "", kStatusNotFound, "no such endpoint: `/nope`"},
        BadRequestCase{"TrailingSlash", "GET", "/machine-config/", "", kStatusNotFound, "no such endpoint"},
        BadRequestCase{"FirecrackerOnly", "PUT", "/balloon", "{}", kStatusNotFound, "microvm does not implement"},
        BadRequestCase{"NestedDrivePath", "PUT", "/drives/a/b", "{}", kStatusNotFound, "no such endpoint"},
        BadRequestCase{"WrongMethod", "POST", "/machine-config", "{}", kStatusMethodNotAllowed,
                       "POST is not supported on /machine-config (allowed: GET, PUT, PATCH)"},
        BadRequestCase{"DeleteRoot", "DELETE", "/", "", kStatusMethodNotAllowed, "allowed: GET"},
        BadRequestCase{"GetActions", "GET", "/actions", "", kStatusMethodNotAllowed, "allowed: PUT"},
        BadRequestCase{"PatchDrive", "PATCH", "/drives/root", "{}", kStatusMethodNotAllowed,
                       "PATCH is not supported on /drives/{drive_id}"},
        BadRequestCase{"QueryString", "GET", "/?x=1", "", k400, "query strings are not supported"},
        // Bodies.
        BadRequestCase{"EmptyBody", "PUT", "/boot-source", "", k400, "needs a JSON body"},
        BadRequestCase{"InvalidJson", "PUT", "/boot-source", "{kernel", k400, "invalid JSON: parse error at line 1"},
        BadRequestCase{"TrailingGarbage", "PUT", "/boot-source", R"({"kernel_image_path": "/k"} x)", k400,
                       "invalid JSON"},
        BadRequestCase{"NotAnObject", "PUT", "/boot-source", R"(["/k"])", k400,
                       "boot-source: expected a JSON object, got an array"},
        BadRequestCase{"DuplicateKey", "PUT", "/boot-source",
                       R"({"kernel_image_path": "/a", "kernel_image_path": "/b"})", k400,
                       "duplicate field `kernel_image_path`"},
        BadRequestCase{"DeepNesting", "PUT", "/boot-source", std::string(100, '[') + std::string(100, ']'), k400,
                       "nests deeper than 16"},
        BadRequestCase{"InvalidUtf8", "PUT", "/boot-source", "{\"kernel_image_path\": \"\xff\"}", k400, "invalid JSON"},
        BadRequestCase{"NulInString", "PUT", "/boot-source", R"({"kernel_image_path": "/k\u0000x"})", k400,
                       "`kernel_image_path` must not contain NUL"},
        // machine-config.
        BadRequestCase{"MissingVcpus", "PUT", "/machine-config", R"({"mem_size_mib": 128})", k400,
                       "machine-config: missing required field `vcpu_count` (an integer from 1 to 32)"},
        BadRequestCase{"ZeroVcpus", "PUT", "/machine-config", R"({"vcpu_count": 0, "mem_size_mib": 128})", k400,
                       "`vcpu_count` must be an integer from 1 to 32, got 0"},
        BadRequestCase{"TooManyVcpus", "PUT", "/machine-config", R"({"vcpu_count": 33, "mem_size_mib": 128})", k400,
                       "got 33"},
        BadRequestCase{"NegativeVcpus", "PUT", "/machine-config", R"({"vcpu_count": -1, "mem_size_mib": 128})", k400,
                       "got -1"},
        BadRequestCase{"FractionalVcpus", "PUT", "/machine-config", R"({"vcpu_count": 1.5, "mem_size_mib": 128})", k400,
                       "got 1.5"},
        BadRequestCase{"StringVcpus", "PUT", "/machine-config", R"({"vcpu_count": "2", "mem_size_mib": 128})", k400,
                       "got the string \"2\""},
        BadRequestCase{"HugeMemory", "PUT", "/machine-config",
                       R"({"vcpu_count": 1, "mem_size_mib": 18446744073709551616})", k400,
                       "`mem_size_mib` must be an integer from 32 to"},
        BadRequestCase{"TinyMemory", "PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 31})", k400,
                       "`mem_size_mib` must be an integer from 32 to 1048576, got 31"},
        BadRequestCase{"SmtOddVcpus", "PUT", "/machine-config",
                       R"({"vcpu_count": 3, "mem_size_mib": 128, "smt": true})", k400,
                       "with `smt` enabled, `vcpu_count` must be 1 or even, got 3"},
        BadRequestCase{"SmtNotBool", "PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 128, "smt": 1})",
                       k400, "`smt` must be a boolean"},
        BadRequestCase{"UnknownField", "PUT", "/machine-config",
                       R"({"vcpu_count": 1, "mem_size_mib": 128, "vcpus": 2})", k400,
                       "machine-config: unknown field `vcpus`"},
        BadRequestCase{"DirtyPages", "PUT", "/machine-config",
                       R"({"vcpu_count": 1, "mem_size_mib": 128, "track_dirty_pages": true})", k400,
                       "`track_dirty_pages` is not supported by microvm except as false, got true"},
        BadRequestCase{"PatchBadValue", "PATCH", "/machine-config", R"({"vcpu_count": 64})", k400, "got 64"},
        // boot-source.
        BadRequestCase{"MissingKernel", "PUT", "/boot-source", R"({"boot_args": "x"})", k400,
                       "boot-source: missing required field `kernel_image_path` (a string)"},
        BadRequestCase{"EmptyKernel", "PUT", "/boot-source", R"({"kernel_image_path": ""})", k400,
                       "`kernel_image_path` must not be empty"},
        BadRequestCase{"BootArgsNotString", "PUT", "/boot-source", R"({"kernel_image_path": "/k", "boot_args": 1})",
                       k400, "`boot_args` must be a string, got 1"},
        // drives.
        BadRequestCase{"DriveIdMismatch", "PUT", "/drives/root",
                       R"({"drive_id": "other", "path_on_host": "/r", "is_root_device": true})", k400,
                       "`drive_id` `other` in the body differs from `root` in the path"},
        BadRequestCase{"DriveBadPathId", "PUT", "/drives/a-b",
                       R"({"drive_id": "a-b", "path_on_host": "/r", "is_root_device": true})", k400,
                       "may only contain letters, digits and '_'"},
        BadRequestCase{"DriveEmptyPathId", "PUT", "/drives/", "{}", k400, "`drive_id` must not be empty"},
        BadRequestCase{"DriveMissingRoot", "PUT", "/drives/root", R"({"drive_id": "root", "path_on_host": "/r"})", k400,
                       "drive: missing required field `is_root_device` (a boolean)"},
        BadRequestCase{"DriveMissingPath", "PUT", "/drives/root", R"({"drive_id": "root", "is_root_device": true})",
                       k400, "missing required field `path_on_host`"},
        BadRequestCase{"DriveRateLimiter", "PUT", "/drives/root",
                       R"({"drive_id": "root", "path_on_host": "/r", "is_root_device": true, "rate_limiter": {}})",
                       k400, "`rate_limiter` is not supported by microvm"},
        BadRequestCase{"DriveAsyncEngine", "PUT", "/drives/root",
                       R"({"drive_id": "root", "path_on_host": "/r", "is_root_device": true, "io_engine": "Async"})",
                       k400, "`io_engine` is not supported by microvm except as \"Sync\""},
        BadRequestCase{"DriveUnknownField", "PUT", "/drives/root",
                       R"({"drive_id": "root", "path_on_host": "/r", "is_root_device": true, "readonly": true})", k400,
                       "drive: unknown field `readonly`"},
        // network interfaces.
        BadRequestCase{"IfaceIdMismatch", "PUT", "/network-interfaces/eth0",
                       R"({"iface_id": "eth1", "host_dev_name": "tap0"})", k400,
                       "`iface_id` `eth1` in the body differs from `eth0` in the path"},
        BadRequestCase{"IfaceBadMac", "PUT", "/network-interfaces/eth0",
                       R"({"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00"})", k400,
                       "`guest_mac` must look like 06:00:ac:10:00:02"},
        BadRequestCase{"IfaceMulticastMac", "PUT", "/network-interfaces/eth0",
                       R"({"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "01:00:5e:00:00:01"})", k400,
                       "is a multicast address"},
        BadRequestCase{"IfaceLongName", "PUT", "/network-interfaces/eth0",
                       R"({"iface_id": "eth0", "host_dev_name": "a-very-long-tap-name"})", k400,
                       "`host_dev_name` must be at most 15 characters"},
        BadRequestCase{"IfaceSlashName", "PUT", "/network-interfaces/eth0",
                       R"({"iface_id": "eth0", "host_dev_name": "tap/0"})", k400, "is not a valid interface name"},
        BadRequestCase{"IfaceMtu", "PUT", "/network-interfaces/eth0",
                       R"({"iface_id": "eth0", "host_dev_name": "tap0", "mtu": 1500})", k400,
                       "`mtu` is not supported by microvm"},
        // actions and vm.
        BadRequestCase{"UnknownAction", "PUT", "/actions", R"({"action_type": "Reboot"})", k400,
                       "`action_type` must be \"InstanceStart\", \"SendCtrlAltDel\" or \"FlushMetrics\", got `Reboot`"},
        BadRequestCase{"MissingAction", "PUT", "/actions", R"({})", k400, "missing required field `action_type`"},
        BadRequestCase{"ActionExtraField", "PUT", "/actions", R"({"action_type": "InstanceStart", "now": true})", k400,
                       "actions: unknown field `now`"},
        BadRequestCase{"BadVmState", "PATCH", "/vm", R"({"state": "Stopped"})", k400,
                       "`state` must be \"Paused\" or \"Resumed\", got `Stopped`"},
        // container.
        BadRequestCase{"ContainerNoArgs", "PUT", "/microvm/container", R"({"env": []})", k400,
                       "missing required field `args`"},
        BadRequestCase{"ContainerEmptyArgs", "PUT", "/microvm/container", R"({"args": []})", k400,
                       "`args` must start with a non-empty command"},
        BadRequestCase{"ContainerArgNotString", "PUT", "/microvm/container", R"({"args": ["sh", 1]})", k400,
                       "field `args[1]` must be a string, got 1"},
        BadRequestCase{"ContainerBadEnv", "PUT", "/microvm/container", R"({"args": ["sh"], "env": ["=x"]})", k400,
                       "`env[0]` must be KEY=VALUE with a non-empty KEY"},
        BadRequestCase{"ContainerRelativeCwd", "PUT", "/microvm/container", R"({"args": ["sh"], "cwd": "srv"})", k400,
                       "`cwd` must be an absolute path"},
        BadRequestCase{"ContainerLongHostname", "PUT", "/microvm/container",
                       R"({"args": ["sh"], "hostname": ")" + std::string(65, 'h') + R"("})", k400,
                       "`hostname` must be 1 to 64 characters long"}),
    [](const ::testing::TestParamInfo<BadRequestCase>& param) { return param.param.name; });

// allowed_methods() (the Allow header) and the router agree: every listed method is routed, every
// other method is a 405 naming the list.
TEST(ApiHandle, AllowedMethodsMatchTheRouter) {
  const char* const paths[] = {"/",
                               "/version",
                               "/machine-config",
                               "/boot-source",
                               "/actions",
                               "/vm",
                               "/vm/config",
                               "/microvm/container",
                               "/microvm/status",
                               "/microvm/metrics",
                               "/drives/root",
                               "/network-interfaces/eth0"};
  for (const char* path : paths) {
    const std::string allowed(allowed_methods(path));
    ASSERT_FALSE(allowed.empty()) << path;
    for (const char* method : {"GET", "PUT", "PATCH", "POST", "DELETE", "HEAD", "OPTIONS"}) {
      FakeController controller;
      const Response response = call(controller, method, path, "{}");
      const bool listed = (", " + allowed + ",").find(std::string(" ") + method + ",") != std::string::npos;
      if (listed) {
        EXPECT_NE(response.status, kStatusMethodNotAllowed) << method << " " << path;
      } else {
        EXPECT_EQ(response.status, kStatusMethodNotAllowed) << method << " " << path;
        EXPECT_NE(fault(response).find("(allowed: " + allowed + ")"), std::string::npos) << fault(response);
      }
    }
  }
  EXPECT_EQ(allowed_methods("/nope"), "");
  EXPECT_EQ(allowed_methods("/drives/a/b"), "");
}
TEST(ApiHandle, ControllerErrorsBecome400WithTheirMessage) {
  FakeController controller;
  controller.fail_with = "the VM is already running";
  const Response response = call(controller, "PUT", "/actions", R"({"action_type": "InstanceStart"})");
  EXPECT_EQ(response.status, kStatusBadRequest);
  EXPECT_EQ(fault(response), "the VM is already running");
}

TEST(ApiHandle, ControllerExceptionsBecome500) {
  FakeController controller;
  controller.throw_on_metrics = true;
  const Response response = call(controller, "GET", "/microvm/metrics");
  EXPECT_EQ(response.status, kStatusInternalError);
  EXPECT_NE(fault(response).find("metrics exploded"), std::string::npos);
}

TEST(ApiHandle, LongKeysAreQuotedShort) {
  FakeController controller;
  const std::string key(5000, 'k');
  const Response response = call(controller, "PUT", "/boot-source", json{{"kernel_image_path", "/k"}, {key, 1}}.dump());
  EXPECT_EQ(response.status, kStatusBadRequest);
  EXPECT_LT(response.body.size(), 200U) << response.body;
}

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

// --- the HTTP layer without a socket --------------------------------------------------------------------------

// The status codes of every response in `output`, in order.
std::vector<unsigned> statuses(const std::string& output) {
  std::vector<unsigned> out;
  for (std::size_t at = output.find("HTTP/1.1 "); at != std::string::npos; at = output.find("HTTP/1.1 ", at + 1)) {
    out.push_back(static_cast<unsigned>(std::stoul(output.substr(at + 9, 3))));
  }
  return out;
}

TEST(ApiHttp, PipelinedRequestsAreAnsweredInOrder) {
  FakeController controller;
  const std::string body = R"({"vcpu_count": 2, "mem_size_mib": 64})";
  const std::string output =
      serve_bytes(controller,
                  "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                  "PUT /machine-config HTTP/1.1\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n\r\n" + body + "GET /machine-config HTTP/1.1\r\n\r\n");
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{200, 204, 200})) << output;
  EXPECT_NE(output.find(R"({"mem_size_mib":64,"smt":false,"vcpu_count":2})"), std::string::npos) << output;
  EXPECT_NE(output.find("Content-Type: application/json"), std::string::npos);
}

TEST(ApiHttp, MalformedRequestGets400AndEndsTheConnection) {
  FakeController controller;
  const std::string output = serve_bytes(controller, "GET / HTTP/9\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{400})) << output;
  EXPECT_NE(output.find("malformed HTTP request"), std::string::npos) << output;
  EXPECT_NE(output.find("Connection: close"), std::string::npos) << output;
}

TEST(ApiHttp, OversizeBodyGets413BeforeTheBodyIsRead) {
  FakeController controller;
  const std::string output =
      serve_bytes(controller, "PUT /boot-source HTTP/1.1\r\nContent-Length: 51201\r\n\r\n{", Limits{});
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{413})) << output;
  EXPECT_NE(output.find("larger than the limit of 51200 bytes"), std::string::npos) << output;
}

TEST(ApiHttp, OversizeHeaderGets431) {
  FakeController controller;
  const std::string output =
      serve_bytes(controller, "GET / HTTP/1.1\r\nX-Filler: " + std::string(10000, 'x') + "\r\n\r\n");
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{431})) << output;
}

TEST(ApiHttp, ExpectContinueGetsAnInterimResponse) {
  FakeController controller;
  const std::string body = R"({"action_type": "InstanceStart"})";
  const std::string output = serve_bytes(
      controller, "PUT /actions HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) +
                      "\r\n\r\n" + body);
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{100, 204})) << output;
}

TEST(ApiHttp, ConnectionCloseEndsAfterTheFirstAnswer) {
  FakeController controller;
  const std::string output =
      serve_bytes(controller, "GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{200})) << output;
}

TEST(ApiHttp, MethodNotAllowedSendsAnAllowHeader) {
  FakeController controller;
  const std::string output = serve_bytes(controller, "POST /machine-config HTTP/1.1\r\n\r\n");
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{405})) << output;
  EXPECT_NE(output.find("\r\nAllow: GET, PUT, PATCH\r\n"), std::string::npos) << output;
}

TEST(ApiHttp, NoContentHasNoContentLength) {
  FakeController controller;
  const std::string body = R"({"action_type": "FlushMetrics"})";
  const std::string output =
      serve_bytes(controller, fmt::format("PUT /actions HTTP/1.1\r\nContent-Length: {}\r\n\r\n{}", body.size(), body));
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{204})) << output;
  EXPECT_EQ(output.find("Content-Length"), std::string::npos) << output;
}

TEST(ApiHttp, ChunkedBodiesWork) {
  FakeController controller;
  const std::string output = serve_bytes(controller,
                                         "PUT /actions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                         "10\r\n{\"action_type\": \r\n10\r\n\"InstanceStart\"}\r\n0\r\n\r\n");
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{204})) << output;
  EXPECT_EQ(controller.calls, (std::vector<std::string>{"start"}));
}

// --- the socket server ----------------------------------------------------------------------------------------

// A temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "microvm-api-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A raw client socket with blocking I/O and a receive timeout.
class RawClient {
 public:
  explicit RawClient(const std::string& path) : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof(address.sun_path) - 1);
    connected_ = ::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
    const timeval timeout{5, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }

  bool connected() const { return connected_; }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Sends what fits without blocking; the number of bytes sent.
  std::size_t send_nonblocking(std::string_view bytes) {
    const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }

  // One response (status line, headers, Content-Length body), or nullopt on EOF/error/timeout.
  std::optional<Response> read_response() {
    std::size_t header_end;
    while ((header_end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    const std::string head = pending_.substr(0, header_end);
    if (!head.starts_with("HTTP/1.1 ") || head.size() < 12) {
      ADD_FAILURE() << "not an HTTP/1.1 response: " << head;
      return std::nullopt;
    }
    Response response;
    response.status = static_cast<unsigned>(std::stoul(head.substr(9, 3)));
    std::size_t length = 0;
    const auto at = head.find("Content-Length: ");
    if (at != std::string::npos) length = std::stoul(head.substr(at + 16));
    while (pending_.size() < header_end + 4 + length) {
      if (!fill()) return std::nullopt;
    }
    response.body = pending_.substr(header_end + 4, length);
    last_head_ = head;
    pending_.erase(0, header_end + 4 + length);
    return response;
  }

  const std::string& last_head() const { return last_head_; }

  // True if the server closed the connection (EOF or reset) with nothing more to read.
  bool closed_by_server() {
    char byte;
    const ssize_t n = ::recv(fd_.get(), &byte, 1, 0);
    return pending_.empty() && (n == 0 || (n < 0 && errno == ECONNRESET));
  }

  void close() { fd_.reset(); }

 private:
  bool fill() {
    char chunk[4096];
    const ssize_t n = ::recv(fd_.get(), chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    pending_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  UniqueFd fd_;
  bool connected_ = false;
  std::string pending_;
  std::string last_head_;
};

std::string get(std::string_view target) {
  return fmt::format("GET {} HTTP/1.1\r\nHost: localhost\r\n\r\n", target);
}

std::string put(std::string_view target, std::string_view body) {
  return fmt::format("PUT {} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{}", target, body.size(), body);
}

// The server on an io_context run by its own thread, as in the VMM.
class ApiServer : public ::testing::Test {
 protected:
  void start(Limits limits = {}) {
    path_ = dir_.file("api.sock");
    auto server = Server::create(io_, path_, controller_, limits);
    ASSERT_TRUE(server.has_value()) << server.error().message;
    server_ = std::move(*server);
    thread_ = std::thread([this] { io_.run(); });
  }

  // Destroys the server on its own thread (as the VMM would), then stops the loop.
  void stop() {
    if (!thread_.joinable()) return;
    std::promise<void> destroyed;
    boost::asio::post(io_, [&] {
      server_.reset();
      destroyed.set_value();
    });
    destroyed.get_future().wait();
    work_.reset();
    io_.stop();
    thread_.join();
  }

  void TearDown() override { stop(); }

  TempDir dir_;
  std::string path_;
  FakeController controller_;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{io_.get_executor()};
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST_F(ApiServer, KeepAliveServesSeveralRequestsOnOneConnection) {
  start();
  RawClient client(path_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(get("/")));
  auto first = client.read_response();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->status, 200U);
  EXPECT_EQ(json::parse(first->body)["app_name"], "microvm");

  ASSERT_TRUE(client.send(put("/machine-config", R"({"vcpu_count": 4, "mem_size_mib": 512})")));
  auto second = client.read_response();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->status, 204U) << second->body;
  EXPECT_EQ(client.last_head().find("Content-Type"), std::string::npos) << "204 has no body";

  ASSERT_TRUE(client.send(get("/machine-config")));
  auto third = client.read_response();
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(json::parse(third->body)["vcpu_count"], 4);
}

TEST_F(ApiServer, PipelinedRequestsAreAnsweredInOrder) {
  start();
  RawClient client(path_);
  std::string batch;
  for (int i = 0; i < 10; ++i) {
    batch += put("/machine-config", fmt::format(R"({{"vcpu_count": {}, "mem_size_mib": 64}})", i + 1));
    batch += get("/machine-config");
  }
  ASSERT_TRUE(client.send(batch));
  for (int i = 0; i < 10; ++i) {
    auto put_response = client.read_response();
    ASSERT_TRUE(put_response.has_value()) << i;
    EXPECT_EQ(put_response->status, 204U);
    auto get_response = client.read_response();
    ASSERT_TRUE(get_response.has_value()) << i;
    EXPECT_EQ(json::parse(get_response->body)["vcpu_count"], i + 1);
  }
}

TEST_F(ApiServer, ExpectContinueIsAnsweredBeforeTheBodyIsSent) {
  start();
  RawClient client(path_);
  const std::string body = R"({"action_type": "InstanceStart"})";
  ASSERT_TRUE(client.send(
      fmt::format("PUT /actions HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", body.size())));
  auto interim = client.read_response();
  ASSERT_TRUE(interim.has_value());
  EXPECT_EQ(interim->status, 100U);
  ASSERT_TRUE(client.send(body));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 204U) << response->body;
  EXPECT_EQ(controller_.calls_made(), (std::vector<std::string>{"start"}));
}

TEST_F(ApiServer, OversizeBodyGets413AndTheConnectionCloses) {
  start();
  RawClient client(path_);
  ASSERT_TRUE(client.send(put("/boot-source", std::string(51201, ' '))));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413U);
  EXPECT_TRUE(client.closed_by_server());
  EXPECT_TRUE(controller_.calls_made().empty());
}

TEST_F(ApiServer, MalformedHttpGets400AndTheConnectionCloses) {
  start();
  RawClient client(path_);
  ASSERT_TRUE(client.send("HELLO\r\n\r\n"));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 400U);
  EXPECT_TRUE(client.closed_by_server());
}

TEST_F(ApiServer, HalfSentRequestTimesOutWithoutBlockingOthers) {
  start(Limits{.timeout = 300ms});
  RawClient stalled(path_);
  ASSERT_TRUE(stalled.send("PUT /actions HTTP/1.1\r\nContent-Length: 40\r\n\r\n{\"action"));
  RawClient idle(path_);

  // Others are served while both stall.
  RawClient other(path_);
  ASSERT_TRUE(other.send(get("/")));
  auto answer = other.read_response();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 200U);

  const auto started = std::chrono::steady_clock::now();
  auto response = stalled.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 408U);
  EXPECT_TRUE(stalled.closed_by_server());
  EXPECT_TRUE(idle.closed_by_server()) << "an idle connection is closed without an answer";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  EXPECT_TRUE(controller_.calls_made().empty());
}

TEST_F(ApiServer, AClientThatNeverReadsIsDroppedAndDoesNotHoldUpOthers) {
  controller_.metrics_value = json{{"blob", std::string(64 * 1024, 'x')}};  // a few fill the socket buffers
  start(Limits{.timeout = 300ms});
  RawClient hog(path_);
  // Pipelines requests without reading.
  constexpr std::size_t kRequests = 200;
  const std::string request = get("/microvm/metrics");
  std::size_t sent = 0;
  for (std::size_t i = 0; i < kRequests; ++i) {
    const std::size_t n = hog.send_nonblocking(request);
    if (n < request.size()) break;
    ++sent;
  }
  EXPECT_GT(sent, 20U);

  RawClient other(path_);
  ASSERT_TRUE(other.send(get("/")));
  auto answer = other.read_response();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 200U);

  // After the write deadline the server gives up on the hog: draining it ends in EOF or a reset.
  std::this_thread::sleep_for(600ms);
  std::optional<Response> response;
  int answered = 0;
  while ((response = hog.read_response())) ++answered;
  EXPECT_GT(answered, 0);
  EXPECT_LT(static_cast<std::size_t>(answered), sent) << "the server must have given up on the hog";
}

TEST_F(ApiServer, AClientThatLeavesBeforeTheAnswerDoesNotHurtTheServer) {
  start();
  for (int i = 0; i < 20; ++i) {
    RawClient client(path_);
    ASSERT_TRUE(client.send(get("/microvm/metrics")));
    client.close();
  }
  RawClient client(path_);
  ASSERT_TRUE(client.send(get("/")));
  auto answer = client.read_response();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 200U);
}

TEST_F(ApiServer, HundredConcurrentClientsAllGetWellFormedAnswers) {
  start();
  constexpr int kClients = 100;
  constexpr int kRequestsEach = 3;
  std::atomic<int> good{0};
  std::vector<std::string> failures(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      for (int r = 0; r < kRequestsEach; ++r) {
        auto response = r == 1 ? request(path_, "PUT", "/actions", R"({"action_type": "FlushMetrics"})")
                               : request(path_, "GET", r == 0 ? "/" : "/microvm/status", "");
        if (!response) {
          failures[i] = response.error().message;
          return;
        }
        const unsigned expected = r == 1 ? 204 : 200;
        if (response->status != expected || (expected == 200 && !json::accept(response->body))) {
          failures[i] = fmt::format("status {} body {}", response->status, response->body);
          return;
        }
        ++good;
      }
    });
  }
  for (auto& client : clients) client.join();
  for (int i = 0; i < kClients; ++i) EXPECT_EQ(failures[i], "") << "client " << i;
  EXPECT_EQ(good.load(), kClients * kRequestsEach);
}

TEST_F(ApiServer, ConnectionsBeyondTheLimitGet503) {
  start(Limits{.max_connections = 2});
  RawClient first(path_);
  RawClient second(path_);
  for (RawClient* client : {&first, &second}) {
    ASSERT_TRUE(client->send(get("/")));
    ASSERT_TRUE(client->read_response().has_value());
  }
  RawClient third(path_);
  auto refused = third.read_response();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 503U);
  EXPECT_NE(refused->body.find("too many API connections (limit 2)"), std::string::npos);
  EXPECT_TRUE(third.closed_by_server());

  // A freed slot is usable again (the server notices the close asynchronously).
  first.close();
  bool served = false;
  for (int attempt = 0; attempt < 50 && !served; ++attempt) {
    RawClient fourth(path_);
    fourth.send(get("/"));
    auto response = fourth.read_response();
    served = response.has_value() && response->status == 200;
    if (!served) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(served);
}

TEST_F(ApiServer, SocketFileIsRemovedOnDestruction) {
  start();
  RawClient client(path_);
  ASSERT_TRUE(client.send(get("/")));
  ASSERT_TRUE(client.read_response().has_value());
  struct stat info {};
  ASSERT_EQ(::stat(path_.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600U);
  stop();
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_TRUE(client.closed_by_server());
  // Handlers still queued after the Server is gone run harmlessly.
  io_.restart();
  io_.poll();
}

TEST_F(ApiServer, InUseSocketIsRefusedAndStaleOneReplaced) {
  start();
  FakeController other;
  auto second = Server::create(io_, path_, other);
  ASSERT_FALSE(second.has_value());
  EXPECT_NE(second.error().message.find("is in use by another process"), std::string::npos) << second.error().message;

  // A socket file nobody listens on is stale: replaced.
  const std::string stale = dir_.file("stale.sock");
  {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    stale.copy(address.sun_path, sizeof(address.sun_path) - 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  }
  boost::asio::io_context io;
  auto replaced = Server::create(io, stale, other);
  ASSERT_TRUE(replaced.has_value()) << replaced.error().message;
  replaced->reset();
  EXPECT_FALSE(std::filesystem::exists(stale));

  // A regular file is never removed.
  const std::string regular = dir_.file("regular");
  std::ofstream(regular) << "data";
  auto refused = Server::create(io, regular, other);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("exists and is not a socket"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(regular));

  auto too_long = Server::create(io, "/tmp/" + std::string(200, 'x'), other);
  ASSERT_FALSE(too_long.has_value());
  EXPECT_NE(too_long.error().message.find("Unix sockets allow at most 107"), std::string::npos);
}

// --- the client ------------------------------------------------------------------------------------------------

TEST_F(ApiServer, ClientGetsErrorResponsesAsResponses) {
  start();
  auto response = request(path_, "PUT", "/machine-config", R"({"vcpu_count": 0, "mem_size_mib": 64})");
  ASSERT_TRUE(response.has_value()) << response.error().message;
  EXPECT_EQ(response->status, 400U);
  EXPECT_NE(fault(*response).find("`vcpu_count`"), std::string::npos);

  auto oversize = request(path_, "PUT", "/boot-source", std::string(60000, ' '));
  ASSERT_TRUE(oversize.has_value()) << oversize.error().message;
  EXPECT_EQ(oversize->status, 413U);
}

TEST(ApiClient, ReportsAMissingSocket) {
  auto response = request("/nonexistent/microvm-api.sock", "GET", "/", "");
  ASSERT_FALSE(response.has_value());
  EXPECT_NE(response.error().message.find("cannot connect to API socket /nonexistent/microvm-api.sock"),
            std::string::npos)
      << response.error().message;
}

TEST(ApiClient, TimesOutOnASilentServer) {
  TempDir dir;
  const std::string path = dir.file("silent.sock");
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, sizeof(address.sun_path) - 1);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(listener.get(), 1), 0);  // never accepts: connect succeeds, nothing answers
  const auto started = std::chrono::steady_clock::now();
  auto response = request(path, "GET", "/", "", 200ms);
  ASSERT_FALSE(response.has_value());
  EXPECT_NE(response.error().message.find("no answer to GET / within 200 ms"), std::string::npos)
      << response.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
}

}  // namespace
}  // namespace microvm::api
