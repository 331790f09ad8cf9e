// CLI parsing (tools/cli/options.h): memory sizes with suffixes, `start` options and defaults,
// help output and the errors a user sees.
#include "tools/cli/options.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "guest/protocol/spec.h"

#include <string>
#include <vector>

#include "tests/unit/test_support.h"

namespace microvm::cli {
namespace {

using test::kGiB;
using test::kMiB;

struct SizeCase {
  std::string text;
  std::uint64_t bytes;
};

class MemorySize : public ::testing::TestWithParam<SizeCase> {};

TEST_P(MemorySize, Parses) {
  auto bytes = parse_memory_size(GetParam().text);
  ASSERT_TRUE(bytes.has_value()) << bytes.error().message;
  EXPECT_EQ(*bytes, GetParam().bytes);
}

INSTANTIATE_TEST_SUITE_P(Suffixes, MemorySize,
                         ::testing::Values(SizeCase{"128M", 128 * kMiB}, SizeCase{"1G", kGiB},
                                           SizeCase{"512MiB", 512 * kMiB}, SizeCase{"65536K", 64 * kMiB},
                                           SizeCase{"256", 256 * kMiB}, SizeCase{"2g", 2 * kGiB},
                                           SizeCase{"3GB", 3 * kGiB}, SizeCase{"64mb", 64 * kMiB},
                                           SizeCase{"4096KiB", 4 * kMiB}, SizeCase{"17179869183G", 0xffffffffc0000000},
                                           SizeCase{"1T", 1ULL << 40}, SizeCase{"2TiB", 2ULL << 40},
                                           SizeCase{"16777215tb", 0xffffff0000000000}));

class BadMemorySize : public ::testing::TestWithParam<std::string> {};

TEST_P(BadMemorySize, IsRejectedNamingTheInput) {
  auto bytes = parse_memory_size(GetParam());
  ASSERT_FALSE(bytes.has_value()) << GetParam() << " parsed as " << *bytes;
  EXPECT_NE(bytes.error().message.find("'" + GetParam() + "'"), std::string::npos) << bytes.error().message;
}

INSTANTIATE_TEST_SUITE_P(Inputs, BadMemorySize,
                         ::testing::Values("", "12Q", "-1", "M", " 1G", "1 G", "1.5G", "0x10M", "12MM",
                                           "99999999999999999999",  // does not fit 64 bits
                                           "17179869184G",          // 2^34 GiB = 2^64 bytes
                                           "18014398509481984M",    // 2^54 MiB = 2^74 bytes
                                           "16777216T",             // 2^24 TiB = 2^64 bytes
                                           "1P"));

TEST(MemorySizeMessages, SuffixErrorNamesTheSuffix) {
  EXPECT_ERROR_CONTAINS(parse_memory_size("12Q"), "unknown suffix 'Q'");
  EXPECT_ERROR_CONTAINS(parse_memory_size("17179869184G"), "too large");
}

Result<ParsedCommand> parse(std::vector<std::string> args) {
  return parse_command_line(args);
}

StartOptions parse_start(std::vector<std::string> args) {
  auto parsed = parse(std::move(args));
  EXPECT_TRUE(parsed.has_value()) << parsed.error().message;
  if (!parsed || !parsed->start) {
    ADD_FAILURE() << "no start options";
    return {};
  }
  EXPECT_FALSE(parsed->help.has_value());
  return *parsed->start;
}

std::string help_text(std::vector<std::string> args) {
  auto parsed = parse(std::move(args));
  EXPECT_TRUE(parsed.has_value()) << parsed.error().message;
  if (!parsed || !parsed->help) {
    ADD_FAILURE() << "no help";
    return {};
  }
  EXPECT_FALSE(parsed->start.has_value());
  return parsed->help->text;
}

// The command line the VM would boot with (what the builder gets from the one configuration).
std::string cmdline_of(const StartOptions& o) {
  return o.vm.kernel_cmdline(o.verbose);
}

constexpr std::string_view kDefaultCmdline =
    "console=ttyS0 quiet reboot=k panic=1 pci=off 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd "
    "cryptomgr.notests";

TEST(CommandLine, Defaults) {
  const StartOptions o = parse_start({"start", "--kernel", "vmlinux"});
  EXPECT_EQ(o.vm.boot_source.kernel_image_path, "vmlinux");
  EXPECT_EQ(o.vm.machine_config.vcpu_count, 1U);
  EXPECT_EQ(o.vm.machine_config.mem_size_mib, 128U);
  EXPECT_FALSE(o.vm.boot_source.boot_args.has_value()) << "the default is decided in one place";
  EXPECT_EQ(cmdline_of(o), kDefaultCmdline);
  EXPECT_FALSE(o.vm.boot_source.initrd_path.has_value());
  EXPECT_FALSE(o.verbose);
  EXPECT_FALSE(o.vm.container_mode());
}

TEST(CommandLine, ContainerRunsAreWarmUnlessColdOrDrivenOtherwise) {
  EXPECT_TRUE(parse_start({"start", "--", "true"}).warm);
  EXPECT_FALSE(parse_start({"start", "--cold", "--", "true"}).warm);
  EXPECT_FALSE(parse_start({"start", "--kernel", "vmlinux"}).warm);  // not container mode
  // The API's container mode, a config file and --write-initramfs boot as before.
  EXPECT_FALSE(parse_start({"start", "--api-sock", "/tmp/s", "--", "true"}).warm);
  EXPECT_FALSE(parse_start({"start", "--config-file", "c.json", "--", "true"}).warm);
  EXPECT_FALSE(parse_start({"start", "--write-initramfs", "i.cpio", "--", "true"}).warm);
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "vmlinux", "--cold"}), "--cold needs a container command");
}

