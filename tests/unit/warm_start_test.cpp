// Warm-start templates (runtime/warm_start.h), without KVM: which inputs make another template
// key and which do not (the run's command, env and image paths never do), what a template's own
// resources keep of a run, and the cache's decisions: a missing template, a usable one, one whose
// state file is corrupt, truncated, from another format or without its memory file (refused with
// the reason, then replaced when the rebuilt one is published), two runs publishing one key (the
// first wins, nothing torn), and a usable template that would not restore (replaced on request).
#include "runtime/warm_start.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/unit/test_support.h"
#include "vmm/snapshot/state_file.h"

namespace microvm::runtime {
namespace {

namespace fs = std::filesystem;

vmm::VmResources sample_run() {
  vmm::VmResources r;
  r.boot_source.kernel_image_path = "/k/vmlinux";
  r.machine_config = {2, 256, false};
  r.drives = {{"rootfs", "/img/a.ext4", true, false}, {"drive1", "/img/data", false, false}};
  r.network_interfaces = {{"eth0", "tap0", "02:00:00:00:00:01", "10.0.0.2/24", "10.0.0.1", "1.1.1.1"}};
  r.container = vmm::ContainerSpec{{"sh", "-c", "echo hi"}, {"A=1"}, "/work", "1000", "box"};
  return r;
}

TemplateInputs sample_inputs(const vmm::VmResources& run = sample_run()) {
  TemplateInputs in;
  in.vmm = {"/usr/bin/microvm", 1, 10, 1000, 5};
  in.kernel = {"/k/vmlinux", 1, 11, 2000, 6};
  in.init = {"/usr/lib/microvm-init", 1, 12, 3000, 7};
  in.resources = template_resources(run);
  in.cmdline = in.resources.kernel_cmdline(false);
  return in;
}

TEST(WarmStartKey, IsStableAndSixteenHexDigits) {
  const std::string key = template_key(sample_inputs());
  EXPECT_EQ(key, template_key(sample_inputs()));
  EXPECT_EQ(key.size(), 16u);
  EXPECT_EQ(key.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(WarmStartKey, EveryInputOfTheTemplateChangesIt) {
  const std::string base = template_key(sample_inputs());
  std::vector<std::pair<std::string, TemplateInputs>> changed;
  const auto with = [&](std::string what, auto change) {
    TemplateInputs in = sample_inputs();
    change(in);
    changed.emplace_back(std::move(what), std::move(in));
  };
  const auto with_run = [&](std::string what, auto change) {
    vmm::VmResources run = sample_run();
    change(run);
    changed.emplace_back(std::move(what), sample_inputs(run));
  };
  with("kernel mtime", [](TemplateInputs& in) { ++in.kernel.mtime_ns; });
  with("kernel inode", [](TemplateInputs& in) { ++in.kernel.inode; });
  with("kernel size", [](TemplateInputs& in) { ++in.kernel.size; });
  with("kernel path", [](TemplateInputs& in) { in.kernel.path = "/other/vmlinux"; });
  with("init", [](TemplateInputs& in) { ++in.init.mtime_ns; });
  with("microvm", [](TemplateInputs& in) { ++in.vmm.inode; });
  with("cmdline", [](TemplateInputs& in) { in.cmdline += " loglevel=7"; });
  with_run("vcpus", [](vmm::VmResources& r) { r.machine_config.vcpu_count = 1; });
  with_run("memory", [](vmm::VmResources& r) { r.machine_config.mem_size_mib = 512; });
  with_run("console", [](vmm::VmResources& r) { r.console = vmm::ConsoleKind::kVirtio; });
  with_run("one drive less", [](vmm::VmResources& r) { r.drives.pop_back(); });
  with_run("a drive's mode", [](vmm::VmResources& r) { r.drives[1].is_read_only = true; });
  with_run("no network", [](vmm::VmResources& r) { r.network_interfaces.clear(); });
  with_run("a MAC", [](vmm::VmResources& r) { r.network_interfaces[0].guest_mac = "02:00:00:00:00:02"; });
  for (const auto& [what, in] : changed) EXPECT_NE(template_key(in), base) << what;
}

TEST(WarmStartKey, TheRunsOwnCommandImagesAndGuestNetworkDoNotChangeIt) {
  const std::string base = template_key(sample_inputs());
  vmm::VmResources run = sample_run();
  run.drives[0].path_on_host = "/img/b.ext4";
  run.drives[1].path_on_host = "/img/other";
  run.container = vmm::ContainerSpec{{"/bin/false"}, {"B=2"}, "/tmp", "nobody", "other"};
  run.network_interfaces[0].host_dev_name = "tap9";
  run.network_interfaces[0].guest_ip = "192.168.0.2/24";
  EXPECT_EQ(template_key(sample_inputs(run)), base);
}

TEST(WarmStartTemplate, KeepsTheDeviceSetAndNothingOfTheRun) {
  const vmm::VmResources run = sample_run();
  const vmm::VmResources t = template_resources(run);
  EXPECT_TRUE(t.warm_template);
  EXPECT_TRUE(t.container_mode());
  EXPECT_EQ(t.machine_config, run.machine_config);
  EXPECT_EQ(t.boot_source, run.boot_source);
  ASSERT_EQ(t.drives.size(), 2u);
  for (std::size_t i = 0; i < t.drives.size(); ++i) {
    EXPECT_TRUE(t.drives[i].path_on_host.empty());  // empty drives: the guest never probes an image
    EXPECT_EQ(t.drives[i].drive_id, run.drives[i].drive_id);
    EXPECT_EQ(t.drives[i].is_root_device, run.drives[i].is_root_device);
    EXPECT_EQ(t.drives[i].is_read_only, run.drives[i].is_read_only);
  }
  ASSERT_EQ(t.network_interfaces.size(), 1u);
  EXPECT_EQ(t.network_interfaces[0].guest_mac, run.network_interfaces[0].guest_mac);
  EXPECT_FALSE(t.network_interfaces[0].guest_ip.has_value());
  EXPECT_NE(t.container->args, run.container->args);
  EXPECT_TRUE(t.container->env.empty());
  EXPECT_FALSE(t.container->cwd.has_value());
}

class TempDir {
 public:
  TempDir() {
    std::string name = "/tmp/microvm-warm-test-XXXXXX";
    if (::mkdtemp(name.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = name;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(WarmStartFiles, IdentityChangesWhenTheFileDoes) {
  const TempDir dir;
  const std::string path = dir.path() + "/kernel";
  std::ofstream(path) << "one";
  auto first = identify_file(path);
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_EQ(first->size, 3u);
  std::ofstream(path, std::ios::trunc) << "other";
  auto second = identify_file(path);
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(*first, *second);
  EXPECT_ERROR_CONTAINS(identify_file(dir.path() + "/missing"), "missing");
}

class TemplateCacheTest : public ::testing::Test {
 protected:
  TemplateCacheTest() : cache_(dir_.path() + "/templates") {}

  // A complete template in `files`: a state file this host accepts and a memory file.
  static void write_template(const vmm::SnapshotFiles& files, std::uint8_t marker) {
    snapshot::StateFile state;
    state.add(snapshot::SectionId::kResources, 1, {std::byte{marker}, std::byte{2}});
    const std::vector<std::byte> bytes = state.serialize(snapshot::host_cpu_model());
    ASSERT_TRUE(snapshot::write_file(files.state_path, bytes).has_value());
    std::ofstream(files.memory_path) << "memory" << static_cast<int>(marker);
  }
  static std::vector<std::byte> read(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    std::vector<char> chars((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(chars.size());
    std::memcpy(out.data(), chars.data(), chars.size());
    return out;
  }
  static void overwrite(const std::string& path, const std::vector<std::byte>& bytes) {
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  // A template published under `key`, made with `marker`.
  void publish(const std::string& key, std::uint8_t marker) {
    auto staging = cache_.stage(key);
    ASSERT_TRUE(staging.has_value()) << staging.error().message;
    write_template(staging->files, marker);
    auto published = cache_.publish(*staging, key, "inputs\n");
    ASSERT_TRUE(published.has_value()) << published.error().message;
    ASSERT_TRUE(*published);
  }
  [[nodiscard]] std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(cache_.dir())) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  TempDir dir_;
  TemplateCache cache_;
};

using State = TemplateCache::Found::State;

TEST_F(TemplateCacheTest, MissingThenPublishedThenReady) {
  EXPECT_EQ(cache_.find("k1").state, State::kMissing);
  publish("k1", 1);
  const TemplateCache::Found found = cache_.find("k1");
  EXPECT_EQ(found.state, State::kReady) << found.reason;
  EXPECT_EQ(found.files.state_path, cache_.template_dir("k1") + "/state");
  EXPECT_EQ(found.files.memory_path, cache_.template_dir("k1") + "/memory");
  std::ifstream inputs(cache_.template_dir("k1") + "/inputs");
  std::string line;
  std::getline(inputs, line);
  EXPECT_EQ(line, "inputs");
  // Only the template and its lock file: no staging directory is left behind.
  EXPECT_EQ(entries(), (std::vector<std::string>{"k1", "k1.lock"}));
  EXPECT_EQ(cache_.find("k2").state, State::kMissing);  // another key is another template
}

TEST_F(TemplateCacheTest, ACorruptStateFileIsRefusedWithItsReason) {
  publish("k1", 1);
  const vmm::SnapshotFiles files = cache_.files("k1");
  std::vector<std::byte> bytes = read(files.state_path);
  bytes[snapshot::kHeaderBytes + 10] ^= std::byte{0x40};  // one bit inside a section
  overwrite(files.state_path, bytes);
  TemplateCache::Found found = cache_.find("k1");
  EXPECT_EQ(found.state, State::kBroken);
  EXPECT_NE(found.reason.find("checksum"), std::string::npos) << found.reason;
  EXPECT_NE(found.reason.find(files.state_path), std::string::npos) << found.reason;

  bytes.resize(bytes.size() / 2);  // truncated
  overwrite(files.state_path, bytes);
  found = cache_.find("k1");
  EXPECT_EQ(found.state, State::kBroken);
  EXPECT_FALSE(found.reason.empty());

  overwrite(files.state_path, {});  // empty
  EXPECT_EQ(cache_.find("k1").state, State::kBroken);
}

TEST_F(TemplateCacheTest, MissingPiecesAreBroken) {
  publish("k1", 1);
  ASSERT_EQ(::unlink(cache_.files("k1").memory_path.c_str()), 0);
  TemplateCache::Found found = cache_.find("k1");
  EXPECT_EQ(found.state, State::kBroken);
  EXPECT_NE(found.reason.find("no memory file"), std::string::npos) << found.reason;
  ASSERT_EQ(::unlink(cache_.files("k1").state_path.c_str()), 0);
  EXPECT_EQ(cache_.find("k1").state, State::kBroken);
}

TEST_F(TemplateCacheTest, ABrokenTemplateIsReplacedByTheRebuiltOne) {
  publish("k1", 1);
  const vmm::SnapshotFiles files = cache_.files("k1");
  std::vector<std::byte> bytes = read(files.state_path);
  bytes.back() ^= std::byte{1};  // the checksum itself
  overwrite(files.state_path, bytes);
  ASSERT_EQ(cache_.find("k1").state, State::kBroken);
  publish("k1", 2);
  EXPECT_EQ(cache_.find("k1").state, State::kReady);
  std::ifstream memory(files.memory_path);
  std::string text;
  memory >> text;
  EXPECT_EQ(text, "memory2");
  EXPECT_EQ(entries(), (std::vector<std::string>{"k1", "k1.lock"}));
}

TEST_F(TemplateCacheTest, TheFirstOfTwoRunsToPublishWins) {
  // Two cold runs of one key saved a template each; the second to publish keeps the first's.
  auto first = cache_.stage("k1");
  auto second = cache_.stage("k1");
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_NE(first->dir, second->dir);
  write_template(first->files, 1);
  write_template(second->files, 2);
  EXPECT_EQ(cache_.find("k1").state, State::kMissing);  // nothing half-published meanwhile
  auto won = cache_.publish(*first, "k1", "");
  ASSERT_TRUE(won.has_value()) << won.error().message;
  EXPECT_TRUE(*won);
  auto lost = cache_.publish(*second, "k1", "");
  ASSERT_TRUE(lost.has_value()) << lost.error().message;
  EXPECT_FALSE(*lost);
  std::ifstream memory(cache_.files("k1").memory_path);
  std::string text;
  memory >> text;
  EXPECT_EQ(text, "memory1");
  EXPECT_EQ(entries(), (std::vector<std::string>{"k1", "k1.lock"}));  // the loser's staging is gone
}

TEST_F(TemplateCacheTest, AUsableTemplateThatWouldNotRestoreIsReplacedOnRequest) {
  publish("k1", 1);
  auto staging = cache_.stage("k1");
  ASSERT_TRUE(staging.has_value());
  write_template(staging->files, 3);
  auto replaced = cache_.publish(*staging, "k1", "", /*replace_usable=*/true);
  ASSERT_TRUE(replaced.has_value()) << replaced.error().message;
  EXPECT_TRUE(*replaced);
  std::ifstream memory(cache_.files("k1").memory_path);
  std::string text;
  memory >> text;
  EXPECT_EQ(text, "memory3");
}

TEST_F(TemplateCacheTest, ADiscardedStagingLeavesNothingAndSharedLocksCoexist) {
  auto staging = cache_.stage("k1");
  ASSERT_TRUE(staging.has_value());
  write_template(staging->files, 1);
  cache_.discard(*staging);
  EXPECT_FALSE(fs::exists(staging->dir));
  auto a = cache_.lock_shared("k1");
  auto b = cache_.lock_shared("k1");
  EXPECT_TRUE(a.has_value() && b.has_value());
}

}  // namespace
}  // namespace microvm::runtime
