// Container state on the host (runtime/oci/state.h) and the rootfs image cache
// (runtime/oci/rootfs_image.h).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "runtime/oci/rootfs_image.h"
#include "runtime/oci/state.h"

namespace microvm::oci {
namespace {

// A fresh directory per test, removed after it.
class OciStateDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() /
        fmt::format("microvm-oci-{}-{}", ::getpid(), ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(dir_, ec);
  }
  static void write(const std::filesystem::path& path, const std::string& text) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::trunc) << text;
  }
  static std::string read(const std::filesystem::path& path) {
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
  }
  std::filesystem::path dir_;
};

ContainerState sample() {
  ContainerState state;
  state.id = "c1";
  state.pid = 4242;
  state.pid_start_time = 123456;
  state.bundle = "/b";
  state.rootfs = "/b/rootfs";
  state.annotations = {{"k", "v"}};
  state.created = "2024-01-02T03:04:05.000000006Z";
  return state;
}

TEST(OciState, JsonRoundTrip) {
  ContainerState state = sample();
  auto back = state_from_json(to_json(state).dump());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, state);
  state.exit_status = 3;
  back = state_from_json(to_json(state).dump());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->exit_status, 3);
}

TEST(OciState, DamagedStateIsAnError) {
  for (const char* text : {"", "{", "[]", R"({"id": "c1"})", R"({"id": 1, "pid": 0})"}) {
    const auto state = state_from_json(text);
    ASSERT_FALSE(state) << text;
    EXPECT_TRUE(state.error().message.starts_with("the container's state file is damaged")) << state.error().message;
  }
}

TEST(OciState, StatusNames) {
  EXPECT_EQ(to_string(Status::kCreating), "creating");
  EXPECT_EQ(to_string(Status::kCreated), "created");
  EXPECT_EQ(to_string(Status::kRunning), "running");
  EXPECT_EQ(to_string(Status::kStopped), "stopped");
}

TEST(OciState, LiveProcessStartTime) {
  EXPECT_TRUE(live_process_start_time(::getpid()));
  EXPECT_FALSE(live_process_start_time(0));
  EXPECT_FALSE(live_process_start_time(-1));
  // A child that exited and is not reaped yet is a zombie: not alive.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  EXPECT_FALSE(live_process_start_time(child));
  ::waitpid(child, nullptr, 0);
  EXPECT_FALSE(live_process_start_time(child));
}

TEST_F(OciStateDir, StatusIsDerived) {
  ContainerState state = sample();
  state.pid = 0;
  EXPECT_EQ(status_of(state, dir_), Status::kCreating);
  state.exit_status = 1;  // a VMM that ended before create recorded it
  EXPECT_EQ(status_of(state, dir_), Status::kStopped);
  state.exit_status.reset();
  state.pid = ::getpid();
  state.pid_start_time = *live_process_start_time(::getpid());
  EXPECT_EQ(status_of(state, dir_), Status::kRunning);
  ASSERT_EQ(::mkfifo((dir_ / kExecFifoName).c_str(), 0600), 0);
  EXPECT_EQ(status_of(state, dir_), Status::kCreated);
  state.pid_start_time += 1;  // the pid was reused by another process
  EXPECT_EQ(status_of(state, dir_), Status::kStopped);
}

TEST_F(OciStateDir, WriteAndReadState) {
  const ContainerState state = sample();
  ASSERT_TRUE(write_state(dir_, state));
  auto back = read_state(dir_);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, state);
  // Replaced whole, with no temporary left beside it.
  ContainerState later = state;
  later.exit_status = 0;
  ASSERT_TRUE(write_state(dir_, later));
  EXPECT_EQ(read_state(dir_)->exit_status, 0);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), std::filesystem::directory_iterator()), 1);
  EXPECT_FALSE(read_state(dir_ / "missing"));
  EXPECT_FALSE(write_state(dir_ / "missing", state));
}

TEST(OciState, Report) {
  ContainerState state = sample();
  nlohmann::json report = state_report(state, Status::kRunning);
  EXPECT_EQ(report["ociVersion"], "1.0.2-dev");
  EXPECT_EQ(report["id"], "c1");
  EXPECT_EQ(report["status"], "running");
  EXPECT_EQ(report["pid"], 4242);
  EXPECT_EQ(report["bundle"], "/b");
  EXPECT_EQ(report["rootfs"], "/b/rootfs");
  EXPECT_EQ(report["annotations"]["k"], "v");
  EXPECT_FALSE(report.contains("exitStatus"));
  state.exit_status = 143;
  report = state_report(state, Status::kStopped);
  EXPECT_EQ(report["status"], "stopped");
  EXPECT_EQ(report["pid"], 0);  // runc: a stopped container has no pid
  EXPECT_EQ(report["exitStatus"], 143);
  state.annotations.clear();
  EXPECT_FALSE(state_report(state, Status::kCreated).contains("annotations"));
}

