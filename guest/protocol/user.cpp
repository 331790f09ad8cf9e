#include "guest/protocol/user.h"

#include <algorithm>
#include <charconv>

namespace microvm::guest {

namespace {

// passwd(5) and group(5) field positions.
constexpr std::size_t kPasswdName = 0;
constexpr std::size_t kPasswdUid = 2;
constexpr std::size_t kPasswdGid = 3;
constexpr std::size_t kPasswdHome = 5;
constexpr std::size_t kGroupName = 0;
constexpr std::size_t kGroupGid = 2;
constexpr std::size_t kGroupMembers = 3;

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  while (true) {
    const std::size_t at = text.find(separator);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return parts;
    text.remove_prefix(at + 1);
  }
}

// Digits only, at most kMaxId. nullopt for anything else (a name, or a number out of range).
std::optional<std::uint32_t> parse_id(std::string_view text) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size() || value > kMaxId) return std::nullopt;
  return static_cast<std::uint32_t>(value);
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The lines of a passwd/group file that can hold an entry, split into fields.
template <typename Visit>
void for_each_record(std::string_view text, Visit visit) {
  for (std::string_view line : split(text, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // Empty lines, comments, and NIS "+name"/"-name" compat entries, which need NSS.
    if (line.empty() || line.front() == '#' || line.front() == '+' || line.front() == '-') continue;
    visit(split(line, ':'));
  }
}

Result<void> check_part(std::string_view part, std::string_view kind) {
  if (std::any_of(part.begin(), part.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return fail(std::string(kind) + " " + in_quotes(part) + " has a control character");
  }
  if (all_digits(part) && !parse_id(part)) {
    return fail(std::string(kind) + " id " + std::string(part) + " is out of range 0.." + std::to_string(kMaxId));
  }
  return {};
}

}  // namespace

std::vector<PasswdEntry> parse_passwd(std::string_view text) {
  std::vector<PasswdEntry> entries;
  for_each_record(text, [&](const std::vector<std::string_view>& fields) {
    if (fields.size() <= kPasswdGid || fields[kPasswdName].empty()) return;
    const auto uid = parse_id(fields[kPasswdUid]);
    const auto gid = parse_id(fields[kPasswdGid]);
    if (!uid || !gid) return;
    PasswdEntry entry{std::string(fields[kPasswdName]), *uid, *gid, {}};
    if (fields.size() > kPasswdHome) entry.home = std::string(fields[kPasswdHome]);
    entries.push_back(std::move(entry));
  });
  return entries;
}

std::vector<GroupEntry> parse_group(std::string_view text) {
  std::vector<GroupEntry> entries;
  for_each_record(text, [&](const std::vector<std::string_view>& fields) {
    if (fields.size() <= kGroupGid || fields[kGroupName].empty()) return;
    const auto gid = parse_id(fields[kGroupGid]);
    if (!gid) return;
    GroupEntry entry{std::string(fields[kGroupName]), *gid, {}};
    if (fields.size() > kGroupMembers) {
      for (const std::string_view member : split(fields[kGroupMembers], ',')) {
        if (!member.empty()) entry.members.emplace_back(member);
      }
    }
    entries.push_back(std::move(entry));
  });
  return entries;
}

Result<UserSpec> parse_user_spec(std::string_view text) {
  const std::size_t colon = text.find(':');
  if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos) {
    return fail("invalid user " + in_quotes(text) + ": expected USER[:GROUP], each a name or a number");
  }
  UserSpec spec{std::string(text.substr(0, colon)), {}};
  if (colon != std::string_view::npos) spec.group = std::string(text.substr(colon + 1));
  if (auto checked = check_part(spec.user, "user"); !checked) return std::unexpected(checked.error());
  if (auto checked = check_part(spec.group, "group"); !checked) return std::unexpected(checked.error());
  return spec;
}

Result<Credentials> resolve_user(std::string_view spec, std::optional<std::string_view> passwd,
                                 std::optional<std::string_view> group) {
  auto parsed = parse_user_spec(spec);
  if (!parsed) return std::unexpected(parsed.error());
  const UserSpec& wanted = *parsed;
  const std::optional<std::uint32_t> wanted_uid =
      wanted.user.empty() ? std::optional<std::uint32_t>(0) : parse_id(wanted.user);

  Credentials credentials;
  std::string matched_name;
  const std::vector<PasswdEntry> users = passwd ? parse_passwd(*passwd) : std::vector<PasswdEntry>{};
  const auto user = std::find_if(users.begin(), users.end(), [&](const PasswdEntry& entry) {
    return wanted_uid ? entry.uid == *wanted_uid : entry.name == wanted.user;
  });
  if (user != users.end()) {
    matched_name = user->name;
    credentials.uid = user->uid;
    credentials.gid = user->gid;
    if (!user->home.empty()) credentials.home = user->home;
  } else if (!wanted_uid) {
    return fail("unable to find user " + wanted.user + ": no matching entries in passwd file");
  } else {
    credentials.uid = *wanted_uid;  // a numeric user needs no entry
  }

  if (wanted.group.empty() && matched_name.empty()) return credentials;
  const std::vector<GroupEntry> groups = group ? parse_group(*group) : std::vector<GroupEntry>{};
  if (!wanted.group.empty()) {
    const std::optional<std::uint32_t> wanted_gid = parse_id(wanted.group);
    const auto found = std::find_if(groups.begin(), groups.end(), [&](const GroupEntry& entry) {
      return wanted_gid ? entry.gid == *wanted_gid : entry.name == wanted.group;
    });
    if (found != groups.end()) {
      credentials.gid = found->gid;
    } else if (wanted_gid) {
      credentials.gid = *wanted_gid;  // a numeric group needs no entry
    } else {
      return fail("unable to find group " + wanted.group + ": no matching entries in group file");
    }
    return credentials;  // an explicit group: no supplementary groups (runc's rule)
  }
  for (const GroupEntry& entry : groups) {
    if (std::find(entry.members.begin(), entry.members.end(), matched_name) != entry.members.end()) {
      credentials.supplementary_gids.push_back(entry.gid);
    }
  }
  return credentials;
}

}  // namespace microvm::guest
