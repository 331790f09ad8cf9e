// CLI parsing (tools/cli/options.h): memory sizes with suffixes, `start` options and defaults,
// help output and the errors a user sees.
#include "tools/cli/options.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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

TEST(CommandLine, Defaults) {
  const StartOptions o = parse_start({"start", "--kernel", "vmlinux"});
  EXPECT_EQ(o.machine.kernel_path, "vmlinux");
  EXPECT_EQ(o.machine.vcpus, 1U);
  EXPECT_EQ(o.machine.memory_bytes, 128 * kMiB);
  EXPECT_EQ(o.machine.cmdline, "console=ttyS0 reboot=k panic=1 pci=off");
  EXPECT_EQ(o.machine.cmdline, kDefaultCmdline);
  EXPECT_FALSE(o.machine.initrd_path.has_value());
  EXPECT_FALSE(o.verbose);
}

TEST(CommandLine, AllOptions) {
  const StartOptions o = parse_start({"start", "--kernel", "/boot/bzImage", "--initrd", "/tmp/initrd.cpio.gz",
                                      "--cmdline", "console=ttyS0 quiet", "--cpus", "4", "--memory", "1G", "-v"});
  EXPECT_EQ(o.machine.kernel_path, "/boot/bzImage");
  ASSERT_TRUE(o.machine.initrd_path.has_value());
  EXPECT_EQ(*o.machine.initrd_path, "/tmp/initrd.cpio.gz");
  EXPECT_EQ(o.machine.cmdline, "console=ttyS0 quiet");
  EXPECT_EQ(o.machine.vcpus, 4U);
  EXPECT_EQ(o.machine.memory_bytes, kGiB);
  EXPECT_TRUE(o.verbose);
}

TEST(CommandLine, EqualsSyntaxAndLongVerbose) {
  const StartOptions o = parse_start({"start", "--kernel=k", "--memory=256", "--cpus=2", "--verbose"});
  EXPECT_EQ(o.machine.kernel_path, "k");
  EXPECT_EQ(o.machine.memory_bytes, 256 * kMiB);
  EXPECT_EQ(o.machine.vcpus, 2U);
  EXPECT_TRUE(o.verbose);
}

TEST(CommandLine, EmptyCmdlineIsAllowed) {
  EXPECT_EQ(parse_start({"start", "--kernel", "k", "--cmdline", ""}).machine.cmdline, "");
}

TEST(CommandLine, RootfsIsTheFirstDriveAndAddsRoot) {
  const StartOptions o =
      parse_start({"start", "--kernel", "k", "--drive", "/data.img,ro", "--rootfs", "/root.ext4", "--drive", "b.img"});
  ASSERT_EQ(o.machine.drives.size(), 3U);
  EXPECT_EQ(o.machine.drives[0].path, "/root.ext4");
  EXPECT_FALSE(o.machine.drives[0].read_only);
  EXPECT_EQ(o.machine.drives[0].id, "rootfs");
  EXPECT_EQ(o.machine.drives[1].path, "/data.img");
  EXPECT_TRUE(o.machine.drives[1].read_only);
  EXPECT_EQ(o.machine.drives[2].path, "b.img");
  EXPECT_FALSE(o.machine.drives[2].read_only);
  EXPECT_NE(o.machine.drives[1].id, o.machine.drives[2].id);
  EXPECT_EQ(o.machine.cmdline, std::string(kDefaultCmdline) + " root=/dev/vda rw");
}

TEST(CommandLine, ReadOnlyRootfsMountsReadOnly) {
  const StartOptions o = parse_start({"start", "--kernel", "k", "--rootfs", "r.img,ro"});
  ASSERT_EQ(o.machine.drives.size(), 1U);
  EXPECT_TRUE(o.machine.drives[0].read_only);
  EXPECT_TRUE(o.machine.cmdline.ends_with(" root=/dev/vda ro"));
}

TEST(CommandLine, RootfsKeepsAnExplicitRoot) {
  const StartOptions o = parse_start({"start", "--kernel", "k", "--rootfs", "r.img", "--cmdline", "root=/dev/vda1"});
  EXPECT_EQ(o.machine.cmdline, "root=/dev/vda1");
}

TEST(CommandLine, BadDriveOptionsAreNamed) {
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--drive", "a.img,rx"}), "'rx'");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--drive", ",ro"}), "PATH");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--rootfs", "r,bogus"}), "--rootfs");
}

