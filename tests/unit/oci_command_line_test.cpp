// The OCI runtime's command line (tools/oci/command_line.h): runc's shape, as conmon, containerd's
// shim and Docker call it, and how it is told apart from microvm's own CLI.
#include <gtest/gtest.h>

#include <csignal>
#include <string>
#include <vector>

#include "tools/oci/command_line.h"

namespace microvm::oci {
namespace {

using Args = std::vector<std::string>;

OciCommand parse_ok(const Args& args) {
  auto command = parse_oci_command_line(args);
  EXPECT_TRUE(command) << command.error().message;
  return command.value_or(OciCommand{});
}

std::string error_of(const Args& args) {
  auto command = parse_oci_command_line(args);
  return command ? std::string("<parsed>") : command.error().message;
}

TEST(OciCommandLine, TellsTheOciRuntimeFromMicrovmsOwnCli) {
  EXPECT_TRUE(is_oci_invocation("/usr/local/bin/microvm-oci", {"start", "--kernel", "k"}));
  EXPECT_TRUE(is_oci_invocation("runc", {}));
  EXPECT_TRUE(is_oci_invocation("microvm", {"--root", "/run/x", "state", "c1"}));
  EXPECT_TRUE(is_oci_invocation("microvm", {"--root=/run/x", "list"}));
  EXPECT_TRUE(is_oci_invocation("microvm", {"--version"}));
  EXPECT_TRUE(is_oci_invocation("microvm", {"create", "--bundle", "b", "c1"}));
  EXPECT_TRUE(is_oci_invocation("microvm", {"delete", "c1"}));
  EXPECT_TRUE(is_oci_invocation("microvm", {"exec", "c1", "sh"}));  // unsupported, but the OCI runtime says so
  EXPECT_TRUE(is_oci_invocation("microvm", {"start", "c1"}));
  // microvm's own.
  EXPECT_FALSE(is_oci_invocation("microvm", {}));
  EXPECT_FALSE(is_oci_invocation("build/microvm", {"start", "--", "true"}));
  EXPECT_FALSE(is_oci_invocation("microvm", {"start", "--kernel", "vmlinux"}));
  EXPECT_FALSE(is_oci_invocation("microvm", {"start", "--api-sock"}));
  EXPECT_FALSE(is_oci_invocation("microvm", {"ctl", "--sock", "s", "status"}));
  EXPECT_FALSE(is_oci_invocation("microvm", {"rootfs", "build", "dir", "-o", "img"}));
  EXPECT_FALSE(is_oci_invocation("microvm", {"--help"}));
}

TEST(OciCommandLine, CreateAsConmonCallsIt) {
  // conmon: [global flags] create --bundle B --pid-file P [--console-socket S] ID
  const OciCommand command =
      parse_ok({"--root", "/run/r", "--log", "/tmp/l.json", "--log-format", "json", "--systemd-cgroup", "create",
                "--bundle", "/b", "--pid-file", "/p", "--no-new-keyring", "--no-pivot", "c1"});
  EXPECT_EQ(command.verb, Verb::kCreate);
  EXPECT_EQ(command.global.root, "/run/r");
  EXPECT_EQ(command.global.log, "/tmp/l.json");
  EXPECT_EQ(command.global.log_format, LogFormat::kJson);
  EXPECT_TRUE(command.global.systemd_cgroup);
  EXPECT_EQ(command.bundle, "/b");
  EXPECT_EQ(command.pid_file, "/p");
  EXPECT_TRUE(command.no_new_keyring);
  EXPECT_TRUE(command.no_pivot);
  EXPECT_EQ(command.id, "c1");
}

TEST(OciCommandLine, CreateDefaults) {
  const OciCommand command = parse_ok({"create", "c1"});
  EXPECT_EQ(command.global.root, kDefaultRoot);
  EXPECT_EQ(command.global.log_format, LogFormat::kText);
  EXPECT_EQ(command.bundle, ".");  // runc's: the current directory
  EXPECT_TRUE(command.pid_file.empty());
  EXPECT_TRUE(command.console_socket.empty());
  // The ID may come first, and = forms work.
  const OciCommand other =
      parse_ok({"--root=/r", "create", "c2", "-b", "/b", "--pid-file=/p", "--console-socket", "/s"});
  EXPECT_EQ(other.id, "c2");
  EXPECT_EQ(other.global.root, "/r");
  EXPECT_EQ(other.bundle, "/b");
  EXPECT_EQ(other.pid_file, "/p");
  EXPECT_EQ(other.console_socket, "/s");
}

TEST(OciCommandLine, OtherVerbs) {
  EXPECT_EQ(parse_ok({"start", "c1"}).verb, Verb::kStart);
  EXPECT_EQ(parse_ok({"state", "c1"}).verb, Verb::kState);
  const OciCommand kill = parse_ok({"kill", "c1"});
  EXPECT_EQ(kill.verb, Verb::kKill);
  EXPECT_EQ(kill.signal, SIGTERM);  // runc's default
  EXPECT_EQ(parse_ok({"kill", "c1", "KILL"}).signal, SIGKILL);
  EXPECT_EQ(parse_ok({"kill", "--all", "c1", "9"}).signal, SIGKILL);
  EXPECT_TRUE(parse_ok({"kill", "-a", "c1", "SIGINT"}).all);
  const OciCommand remove = parse_ok({"delete", "--force", "c1"});
  EXPECT_EQ(remove.verb, Verb::kDelete);
  EXPECT_TRUE(remove.force);
  EXPECT_FALSE(parse_ok({"delete", "c1"}).force);
  EXPECT_TRUE(parse_ok({"list", "--format", "json"}).json);
  EXPECT_FALSE(parse_ok({"list"}).json);
  EXPECT_EQ(parse_ok({"features"}).verb, Verb::kFeatures);
  EXPECT_EQ(parse_ok({"--version"}).verb, Verb::kVersion);
  EXPECT_TRUE(parse_ok({"--debug", "run", "-d", "--bundle", "/b", "c1"}).detach);
}

TEST(OciCommandLine, Errors) {
  EXPECT_EQ(error_of({}), "no command given: create, start, state, kill, delete, run, list or features");
  EXPECT_EQ(error_of({"--root"}), "flag --root needs a value");
  EXPECT_EQ(error_of({"--root", "", "state", "c1"}), "--root must not be empty");
  EXPECT_EQ(error_of({"--bogus", "state", "c1"}), "unknown global flag '--bogus'; see 'microvm --help'");
  EXPECT_EQ(error_of({"--log-format", "xml", "state", "c1"}), "--log-format 'xml' is not text or json");
  EXPECT_EQ(error_of({"exec", "c1", "sh"}), "'exec' is not supported by microvm's OCI runtime yet");
  EXPECT_EQ(error_of({"frobnicate", "c1"}), "unknown command 'frobnicate'");
  EXPECT_NE(error_of({"state"}).find("state: id is required"), std::string::npos) << error_of({"state"});
  EXPECT_NE(error_of({"start", "c1", "c2"}).find("start: "), std::string::npos);
  EXPECT_NE(error_of({"create", "--bundle"}).find("create: "), std::string::npos);
  EXPECT_NE(error_of({"delete", "--frce", "c1"}).find("delete: "), std::string::npos);
  EXPECT_EQ(error_of({"kill", "c1", "NOPE"}), "unknown signal 'NOPE': give a name like TERM or KILL, or a number");
}

TEST(OciCommandLine, Signals) {
  EXPECT_EQ(parse_signal("TERM"), SIGTERM);
  EXPECT_EQ(parse_signal("SIGTERM"), SIGTERM);
  EXPECT_EQ(parse_signal("term"), SIGTERM);
  EXPECT_EQ(parse_signal("KILL"), SIGKILL);
  EXPECT_EQ(parse_signal("HUP"), SIGHUP);
  EXPECT_EQ(parse_signal("USR1"), SIGUSR1);
  EXPECT_EQ(parse_signal("15"), SIGTERM);
  EXPECT_EQ(parse_signal("9"), SIGKILL);
  EXPECT_FALSE(parse_signal("0"));
  EXPECT_FALSE(parse_signal("65"));
  EXPECT_FALSE(parse_signal("-9"));
  EXPECT_FALSE(parse_signal(""));
  EXPECT_FALSE(parse_signal("SIG"));
  EXPECT_FALSE(parse_signal("15x"));
}

}  // namespace
}  // namespace microvm::oci
