// OCI bundles (runtime/oci/bundle.h): config.json into VmResources, field by field, and the one
// line for every malformed, hostile or unsupported config.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/oci/bundle.h"

namespace microvm::oci {
namespace {

using nlohmann::json;

const std::filesystem::path kDir = "/bundles/b1";

// The smallest config runtime-spec allows microvm to run.
json minimal() {
  return json::parse(R"({"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs"}})");
}

json fixture(const char* name) {
  std::ifstream file(std::filesystem::path(MICROVM_OCI_TEST_DATA) / name);
  return json::parse(file);
}

Result<Bundle> parse(const json& config) {
  return parse_bundle_config(config.dump(), kDir);
}

// The error line for `config`, or "<parsed>".
std::string error_of(const json& config) {
  const auto bundle = parse(config);
  return bundle ? std::string("<parsed>") : bundle.error().message;
}

std::string error_of_text(std::string_view text) {
  const auto bundle = parse_bundle_config(text, kDir);
  return bundle ? std::string("<parsed>") : bundle.error().message;
}

// minimal() with `pointer` (a JSON pointer) set to `value`.
json with(const std::string& pointer, json value) {
  json config = minimal();
  config[json::json_pointer(pointer)] = std::move(value);
  return config;
}

json without(const std::string& pointer) {
  json config = minimal();
  const json::json_pointer where(pointer);
  config[where.parent_pointer()].erase(where.back());
  return config;
}

TEST(OciBundle, MinimalConfigIsAContainer) {
  const auto bundle = parse(minimal());
  ASSERT_TRUE(bundle) << bundle.error().message;
  EXPECT_EQ(bundle->dir, kDir);
  EXPECT_EQ(bundle->rootfs, kDir / "rootfs");
  ASSERT_TRUE(bundle->resources.container_mode());
  const vmm::ContainerSpec& spec = *bundle->resources.container;
  EXPECT_EQ(spec.args, (std::vector<std::string>{"sh"}));
  EXPECT_EQ(spec.cwd, "/");
  EXPECT_TRUE(spec.env.empty());
  EXPECT_FALSE(spec.user);
  EXPECT_FALSE(spec.hostname);
  EXPECT_FALSE(spec.read_only_root);
  EXPECT_EQ(bundle->resources.machine_config, vmm::MachineSpec{});
  EXPECT_TRUE(bundle->resources.drives.empty());  // the rootfs image is made at create
  EXPECT_TRUE(bundle->resources.boot_source.kernel_image_path.empty());
  EXPECT_TRUE(bundle->warnings.empty());
}

TEST(OciBundle, ProcessFields) {
  json config = minimal();
  config["process"] = json::parse(R"({
    "args": ["/bin/app", "--flag", "two words"], "cwd": "/srv/app",
    "env": ["PATH=/bin", "EMPTY=", "K=V=W"],
    "user": {"uid": 1000, "gid": 100, "additionalGids": [10, 20], "umask": 18},
    "terminal": false, "oomScoreAdj": -500,
    "capabilities": {"bounding": ["CAP_KILL"]}, "noNewPrivileges": true, "apparmorProfile": "x"})");
  config["hostname"] = "web";
  config["root"]["readonly"] = true;
  const auto bundle = parse(config);
  ASSERT_TRUE(bundle) << bundle.error().message;
  const vmm::ContainerSpec& spec = *bundle->resources.container;
  EXPECT_EQ(spec.args, (std::vector<std::string>{"/bin/app", "--flag", "two words"}));
  EXPECT_EQ(spec.cwd, "/srv/app");
  EXPECT_EQ(spec.env, (std::vector<std::string>{"PATH=/bin", "EMPTY=", "K=V=W"}));
  EXPECT_EQ(spec.user, "1000:100");
  EXPECT_EQ(spec.additional_gids, (std::vector<std::uint32_t>{10, 20}));
  EXPECT_EQ(spec.hostname, "web");
  EXPECT_TRUE(spec.read_only_root);
  EXPECT_TRUE(bundle->has_oom_score_adj);
  EXPECT_EQ(bundle->oom_score_adj, -500);
}

TEST(OciBundle, UserWithoutIdsIsRoot) {
  const auto bundle = parse(with("/process/user", json::object()));
  ASSERT_TRUE(bundle) << bundle.error().message;
  EXPECT_EQ(bundle->resources.container->user, "0:0");
}

TEST(OciBundle, RootPathRelativeOrAbsolute) {
  EXPECT_EQ(parse(with("/root/path", "rootfs"))->rootfs, kDir / "rootfs");
  EXPECT_EQ(parse(with("/root/path", "sub/dir"))->rootfs, kDir / "sub/dir");
  EXPECT_EQ(parse(with("/root/path", "/var/lib/c1/merged"))->rootfs, "/var/lib/c1/merged");
}

TEST(OciBundle, NotJsonOrNotAnObject) {
  EXPECT_EQ(error_of_text(""),
            "config.json is not valid JSON: parse error at line 1, column 1: syntax error while parsing value - "
            "unexpected end of input; expected '[', '{', or a literal");
  EXPECT_NE(error_of_text(R"({"process": )").find("config.json is not valid JSON"), std::string::npos);
  EXPECT_EQ(error_of_text("[]"), "config.json must hold a JSON object");
  EXPECT_EQ(error_of_text("\"config\""), "config.json must hold a JSON object");
  EXPECT_EQ(error_of_text("null"), "config.json must hold a JSON object");
}

TEST(OciBundle, MissingFields) {
  EXPECT_EQ(error_of(without("/process")), "config.json: process is missing: microvm needs the process to run");
  EXPECT_EQ(error_of(without("/process/args")), "config.json: process.args is missing: the command to run is required");
  EXPECT_EQ(error_of(without("/process/cwd")), "config.json: process.cwd is missing (runtime-spec requires it)");
  EXPECT_EQ(error_of(without("/root")),
            "config.json: root.path is missing: the container's root file system directory is required");
  EXPECT_EQ(error_of(without("/root/path")),
            "config.json: root.path is missing: the container's root file system directory is required");
  // null is the same as missing.
  EXPECT_EQ(error_of(with("/process/args", nullptr)),
            "config.json: process.args is missing: the command to run is required");
}

TEST(OciBundle, WrongTypes) {
  EXPECT_EQ(error_of(with("/process", "sh")), "config.json: process must be an object");
  EXPECT_EQ(error_of(with("/process/args", "sh -c true")), "config.json: process.args must be an array of strings");
  EXPECT_EQ(error_of(with("/process/args", json::array({"sh", 1}))), "config.json: process.args[1] must be a string");
  EXPECT_EQ(error_of(with("/process/args", json::array())),
            "config.json: process.args must start with a non-empty command");
  EXPECT_EQ(error_of(with("/process/args", json::array({""}))),
            "config.json: process.args must start with a non-empty command");
  EXPECT_EQ(error_of(with("/process/env", json::object())), "config.json: process.env must be an array of strings");
  EXPECT_EQ(error_of(with("/process/env", json::array({"NOEQUALS"}))),
            "config.json: process.env[0] must be KEY=VALUE, not 'NOEQUALS'");
  EXPECT_EQ(error_of(with("/process/env", json::array({"=v"}))),
            "config.json: process.env[0] must be KEY=VALUE, not '=v'");
  EXPECT_EQ(error_of(with("/process/cwd", 5)), "config.json: process.cwd must be a string");
  EXPECT_EQ(error_of(with("/process/cwd", "relative/dir")), "config.json: process.cwd must be an absolute path");
  EXPECT_EQ(error_of(with("/process/terminal", "yes")), "config.json: process.terminal must be true or false");
  EXPECT_EQ(error_of(with("/process/user", 0)), "config.json: process.user must be an object");
  EXPECT_EQ(error_of(with("/process/user/uid", -1)),
            "config.json: process.user.uid must be a whole number 0..2147483647");
  EXPECT_EQ(error_of(with("/process/user/uid", "0")),
            "config.json: process.user.uid must be a whole number 0..2147483647");
  EXPECT_EQ(error_of(with("/process/user/gid", 1.5)),
            "config.json: process.user.gid must be a whole number 0..2147483647");
  EXPECT_EQ(error_of(with("/process/user/uid", 4294967296ULL)),
            "config.json: process.user.uid must be a whole number 0..2147483647");
  EXPECT_EQ(error_of(with("/process/user/additionalGids", 5)),
            "config.json: process.user.additionalGids must be an array of group ids");
  EXPECT_EQ(error_of(with("/process/user/additionalGids", json::array({1, -2}))),
            "config.json: process.user.additionalGids[1] must be a whole number 0..2147483647");
  EXPECT_EQ(error_of(with("/process/oomScoreAdj", 1001)),
            "config.json: process.oomScoreAdj must be a whole number -1000..1000");
  EXPECT_EQ(error_of(with("/process/rlimits", json::object())), "config.json: process.rlimits must be an array");
  EXPECT_EQ(error_of(with("/root", "rootfs")),
            "config.json: root.path is missing: the container's root file system directory is required");
  EXPECT_EQ(error_of(with("/root/path", 1)), "config.json: root.path must be a string");
  EXPECT_EQ(error_of(with("/root/readonly", "true")), "config.json: root.readonly must be true or false");
  EXPECT_EQ(error_of(with("/hostname", 7)), "config.json: hostname must be a string");
  EXPECT_EQ(error_of(with("/hostname", std::string(65, 'h'))), "config.json: hostname must be at most 64 bytes");
  EXPECT_EQ(error_of(with("/ociVersion", 1)), "config.json: ociVersion must be a string");
  EXPECT_EQ(error_of(with("/mounts", json::object())), "config.json: mounts must be an array");
  EXPECT_EQ(error_of(with("/mounts", json::array({"proc"}))), "config.json: mounts[0] must be an object");
  EXPECT_EQ(error_of(with("/mounts", json::parse(R"([{"type": "proc"}])"))),
            "config.json: mounts[0].destination is missing");
  EXPECT_EQ(error_of(with("/annotations", json::array())), "config.json: annotations must be an object of strings");
  EXPECT_EQ(error_of(with("/annotations", json::parse(R"({"k": 1})"))), "config.json: annotations.k must be a string");
  EXPECT_EQ(error_of(with("/linux", json::array())), "config.json: linux must be an object");
  EXPECT_EQ(error_of(with("/linux/resources", 1)), "config.json: linux.resources must be an object");
  EXPECT_EQ(error_of(with("/linux/resources/memory", 1)), "config.json: linux.resources.memory must be an object");
  EXPECT_EQ(error_of(with("/linux/resources/memory/limit", "1G")),
            "config.json: linux.resources.memory.limit must be a number of bytes");
  EXPECT_EQ(error_of(with("/linux/resources/cpu/quota", "50000")),
            "config.json: linux.resources.cpu.quota must be a whole number of microseconds (-1: none)");
  EXPECT_EQ(error_of(with("/linux/resources/cpu", json::parse(R"({"quota": 50000, "period": 0})"))),
            "config.json: linux.resources.cpu.period must not be 0");
  EXPECT_EQ(error_of(with("/linux/resources/cpu/cpus", "0-")),
            "config.json: linux.resources.cpu.cpus '0-' is not a CPU list like 0-3,5");
  EXPECT_EQ(error_of(with("/linux/resources/cpu/cpus", "3-1")),
            "config.json: linux.resources.cpu.cpus '3-1' is not a CPU list like 0-3,5");
  EXPECT_EQ(error_of(with("/linux/namespaces", json::array({"pid"}))),
            "config.json: linux.namespaces[0] must be an object with a type");
  EXPECT_EQ(error_of(with("/linux/namespaces", json::parse(R"([{"type": "bogus"}])"))),
            "config.json: linux.namespaces[0].type 'bogus' is not a namespace type");
}

TEST(OciBundle, NulInAStringIsRefused) {
  EXPECT_EQ(error_of(with("/process/args", json::array({std::string("sh\0x", 4)}))),
            "config.json: process.args[0] must not contain a NUL character");
  EXPECT_EQ(error_of(with("/root/path", std::string("a\0b", 3))),
            "config.json: root.path must not contain a NUL character");
}

TEST(OciBundle, UnsupportedFieldsAreNamed) {
  EXPECT_EQ(error_of(with("/ociVersion", "2.0.0")),
            "config.json: ociVersion 2.0.0 is not supported by microvm: microvm implements runtime-spec 1.x");
  EXPECT_EQ(error_of(with("/process/terminal", true)),
            "config.json: process.terminal is not supported by microvm: no terminal or --console-socket yet (run "
            "without -t)");
  EXPECT_EQ(
      error_of(with("/process/user/umask", 077)),
      "config.json: process.user.umask is not supported by microvm: only the default 0022 is (the guest init sets no "
      "other yet)");
  EXPECT_EQ(error_of(with("/domainname", "example.org")),
            "config.json: domainname is not supported by microvm: the guest init sets no NIS domain name yet");
  EXPECT_EQ(error_of(with("/hooks", json::parse(R"({"poststop": [{"path": "/bin/true"}]})"))),
            "config.json: hooks.poststop is not supported by microvm: only prestart and createRuntime hooks are run, "
            "so far");
  EXPECT_EQ(error_of(with("/hooks", json::parse(R"({"createContainer": [{"path": "/bin/true"}]})"))),
            "config.json: hooks.createContainer is not supported by microvm: only prestart and createRuntime hooks "
            "are run, so far");
  EXPECT_EQ(error_of(with("/hooks", json::parse(R"({"prestart": [{"path": "true"}]})"))),
            "config.json: hooks.prestart[0].path must be an absolute path");
  EXPECT_EQ(error_of(with("/hooks", json::parse(R"({"prestart": [{"args": ["x"]}]})"))),
            "config.json: hooks.prestart[0] must be an object with a path");
  EXPECT_EQ(error_of(with("/hooks", json::parse(R"({"createRuntime": [{"path": "/x", "timeout": 0}]})"))),
            "config.json: hooks.createRuntime[0].timeout must be a number of seconds 1..86400");
  EXPECT_EQ(error_of(with("/windows", json::object())),
            "config.json: windows is not supported by microvm: microvm runs Linux containers");
  EXPECT_EQ(error_of(with("/linux/namespaces", json::parse(R"([{"type": "user"}])"))),
            "config.json: linux.namespaces[0] (user) is not supported by microvm: user namespaces (rootless "
            "containers) are not yet");
  EXPECT_EQ(error_of(with("/linux/namespaces", json::parse(R"([{"type": "network", "path": "/run/netns/x"}])"))),
            "config.json: linux.namespaces[0] (network at /run/netns/x) is not supported by microvm: the guest is not "
            "connected "
            "to a network namespace yet (use --network none)");
  EXPECT_EQ(
      error_of(with("/linux/namespaces", json::parse(R"([{"type": "ipc", "path": "/proc/1/ns/ipc"}])"))),
      "config.json: linux.namespaces[0] (ipc at /proc/1/ns/ipc) is not supported by microvm: joining another namespace "
      "(another container's) is not: each container is its own VM");
  EXPECT_EQ(
      error_of(with("/linux/uidMappings", json::parse(R"([{"containerID": 0, "hostID": 1000, "size": 1}])"))),
      "config.json: linux.uidMappings is not supported by microvm: user namespaces (rootless containers) are not yet");
  EXPECT_EQ(error_of(with("/linux/devices", json::parse(R"([{"path": "/dev/fuse", "type": "c"}])"))),
            "config.json: linux.devices is not supported by microvm: the guest has only its own virtual devices");
  EXPECT_EQ(
      error_of(with("/mounts", json::parse(R"([{"destination": "/data", "type": "bind", "source": "/srv"}])"))),
      "config.json: mounts[0] (bind /srv on /data) is not supported by microvm: the guest cannot see host directories "
      "yet (no shared file system)");
  EXPECT_EQ(error_of(with("/mounts", json::parse(R"([{"destination": "/mnt", "type": "nfs", "source": "srv:/x"}])"))),
            "config.json: mounts[0] (nfs srv:/x on /mnt) is not supported by microvm: only the guest's own proc, "
            "sysfs, /dev, "
            "devpts, shm, mqueue, cgroup and /run mounts are, so far");
  // A guest mount point with a type the guest does not mount there.
  EXPECT_NE(error_of(with("/mounts", json::parse(R"([{"destination": "/proc", "type": "tmpfs"}])"))).find("mounts[0]"),
            std::string::npos);
}

// Docker 20.10 puts its libnetwork-setkey in prestart of every container, even with --network none.
TEST(OciBundle, PrestartAndCreateRuntimeHooksAreKeptInOrder) {
  const auto bundle = parse(with("/hooks", json::parse(R"({
      "createRuntime": [{"path": "/bin/c"}],
      "prestart": [{"path": "/usr/bin/dockerd", "args": ["libnetwork-setkey", "-exec-root=/run/docker", "abc"],
                    "env": ["A=1"], "timeout": 5}]})")));
  ASSERT_TRUE(bundle) << bundle.error().message;
  ASSERT_EQ(bundle->create_hooks.size(), 2U);
  EXPECT_EQ(bundle->create_hooks[0],
            (Hook{"prestart", "/usr/bin/dockerd", {"libnetwork-setkey", "-exec-root=/run/docker", "abc"}, {"A=1"}, 5}));
  EXPECT_EQ(bundle->create_hooks[1], (Hook{"createRuntime", "/bin/c", {"/bin/c"}, {}, 0}));
}

TEST(OciBundle, EmptyOrNullOptionalSectionsAreFine) {
  json config = minimal();
  config["hooks"] = json::parse(R"({"prestart": [], "poststop": null})");
  config["linux"] = json::parse(R"({"devices": [], "uidMappings": [], "namespaces": [{"type": "network", "path": ""}],
                                    "resources": {"memory": {"limit": -1}, "cpu": {"quota": -1, "cpus": ""}},
                                    "seccomp": {"defaultAction": "SCMP_ACT_ERRNO"}, "maskedPaths": ["/proc/kcore"]})");
  config["domainname"] = "";
  config["hostname"] = "";
  config["mounts"] = json::array();
  config["unknownField"] = {{"x", 1}};  // config.md: unknown properties are ignored
  const auto bundle = parse(config);
  ASSERT_TRUE(bundle) << bundle.error().message;
  EXPECT_EQ(bundle->resources.machine_config, vmm::MachineSpec{});
  EXPECT_FALSE(bundle->resources.container->hostname);
  EXPECT_TRUE(bundle->warnings.empty());
}

TEST(OciBundle, RuncSpecWithoutTerminalRuns) {
  json config = fixture("runc-spec.json");  // `runc spec`
  EXPECT_EQ(error_of_text(config.dump()),
            "config.json: process.terminal is not supported by microvm: no terminal or --console-socket yet (run "
            "without -t)");
  config["process"]["terminal"] = false;
  const auto bundle = parse(config);
  ASSERT_TRUE(bundle) << bundle.error().message;
  EXPECT_EQ(bundle->resources.container->args, (std::vector<std::string>{"sh"}));
  EXPECT_EQ(bundle->resources.container->hostname, "runc");
  EXPECT_TRUE(bundle->resources.container->read_only_root);
  EXPECT_EQ(bundle->rootfs, kDir / "rootfs");
  // runc spec's rlimits (RLIMIT_NOFILE) are named as not applied.
  ASSERT_EQ(bundle->warnings.size(), 1U);
  EXPECT_EQ(bundle->warnings[0], "config.json: process.rlimits not applied: the guest kernel's defaults hold");
}

TEST(OciBundle, RootlessRuncSpecIsRefusedForItsUserNamespace) {
  json config = fixture("runc-spec-rootless.json");  // `runc spec --rootless`
  config["process"]["terminal"] = false;
  EXPECT_EQ(
      error_of(config),
      "config.json: linux.namespaces[4] (user) is not supported by microvm: user namespaces (rootless containers) are "
      "not yet");
}

TEST(OciBundle, GuestMountsAreAccepted) {
  const auto bundle = parse(with("/mounts", json::parse(R"([
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
    {"destination": "/dev/shm", "type": "bind", "source": "/var/lib/containers/shm", "options": ["bind"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
    {"destination": "/sys/", "type": "sysfs", "source": "sysfs"},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
    {"destination": "/run", "type": "tmpfs", "source": "tmpfs"}])")));
  ASSERT_TRUE(bundle) << bundle.error().message;
  EXPECT_TRUE(bundle->resources.container->files.empty());
}

TEST(OciBundle, MemoryLimitSizesTheGuest) {
  const auto mib = [](json limit) {
    const auto bundle = parse(with("/linux/resources/memory/limit", std::move(limit)));
    EXPECT_TRUE(bundle) << bundle.error().message;
    return bundle ? bundle->resources.machine_config.mem_size_mib : 0;
  };
  EXPECT_EQ(mib(512LL << 20), 512U);
  EXPECT_EQ(mib((256LL << 20) + 1), 257U);  // rounded up to a MiB
  EXPECT_EQ(mib(1), vmm::kMinMemoryMib);    // at least what a guest needs
  EXPECT_EQ(mib(-1), vmm::kDefaultMemoryMib);
  EXPECT_EQ(mib(0), vmm::kDefaultMemoryMib);
  EXPECT_EQ(mib(18446744073709551615ULL), vmm::kMaxMemoryMib);  // no overflow
}

TEST(OciBundle, CpuQuotaAndCpusetSizeTheGuest) {
  const auto vcpus = [](const char* cpu) {
    const auto bundle = parse(with("/linux/resources/cpu", json::parse(cpu)));
    EXPECT_TRUE(bundle) << bundle.error().message;
    return bundle ? bundle->resources.machine_config.vcpu_count : 0;
  };
  EXPECT_EQ(vcpus(R"({"quota": 200000, "period": 100000})"), 2U);
  EXPECT_EQ(vcpus(R"({"quota": 150000, "period": 100000})"), 2U);  // rounded up
  EXPECT_EQ(vcpus(R"({"quota": 50000})"), 1U);                     // period defaults to 100 ms
  EXPECT_EQ(vcpus(R"({"cpus": "0-3,6"})"), 5U);
  EXPECT_EQ(vcpus(R"({"cpus": "0-3", "quota": 200000, "period": 100000})"), 2U);  // the smaller
  EXPECT_EQ(vcpus(R"({"quota": 100000000, "period": 1000})"), vmm::kMaxVcpus);
  EXPECT_EQ(vcpus(R"({"shares": 1024})"), vmm::kDefaultVcpus);
}

TEST(OciBundle, ResourcesNotAppliedAreNamedInAWarning) {
  json config = minimal();
  config["linux"]["resources"] = json::parse(R"({"memory": {"limit": 268435456, "swap": 536870912},
                                                 "cpu": {"shares": 512, "quota": 100000}, "pids": {"limit": 2048},
                                                 "devices": [{"allow": false, "access": "rwm"}], "blockIO": {}})");
  config["linux"]["sysctl"] = {{"net.ipv4.ip_forward", "1"}};
  const auto bundle = parse(config);
  ASSERT_TRUE(bundle) << bundle.error().message;
  EXPECT_EQ(bundle->resources.machine_config.mem_size_mib, 256U);
  EXPECT_EQ(bundle->warnings,
            (std::vector<std::string>{"config.json: linux.resources cpu.shares, memory.swap, pids not applied: only "
                                      "memory.limit (guest RAM) and cpu quota/cpus (vCPUs) are",
                                      "config.json: linux.sysctl not applied: the guest kernel's defaults hold"}));
}

TEST(OciBundle, AnnotationsWinOverResources) {
  json config = minimal();
  config["linux"]["resources"] = json::parse(R"({"memory": {"limit": 268435456}, "cpu": {"cpus": "0-3"}})");
  config["annotations"] = {{"microvm.vcpus", "2"},
                           {"microvm.memory_mib", "512"},
                           {"microvm.kernel", "kernels/vmlinux"},
                           {"org.opencontainers.image.title", "app"}};
  const auto bundle = parse(config);
  ASSERT_TRUE(bundle) << bundle.error().message;
  EXPECT_EQ(bundle->resources.machine_config.vcpu_count, 2U);
  EXPECT_EQ(bundle->resources.machine_config.mem_size_mib, 512U);
  EXPECT_EQ(bundle->resources.boot_source.kernel_image_path, "kernels/vmlinux");  // create resolves it in the bundle
  EXPECT_EQ(bundle->annotations.at("org.opencontainers.image.title"), "app");
}

TEST(OciBundle, BadAnnotationValues) {
  EXPECT_EQ(error_of(with("/annotations", {{"microvm.vcpus", "0"}})),
            "config.json: annotation microvm.vcpus '0' is not a number 1..32");
  EXPECT_EQ(error_of(with("/annotations", {{"microvm.vcpus", "two"}})),
            "config.json: annotation microvm.vcpus 'two' is not a number 1..32");
  EXPECT_EQ(error_of(with("/annotations", {{"microvm.memory_mib", "16"}})),
            "config.json: annotation microvm.memory_mib '16' is not a number 32..1048576");
  EXPECT_EQ(error_of(with("/annotations", {{"microvm.memory_mib", "256M"}})),
            "config.json: annotation microvm.memory_mib '256M' is not a number 32..1048576");
}

// load_bundle: the files themselves.
class OciBundleDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("microvm-oci-bundle-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "rootfs");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::filesystem::path& name, const std::string& text) const {
    std::ofstream(dir_ / name, std::ios::trunc) << text;
  }
  std::string load_error() const {
    const auto bundle = load_bundle(dir_);
    return bundle ? std::string("<loaded>") : bundle.error().message;
  }
  std::filesystem::path dir_;
};

TEST_F(OciBundleDir, Loads) {
  write("config.json", minimal().dump());
  const auto bundle = load_bundle(dir_);
  ASSERT_TRUE(bundle) << bundle.error().message;
  EXPECT_EQ(bundle->dir, dir_);
  EXPECT_EQ(bundle->rootfs, dir_ / "rootfs");
}

TEST_F(OciBundleDir, RelativeBundlePathIsMadeAbsolute) {
  write("config.json", minimal().dump());
  const std::filesystem::path cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir_.parent_path());
  const auto bundle = load_bundle(dir_.filename());
  std::filesystem::current_path(cwd);
  ASSERT_TRUE(bundle) << bundle.error().message;
  EXPECT_EQ(bundle->dir, dir_);
}

TEST_F(OciBundleDir, NoConfigJson) {
  EXPECT_EQ(load_error(),
            fmt::format("bundle {} has no readable config.json: No such file or directory", dir_.string()));
}

TEST_F(OciBundleDir, NotADirectory) {
  write("file", "x");
  const auto bundle = load_bundle(dir_ / "file");
  ASSERT_FALSE(bundle);
  EXPECT_EQ(bundle.error().message, fmt::format("bundle {} is not a directory", (dir_ / "file").string()));
  EXPECT_FALSE(load_bundle(dir_ / "missing"));
}

TEST_F(OciBundleDir, RootPathMustBeADirectory) {
  write("config.json", with("/root/path", "nothere").dump());
  EXPECT_EQ(load_error(), fmt::format("config.json: root.path {} is not a directory", (dir_ / "nothere").string()));
  write("config.json", with("/root/path", "config.json").dump());
  EXPECT_EQ(load_error(), fmt::format("config.json: root.path {} is not a directory", (dir_ / "config.json").string()));
  write("config.json", with("/root/path", (dir_ / "rootfs").string()).dump());
  EXPECT_EQ(load_error(), "<loaded>");
}

TEST_F(OciBundleDir, EngineFilesAreCopiedIn) {
  write("hosts", "127.0.0.1 localhost\n10.0.0.2 web\n");
  write("resolv.conf", "nameserver 10.0.0.1\n");
  write("config.json", with("/mounts", json::parse(fmt::format(R"([
    {{"destination": "/etc/hosts", "type": "bind", "source": "{}/hosts", "options": ["bind", "rw"]}},
    {{"destination": "/etc/resolv.conf", "type": "bind", "source": "resolv.conf", "options": ["rbind", "ro"]}}])",
                                                               dir_.string())))
                           .dump());
  const auto bundle = load_bundle(dir_);
  ASSERT_TRUE(bundle) << bundle.error().message;
  EXPECT_EQ(bundle->resources.container->files,
            (std::vector<vmm::ContainerFile>{{"/etc/hosts", "127.0.0.1 localhost\n10.0.0.2 web\n", 0644},
                                             {"/etc/resolv.conf", "nameserver 10.0.0.1\n", 0444}}));
}

TEST_F(OciBundleDir, EngineFileThatIsMissingADirectoryOrTooLarge) {
  const auto mount_of = [](const std::string& source) {
    return with("/mounts", json::array({{{"destination", "/etc/hosts"}, {"type", "bind"}, {"source", source}}})).dump();
  };
  write("config.json", mount_of((dir_ / "nope").string()));
  EXPECT_EQ(load_error(),
            fmt::format("config.json: mounts[0] (bind {0}/nope on /etc/hosts) names {0}/nope, which cannot be "
                        "read: No such file or directory",
                        dir_.string()));
  write("config.json", mount_of((dir_ / "rootfs").string()));
  EXPECT_NE(load_error().find("is not a regular file"), std::string::npos) << load_error();
  write("big", std::string(kMaxCopiedFileBytes + 1, 'x'));
  write("config.json", mount_of((dir_ / "big").string()));
  EXPECT_NE(load_error().find("is larger than 65536 bytes"), std::string::npos) << load_error();
}

}  // namespace
}  // namespace microvm::oci