TEST(CommandLine, NetworkInterfaces) {
  const StartOptions o =
      parse_start({"start", "--kernel", "k", "--net", "tap=tap0", "--net", "tap=mvm1,mac=02:00:00:00:00:2a"});
  ASSERT_EQ(o.machine.nets.size(), 2U);
  EXPECT_EQ(o.machine.nets[0].tap, "tap0");
  EXPECT_FALSE(o.machine.nets[0].mac.has_value());
  EXPECT_EQ(o.machine.nets[1].tap, "mvm1");
  ASSERT_TRUE(o.machine.nets[1].mac.has_value());
  EXPECT_EQ((*o.machine.nets[1].mac)[5], 0x2a);
}

TEST(CommandLine, BadNetworkOptionsAreNamed) {
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--net", "mac=02:00:00:00:00:01"}), "no TAP");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--net", "tap=t,speed=10"}), "'speed=10'");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--net", "tap=t,mac=zz"}), "--net tap=t,mac=zz");
}

TEST(CommandLine, VirtioConsoleChangesTheDefaultConsole) {
  const StartOptions o = parse_start({"start", "--kernel", "k", "--console", "virtio"});
  EXPECT_EQ(o.machine.console, vmm::ConsoleKind::kVirtio);
  EXPECT_EQ(o.machine.cmdline, kDefaultVirtioConsoleCmdline);
  EXPECT_EQ(parse_start({"start", "--kernel", "k"}).machine.console, vmm::ConsoleKind::kSerial);
  EXPECT_EQ(parse_start({"start", "--kernel", "k", "--console", "virtio", "--cmdline", "x"}).machine.cmdline, "x");
  EXPECT_ERROR_CONTAINS(parse({"start", "--kernel", "k", "--console", "vga"}), "--console");
}

TEST(CommandLine, ContainerCommandAfterDashes) {
  const StartOptions o = parse_start({"start", "--rootfs", "img.ext4", "-e", "A=1", "--env", "B=x=y", "-w", "/srv",
                                      "-u", "nobody:nogroup", "--hostname", "box", "--", "sh", "-c", "echo $A"});
  EXPECT_FALSE(o.kernel_given);
  EXPECT_EQ(o.container.command, (std::vector<std::string>{"sh", "-c", "echo $A"}));
  EXPECT_EQ(o.container.env, (std::vector<std::string>{"A=1", "B=x=y"}));
  EXPECT_EQ(o.container.workdir, "/srv");
  EXPECT_EQ(o.container.user, "nobody:nogroup");
  EXPECT_EQ(o.container.hostname, "box");
  ASSERT_EQ(o.machine.drives.size(), 1U);
  EXPECT_TRUE(o.machine.drives[0].read_only) << "container mode never writes the image";
  EXPECT_EQ(o.machine.cmdline, kDefaultContainerCmdline);
  EXPECT_EQ(o.machine.cmdline.find("root="), std::string::npos) << "the init mounts the root drive itself";
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
  EXPECT_EQ(o.machine.cmdline.find("quiet"), std::string::npos);
}

TEST(ContainerSpec, CarriesTheOptions) {
  StartOptions o = parse_start({"start", "-e", "A=1", "-w", "/srv", "-u", "1000:1000", "--hostname", "box", "--net",
                                "tap=t0,ip=169.254.0.2/16,gw=169.254.0.1,dns=169.254.0.1", "--", "ls", "-l"});
  const auto spec = nlohmann::json::parse(container_spec_json(o, 2500));
  EXPECT_EQ(spec["args"], nlohmann::json::array({"ls", "-l"}));
  EXPECT_EQ(spec["env"], nlohmann::json::array({std::string(kDefaultPath), "HOSTNAME=box", "A=1"}));
  EXPECT_EQ(spec["cwd"], "/srv");
  EXPECT_EQ(spec["user"], "1000:1000");
  EXPECT_EQ(spec["hostname"], "box");
  EXPECT_EQ(spec["root"]["device"], "/dev/vda");
  EXPECT_EQ(spec["stop_grace_ms"], 2500);
  ASSERT_EQ(spec["network"].size(), 1U);
  EXPECT_EQ(spec["network"][0]["interface"], "eth0");
  EXPECT_EQ(spec["network"][0]["address"], "169.254.0.2/16");
  EXPECT_EQ(spec["network"][0]["gateway"], "169.254.0.1");
  EXPECT_EQ(spec["network"][0]["dns"], nlohmann::json::array({"169.254.0.1"}));
}

TEST(ContainerSpec, AUserPathReplacesTheDefault) {
  StartOptions o = parse_start({"start", "-e", "PATH=/opt/bin", "--", "x"});
  const auto spec = nlohmann::json::parse(container_spec_json(o, 3000));
  EXPECT_EQ(spec["env"], nlohmann::json::array({"HOSTNAME=microvm", "PATH=/opt/bin"}));
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
