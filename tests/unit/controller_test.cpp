// The one configuration (vmm/vm_resources.h) through every front end — flags, flags with the API,
// a config file, API PUTs — and the controller's state rules before InstanceStart.
#include "tools/cli/controller.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "api/handler.h"
#include "api/resources/vm_config.h"

#include "tests/unit/test_support.h"

namespace microvm::cli {
namespace {

StartOptions parse_start(std::vector<std::string> args) {
  auto parsed = parse_command_line(args);
  EXPECT_TRUE(parsed.has_value() && parsed->start) << (parsed ? "" : parsed.error().message);
  return parsed && parsed->start ? *parsed->start : StartOptions{};
}

// Every field of the one configuration, set from flags. Paths below must all arrive at the same
// VmResources, and so at the same boot (command line, drive order, container spec).
const std::vector<std::string> kEveryFlag = {
    "start",
    "--kernel",
    "/k/vmlinux",
    "--cmdline",
    "console=hvc0 quiet",
    "--cpus",
    "2",
    "--memory",
    "256M",
    "--rootfs",
    "/r.img",
    "--drive",
    "/d.img,ro",
    "--net",
    "tap=t0,mac=02:00:00:00:00:05,ip=169.254.0.2/16,gw=169.254.0.1,dns=169.254.0.53",
    "--console",
    "virtio",
    "--env",
    "A=1",
    "-w",
    "/srv",
    "-u",
    "nobody",
    "--hostname",
    "box",
    "--",
    "sh",
    "-c",
    "echo hi"};

// What a Machine would be built with: the configuration itself and what is derived from it.
void expect_same_boot(const vmm::VmResources& got, const vmm::VmResources& want, bool verbose) {
  EXPECT_EQ(got, want);
  EXPECT_EQ(got.kernel_cmdline(verbose), want.kernel_cmdline(verbose));
  EXPECT_EQ(got.drives_in_guest_order(), want.drives_in_guest_order());
  auto got_spec = got.container_spec();
  auto want_spec = want.container_spec();
  ASSERT_TRUE(got_spec.has_value() && want_spec.has_value());
  EXPECT_EQ(*got_spec, *want_spec);
}

TEST(Controller, EveryFieldSurvivesEveryPath) {
  // --initrd is the one field container mode refuses: it is checked on a whole-system VM here.
  StartOptions flags = parse_start(kEveryFlag);
  flags.vm.boot_source.initrd_path =
      parse_start({"start", "--kernel", "k", "--initrd", "/k/initrd"}).vm.boot_source.initrd_path;
  ASSERT_EQ(flags.vm.boot_source.initrd_path, "/k/initrd");
  const vmm::VmResources& want = flags.vm;
  ASSERT_EQ(want.network_interfaces.size(), 1U);
  EXPECT_EQ(want.network_interfaces[0].guest_ip, "169.254.0.2/16");

  // flags + --api-sock: the controller starts from the flags' configuration as it is.
  boost::asio::io_context io;
  VmmController with_api(io, flags, std::chrono::steady_clock::now());
  expect_same_boot(with_api.vm_config(), want, false);

  // --config-file: GET /vm/config's document read back as a config file.
  const nlohmann::json document = api::to_json(want);
  auto from_file = api::parse_vm_config(nlohmann::json::parse(document.dump()));
  ASSERT_TRUE(from_file.has_value()) << from_file.error().message;
  expect_same_boot(*from_file, want, false);

  // API PUTs on a controller started with nothing, one resource at a time.
  VmmController over_api(io, StartOptions{}, std::chrono::steady_clock::now());
  const auto put = [&](std::string target, const nlohmann::json& body) {
    const api::Response response = api::handle(over_api, api::Request{"PUT", std::move(target), body.dump()});
    EXPECT_EQ(response.status, api::kStatusNoContent) << response.body;
  };
  put("/boot-source", document["boot-source"]);
  put("/machine-config", document["machine-config"]);
  for (const auto& drive : document["drives"]) put("/drives/" + drive["drive_id"].get<std::string>(), drive);
  for (const auto& iface : document["network-interfaces"]) {
    put("/network-interfaces/" + iface["iface_id"].get<std::string>(), iface);
  }
  put("/microvm/container", document["container"]);
  put("/microvm/console", document["console"]);
  expect_same_boot(over_api.vm_config(), want, false);
}

TEST(Controller, VerboseDecidesTheDefaultCmdlineWhicheverPathConfiguredTheVm) {
  const StartOptions flags = parse_start({"start", "--rootfs", "/r.img", "--api-sock", "/s", "-v", "--", "true"});
  boost::asio::io_context io;
  VmmController controller(io, flags, std::chrono::steady_clock::now());
  const vmm::MachineEnvironment env = machine_environment(flags);
  EXPECT_TRUE(env.verbose);
  EXPECT_EQ(controller.vm_config().kernel_cmdline(env.verbose).find("loglevel=1"), std::string::npos);
  EXPECT_NE(controller.vm_config().kernel_cmdline(false).find("loglevel=1"), std::string::npos);
}

TEST(Controller, TheRootDriveGoesFirstWhateverTheOrder) {
  vmm::VmResources config;
  config.boot_source = vmm::BootSource{"/k", std::nullopt, std::nullopt};
  ASSERT_TRUE(config.put_drive(vmm::DriveConfig{"data", "/d.img", false, false}));
  ASSERT_TRUE(config.put_drive(vmm::DriveConfig{"root", "/r.img", true, false}));
  const auto drives = config.drives_in_guest_order();
  ASSERT_EQ(drives.size(), 2U);
  EXPECT_EQ(drives[0].path_on_host, "/r.img");
  EXPECT_TRUE(config.kernel_cmdline(false).ends_with("root=/dev/vda rw"));
}

TEST(Controller, ContainerModeKeepsTheRootReadOnlyAndUsesItsCmdline) {
  vmm::VmResources config;
  ASSERT_TRUE(config.put_drive(vmm::DriveConfig{"root", "/r.img", true, false}));
  config.container = vmm::ContainerSpec{{"echo", "hi"}, {"A=1"}, "/srv", std::nullopt, "box"};
  EXPECT_TRUE(config.drives_in_guest_order()[0].is_read_only);
  EXPECT_EQ(config.kernel_cmdline(false),
            "console=ttyS0 loglevel=1 reboot=k panic=1 pci=off 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp "
            "i8042.dumbkbd cryptomgr.notests");
  auto spec = config.container_spec();
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(spec->cwd, "/srv");
  EXPECT_EQ(spec->hostname, "box");
}

TEST(Controller, DefaultsAreFilledInOnlyForContainerMode) {
  const std::string dir = ::testing::TempDir() + "controller_test_defaults/";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "vmlinux") << "k";
  std::ofstream(dir + "rootfs.ext4") << "r";
  const vmm::HostDefaults defaults{dir + "vmlinux", dir + "rootfs.ext4"};
  vmm::VmResources container;
  container.container = vmm::ContainerSpec{{"true"}, {}, std::nullopt, std::nullopt, std::nullopt};
  auto filled = vmm::with_defaults(container, defaults);
  ASSERT_TRUE(filled.has_value()) << filled.error().message;
  EXPECT_EQ(filled->boot_source.kernel_image_path, defaults.kernel);
  ASSERT_NE(filled->root_drive(), nullptr);
  EXPECT_EQ(filled->root_drive()->path_on_host, defaults.rootfs);
  EXPECT_EQ(vmm::with_defaults(*filled, defaults).value(), *filled) << "idempotent";
  vmm::VmResources whole_system;
  EXPECT_EQ(vmm::with_defaults(whole_system, defaults).value(), whole_system);
  EXPECT_ERROR_CONTAINS(vmm::with_defaults(container, vmm::HostDefaults{"/nonexistent/k", defaults.rootfs}),
                        "tools/prepare-defaults");
  std::filesystem::remove_all(dir);
}

TEST(Controller, NoBootSourceIsAnError) {
  boost::asio::io_context io;
  VmmController controller(io, StartOptions{}, std::chrono::steady_clock::now());
  EXPECT_ERROR_CONTAINS(controller.start(), "PUT /boot-source");
}

TEST(Controller, ConfigurationRulesBeforeStart) {
  boost::asio::io_context io;
  VmmController controller(io, StartOptions{}, std::chrono::steady_clock::now());
  EXPECT_EQ(controller.instance_info().state, "Not started");
  EXPECT_ERROR_CONTAINS(controller.pause(), "not started");
  EXPECT_ERROR_CONTAINS(controller.send_ctrl_alt_del(), "not started");
  EXPECT_ERROR_CONTAINS(controller.put_machine_config(vmm::MachineSpec{2, 256, true}), "smt");
  ASSERT_TRUE(controller.put_drive(vmm::DriveConfig{"a", "/a", true, false}));
  EXPECT_ERROR_CONTAINS(controller.put_drive(vmm::DriveConfig{"b", "/b", true, false}), "already the root device");
  ASSERT_TRUE(controller.put_drive(vmm::DriveConfig{"a", "/a2", true, true}));  // replacing the same id is fine
  EXPECT_EQ(controller.vm_config().drives.size(), 1U);
  EXPECT_EQ(controller.vm_config().drives[0].path_on_host, "/a2");
  EXPECT_ERROR_CONTAINS(controller.start(), "PUT /boot-source");
  EXPECT_EQ(controller.metrics()["state"], "Not started");
}

TEST(Controller, SnapshotRulesBeforeStart) {
  boost::asio::io_context io;
  VmmController fresh(io, StartOptions{}, std::chrono::steady_clock::now());
  EXPECT_ERROR_CONTAINS(fresh.create_snapshot({"/tmp/s", "/tmp/m"}), "not started");
  // A fresh process may load; a state file that is not there is the caller's error, and the process
  // stays fresh.
  const auto missing = fresh.load_snapshot({"/nonexistent/state", "/nonexistent/mem", true, {}});
  EXPECT_ERROR_CONTAINS(missing, "cannot open state file /nonexistent/state");
  EXPECT_EQ(missing.error().kind, ErrorKind::kInvalidArgument);
  EXPECT_EQ(fresh.instance_info().state, "Not started");

  VmmController configured(io, StartOptions{}, std::chrono::steady_clock::now());
  ASSERT_TRUE(configured.put_machine_config(vmm::MachineSpec{2, 256, false}));
  const auto refused = configured.load_snapshot({"/tmp/s", "/tmp/m", false, {}});
  EXPECT_ERROR_CONTAINS(refused, "only possible on a fresh microvm");
  EXPECT_EQ(refused.error().kind, ErrorKind::kWrongState);

  // Flags that configure a VM count as configuration too.
  VmmController from_flags(io, parse_start({"start", "--cpus", "2", "--api-sock", "/tmp/x.sock"}),
                           std::chrono::steady_clock::now());
  EXPECT_ERROR_CONTAINS(from_flags.load_snapshot({"/tmp/s", "/tmp/m", false, {}}), "fresh microvm");
}

TEST(CommandLine, ApiSocketNeedsNoKernel) {
  const StartOptions o = parse_start({"start", "--api-sock", "/tmp/x.sock"});
  EXPECT_EQ(o.api_sock, "/tmp/x.sock");
  EXPECT_FALSE(o.vm.bootable());
}

TEST(CommandLine, CtlActions) {
  auto parsed = parse_command_line({"ctl", "--sock", "/s", "pause"});
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  ASSERT_TRUE(parsed->ctl.has_value());
  EXPECT_EQ(parsed->ctl->sock, "/s");
  EXPECT_EQ(parsed->ctl->action, "pause");
  EXPECT_ERROR_CONTAINS(parse_command_line({"ctl", "--sock", "/s", "explode"}), "explode");
  EXPECT_ERROR_CONTAINS(parse_command_line({"ctl", "status"}), "--sock");
}

TEST(CommandLine, Snapshot) {
  auto parsed = parse_command_line({"snapshot", "--sock", "/s", "--out", "/snaps/a"});
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  ASSERT_TRUE(parsed->snapshot.has_value());
  EXPECT_EQ(parsed->snapshot->sock, "/s");
  EXPECT_EQ(parsed->snapshot->out, "/snaps/a");
  EXPECT_FALSE(parsed->snapshot->resume);
  auto resumed = parse_command_line({"snapshot", "--sock", "/s", "--out", "/snaps/a", "--resume"});
  ASSERT_TRUE(resumed.has_value()) << resumed.error().message;
  EXPECT_TRUE(resumed->snapshot->resume);
  EXPECT_ERROR_CONTAINS(parse_command_line({"snapshot", "--out", "/snaps/a"}), "--sock");
  EXPECT_ERROR_CONTAINS(parse_command_line({"snapshot", "--sock", "/s"}), "--out");
}

TEST(CommandLine, RestoreTakesNoConfiguration) {
  const StartOptions o = parse_start({"start", "--restore", "/snaps/a", "--api-sock", "/tmp/x.sock"});
  EXPECT_EQ(o.restore, "/snaps/a");
  EXPECT_EQ(o.api_sock, "/tmp/x.sock");
  EXPECT_FALSE(o.vm.bootable());
  EXPECT_ERROR_CONTAINS(parse_command_line({"start", "--restore", "/snaps/a", "--kernel", "/k"}),
                        "cannot be combined with --kernel");
  EXPECT_ERROR_CONTAINS(parse_command_line({"start", "--restore", "/snaps/a", "--memory", "256M"}), "--memory");
  EXPECT_ERROR_CONTAINS(parse_command_line({"start", "--restore", "/snaps/a", "--", "true"}), "a command (-- CMD)");
  EXPECT_ERROR_CONTAINS(parse_command_line({"start", "--restore", "/snaps/a", "--config-file", "c.json"}),
                        "--config-file");
}

TEST(CommandLine, RootfsBuild) {
  auto parsed = parse_command_line({"rootfs", "build", "img.tar", "-o", "out.ext4", "--size", "512M"});
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  ASSERT_TRUE(parsed->rootfs_build.has_value());
  EXPECT_EQ(parsed->rootfs_build->source, "img.tar");
  EXPECT_EQ(parsed->rootfs_build->output, "out.ext4");
  EXPECT_EQ(parsed->rootfs_build->size, "512M");
  EXPECT_ERROR_CONTAINS(parse_command_line({"rootfs", "build", "img.tar"}), "--output");
  EXPECT_ERROR_CONTAINS(parse_command_line({"rootfs", "build", "-o", "x"}), "source");
}

TEST(CommandLine, MetricsFileAndWriteInitramfs) {
  const StartOptions o =
      parse_start({"start", "--metrics-file", "/tmp/m.json", "--write-initramfs", "/tmp/i.cpio", "--", "/bin/true"});
  EXPECT_EQ(o.metrics_file, "/tmp/m.json");
  EXPECT_EQ(o.write_initramfs, "/tmp/i.cpio");
  // Only container mode has an init to write, and it writes a file instead of serving an API.
  EXPECT_ERROR_CONTAINS(parse_command_line({"start", "--kernel", "k", "--write-initramfs", "/tmp/i.cpio"}),
                        "needs a container command");
  EXPECT_ERROR_CONTAINS(parse_command_line({"start", "--api-sock", "/s", "--write-initramfs", "/tmp/i", "--", "x"}),
                        "--api-sock");
}

TEST(Controller, MetricsJsonCarriesMarkersOnTheMonotonicClock) {
  const auto start = std::chrono::steady_clock::now();
  vmm::MachineMetrics m;
  m.exits[0] = 7;
  m.markers.setup_started = start + std::chrono::milliseconds(1);
  m.markers.kernel_loaded = start + std::chrono::milliseconds(3);
  m.markers.vcpus_started = start + std::chrono::milliseconds(5);
  m.exits_by_address.entries.push_back({1, 0x3f8, 9});
  m.exits_by_address.other = 2;
  m.markers.workload_started = start + std::chrono::milliseconds(40);
  m.workload_exit_code = 3;
  m.drives.push_back({"rootfs", devices::virtio::BlockStats{3, 4096, 0, 1, 0}});
  const nlohmann::json json = metrics_json(m, start);
  EXPECT_EQ(json["drives"][0]["drive_id"], "rootfs");
  EXPECT_EQ(json["drives"][0]["read_bytes"], 4096);
  EXPECT_EQ(json["vcpu_exits"]["io_in"], 7);
  EXPECT_EQ(json["vcpu_exits_by_address"][0]["kind"], "io_out");
  EXPECT_EQ(json["vcpu_exits_by_address"][0]["address"], "0x3f8");
  EXPECT_EQ(json["vcpu_exits_by_address"][0]["count"], 9);
  EXPECT_EQ(json["vcpu_exits_by_address_other"], 2);
  EXPECT_DOUBLE_EQ(json["boot_markers"]["setup_started_ms"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(json["boot_markers"]["kernel_loaded_ms"].get<double>(), 3.0);
  EXPECT_TRUE(json["boot_markers"]["memory_ready_ms"].is_null());
  EXPECT_DOUBLE_EQ(json["boot_markers"]["vcpus_started_ms"].get<double>(), 5.0);
  EXPECT_DOUBLE_EQ(json["boot_markers"]["workload_started_ms"].get<double>(), 40.0);
  EXPECT_TRUE(json["boot_markers"]["init_started_ms"].is_null());
  EXPECT_EQ(json["boot_markers"]["process_start_monotonic_ns"].get<std::int64_t>(),
            std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch()).count());
  EXPECT_EQ(json["workload_exit_code"], 3);

  const std::string path = ::testing::TempDir() + "controller_test_metrics.json";
  ASSERT_TRUE(write_metrics_file(path, json).has_value());
  std::ifstream file(path);
  EXPECT_EQ(nlohmann::json::parse(file), json);
  std::remove(path.c_str());
  EXPECT_ERROR_CONTAINS(write_metrics_file("/nonexistent-dir/m.json", json), "cannot write the metrics file");
}

TEST(Controller, FlushMetricsNeedsAMetricsFile) {
  boost::asio::io_context io;
  StartOptions base;
  VmmController controller(io, base, std::chrono::steady_clock::now());
  EXPECT_ERROR_CONTAINS(controller.flush_metrics(), "--metrics-file");
}

}  // namespace
}  // namespace microvm::cli