TEST(CommandLine, AllOptions) {
  const StartOptions o = parse_start({"start", "--kernel", "/boot/bzImage", "--initrd", "/tmp/initrd.cpio.gz",
                                      "--cmdline", "console=ttyS0 quiet", "--cpus", "4", "--memory", "1G", "-v"});
  EXPECT_EQ(o.vm.boot_source.kernel_image_path, "/boot/bzImage");
  ASSERT_TRUE(o.vm.boot_source.initrd_path.has_value());
  EXPECT_EQ(*o.vm.boot_source.initrd_path, "/tmp/initrd.cpio.gz");
  EXPECT_EQ(cmdline_of(o), "console=ttyS0 quiet");
  EXPECT_EQ(o.vm.machine_config.vcpu_count, 4U);
  EXPECT_EQ(o.vm.machine_config.mem_size_mib, kGiB / kMiB);
  EXPECT_TRUE(o.verbose);
}

TEST(CommandLine, EqualsSyntaxAndLongVerbose) {
  const StartOptions o = parse_start({"start", "--kernel=k", "--memory=256", "--cpus=2", "--verbose"});
  EXPECT_EQ(o.vm.boot_source.kernel_image_path, "k");
  EXPECT_EQ(o.vm.machine_config.mem_size_mib, 256U);
  EXPECT_EQ(o.vm.machine_config.vcpu_count, 2U);
  EXPECT_TRUE(o.verbose);
}

TEST(CommandLine, CpusAndMemoryOutOfRangeNameTheFlag) {
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--cpus", "0"}), "--cpus 0 is out of range");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--cpus", "33"}), "--cpus 33 is out of range");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--memory", "16M"}), "--memory 16 MiB is too small");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--memory", "65537K"}), "whole number of MiB");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--memory", "100T"}), "more than this host's");
  EXPECT_EQ(parse_start({"start", "--kernel", "k", "--memory", "65536K"}).vm.machine_config.mem_size_mib, 64U);
}

TEST(CommandLine, EmptyCmdlineIsAllowed) {
  EXPECT_EQ(cmdline_of(parse_start({"start", "--kernel", "k", "--cmdline", ""})), "");
}

