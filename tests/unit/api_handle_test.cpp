// The API's pure half: handle() with a fake Controller (every route, and what each rejects), the route
// table behind the Allow header, and the status each error kind becomes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "api/handler.h"
#include "api/resources/vm_config.h"
#include "api/routes.h"
#include "api/status.h"
#include "tests/unit/api_fake_controller.h"

namespace microvm::api {
namespace {

using nlohmann::json;
using test::body_of;
using test::call;
using test::FakeController;
using test::fault;

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
  EXPECT_EQ(controller.config.network_interfaces[0],
            (NetworkInterfaceConfig{"eth0", "tap0", "06:00:AC:10:00:02", std::nullopt, std::nullopt, std::nullopt}));

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

TEST(ApiHandle, SnapshotCreateTakesFirecrackersFields) {
  FakeController controller;
  ASSERT_EQ(call(controller, "PUT", "/snapshot/create",
                 R"({"snapshot_type": "Full", "snapshot_path": "/s/state", "mem_file_path": "/s/mem"})")
                .status,
            kStatusNoContent);
  EXPECT_EQ(controller.created, (SnapshotCreateParams{"/s/state", "/s/mem"}));
  ASSERT_EQ(call(controller, "PUT", "/snapshot/create", R"({"snapshot_path": "/a", "mem_file_path": "/b"})").status,
            kStatusNoContent);  // snapshot_type defaults to Full
  EXPECT_EQ(controller.created, (SnapshotCreateParams{"/a", "/b"}));
}

TEST(ApiHandle, SnapshotLoadTakesAMemoryBackendOrTheOlderMemFilePath) {
  FakeController controller;
  ASSERT_EQ(call(controller, "PUT", "/snapshot/load",
                 R"({"snapshot_path": "/s/state", "mem_backend": {"backend_type": "File", "backend_path": "/s/mem"},
                     "resume_vm": true, "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tap9"}],
                     "enable_diff_snapshots": false, "track_dirty_pages": false, "clock_realtime": false,
                     "huge_pages": "None"})")
                .status,
            kStatusNoContent);
  ASSERT_TRUE(controller.loaded.has_value());
  EXPECT_EQ(*controller.loaded,
            (SnapshotLoadParams{"/s/state", "/s/mem", true, {vmm::NetworkOverride{"eth0", "tap9"}}}));
  EXPECT_EQ(controller.state, "Running");
  ASSERT_EQ(call(controller, "PUT", "/snapshot/load", R"({"snapshot_path": "/a", "mem_file_path": "/b"})").status,
            kStatusNoContent);
  EXPECT_EQ(*controller.loaded, (SnapshotLoadParams{"/a", "/b", false, {}}));
  EXPECT_EQ(controller.state, "Paused");
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

