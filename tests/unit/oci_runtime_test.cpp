// The OCI runtime's operations (runtime/oci/runtime.h) with a stand-in for the VM: `create` forks
// the VMM process, which waits for `start`, then runs RunVm (here: records the configuration it got
// and returns an exit status) and records that status. The lifecycle, the state it reports at each
// step, and the errors runc gives for the wrong step.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "runtime/oci/runtime.h"
#include "runtime/oci/state.h"

namespace microvm::oci {
namespace {

constexpr int kWorkloadExit = 7;

class OciRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    parent_ = ::getpid();
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("microvm-oci-rt-{}-{}", ::getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    bundle_ = dir_ / "bundle";
    std::filesystem::create_directories(bundle_ / "rootfs/bin");
    write(bundle_ / "config.json",
          R"({"ociVersion": "1.0.2", "process": {"args": ["sh", "-c", "exit 7"], "cwd": "/", "env": ["A=1"]},
              "root": {"path": "rootfs"}, "hostname": "h1",
              "linux": {"resources": {"memory": {"limit": 268435456}}}})");
    write(dir_ / "vmlinux", "kernel");
    write(dir_ / "builder", "#!/bin/sh\necho image >\"$3\"\n");
    std::filesystem::permissions(dir_ / "builder", std::filesystem::perms::owner_all);
    run_vm_ = [this](vmm::VmResources resources) {
      nlohmann::json got = {{"args", resources.container->args},
                            {"hostname", *resources.container->hostname},
                            {"memory", resources.machine_config.mem_size_mib},
                            {"kernel", resources.boot_source.kernel_image_path},
                            {"root", resources.root_drive()->path_on_host},
                            {"root_read_only", resources.root_drive()->is_read_only}};
      std::ofstream(dir_ / "vm-ran") << got.dump();
      // Wait for the test to let the "VM" end (so it can see it running).
      while (!std::filesystem::exists(dir_ / "vm-may-end")) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      return kWorkloadExit;
    };
  }
  void TearDown() override {
    for (const pid_t pid : children_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }
  static void write(const std::filesystem::path& path, const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
  }
  static std::string read(const std::filesystem::path& path) {
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
  }
  Runtime runtime() const {
    return Runtime(
        RuntimeEnvironment{dir_ / "root", dir_ / "cache", dir_ / "builder", {(dir_ / "vmlinux").string(), ""}});
  }
  // create, and in the forked VMM process: exit with what create returned there.
  Result<int> create(Runtime& rt, const std::string& id) {
    auto created = rt.create(CreateRequest{id, bundle_, dir_ / "pid"}, run_vm_);
    if (::getpid() != parent_) ::_exit(created.value_or(99));
    if (created) children_.push_back(pid_of(rt, id));
    return created;
  }
  static pid_t pid_of(Runtime& rt, const std::string& id) {
    auto state = rt.state(id);
    return state ? (*state)["pid"].get<pid_t>() : 0;
  }
  static std::string status(Runtime& rt, const std::string& id) {
    auto state = rt.state(id);
    return state ? (*state)["status"].get<std::string>() : "error: " + state.error().message;
  }
  // The VMM's wait status, once it ended.
  int reap(pid_t pid) {
    int wait_status = 0;
    EXPECT_EQ(::waitpid(pid, &wait_status, 0), pid);
    std::erase(children_, pid);
    return wait_status;
  }
  void wait_for(const std::filesystem::path& path) const {
    for (int i = 0; i < 2000 && !std::filesystem::exists(path); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_TRUE(std::filesystem::exists(path)) << path;
  }

  pid_t parent_ = 0;
  std::filesystem::path dir_, bundle_;
  RunVm run_vm_;
  std::vector<pid_t> children_;
};

TEST_F(OciRuntime, CreateStartStateDelete) {
  Runtime rt = runtime();
  ASSERT_TRUE(create(rt, "c1"));
  const pid_t vmm = pid_of(rt, "c1");
  ASSERT_GT(vmm, 0);
  EXPECT_EQ(read(dir_ / "pid"), std::to_string(vmm));
  EXPECT_EQ(status(rt, "c1"), "created");
  auto state = rt.state("c1");
  ASSERT_TRUE(state);
  EXPECT_EQ((*state)["id"], "c1");
  EXPECT_EQ((*state)["bundle"], bundle_.string());
  EXPECT_EQ((*state)["ociVersion"], "1.0.2-dev");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "vm-ran"));  // create does not run the workload

