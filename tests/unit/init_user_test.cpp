// microvm-init's user resolution (guest/protocol/user.h): the image's /etc/passwd and /etc/group
// parsed by hand, and Docker's (runc's) rules for USER[:GROUP].
#include <gtest/gtest.h>

#include <string>

#include "guest/protocol/user.h"

namespace microvm::guest {
namespace {

constexpr std::string_view kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "# a comment\n"
    "\n"
    "app:x:1000:1000:App,,,:/home/app:/bin/bash\r\n"
    "broken:x:notanumber:1:x:/nowhere:/bin/false\n"
    "short:x:5\n"
    "+nisuser::::::\n"
    "nohome:x:1001:1001\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin";  // no final newline

constexpr std::string_view kGroup =
    "root:x:0:\n"
    "daemon:x:1:\n"
    "tty:x:5:app\n"
    "wheel:x:10:root,app\n"
    "app:x:1000:\n"
    "docker:x:999:app,,other\n"
    "bad:x:x:app\n"
    "nogroup:x:65534:\n";

Result<Credentials> resolve(std::string_view spec) {
  return resolve_user(spec, kPasswd, kGroup);
}

TEST(InitUser, ParsesPasswd) {
  const std::vector<PasswdEntry> entries = parse_passwd(kPasswd);
  ASSERT_EQ(entries.size(), 5U);  // comment, blank, broken, short and NIS lines skipped
  EXPECT_EQ(entries[0], (PasswdEntry{"root", 0, 0, "/root"}));
  EXPECT_EQ(entries[1], (PasswdEntry{"daemon", 1, 1, "/usr/sbin"}));
  EXPECT_EQ(entries[2], (PasswdEntry{"app", 1000, 1000, "/home/app"}));  // CRLF tolerated
  EXPECT_EQ(entries[3], (PasswdEntry{"nohome", 1001, 1001, ""}));
  EXPECT_EQ(entries[4], (PasswdEntry{"nobody", 65534, 65534, "/nonexistent"}));
  EXPECT_TRUE(parse_passwd("").empty());
  EXPECT_TRUE(parse_passwd("big:x:2147483648:0::/:/bin/sh\n").empty());  // out of range
}

TEST(InitUser, ParsesGroup) {
  const std::vector<GroupEntry> entries = parse_group(kGroup);
  ASSERT_EQ(entries.size(), 7U);
  EXPECT_EQ(entries[0], (GroupEntry{"root", 0, {}}));
  EXPECT_EQ(entries[2], (GroupEntry{"tty", 5, {"app"}}));
  EXPECT_EQ(entries[3], (GroupEntry{"wheel", 10, {"root", "app"}}));
  EXPECT_EQ(entries[5], (GroupEntry{"docker", 999, {"app", "other"}}));  // empty member skipped
  EXPECT_EQ(entries[6], (GroupEntry{"nogroup", 65534, {}}));
}

TEST(InitUser, EmptyIsRootWithItsGroups) {
  const auto root = resolve("");
  ASSERT_TRUE(root) << root.error().message;
  EXPECT_EQ(*root, (Credentials{0, 0, {10}, "/root"}));
  // No passwd file at all: still root, HOME "/".
  const auto bare = resolve_user("", std::nullopt, std::nullopt);
  ASSERT_TRUE(bare) << bare.error().message;
  EXPECT_EQ(*bare, (Credentials{0, 0, {}, "/"}));
}

TEST(InitUser, ByName) {
  const auto app = resolve("app");
  ASSERT_TRUE(app) << app.error().message;
  EXPECT_EQ(*app, (Credentials{1000, 1000, {5, 10, 999}, "/home/app"}));
  const auto nobody = resolve("nobody");
  ASSERT_TRUE(nobody) << nobody.error().message;
  EXPECT_EQ(*nobody, (Credentials{65534, 65534, {}, "/nonexistent"}));
  const auto nohome = resolve("nohome");
  ASSERT_TRUE(nohome) << nohome.error().message;
  EXPECT_EQ(nohome->home, "/");
}

TEST(InitUser, ByNumber) {
  const auto app = resolve("1000");
  ASSERT_TRUE(app) << app.error().message;
  EXPECT_EQ(*app, (Credentials{1000, 1000, {5, 10, 999}, "/home/app"}));  // the entry with that uid
  const auto unknown = resolve("4242");
  ASSERT_TRUE(unknown) << unknown.error().message;
  EXPECT_EQ(*unknown, (Credentials{4242, 0, {}, "/"}));  // no entry needed
  const auto without_files = resolve_user("1000:1000", std::nullopt, std::nullopt);
  ASSERT_TRUE(without_files) << without_files.error().message;
  EXPECT_EQ(*without_files, (Credentials{1000, 1000, {}, "/"}));
}

TEST(InitUser, ExplicitGroupReplacesTheSupplementaryOnes) {
  const auto by_name = resolve("nobody:nogroup");
  ASSERT_TRUE(by_name) << by_name.error().message;
  EXPECT_EQ(*by_name, (Credentials{65534, 65534, {}, "/nonexistent"}));
  const auto app_tty = resolve("app:tty");
  ASSERT_TRUE(app_tty) << app_tty.error().message;
  EXPECT_EQ(*app_tty, (Credentials{1000, 5, {}, "/home/app"}));
  const auto numeric = resolve("1000:1000");
  ASSERT_TRUE(numeric) << numeric.error().message;
  EXPECT_EQ(*numeric, (Credentials{1000, 1000, {}, "/home/app"}));
  const auto unknown_gid = resolve("app:4343");
  ASSERT_TRUE(unknown_gid) << unknown_gid.error().message;
  EXPECT_EQ(unknown_gid->gid, 4343U);
  const auto root_with_group = resolve(":10");
  ASSERT_TRUE(root_with_group) << root_with_group.error().message;
  EXPECT_EQ(*root_with_group, (Credentials{0, 10, {}, "/root"}));
}

TEST(InitUser, MissingNamesFailLikeDocker) {
  EXPECT_EQ(resolve("foo").error().message, "unable to find user foo: no matching entries in passwd file");
  EXPECT_EQ(resolve("app:bar").error().message, "unable to find group bar: no matching entries in group file");
  EXPECT_EQ(resolve("broken").error().message, "unable to find user broken: no matching entries in passwd file");
  EXPECT_EQ(resolve_user("app", std::nullopt, kGroup).error().message,
            "unable to find user app: no matching entries in passwd file");
  EXPECT_EQ(resolve_user("app:tty", kPasswd, std::nullopt).error().message,
            "unable to find group tty: no matching entries in group file");
  EXPECT_EQ(resolve("a:b:c").error().message,
            R"(invalid user "a:b:c": expected USER[:GROUP], each a name or a number)");
  EXPECT_EQ(resolve("99999999999").error().message, "user id 99999999999 is out of range 0..2147483647");
}

TEST(InitUser, UserSpecSyntax) {
  const auto both = parse_user_spec("nobody:nogroup");
  ASSERT_TRUE(both);
  EXPECT_EQ(both->user, "nobody");
  EXPECT_EQ(both->group, "nogroup");
  const auto trailing_colon = parse_user_spec("1000:");
  ASSERT_TRUE(trailing_colon);
  EXPECT_EQ(trailing_colon->user, "1000");
  EXPECT_EQ(trailing_colon->group, "");
  EXPECT_FALSE(parse_user_spec("a\tb"));
  EXPECT_FALSE(parse_user_spec("a:b\x7f"));
}

}  // namespace
}  // namespace microvm::guest
