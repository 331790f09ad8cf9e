// microvm-init's workload decisions (guest/init/workload.h, files.h): PATH lookup with Docker's exit
// codes, the exit status of a waited-for child, the environment, and the stop sequence.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "guest/init/files.h"
#include "guest/init/workload.h"

namespace microvm::guest {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class ScratchDir {
 public:
  ScratchDir() {
    std::string templ = (fs::temp_directory_path() / "microvm-init-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  // Creates dir/name (and dir) with `mode`; returns its path.
  std::string file(const std::string& relative, mode_t mode, const std::string& contents = "#!/bin/sh\n") const {
    const fs::path path = path_ / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path) << contents;
    if (::chmod(path.c_str(), mode) != 0) throw std::runtime_error("chmod failed");
    return path.string();
  }
  std::string dir(const std::string& relative) const {
    fs::create_directories(path_ / relative);
    return (path_ / relative).string();
  }
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(InitPathLookup, FindsTheFirstExecutableInPathOrder) {
  const ScratchDir scratch;
  const std::string a = scratch.dir("a");
  const std::string b = scratch.file("b/tool", 0755);
  const std::string c = scratch.file("c/tool", 0755);
  const LookupResult found = find_executable("tool", a + ":" + scratch.dir("b") + ":" + scratch.dir("c"));
  ASSERT_TRUE(found.path) << found.failure->message;
  EXPECT_EQ(*found.path, b);
  EXPECT_FALSE(found.failure);
}

TEST(InitPathLookup, NotFoundIs127) {
  const ScratchDir scratch;
  const LookupResult found = find_executable("foo", scratch.dir("a") + ":" + scratch.dir("b") + ":/nonexistent");
  EXPECT_FALSE(found.path);
  ASSERT_TRUE(found.failure);
  EXPECT_EQ(found.failure->exit_code, 127);
  EXPECT_EQ(found.failure->message, R"(exec "foo": executable file not found in $PATH)");
  EXPECT_EQ(find_executable("foo", "").failure->exit_code, 127);
}

TEST(InitPathLookup, NonExecutableIs126UnlessAnExecutableComesLater) {
  const ScratchDir scratch;
  scratch.file("a/tool", 0644);
  const LookupResult denied = find_executable("tool", scratch.dir("a") + ":" + scratch.dir("b"));
  EXPECT_FALSE(denied.path);
  ASSERT_TRUE(denied.failure);
  EXPECT_EQ(denied.failure->exit_code, 126);
  EXPECT_EQ(denied.failure->message, R"(exec "tool": permission denied)");

  const std::string later = scratch.file("b/tool", 0700);
  const LookupResult found = find_executable("tool", scratch.dir("a") + ":" + scratch.dir("b"));
  ASSERT_TRUE(found.path);
  EXPECT_EQ(*found.path, later);
}

TEST(InitPathLookup, DirectoriesInPathAreSkipped) {
  const ScratchDir scratch;
  scratch.dir("a/tool");
  const LookupResult found = find_executable("tool", scratch.dir("a"));
  ASSERT_TRUE(found.failure);
  EXPECT_EQ(found.failure->exit_code, 127);
}

TEST(InitPathLookup, NamesWithASlashAreNotSearched) {
  const ScratchDir scratch;
  const std::string in_path = scratch.file("bin/sub/tool", 0755);
  const std::string path_variable = scratch.dir("bin");
  // "sub/tool" exists under a PATH entry, but a name with a '/' is relative to the cwd only.
  const LookupResult relative = find_executable("sub/tool", path_variable);
  EXPECT_FALSE(relative.path);
  ASSERT_TRUE(relative.failure);
  EXPECT_EQ(relative.failure->exit_code, 127);
  EXPECT_EQ(relative.failure->message, R"(exec "sub/tool": no such file or directory)");

  const LookupResult absolute = find_executable(in_path, "/nonexistent");
  ASSERT_TRUE(absolute.path);
  EXPECT_EQ(*absolute.path, in_path);

  const std::string plain = scratch.file("data.txt", 0644);
  const LookupResult not_executable = find_executable(plain, path_variable);
  ASSERT_TRUE(not_executable.failure);
  EXPECT_EQ(not_executable.failure->exit_code, 126);
  EXPECT_EQ(not_executable.failure->message, "exec \"" + plain + "\": permission denied");

  const LookupResult directory = find_executable(path_variable, path_variable);
  ASSERT_TRUE(directory.failure);
  EXPECT_EQ(directory.failure->exit_code, 126);
  EXPECT_EQ(directory.failure->message, "exec \"" + path_variable + "\": is a directory");

  const LookupResult through_file = find_executable(plain + "/x", path_variable);
  ASSERT_TRUE(through_file.failure);
  EXPECT_EQ(through_file.failure->exit_code, 127);
}

TEST(InitPathLookup, EmptyPathEntryIsTheWorkingDirectory) {
  const ScratchDir scratch;
  const std::string tool = scratch.file("tool", 0755);
  const fs::path before = fs::current_path();
  fs::current_path(scratch.path());
  const LookupResult leading = find_executable("tool", ":/nonexistent");
  const LookupResult trailing = find_executable("tool", "/nonexistent:");
  const LookupResult none = find_executable("tool", "/nonexistent");
  fs::current_path(before);
  ASSERT_TRUE(leading.path);
  EXPECT_EQ(*leading.path, "./tool");
  ASSERT_TRUE(trailing.path);
  EXPECT_EQ(*trailing.path, "./tool");
  EXPECT_FALSE(none.path);
}

TEST(InitPathLookup, ExecErrorsMapToDockerCodes) {
  EXPECT_EQ(exec_failure("/bin/app", ENOENT), (ExecFailure{127, R"(exec "/bin/app": no such file or directory)"}));
  EXPECT_EQ(exec_failure("app", EACCES), (ExecFailure{126, R"(exec "app": permission denied)"}));
  EXPECT_EQ(exec_failure("app", ENOEXEC), (ExecFailure{126, R"(exec "app": exec format error)"}));
  EXPECT_EQ(exec_failure("app", E2BIG), (ExecFailure{126, R"(exec "app": argument list too long)"}));
  EXPECT_EQ(exec_failure("a\"b", EACCES).message, R"(exec "a\"b": permission denied)");
}

// Forks a child that ends the way `body` makes it, and returns the init's status for it.
template <typename Body>
int status_of_child(Body body) {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    body();
    ::_exit(0);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) throw std::runtime_error("waitpid failed");
  return exit_status_from_wait(status);
}

TEST(InitExitStatus, ExitCodeOr128PlusSignal) {
  EXPECT_EQ(status_of_child([] {}), 0);
  EXPECT_EQ(status_of_child([] { ::_exit(3); }), 3);
  EXPECT_EQ(status_of_child([] { ::_exit(255); }), 255);
  EXPECT_EQ(status_of_child([] { ::raise(SIGKILL); }), 128 + SIGKILL);
  EXPECT_EQ(status_of_child([] { ::raise(SIGTERM); }), 143);
  EXPECT_EQ(status_of_child([] {
              ::signal(SIGSEGV, SIG_DFL);
              ::raise(SIGSEGV);
            }),
            139);
}

TEST(InitEnvironment, AddsHostnameAndHomeLikeDocker) {
  EXPECT_EQ(workload_environment({"PATH=/bin", "K=V"}, "microvm", "/root"),
            (std::vector<std::string>{"PATH=/bin", "HOSTNAME=microvm", "K=V", "HOME=/root"}));
  EXPECT_EQ(workload_environment({"K=V"}, "box", "/"), (std::vector<std::string>{"HOSTNAME=box", "K=V", "HOME=/"}));
  EXPECT_EQ(workload_environment({}, "", "/home/app"), (std::vector<std::string>{"HOME=/home/app"}));
}

TEST(InitEnvironment, KeepsGivenValuesAndReplacesDuplicatesInPlace) {
  EXPECT_EQ(workload_environment({"HOME=/custom", "A=1", "HOSTNAME=mine", "A=2", "B=", "A=3"}, "microvm", "/root"),
            (std::vector<std::string>{"HOME=/custom", "A=3", "HOSTNAME=mine", "B="}));
  EXPECT_EQ(env_value({"PATH=/a", "PATHX=/b", "PATH=/c"}, "PATH"), "/c");
  EXPECT_EQ(env_value({"PATHX=/b"}, "PATH"), std::nullopt);
  EXPECT_EQ(env_value({"EMPTY="}, "EMPTY"), "");
}

TEST(InitStopSequence, TermThenKillAfterTheGracePeriod) {
  const StopSequence::Clock::time_point t0{};
  StopSequence stop(3000ms);
  EXPECT_EQ(stop.update(t0, false), StopSequence::Action::kNone);
  EXPECT_FALSE(stop.kill_deadline());
  EXPECT_EQ(stop.update(t0 + 1s, true), StopSequence::Action::kTerminate);
  EXPECT_EQ(stop.kill_deadline(), t0 + 4s);
  EXPECT_EQ(stop.update(t0 + 2s, true), StopSequence::Action::kNone);  // asked again: no second SIGTERM
  EXPECT_EQ(stop.update(t0 + 4s - 1ms, false), StopSequence::Action::kNone);
  EXPECT_EQ(stop.update(t0 + 4s, false), StopSequence::Action::kKill);
  EXPECT_FALSE(stop.kill_deadline());
  EXPECT_EQ(stop.update(t0 + 10s, true), StopSequence::Action::kNone);  // SIGKILL once
}

TEST(InitStopSequence, ZeroGraceKillsOnTheNextTurn) {
  const StopSequence::Clock::time_point t0{};
  StopSequence stop(0ms);
  EXPECT_EQ(stop.update(t0, true), StopSequence::Action::kTerminate);
  EXPECT_EQ(stop.kill_deadline(), t0);
  EXPECT_EQ(stop.update(t0, false), StopSequence::Action::kKill);
}

TEST(InitFiles, ReadsWholeFilesWithALimit) {
  const ScratchDir scratch;
  const std::string path = scratch.file("spec.json", 0644, std::string(10000, 'x'));
  const auto contents = read_file(path, 10000);
  ASSERT_TRUE(contents) << contents.error().message;
  EXPECT_EQ(contents->size(), 10000U);
  const auto too_big = read_file(path, 9999);
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error().message, path + " is larger than 9999 bytes");
  const auto missing = read_file((scratch.path() / "missing").string(), 10);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message,
            "cannot open " + (scratch.path() / "missing").string() + ": No such file or directory");

  const auto optional_missing = read_optional_file((scratch.path() / "etc/passwd").string(), 10);
  ASSERT_TRUE(optional_missing) << optional_missing.error().message;
  EXPECT_FALSE(*optional_missing);
  const auto optional_present = read_optional_file(path, 10000);
  ASSERT_TRUE(optional_present && *optional_present);
  // A directory exists but cannot be read as a file: that is an error, not "missing".
  EXPECT_FALSE(read_optional_file(scratch.path().string(), 10));
}

}  // namespace
}  // namespace microvm::guest
