// The workload's user, resolved the way Docker (runc's libcontainer/user) does it, from the image's
// own /etc/passwd and /etc/group: the static init has no NSS, and the host's files mean nothing here.
//
//   ""            root: uid 0, gid and HOME from passwd's uid-0 entry (if any), supplementary
//                 groups = every group that lists that user's name as a member
//   "NAME"        passwd entry NAME (error if none); groups as above
//   "UID"         passwd entry with that uid if any, else uid UID with gid 0 and HOME "/"
//   "USER:GROUP"  USER as above; the primary gid is GROUP (a name from /etc/group, error if none, or a
//                 number that needs no entry); no supplementary groups (runc's rule for an explicit group)
// A part made only of digits is a number (0..2147483647); anything else is a name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "guest/protocol/result.h"

namespace microvm::guest {

inline constexpr std::uint32_t kMaxId = 2147483647;  // runc's maxID: ids are int32 in its world
inline constexpr std::string_view kDefaultHome = "/";

struct PasswdEntry {
  std::string name;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::string home;
  friend bool operator==(const PasswdEntry&, const PasswdEntry&) = default;
};

struct GroupEntry {
  std::string name;
  std::uint32_t gid = 0;
  std::vector<std::string> members;
  friend bool operator==(const GroupEntry&, const GroupEntry&) = default;
};

// passwd(5) "name:password:uid:gid:gecos:home:shell" and group(5) "name:password:gid:member,member"
// lines. Empty lines, '#' comments and malformed lines (too few fields, a non-numeric or
// out-of-range id) are skipped, as a libc would.
[[nodiscard]] std::vector<PasswdEntry> parse_passwd(std::string_view text);
[[nodiscard]] std::vector<GroupEntry> parse_group(std::string_view text);

// The spec's "user" field split into its parts; checks only the syntax (at most one ':', no
// control characters, numbers within 0..kMaxId).
struct UserSpec {
  std::string user;   // "" = root
  std::string group;  // "" = the user's own
};
[[nodiscard]] Result<UserSpec> parse_user_spec(std::string_view text);

struct Credentials {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::vector<std::uint32_t> supplementary_gids;  // setgroups() list; empty clears root's
  std::string home = std::string(kDefaultHome);
  friend bool operator==(const Credentials&, const Credentials&) = default;
};

// Resolves `spec` against the image's files; nullopt = the file does not exist (then only numeric
// ids and root resolve). Errors read like Docker's:
//   unable to find user foo: no matching entries in passwd file
//   unable to find group bar: no matching entries in group file
[[nodiscard]] Result<Credentials> resolve_user(std::string_view spec, std::optional<std::string_view> passwd,
                                               std::optional<std::string_view> group);

}  // namespace microvm::guest