TEST(CommandLine, RootfsIsTheFirstDriveAndAddsRoot) {
  const StartOptions o =
      parse_start({"start", "--kernel", "k", "--drive", "/data.img,ro", "--rootfs", "/root.ext4", "--drive", "b.img"});
  const auto drives = o.vm.drives_in_guest_order();
  ASSERT_EQ(drives.size(), 3U);
  EXPECT_EQ(drives[0].path_on_host, "/root.ext4");
  EXPECT_TRUE(drives[0].is_root_device);
  EXPECT_FALSE(drives[0].is_read_only);
  EXPECT_EQ(drives[0].drive_id, "rootfs");
  EXPECT_EQ(drives[1].path_on_host, "/data.img");
  EXPECT_TRUE(drives[1].is_read_only);
  EXPECT_EQ(drives[2].path_on_host, "b.img");
  EXPECT_FALSE(drives[2].is_read_only);
  EXPECT_NE(drives[1].drive_id, drives[2].drive_id);
  EXPECT_EQ(cmdline_of(o), std::string(kDefaultCmdline) + " root=/dev/vda rw");
}

TEST(CommandLine, ReadOnlyRootfsMountsReadOnly) {
  const StartOptions o = parse_start({"start", "--kernel", "k", "--rootfs", "r.img,ro"});
  ASSERT_EQ(o.vm.drives.size(), 1U);
  EXPECT_TRUE(o.vm.drives[0].is_read_only);
  EXPECT_TRUE(cmdline_of(o).ends_with(" root=/dev/vda ro"));
}

TEST(CommandLine, RootfsKeepsAnExplicitRoot) {
  const StartOptions o = parse_start({"start", "--kernel", "k", "--rootfs", "r.img", "--cmdline", "root=/dev/vda1"});
  EXPECT_EQ(cmdline_of(o), "root=/dev/vda1");
}

TEST(CommandLine, BadDriveOptionsAreNamed) {
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--drive", "a.img,rx"}), "'rx'");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--drive", ",ro"}), "PATH");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--rootfs", "r,bogus"}), "--rootfs");
}

TEST(CommandLine, NetworkInterfaces) {
  const StartOptions o =
      parse_start({"start", "--kernel", "k", "--net", "tap=tap0", "--net", "tap=mvm1,mac=02:00:00:00:00:2a"});
  ASSERT_EQ(o.vm.network_interfaces.size(), 2U);
  EXPECT_EQ(o.vm.network_interfaces[0].iface_id, "eth0");
  EXPECT_EQ(o.vm.network_interfaces[0].host_dev_name, "tap0");
  EXPECT_FALSE(o.vm.network_interfaces[0].guest_mac.has_value());
  EXPECT_EQ(o.vm.network_interfaces[1].iface_id, "eth1");
  EXPECT_EQ(o.vm.network_interfaces[1].host_dev_name, "mvm1");
  EXPECT_EQ(o.vm.network_interfaces[1].guest_mac, "02:00:00:00:00:2a");
}

TEST(CommandLine, BadNetworkOptionsAreNamed) {
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--net", "mac=02:00:00:00:00:01"}), "no TAP");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--net", "tap=t,speed=10"}), "'speed=10'");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--net", "tap=t,mac=zz"}), "--net tap=t,mac=zz");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--net", "tap=t,ip=169.254.0.2"}), "prefix length");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--net", "tap=t,ip=1.2.3.4/8,gw=x"}), "gw=");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--net", "tap=t,dns=300.0.0.1"}), "dns=");
}

TEST(CommandLine, VirtioConsoleChangesTheDefaultConsole) {
  const StartOptions o = parse_start({"start", "--kernel", "k", "--console", "virtio"});
  EXPECT_EQ(o.vm.console, vmm::ConsoleKind::kVirtio);
  EXPECT_EQ(cmdline_of(o),
            "console=hvc0 quiet reboot=k panic=1 pci=off 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp "
            "i8042.dumbkbd cryptomgr.notests");
  EXPECT_EQ(parse_start({"start", "--kernel", "k"}).vm.console, vmm::ConsoleKind::kSerial);
  EXPECT_EQ(cmdline_of(parse_start({"start", "--kernel", "k", "--console", "virtio", "--cmdline", "x"})), "x");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--console", "vga"}), "--console");
}

