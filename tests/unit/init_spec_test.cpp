// microvm-init's spec.json parser (guest/protocol/spec.h): every field, its defaults, and the errors for
// missing, mistyped and malformed values.
#include <gtest/gtest.h>

#include <string>

#include "guest/protocol/spec.h"

namespace microvm::guest {
namespace {

constexpr const char* kFullSpec = R"({
  "args": ["/bin/sh", "-c", "echo hi"],
  "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "K=V"],
  "cwd": "/work",
  "user": "nobody:nogroup",
  "hostname": "microvm",
  "root": {"device": "/dev/vdb", "fstype": "ext4", "writable_overlay": false},
  "network": [{"interface": "eth0", "address": "169.254.0.2/16", "gateway": "169.254.0.1",
               "dns": ["169.254.0.1", "10.0.0.53"]}],
  "stop_grace_ms": 3000
})";

Ipv4Address ip(const char* text) {
  return *parse_ipv4(text);
}

// The error message for `json`, or a note that it parsed.
std::string error_of(const std::string& json) {
  const auto spec = parse_spec(json);
  return spec ? std::string("<parsed>") : spec.error().message;
}

// A minimal valid spec with `field` (a "key": value fragment) added.
std::string with(const std::string& field) {
  return R"({"args": ["true"], )" + field + "}";
}

TEST(InitSpec, ParsesEveryField) {
  const auto spec = parse_spec(kFullSpec);
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->args, (std::vector<std::string>{"/bin/sh", "-c", "echo hi"}));
  EXPECT_EQ(spec->env,
            (std::vector<std::string>{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "K=V"}));
  EXPECT_EQ(spec->cwd, "/work");
  EXPECT_EQ(spec->user, "nobody:nogroup");
  EXPECT_EQ(spec->hostname, "microvm");
  EXPECT_EQ(spec->root, (RootSpec{"/dev/vdb", "ext4", false}));
  ASSERT_EQ(spec->network.size(), 1U);
  const NetworkSpec& net = spec->network[0];
  EXPECT_EQ(net.interface, "eth0");
  EXPECT_EQ(net.address, (Ipv4Cidr{ip("169.254.0.2"), 16}));
  EXPECT_EQ(net.gateway, ip("169.254.0.1"));
  EXPECT_EQ(net.dns, (std::vector<Ipv4Address>{ip("169.254.0.1"), ip("10.0.0.53")}));
  EXPECT_EQ(spec->stop_grace_ms, 3000U);
}

TEST(InitSpec, DefaultsForEverythingButArgs) {
  const auto spec = parse_spec(R"({"args": ["true"]})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->args, std::vector<std::string>{"true"});
  EXPECT_TRUE(spec->env.empty());
  EXPECT_EQ(spec->cwd, "/");
  EXPECT_EQ(spec->user, "");
  EXPECT_EQ(spec->hostname, "");
  EXPECT_EQ(spec->root, (RootSpec{"/dev/vda", "ext4", true}));
  EXPECT_TRUE(spec->network.empty());
  EXPECT_EQ(spec->stop_grace_ms, kDefaultStopGraceMs);
  // An empty root object keeps every default too.
  const auto empty_root = parse_spec(with(R"("root": {})"));
  ASSERT_TRUE(empty_root) << empty_root.error().message;
  EXPECT_EQ(empty_root->root, RootSpec{});
}

TEST(InitSpec, RoundTripsThroughSpecToJson) {
  const auto spec = parse_spec(kFullSpec);
  ASSERT_TRUE(spec);
  const auto again = parse_spec(spec_to_json(*spec));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, *spec);
}

TEST(InitSpec, AdditionalGidsAndFiles) {
  const auto spec = parse_spec(with(R"("additional_gids": [10, 0, 2147483647],
      "files": [{"path": "/etc/hosts", "contents": "127.0.0.1 localhost\n", "mode": 292}, {"path": "/run/empty"}])"));
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->additional_gids, (std::vector<std::uint32_t>{10, 0, 2147483647}));
  EXPECT_EQ(spec->files,
            (std::vector<FileSpec>{{"/etc/hosts", "127.0.0.1 localhost\n", 0444}, {"/run/empty", "", 0644}}));
  const auto again = parse_spec(spec_to_json(*spec));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, *spec);
  const auto none = parse_spec(with(R"("cwd": "/")"));
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->additional_gids.empty());
  EXPECT_TRUE(none->files.empty());
}