TEST(OciState, CreatedTimeIsRfc3339) {
  EXPECT_TRUE(std::regex_match(rfc3339_now(), std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z)")))
      << rfc3339_now();
}

// --- the rootfs image -------------------------------------------------------------------------

class OciRootfsImage : public OciStateDir {
 protected:
  void SetUp() override {
    OciStateDir::SetUp();
    tree_ = dir_ / "tree";
    write(tree_ / "bin/sh", "#!fake\n");
    write(tree_ / "etc/passwd", "root:x:0:0::/root:/bin/sh\n");
    std::filesystem::create_symlink("sh", tree_ / "bin/ash");
    builder_ = dir_ / "builder";
    // A stand-in for tools/rootfs-build: `builder SRC -o OUT` writes OUT, counts its runs, and
    // fails when SRC has a file named "fail".
    write(builder_, fmt::format(R"(#!/bin/sh
echo run >>"{}"
if [ -e "$1/fail" ]; then echo "progress line"; echo "rootfs-build: error: cannot build $1" >&2; exit 1; fi
[ "$2" = -o ] || exit 2
echo "image of $1" >"$3"
)",
                                (dir_ / "runs").string()));
    std::filesystem::permissions(builder_, std::filesystem::perms::owner_all);
  }
  int runs() const {
    const std::string text = read(dir_ / "runs");
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  }
  std::string key() const {
    auto k = tree_key(tree_, "salt");
    EXPECT_TRUE(k) << k.error().message;
    return k.value_or("");
  }
  std::filesystem::path tree_, builder_;
};

TEST_F(OciRootfsImage, KeyFollowsTheTree) {
  const std::string first = key();
  EXPECT_EQ(first.size(), 64U);
  EXPECT_EQ(key(), first);  // stable
  EXPECT_NE(*tree_key(tree_, "other salt"), first);
  write(tree_ / "etc/new", "");
  const std::string added = key();
  EXPECT_NE(added, first);
  ::chmod((tree_ / "etc/new").c_str(), 0600);
  const std::string moded = key();
  EXPECT_NE(moded, added);
  write(tree_ / "etc/new", "longer contents");
  const std::string resized = key();
  EXPECT_NE(resized, moded);
  std::filesystem::remove(tree_ / "bin/ash");
  std::filesystem::create_symlink("busybox", tree_ / "bin/ash");
  EXPECT_NE(key(), resized);
}

TEST_F(OciRootfsImage, KeyOfAMissingTreeIsAnError) {
  EXPECT_FALSE(tree_key(dir_ / "missing", ""));
  EXPECT_FALSE(tree_key(tree_ / "bin/sh", ""));
}

TEST_F(OciRootfsImage, BuiltOnceThenCached) {
  const std::filesystem::path cache = dir_ / "cache";
  auto image = rootfs_image(tree_, cache, dir_ / "own", builder_);
  ASSERT_TRUE(image) << image.error().message;
  EXPECT_TRUE(image->cached);
  EXPECT_TRUE(image->built);
  EXPECT_EQ(image->path.parent_path(), cache / kImageCacheSubdir);
  EXPECT_EQ(read(image->path), "image of " + tree_.string() + "\n");
  auto again = rootfs_image(tree_, cache, dir_ / "own", builder_);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->path, image->path);
  EXPECT_FALSE(again->built);
  EXPECT_EQ(runs(), 1);
  write(tree_ / "etc/hostname", "changed\n");  // a changed tree is another image
  auto changed = rootfs_image(tree_, cache, dir_ / "own", builder_);
  ASSERT_TRUE(changed) << changed.error().message;
  EXPECT_NE(changed->path, image->path);
  EXPECT_EQ(runs(), 2);
}

TEST_F(OciRootfsImage, UnwritableCacheFallsBackToTheContainersOwn) {
  write(dir_ / "cache", "a file, not a directory");
  std::filesystem::create_directories(dir_ / "own");
  auto image = rootfs_image(tree_, dir_ / "cache", dir_ / "own", builder_);
  ASSERT_TRUE(image) << image.error().message;
  EXPECT_FALSE(image->cached);
  EXPECT_EQ(image->path, dir_ / "own" / kFallbackImageName);
  EXPECT_TRUE(std::filesystem::exists(image->path));
}

TEST_F(OciRootfsImage, BuilderFailureIsItsLastLine) {
  write(tree_ / "fail", "");
  auto image = rootfs_image(tree_, dir_ / "cache", dir_ / "own", builder_);
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().message, fmt::format("making the root file system image from {} failed: rootfs-build: error: "
                                               "cannot build {}",
                                               tree_.string(), tree_.string()));
}

TEST_F(OciRootfsImage, MissingBuilder) {
  auto image = rootfs_image(tree_, dir_ / "cache", dir_ / "own", dir_ / "no-builder");
  ASSERT_FALSE(image);
  EXPECT_TRUE(image.error().message.starts_with("the rootfs builder")) << image.error().message;
}

}  // namespace
}  // namespace microvm::oci