TEST(CommandLine, ContainerCommandAfterDashes) {
  const StartOptions o = parse_start({"start", "--rootfs", "img.ext4", "-e", "A=1", "--env", "B=x=y", "-w", "/srv",
                                      "-u", "nobody:nogroup", "--hostname", "box", "--", "sh", "-c", "echo $A"});
  EXPECT_TRUE(o.vm.boot_source.kernel_image_path.empty()) << "the default kernel";
  ASSERT_TRUE(o.vm.container.has_value());
  EXPECT_EQ(o.vm.container->args, (std::vector<std::string>{"sh", "-c", "echo $A"}));
  EXPECT_EQ(o.vm.container->env, (std::vector<std::string>{"A=1", "B=x=y"}));
  EXPECT_EQ(o.vm.container->cwd, "/srv");
  EXPECT_EQ(o.vm.container->user, "nobody:nogroup");
  EXPECT_EQ(o.vm.container->hostname, "box");
  const auto drives = o.vm.drives_in_guest_order();
  ASSERT_EQ(drives.size(), 1U);
  EXPECT_TRUE(drives[0].is_read_only) << "container mode never writes the image";
  EXPECT_EQ(cmdline_of(o),
            "console=ttyS0 loglevel=1 reboot=k panic=1 pci=off 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp "
            "i8042.dumbkbd cryptomgr.notests");
  EXPECT_EQ(cmdline_of(o).find("root="), std::string::npos) << "the init mounts the root drive itself";
}

TEST(CommandLine, ContainerOptionsAreChecked) {
  EXPECT_ERROR_CONTAINS(parse({"start", "--env", "NOVALUE", "--", "true"}), "--env 'NOVALUE'");
  EXPECT_ERROR_CONTAINS(parse({"start", "--env", "=x", "--", "true"}), "--env '=x'");
  EXPECT_ERROR_CONTAINS(parse({"start", "-w", "relative", "--", "true"}), "absolute");
  EXPECT_ERROR_CONTAINS(parse({"start", "--initrd", "i", "--", "true"}), "--initrd");
  EXPECT_ERROR_CONTAINS(parse({"start", "--", ""}), "empty");
  EXPECT_ERROR_CONTAINS(parse({"start", "--rootfs", "r"}), "--kernel is required");
}

TEST(CommandLine, VerboseContainerModeKeepsKernelMessages) {
  const StartOptions o = parse_start({"start", "-v", "--", "true"});
  EXPECT_EQ(cmdline_of(o),
            "console=ttyS0 reboot=k panic=1 pci=off 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd "
            "cryptomgr.notests");
  const StartOptions virtio = parse_start({"start", "--console", "virtio", "--", "true"});
  EXPECT_EQ(cmdline_of(virtio),
            "console=hvc0 loglevel=1 reboot=k panic=1 pci=off 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp "
            "i8042.dumbkbd cryptomgr.notests")
      << "quiet on either console";
}

TEST(CommandLine, WholeSystemIsQuietUnlessVerbose) {
  EXPECT_TRUE(cmdline_of(parse_start({"start", "--kernel", "k"})).starts_with("console=ttyS0 quiet "));
  const std::string verbose = cmdline_of(parse_start({"start", "--kernel", "k", "--verbose"}));
  EXPECT_EQ(verbose,
            "console=ttyS0 reboot=k panic=1 pci=off 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd "
            "cryptomgr.notests");
  EXPECT_EQ(verbose.find("quiet"), std::string::npos);
  EXPECT_EQ(verbose.find("loglevel"), std::string::npos);
}