TEST(ApiHandle, PutContainerWithGroupsFilesAndReadOnlyRoot) {
  FakeController controller;
  const Response put = call(controller, "PUT", "/microvm/container",
                            R"({"args": ["true"], "additional_gids": [10, 20], "read_only_root": true,
                                "files": [{"path": "/etc/hosts", "contents": "x\n", "mode": 292}, {"path": "/etc/e"}]})");
  ASSERT_EQ(put.status, kStatusNoContent) << put.body;
  ASSERT_TRUE(controller.config.container.has_value());
  const ContainerSpec& spec = *controller.config.container;
  EXPECT_EQ(spec.additional_gids, (std::vector<std::uint32_t>{10, 20}));
  EXPECT_TRUE(spec.read_only_root);
  EXPECT_EQ(spec.files, (std::vector<microvm::vmm::ContainerFile>{{"/etc/hosts", "x\n", 0444}, {"/etc/e", "", 0644}}));
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
  controller.config = VmResources{
      BootSource{"/k", "quiet", std::nullopt},
      MachineSpec{2, 64, false},
      {DriveConfig{"root", "/r", true, false}, DriveConfig{"data", "/d", false, true}},
      {NetworkInterfaceConfig{"eth0", "tap0", "02:00:00:00:00:01", "169.254.0.2/16", "169.254.0.1", "169.254.0.53"}},
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
        // snapshots.
        BadRequestCase{"SnapshotCreateNoMemFile", "PUT", "/snapshot/create", R"({"snapshot_path": "/s"})", k400,
                       "snapshot-create: missing required field `mem_file_path`"},
        BadRequestCase{"SnapshotCreateNoPath", "PUT", "/snapshot/create", R"({"mem_file_path": "/m"})", k400,
                       "missing required field `snapshot_path`"},
        BadRequestCase{"SnapshotCreateDiff", "PUT", "/snapshot/create",
                       R"({"snapshot_type": "Diff", "snapshot_path": "/s", "mem_file_path": "/m"})", k400,
                       "\"Diff\" is not supported"},
        BadRequestCase{"SnapshotCreateBadType", "PUT", "/snapshot/create",
                       R"({"snapshot_type": "Half", "snapshot_path": "/s", "mem_file_path": "/m"})", k400,
                       "must be \"Full\" or \"Diff\", got `Half`"},
        BadRequestCase{"SnapshotCreateUnknownField", "PUT", "/snapshot/create",
                       R"({"snapshot_path": "/s", "mem_file_path": "/m", "version": "1.0"})", k400,
                       "unknown field `version`"},
        BadRequestCase{"SnapshotLoadNoMemory", "PUT", "/snapshot/load", R"({"snapshot_path": "/s"})", k400,
                       "missing field `mem_backend`"},
        BadRequestCase{"SnapshotLoadBothMemories", "PUT", "/snapshot/load",
                       R"({"snapshot_path": "/s", "mem_file_path": "/m",
                           "mem_backend": {"backend_type": "File", "backend_path": "/m"}})",
                       k400, "mutually exclusive"},
        BadRequestCase{"SnapshotLoadUffd", "PUT", "/snapshot/load",
                       R"({"snapshot_path": "/s", "mem_backend": {"backend_type": "Uffd", "backend_path": "/u"}})",
                       k400, "\"Uffd\" is not supported"},
        BadRequestCase{"SnapshotLoadBackendNoPath", "PUT", "/snapshot/load",
                       R"({"snapshot_path": "/s", "mem_backend": {"backend_type": "File"}})", k400,
                       "missing required field `backend_path`"},
        BadRequestCase{"SnapshotLoadResumeNotBool", "PUT", "/snapshot/load",
                       R"({"snapshot_path": "/s", "mem_file_path": "/m", "resume_vm": "yes"})", k400,
                       "`resume_vm` must be a boolean"},
        BadRequestCase{"SnapshotLoadDirtyPages", "PUT", "/snapshot/load",
                       R"({"snapshot_path": "/s", "mem_file_path": "/m", "track_dirty_pages": true})", k400,
                       "`track_dirty_pages` is not supported by microvm except as false"},
        BadRequestCase{"SnapshotLoadBadOverride", "PUT", "/snapshot/load",
                       R"({"snapshot_path": "/s", "mem_file_path": "/m",
                           "network_overrides": [{"iface_id": "eth0", "host_dev_name": "a/b"}]})",
                       k400, "network_overrides[0]: `host_dev_name` `a/b` is not a valid interface name"},
        BadRequestCase{
            "SnapshotLoadOverrideNoIface", "PUT", "/snapshot/load",
            R"({"snapshot_path": "/s", "mem_file_path": "/m", "network_overrides": [{"host_dev_name": "t"}]})", k400,
            "missing required field `iface_id`"},
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
                       "`hostname` must be 1 to 64 characters long"},
        BadRequestCase{"ContainerBadGid", "PUT", "/microvm/container", R"({"args": ["sh"], "additional_gids": [-1]})",
                       k400, "`additional_gids` must hold group ids 0 to 2147483647"},
        BadRequestCase{"ContainerRelativeFile", "PUT", "/microvm/container",
                       R"({"args": ["sh"], "files": [{"path": "etc/hosts"}]})", k400, "`path` must be absolute"},
        BadRequestCase{"ContainerFileExtraField", "PUT", "/microvm/container",
                       R"({"args": ["sh"], "files": [{"path": "/e", "uid": 0}]})", k400, "unknown field `uid`"}),
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
                               "/snapshot/create",
                               "/snapshot/load",
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

// Every kind of Error has its status (base/result.h's to_string says "unknown" past the last kind).
TEST(ApiStatus, EveryErrorKindHasItsStatus) {
  const std::vector<std::pair<ErrorKind, unsigned>> expected = {
      {ErrorKind::kInvalidArgument, kStatusBadRequest}, {ErrorKind::kWrongState, kStatusBadRequest},
      {ErrorKind::kHost, kStatusInternalError},         {ErrorKind::kKvm, kStatusInternalError},
      {ErrorKind::kGuest, kStatusBadRequest},           {ErrorKind::kInternal, kStatusInternalError},
  };
  std::size_t kinds = 0;
  while (to_string(static_cast<ErrorKind>(kinds)) != "unknown") ++kinds;
  ASSERT_EQ(kinds, expected.size()) << "a new ErrorKind needs its status here and in http_status()";
  for (const auto& [kind, status] : expected) EXPECT_EQ(http_status(kind), status) << to_string(kind);
}

TEST(ApiHandle, ControllerErrorsGetTheStatusOfTheirKind) {
  for (const ErrorKind kind : {ErrorKind::kInvalidArgument, ErrorKind::kWrongState, ErrorKind::kHost, ErrorKind::kKvm,
                               ErrorKind::kGuest, ErrorKind::kInternal}) {
    FakeController controller;
    controller.fail_with = "it failed";
    controller.fail_kind_value = kind;
    const Response response = call(controller, "PATCH", "/vm", R"({"state": "Paused"})");
    EXPECT_EQ(response.status, http_status(kind)) << to_string(kind);
    EXPECT_EQ(fault(response), "it failed");
  }
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
}  // namespace
}  // namespace microvm::api