  ASSERT_TRUE(rt.start("c1"));
  wait_for(dir_ / "vm-ran");
  EXPECT_EQ(status(rt, "c1"), "running");
  const nlohmann::json got = nlohmann::json::parse(read(dir_ / "vm-ran"));
  EXPECT_EQ(got["args"], nlohmann::json({"sh", "-c", "exit 7"}));
  EXPECT_EQ(got["hostname"], "h1");
  EXPECT_EQ(got["memory"], 256);
  EXPECT_EQ(got["kernel"], (dir_ / "vmlinux").string());
  EXPECT_TRUE(got["root"].get<std::string>().starts_with((dir_ / "cache/oci-rootfs/").string())) << got["root"];
  EXPECT_TRUE(got["root_read_only"].get<bool>());

  write(dir_ / "vm-may-end", "");
  const int wait_status = reap(vmm);
  ASSERT_TRUE(WIFEXITED(wait_status));
  EXPECT_EQ(WEXITSTATUS(wait_status), kWorkloadExit);  // the VMM's exit status is the workload's
  state = rt.state("c1");
  ASSERT_TRUE(state);
  EXPECT_EQ((*state)["status"], "stopped");
  EXPECT_EQ((*state)["pid"], 0);
  EXPECT_EQ((*state)["exitStatus"], kWorkloadExit);

  auto listed = rt.list();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1U);
  EXPECT_EQ((*listed)[0]["id"], "c1");

  ASSERT_TRUE(rt.remove("c1", false));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "root/c1"));
  EXPECT_EQ(status(rt, "c1"), "error: container \"c1\" does not exist");
}

TEST_F(OciRuntime, WrongSteps) {
  Runtime rt = runtime();
  EXPECT_EQ(rt.start("nope").error().message, "container \"nope\" does not exist");
  EXPECT_EQ(rt.state("nope").error().message, "container \"nope\" does not exist");
  EXPECT_EQ(rt.kill("nope", SIGTERM).error().message, "container \"nope\" does not exist");
  EXPECT_EQ(rt.remove("nope", false).error().message, "container \"nope\" does not exist");
  EXPECT_TRUE(rt.remove("nope", true));  // --force: nothing to do
  EXPECT_EQ(rt.state("../etc").error().message, "invalid container ID format: '../etc'");
  EXPECT_EQ(rt.state("").error().message, "invalid container ID format: ''");

  ASSERT_TRUE(create(rt, "c1"));
  const pid_t vmm = pid_of(rt, "c1");
  auto again = create(rt, "c1");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, "container with id exists: c1");
  EXPECT_EQ(again.error().kind, ErrorKind::kWrongState);
  EXPECT_EQ(status(rt, "c1"), "created");  // the second create did not disturb the first

  ASSERT_TRUE(rt.start("c1"));
  wait_for(dir_ / "vm-ran");
  EXPECT_EQ(rt.start("c1").error().message, "cannot start an already running container");
  EXPECT_EQ(rt.remove("c1", false).error().message, "cannot delete container c1 that is not stopped: running");
  write(dir_ / "vm-may-end", "");
  reap(vmm);
  EXPECT_EQ(rt.start("c1").error().message, "cannot start a container that has stopped");
  EXPECT_EQ(rt.kill("c1", SIGTERM).error().message, "container not running");
  EXPECT_TRUE(rt.remove("c1", false));
}

TEST_F(OciRuntime, KillBeforeStartEndsTheVmm) {
  Runtime rt = runtime();
  ASSERT_TRUE(create(rt, "c1"));
  const pid_t vmm = pid_of(rt, "c1");
  ASSERT_TRUE(rt.kill("c1", SIGKILL));
  const int wait_status = reap(vmm);
  ASSERT_TRUE(WIFSIGNALED(wait_status));
  EXPECT_EQ(WTERMSIG(wait_status), SIGKILL);
  EXPECT_EQ(status(rt, "c1"), "stopped");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "vm-ran"));
  EXPECT_TRUE(rt.remove("c1", false));
}

