// The API's view of start options and back (tools/cli/controller.h), and the controller's state
// rules before InstanceStart.
#include "tools/cli/controller.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "tests/unit/test_support.h"

namespace microvm::cli {
namespace {

StartOptions parse_start(std::vector<std::string> args) {
  auto parsed = parse_command_line(args);
  EXPECT_TRUE(parsed.has_value() && parsed->start) << (parsed ? "" : parsed.error().message);
  return parsed && parsed->start ? *parsed->start : StartOptions{};
}

TEST(Controller, FlagsRoundTripThroughTheApiShape) {
  const StartOptions flags = parse_start({"start", "--kernel", "/k", "--cpus", "2", "--memory", "256M", "--rootfs",
                                          "/r.img", "--drive", "/d.img,ro", "--net", "tap=t0,mac=02:00:00:00:00:05"});
  const api::VmConfig config = to_vm_config(flags);
  ASSERT_TRUE(config.boot_source.has_value());
  EXPECT_EQ(config.boot_source->kernel_image_path, "/k");
  EXPECT_EQ(config.machine_config.vcpu_count, 2U);
  EXPECT_EQ(config.machine_config.mem_size_mib, 256U);
  ASSERT_EQ(config.drives.size(), 2U);
  EXPECT_TRUE(config.drives[0].is_root_device);
  EXPECT_TRUE(config.drives[1].is_read_only);
  ASSERT_EQ(config.network_interfaces.size(), 1U);
  EXPECT_EQ(config.network_interfaces[0].guest_mac, "02:00:00:00:00:05");

  auto back = to_start_options(config, flags);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->machine.kernel_path, "/k");
  EXPECT_EQ(back->machine.vcpus, 2U);
  EXPECT_EQ(back->machine.memory_bytes, 256ULL << 20);
  ASSERT_EQ(back->machine.drives.size(), 2U);
  EXPECT_EQ(back->machine.drives[0].path, "/r.img");
  EXPECT_EQ(back->machine.drives[1].path, "/d.img");
  EXPECT_EQ(back->machine.cmdline, flags.machine.cmdline) << "root= is not added twice";
  ASSERT_EQ(back->machine.nets.size(), 1U);
  EXPECT_EQ(back->machine.nets[0].tap, "t0");
}

TEST(Controller, TheRootDriveGoesFirstWhateverTheOrder) {
  api::VmConfig config;
  config.boot_source = api::BootSource{"/k", std::nullopt, std::nullopt};
  config.drives = {api::Drive{"data", "/d.img", false, false}, api::Drive{"root", "/r.img", true, false}};
  auto options = to_start_options(config, StartOptions{});
  ASSERT_TRUE(options.has_value()) << options.error().message;
  ASSERT_EQ(options->machine.drives.size(), 2U);
  EXPECT_EQ(options->machine.drives[0].path, "/r.img");
  EXPECT_TRUE(options->machine.cmdline.ends_with("root=/dev/vda rw"));
}

TEST(Controller, ContainerModeKeepsTheRootReadOnlyAndUsesItsCmdline) {
  api::VmConfig config;
  config.drives = {api::Drive{"root", "/r.img", true, false}};
  config.container = api::ContainerSpec{{"echo", "hi"}, {"A=1"}, "/srv", std::nullopt, "box"};
  auto options = to_start_options(config, StartOptions{});
  ASSERT_TRUE(options.has_value()) << options.error().message;
  EXPECT_FALSE(options->kernel_given) << "the default kernel";
  EXPECT_TRUE(options->machine.drives[0].read_only);
  EXPECT_EQ(options->machine.cmdline, kDefaultContainerCmdline);
  EXPECT_EQ(options->container.command, (std::vector<std::string>{"echo", "hi"}));
  EXPECT_EQ(options->container.workdir, "/srv");
  EXPECT_EQ(options->container.hostname, "box");
}

TEST(Controller, NoBootSourceIsAnError) {
  EXPECT_ERROR_CONTAINS(to_start_options(api::VmConfig{}, StartOptions{}), "PUT /boot-source");
}

TEST(Controller, ConfigurationRulesBeforeStart) {
  boost::asio::io_context io;
  VmmController controller(io, StartOptions{}, api::VmConfig{}, std::chrono::steady_clock::now());
  EXPECT_EQ(controller.instance_info().state, "Not started");
  EXPECT_ERROR_CONTAINS(controller.pause(), "not started");
  EXPECT_ERROR_CONTAINS(controller.send_ctrl_alt_del(), "not started");
  EXPECT_ERROR_CONTAINS(controller.put_machine_config(api::MachineConfig{2, 256, true}), "smt");
  ASSERT_TRUE(controller.put_drive(api::Drive{"a", "/a", true, false}));
  EXPECT_ERROR_CONTAINS(controller.put_drive(api::Drive{"b", "/b", true, false}), "already the root device");
  ASSERT_TRUE(controller.put_drive(api::Drive{"a", "/a2", true, true}));  // replacing the same id is fine
  EXPECT_EQ(controller.vm_config().drives.size(), 1U);
  EXPECT_EQ(controller.vm_config().drives[0].path_on_host, "/a2");
  EXPECT_ERROR_CONTAINS(controller.start(), "PUT /boot-source");
  EXPECT_EQ(controller.metrics()["state"], "Not started");
}

TEST(CommandLine, ApiSocketNeedsNoKernel) {
  const StartOptions o = parse_start({"start", "--api-sock", "/tmp/x.sock"});
  EXPECT_EQ(o.api_sock, "/tmp/x.sock");
  EXPECT_FALSE(o.kernel_given);
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
  m.markers.vcpus_started = start + std::chrono::milliseconds(5);
  m.markers.workload_started = start + std::chrono::milliseconds(40);
  m.workload_exit_code = 3;
  vmm::MachineConfig config;
  const nlohmann::json json = metrics_json(m, config, start);
  EXPECT_EQ(json["vcpu_exits"]["io_in"], 7);
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
  VmmController controller(io, base, api::VmConfig{}, std::chrono::steady_clock::now());
  EXPECT_ERROR_CONTAINS(controller.flush_metrics(), "--metrics-file");
}

}  // namespace
}  // namespace microvm::cli