TEST(InitSpec, BadAdditionalGidsAndFiles) {
  EXPECT_EQ(error_of(with(R"("additional_gids": 5)")), R"(spec: "additional_gids" must be an array of group ids)");
  EXPECT_EQ(error_of(with(R"("additional_gids": [1, -1])")),
            R"(spec: "additional_gids[1]" must be a group id 0..2147483647)");
  EXPECT_EQ(error_of(with(R"("additional_gids": [2147483648])")),
            R"(spec: "additional_gids[0]" must be a group id 0..2147483647)");
  EXPECT_EQ(error_of(with(R"("files": {})")), R"(spec: "files" must be an array of files)");
  EXPECT_EQ(error_of(with(R"("files": ["/etc/hosts"])")), R"(spec: "files[0]" must be an object)");
  EXPECT_EQ(error_of(with(R"("files": [{"contents": "x"}])")), R"(spec: "files[0].path" is required)");
  EXPECT_EQ(error_of(with(R"("files": [{"path": "/x", "owner": 0}])")), R"(spec: unknown field "owner" in "files[0]")");
  for (const char* path : {"etc/hosts", "/", "/etc/", "/etc//hosts", "/etc/./hosts", "/../etc/passwd", "/etc/.."}) {
    EXPECT_EQ(error_of(with(std::string(R"("files": [{"path": ")") + path + R"("}])")),
              std::string(R"(spec: "files[0].path" must be an absolute path without . or .. components, not ")") +
                  path + "\"")
        << path;
  }
  EXPECT_EQ(error_of(with(R"("files": [{"path": "/x", "contents": 1}])")),
            R"(spec: "files[0].contents" must be a string)");
  EXPECT_EQ(error_of(with(R"("files": [{"path": "/x", "mode": 4096}])")),
            R"(spec: "files[0].mode" must be a file mode 0..4095 (07777))");
  std::string many = R"("files": [)";
  for (std::size_t i = 0; i <= kMaxFiles; ++i) many += std::string(i == 0 ? "" : ",") + R"({"path": "/f"})";
  EXPECT_EQ(error_of(with(many + "]")), R"(spec: "files" must have at most 64 entries)");
}

TEST(InitSpec, RejectsWhatIsNotASpec) {
  EXPECT_TRUE(error_of("").starts_with("spec: not valid JSON: parse error at line 1, column 1: ")) << error_of("");
  EXPECT_NE(error_of(R"({"args": ["true"])").find("spec: not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"args": ["true"]} trailing)").find("spec: not valid JSON"), std::string::npos);
  EXPECT_EQ(error_of(R"(["true"])"), "spec: must be a JSON object");
  EXPECT_EQ(error_of(with(R"("comand": ["x"])")), R"(spec: unknown field "comand" in the spec)");
  EXPECT_EQ(error_of(with(R"("root": {"device": "/dev/vda", "ro": true})")), R"(spec: unknown field "ro" in "root")");
}

TEST(InitSpec, ArgsAreRequiredAndNonEmpty) {
  EXPECT_EQ(error_of("{}"), R"(spec: "args" is required (the command to run))");
  EXPECT_EQ(error_of(R"({"args": []})"), R"(spec: "args" must have at least one element (the executable))");
  EXPECT_EQ(error_of(R"({"args": [""]})"), R"(spec: "args[0]" must not be empty)");
  EXPECT_EQ(error_of(R"({"args": "echo hi"})"), R"(spec: "args" must be an array of strings)");
  EXPECT_EQ(error_of(R"({"args": ["echo", 1]})"), R"(spec: "args[1]" must be a string)");
  EXPECT_EQ(error_of(R"({"args": ["echo", "a\u0000b"]})"), R"(spec: "args[1]" must not contain a NUL character)");
  // Empty later arguments are fine: `sh -c ''` is a command.
  EXPECT_EQ(error_of(R"({"args": ["sh", "-c", ""]})"), "<parsed>");
}

TEST(InitSpec, EnvEntriesAreKeyValue) {
  EXPECT_EQ(error_of(with(R"("env": "K=V")")), R"(spec: "env" must be an array of strings)");
  EXPECT_EQ(error_of(with(R"("env": [{"K": "V"}])")), R"(spec: "env[0]" must be a string)");
  EXPECT_EQ(error_of(with(R"("env": ["A=1", "NOVALUE"])")),
            R"(spec: "env[1]" must be KEY=VALUE with a non-empty KEY, not "NOVALUE")");
  EXPECT_EQ(error_of(with(R"("env": ["=x"])")), R"(spec: "env[0]" must be KEY=VALUE with a non-empty KEY, not "=x")");
  EXPECT_EQ(error_of(with(R"("env": ["EMPTY=", "A=b=c"])")), "<parsed>");
}

TEST(InitSpec, CwdIsAnAbsolutePath) {
  EXPECT_EQ(error_of(with(R"("cwd": "work")")), R"(spec: "cwd" must be an absolute path, not "work")");
  EXPECT_EQ(error_of(with(R"("cwd": "")")), R"(spec: "cwd" must be an absolute path, not "")");
  EXPECT_EQ(error_of(with(R"("cwd": 7)")), R"(spec: "cwd" must be a string)");
}

TEST(InitSpec, UserSyntax) {
  for (const char* good : {"", "1000", "1000:1000", "nobody", "nobody:nogroup", "1000:nogroup", ":5", "2147483647"}) {
    EXPECT_EQ(error_of(with(std::string(R"("user": ")") + good + "\"")), "<parsed>") << good;
  }
  EXPECT_EQ(error_of(with(R"("user": 1000)")), R"(spec: "user" must be a string)");
  EXPECT_EQ(error_of(with(R"("user": "a:b:c")")),
            R"(spec: "user": invalid user "a:b:c": expected USER[:GROUP], each a name or a number)");
  EXPECT_EQ(error_of(with(R"("user": "2147483648")")),
            R"(spec: "user": user id 2147483648 is out of range 0..2147483647)");
  EXPECT_EQ(error_of(with(R"("user": "0:99999999999")")),
            R"(spec: "user": group id 99999999999 is out of range 0..2147483647)");
  EXPECT_EQ(error_of(with(R"("user": "bad\nname")")), R"(spec: "user": user "bad\x0aname" has a control character)");
}

TEST(InitSpec, Hostname) {
  EXPECT_EQ(error_of(with(R"("hostname": ")" + std::string(64, 'h') + "\"")), "<parsed>");
  EXPECT_EQ(error_of(with(R"("hostname": ")" + std::string(65, 'h') + "\"")),
            R"(spec: "hostname" must be at most 64 bytes)");
  EXPECT_EQ(error_of(with(R"("hostname": null)")), R"(spec: "hostname" must be a string)");
}