TEST_F(OciRuntime, DeleteForceEndsARunningContainer) {
  Runtime rt = runtime();
  ASSERT_TRUE(create(rt, "c1"));
  const pid_t vmm = pid_of(rt, "c1");
  ASSERT_TRUE(rt.start("c1"));
  wait_for(dir_ / "vm-ran");
  // The VMM is this test's child: it stays a zombie until reaped, which delete counts as gone.
  ASSERT_TRUE(rt.remove("c1", true));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "root/c1"));
  EXPECT_TRUE(WIFSIGNALED(reap(vmm)));
}

TEST_F(OciRuntime, DeleteOfACreatedContainerKillsItsVmm) {
  Runtime rt = runtime();
  ASSERT_TRUE(create(rt, "c1"));
  const pid_t vmm = pid_of(rt, "c1");
  ASSERT_TRUE(rt.remove("c1", false));  // runc: a created container is deleted without --force
  EXPECT_TRUE(WIFSIGNALED(reap(vmm)));
}

TEST_F(OciRuntime, BadBundleLeavesNoContainer) {
  Runtime rt = runtime();
  write(bundle_ / "config.json",
        R"({"process": {"args": ["sh"], "cwd": "/", "terminal": true}, "root": {"path": "rootfs"}})");
  auto created = create(rt, "c1");
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().message,
            "config.json: process.terminal is not supported by microvm: no terminal or --console-socket yet (run "
            "without -t)");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "root/c1"));
  std::filesystem::remove(bundle_ / "config.json");
  created = create(rt, "c1");
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().message,
            fmt::format("bundle {} has no readable config.json: No such file or directory", bundle_.string()));
  // A failing image build leaves nothing behind either.
  write(bundle_ / "config.json", R"({"process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "rootfs"}})");
  write(dir_ / "builder", "#!/bin/sh\necho 'rootfs-build: error: no space' >&2\nexit 1\n");
  created = create(rt, "c1");
  ASSERT_FALSE(created);
  EXPECT_TRUE(created.error().message.ends_with("failed: rootfs-build: error: no space")) << created.error().message;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "root/c1"));
}

TEST_F(OciRuntime, ContainerIds) {
  EXPECT_TRUE(check_container_id("abc-DEF_1.2+3"));
  EXPECT_TRUE(check_container_id(std::string(64, 'a')));
  for (const char* bad : {"", ".", "..", "a/b", "a b", "x\n", "é"}) EXPECT_FALSE(check_container_id(bad)) << bad;
}

}  // namespace

TEST(OciHook, GetsTheStateOnStdinAndItsArgsAndEnv) {
  const std::filesystem::path out = std::filesystem::temp_directory_path() / fmt::format("hook-{}.out", ::getpid());
  const Hook hook{"prestart",
                  "/bin/sh",
                  {"sh", "-c", "cat > \"$1\"; echo \" $0 $V\" >> \"$1\"", "name", out.string()},
                  {"V=env"},
                  5};
  ASSERT_TRUE(run_hook(hook, R"({"id":"c1","pid":42})"));
  std::ifstream file(out);
  std::stringstream text;
  text << file.rdbuf();
  EXPECT_EQ(text.str(), "{\"id\":\"c1\",\"pid\":42} name env\n");
  std::filesystem::remove(out);
}

TEST(OciHook, FailureExitSignalTimeoutAndMissingBinaryAreErrors) {
  EXPECT_EQ(run_hook(Hook{"prestart", "/bin/sh", {"sh", "-c", "exit 7"}, {}, 0}, "{}").error().message,
            "the prestart hook /bin/sh failed with exit status 7");
  EXPECT_EQ(run_hook(Hook{"prestart", "/bin/sh", {"sh", "-c", "kill -9 $$"}, {}, 0}, "{}").error().message,
            "the prestart hook /bin/sh was killed by signal 9");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(run_hook(Hook{"createRuntime", "/bin/sh", {"sh", "-c", "exec sleep 30"}, {}, 1}, "{}").error().message,
            "the createRuntime hook /bin/sh did not end within its timeout of 1 s");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(run_hook(Hook{"prestart", "/nonexistent/hook", {"hook"}, {}, 0}, "{}").error().message,
            "the prestart hook /nonexistent/hook failed with exit status 127");
}

}  // namespace microvm::oci