TEST(ContainerSpec, CarriesTheOptions) {
  StartOptions o = parse_start({"start", "-e", "A=1", "-w", "/srv", "-u", "1000:1000", "--hostname", "box", "--net",
                                "tap=t0,ip=169.254.0.2/16,gw=169.254.0.1,dns=169.254.0.1", "--", "ls", "-l"});
  const auto built = o.vm.container_spec();
  ASSERT_TRUE(built.has_value()) << built.error().message;
  const auto spec = nlohmann::json::parse(guest::spec_to_json(*built));
  EXPECT_EQ(spec["args"], nlohmann::json::array({"ls", "-l"}));
  EXPECT_EQ(spec["env"], nlohmann::json::array({std::string(vmm::kDefaultPath), "HOSTNAME=box", "A=1"}));
  EXPECT_EQ(spec["cwd"], "/srv");
  EXPECT_EQ(spec["user"], "1000:1000");
  EXPECT_EQ(spec["hostname"], "box");
  EXPECT_EQ(spec["root"]["device"], "/dev/vda");
  EXPECT_EQ(spec["stop_grace_ms"], vmm::kStopGraceMs);
  ASSERT_EQ(spec["network"].size(), 1U);
  EXPECT_EQ(spec["network"][0]["interface"], "eth0");
  EXPECT_EQ(spec["network"][0]["address"], "169.254.0.2/16");
  EXPECT_EQ(spec["network"][0]["gateway"], "169.254.0.1");
  EXPECT_EQ(spec["network"][0]["dns"], nlohmann::json::array({"169.254.0.1"}));
}

TEST(ContainerSpec, AUserPathReplacesTheDefault) {
  StartOptions o = parse_start({"start", "-e", "PATH=/opt/bin", "--", "x"});
  const auto built = o.vm.container_spec();
  ASSERT_TRUE(built.has_value()) << built.error().message;
  const auto spec = nlohmann::json::parse(guest::spec_to_json(*built));
  EXPECT_EQ(spec["env"], nlohmann::json::array({"HOSTNAME=microvm", "PATH=/opt/bin"}));
  EXPECT_EQ(spec["cwd"], "/");
  EXPECT_TRUE(spec["network"].empty());
}

TEST(CommandLine, MissingKernelIsAnError) {
  EXPECT_ERROR_CONTAINS(parse({"start"}), "--kernel is required unless a container command");
}

TEST(CommandLine, UnknownCommandIsNamed) {
  EXPECT_ERROR_CONTAINS(parse({"bogus", "--kernel", "k"}), "unknown command 'bogus'");
}

TEST(CommandLine, NonNumericCpusIsAnError) {
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--cpus", "four"}), "--cpus");
  EXPECT_FALSE(parse({"start", "--kernel", "k", "--cpus", "-1"}).has_value());
}

TEST(CommandLine, BadMemoryIsAnError) {
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--memory", "lots"}), "'lots'");
}

TEST(CommandLine, UnknownOptionIsAnError) {
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--bogus"}), "--bogus");
}

TEST(CommandLine, SubcommandIsRequired) {
  EXPECT_ERROR_CONTAINS(parse({}), "subcommand");
  EXPECT_FALSE(parse({"stop"}).has_value());
  EXPECT_FALSE(parse({"--kernel", "k"}).has_value());
}

TEST(CommandLine, StartHelpDescribesItsOptions) {
  const std::string help = help_text({"start", "--help"});
  EXPECT_NE(help.find("--kernel"), std::string::npos) << help;
  EXPECT_NE(help.find("--memory"), std::string::npos) << help;
  EXPECT_NE(help.find("--cpus"), std::string::npos) << help;
  // --help wins over a missing --kernel.
  EXPECT_EQ(help_text({"start", "-h"}), help);
}

TEST(CommandLine, TopLevelHelpListsStart) {
  const std::string help = help_text({"--help"});
  EXPECT_NE(help.find("start"), std::string::npos) << help;
  const std::string all = help_text({"--help-all"});
  EXPECT_NE(all.find("--kernel"), std::string::npos) << all;
}

}  // namespace
}  // namespace microvm::cli