TEST(InitSpec, Root) {
  EXPECT_EQ(error_of(with(R"("root": "/dev/vda")")), R"(spec: "root" must be an object)");
  EXPECT_EQ(error_of(with(R"("root": {"device": "vda"})")),
            R"(spec: "root.device" must be an absolute path, not "vda")");
  EXPECT_EQ(error_of(with(R"("root": {"device": 1})")), R"(spec: "root.device" must be a string)");
  EXPECT_EQ(error_of(with(R"("root": {"fstype": ""})")), R"(spec: "root.fstype" must not be empty)");
  EXPECT_EQ(error_of(with(R"("root": {"writable_overlay": "yes"})")),
            R"(spec: "root.writable_overlay" must be true or false)");
  EXPECT_EQ(error_of(with(R"("root": {"writable_overlay": 1})")),
            R"(spec: "root.writable_overlay" must be true or false)");
}

TEST(InitSpec, NetworkInterfaces) {
  const auto spec = parse_spec(with(R"("network": [{"interface": "eth0"},
      {"interface": "eth1", "address": "10.0.0.2/24", "gateway": "", "dns": []}])"));
  ASSERT_TRUE(spec) << spec.error().message;
  ASSERT_EQ(spec->network.size(), 2U);
  EXPECT_EQ(spec->network[0], (NetworkSpec{"eth0", std::nullopt, std::nullopt, {}}));  // only brought up
  EXPECT_EQ(spec->network[1].address, (Ipv4Cidr{ip("10.0.0.2"), 24}));
  EXPECT_FALSE(spec->network[1].gateway);

  const auto net = [](const std::string& fields) { return error_of(with(R"("network": [{)" + fields + "}]")); };
  EXPECT_EQ(error_of(with(R"("network": {"interface": "eth0"})")), R"(spec: "network" must be an array of interfaces)");
  EXPECT_EQ(error_of(with(R"("network": ["eth0"])")), R"(spec: "network[0]" must be an object)");
  EXPECT_EQ(net(R"("address": "10.0.0.2/24")"), R"(spec: "network[0].interface" is required)");
  EXPECT_EQ(net(R"("interface": "")"),
            R"(spec: "network[0].interface" must be a network interface name like eth0, not "")");
  EXPECT_EQ(net(R"("interface": "a-very-long-name0")"),
            R"(spec: "network[0].interface" must be a network interface name like eth0, not "a-very-long-name0")");
  EXPECT_EQ(net(R"("interface": "eth/0")"),
            R"(spec: "network[0].interface" must be a network interface name like eth0, not "eth/0")");
  EXPECT_EQ(net(R"("interface": "eth0", "mtu": 1500)"), R"(spec: unknown field "mtu" in "network[0]")");
  EXPECT_EQ(error_of(with(R"("network": [{"interface": "eth0"}, {"interface": "eth0"}])")),
            R"(spec: "network[1].interface" names eth0 twice)");
}

TEST(InitSpec, BadAddressesAndPrefixes) {
  const auto address = [](const std::string& text) {
    return error_of(with(R"("network": [{"interface": "eth0", "address": ")" + text + "\"}]"));
  };
  const std::string expected = R"(spec: "network[0].address" must be IPv4 ADDRESS/PREFIX (prefix 0..32) like )"
                               R"(169.254.0.2/16, not ")";
  for (const char* bad : {"169.254.0.2", "169.254.0.2/33", "169.254.0.2/-1", "169.254.0.2/", "169.254.0.2/16/1",
                          "169.254.0.2/abc", "169.254.0.2/016", "169.254.0/16", "169.254.0.256/16", "169.254.0.2.1/16",
                          "169.254.00.2/16", " 169.254.0.2/16", "fe80::1/64", "/16"}) {
    EXPECT_EQ(address(bad), expected + bad + "\"") << bad;
  }
  EXPECT_EQ(address("169.254.0.2/0"), "<parsed>");
  EXPECT_EQ(address("169.254.0.2/32"), "<parsed>");
  EXPECT_EQ(error_of(with(R"("network": [{"interface": "eth0", "address": 7}])")),
            R"(spec: "network[0].address" must be a string)");
}

TEST(InitSpec, GatewayAndDns) {
  const auto net = [](const std::string& fields) {
    return error_of(with(R"("network": [{"interface": "eth0", )" + fields + "}]"));
  };
  EXPECT_EQ(net(R"("gateway": "10.0.0.1")"), R"(spec: "network[0].gateway" needs an "address" on the same interface)");
  EXPECT_EQ(net(R"("address": "10.0.0.2/24", "gateway": "10.0.1.1")"),
            R"(spec: "network[0].gateway" 10.0.1.1 is not another host in 10.0.0.2/24)");
  EXPECT_EQ(net(R"("address": "10.0.0.2/24", "gateway": "10.0.0.2")"),
            R"(spec: "network[0].gateway" 10.0.0.2 is not another host in 10.0.0.2/24)");
  EXPECT_EQ(net(R"("address": "10.0.0.2/24", "gateway": "10.0.0")"),
            R"(spec: "network[0].gateway" must be an IPv4 address like 169.254.0.1, not "10.0.0")");
  EXPECT_EQ(net(R"("dns": "10.0.0.1")"), R"(spec: "network[0].dns" must be an array of strings)");
  EXPECT_EQ(net(R"("dns": ["10.0.0.1", "dns.google"])"),
            R"(spec: "network[0].dns[1]" must be an IPv4 address like 169.254.0.1, not "dns.google")");
  EXPECT_EQ(error_of(with(R"("network": [
      {"interface": "eth0", "address": "10.0.0.2/24", "gateway": "10.0.0.1"},
      {"interface": "eth1", "address": "10.0.1.2/24", "gateway": "10.0.1.1"}])")),
            R"(spec: "network[1].gateway" is a second default route (eth0 has one already))");
}

TEST(InitSpec, StopGrace) {
  EXPECT_EQ(error_of(with(R"("stop_grace_ms": 0)")), "<parsed>");
  EXPECT_EQ(error_of(with(R"("stop_grace_ms": 86400000)")), "<parsed>");
  const std::string expected = R"(spec: "stop_grace_ms" must be a whole number of milliseconds 0..86400000)";
  for (const char* bad : {"-1", "86400001", "1.5", "\"3000\"", "true", "null", "1e3"}) {
    EXPECT_EQ(error_of(with(std::string(R"("stop_grace_ms": )") + bad)), expected) << bad;
  }
}

TEST(InitSpec, DnsServersOfAllInterfacesWithoutDuplicates) {
  const auto spec = parse_spec(with(R"("network": [
      {"interface": "eth0", "dns": ["10.0.0.1", "10.0.0.2"]},
      {"interface": "eth1", "dns": ["10.0.0.2", "10.0.0.3"]}])"));
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(all_dns_servers(*spec), (std::vector<Ipv4Address>{ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")}));
}

}  // namespace
}  // namespace microvm::guest
