#include "runtime/oci/bundle.h"

#include <sys/stat.h>

#include <fmt/ranges.h>
#include <algorithm>
#include <array>
#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/error.h"

namespace microvm::oci {

namespace {

using nlohmann::json;

constexpr std::uint32_t kDefaultUmask = 022;  // the guest kernel's (and runc's) default
constexpr std::uint64_t kMiB = 1ULL << 20;
// Mounts microvm-init makes in every guest (guest/init/system.cpp), by destination and the types
// an engine asks for there.
struct GuestMount {
  std::string_view destination;
  std::array<std::string_view, 2> types;
};
constexpr std::array kGuestMounts{
    GuestMount{"/proc", {"proc", "proc"}},
    GuestMount{"/sys", {"sysfs", "sysfs"}},
    GuestMount{"/dev", {"tmpfs", "devtmpfs"}},
    GuestMount{"/dev/pts", {"devpts", "devpts"}},
    GuestMount{"/dev/shm", {"tmpfs", "bind"}},
    GuestMount{"/dev/mqueue", {"mqueue", "mqueue"}},
    GuestMount{"/sys/fs/cgroup", {"cgroup", "cgroup2"}},
    GuestMount{"/run", {"tmpfs", "tmpfs"}},
};
// The files an engine bind-mounts from its own state (podman, Docker, CRI-O): copied in.
constexpr std::array<std::string_view, 4> kEngineFiles{"/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
                                                       "/run/.containerenv"};
// Namespaces a VM has of its own.
constexpr std::array<std::string_view, 7> kMootNamespaces{"pid", "ipc", "uts", "mount", "cgroup", "time", "network"};

std::unexpected<Error> unsupported(std::string_view field, std::string_view why) {
  return fail("config.json: {} is not supported by microvm: {}", field, why);
}

std::unexpected<Error> invalid(std::string_view field, std::string_view what) {
  return fail("config.json: {} {}", field, what);
}

// The member `key` of `object` when present and not null.
const json* member(const json& object, std::string_view key) {
  const auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

Result<std::string> string_field(const json& value, std::string_view field) {
  if (!value.is_string()) return invalid(field, "must be a string");
  std::string text = value.get<std::string>();
  if (text.find('\0') != std::string::npos) return invalid(field, "must not contain a NUL character");
  return text;
}

Result<std::vector<std::string>> strings_field(const json& value, std::string_view field) {
  if (!value.is_array()) return invalid(field, "must be an array of strings");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < value.size(); ++i)
    out.push_back(TRY(string_field(value[i], fmt::format("{}[{}]", field, i))));
  return out;
}

Result<std::uint64_t> uint_field(const json& value, std::string_view field, std::uint64_t max) {
  if (!value.is_number_unsigned() || value.get<std::uint64_t>() > max) {
    return invalid(field, fmt::format("must be a whole number 0..{}", max));
  }
  return value.get<std::uint64_t>();
}

bool non_empty(const json* value) {
  return value != nullptr && !value->empty();
}

Result<void> parse_user(const json& user, vmm::ContainerSpec& spec) {
  if (!user.is_object()) return invalid("process.user", "must be an object");
  constexpr std::uint64_t kMaxId = 2147483647;  // runc's maxID (guest/protocol/user.h)
  const json* uid = member(user, "uid");
  const json* gid = member(user, "gid");
  const std::uint64_t u = uid ? TRY(uint_field(*uid, "process.user.uid", kMaxId)) : 0;
  const std::uint64_t g = gid ? TRY(uint_field(*gid, "process.user.gid", kMaxId)) : 0;
  spec.user = fmt::format("{}:{}", u, g);
  if (const json* umask = member(user, "umask")) {
    if (TRY(uint_field(*umask, "process.user.umask", 0777)) != kDefaultUmask) {
      return unsupported("process.user.umask", "only the default 0022 is (the guest init sets no other yet)");
    }
  }
  if (const json* gids = member(user, "additionalGids")) {
    if (!gids->is_array()) return invalid("process.user.additionalGids", "must be an array of group ids");
    for (std::size_t i = 0; i < gids->size(); ++i) {
      spec.additional_gids.push_back(static_cast<std::uint32_t>(
          TRY(uint_field((*gids)[i], fmt::format("process.user.additionalGids[{}]", i), kMaxId))));
    }
  }
  return {};
}

Result<void> parse_process(const json& process, Bundle& bundle) {
  if (!process.is_object()) return invalid("process", "must be an object");
  vmm::ContainerSpec spec;
  const json* args = member(process, "args");
  if (args == nullptr) return invalid("process.args", "is missing: the command to run is required");
  spec.args = TRY(strings_field(*args, "process.args"));
  if (spec.args.empty() || spec.args.front().empty())
    return invalid("process.args", "must start with a non-empty command");
  if (const json* env = member(process, "env")) {
    spec.env = TRY(strings_field(*env, "process.env"));
    for (std::size_t i = 0; i < spec.env.size(); ++i) {
      const auto equals = spec.env[i].find('=');
      if (equals == std::string::npos || equals == 0) {
        return invalid(fmt::format("process.env[{}]", i), fmt::format("must be KEY=VALUE, not '{}'", spec.env[i]));
      }
    }
  }
  const json* cwd = member(process, "cwd");
  if (cwd == nullptr) return invalid("process.cwd", "is missing (runtime-spec requires it)");
  spec.cwd = TRY(string_field(*cwd, "process.cwd"));
  if (!spec.cwd->starts_with('/')) return invalid("process.cwd", "must be an absolute path");
  if (const json* user = member(process, "user")) TRY_VOID(parse_user(*user, spec));
  if (const json* terminal = member(process, "terminal")) {
    if (!terminal->is_boolean()) return invalid("process.terminal", "must be true or false");
    if (terminal->get<bool>()) {
      return unsupported("process.terminal", "no terminal or --console-socket yet (run without -t)");
    }
  }
  if (const json* rlimits = member(process, "rlimits")) {
    if (!rlimits->is_array()) return invalid("process.rlimits", "must be an array");
    if (!rlimits->empty()) {
      bundle.warnings.push_back("config.json: process.rlimits not applied: the guest kernel's defaults hold");
    }
  }
  if (const json* oom = member(process, "oomScoreAdj")) {
    if (!oom->is_number_integer() || oom->get<std::int64_t>() < -1000 || oom->get<std::int64_t>() > 1000) {
      return invalid("process.oomScoreAdj", "must be a whole number -1000..1000");
    }
    bundle.oom_score_adj = static_cast<int>(oom->get<std::int64_t>());
    bundle.has_oom_score_adj = true;
  }
  bundle.resources.container = std::move(spec);
  return {};
}

Result<std::string> read_small_regular_file(const std::filesystem::path& path, std::string_view field) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return invalid(field, fmt::format("names {}, which cannot be read: {}", path.string(), errno_text(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return unsupported(
        field, fmt::format("{} is not a regular file: bind mounts of host directories are not yet", path.string()));
  }
  if (static_cast<std::uint64_t>(st.st_size) > kMaxCopiedFileBytes) {
    return unsupported(field, fmt::format("{} is larger than {} bytes", path.string(), kMaxCopiedFileBytes));
  }
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  if (!file) return invalid(field, fmt::format("names {}, which cannot be read", path.string()));
  return text.str();
}

Result<void> parse_mount(const json& mount, std::size_t index, Bundle& bundle) {
  const std::string field = fmt::format("mounts[{}]", index);
  if (!mount.is_object()) return invalid(field, "must be an object");
  const json* destination_value = member(mount, "destination");
  if (destination_value == nullptr) return invalid(field + ".destination", "is missing");
  std::string destination = TRY(string_field(*destination_value, field + ".destination"));
  while (destination.size() > 1 && destination.ends_with('/')) destination.pop_back();
  const std::string type = member(mount, "type") ? TRY(string_field(mount["type"], field + ".type")) : "";
  const std::string source = member(mount, "source") ? TRY(string_field(mount["source"], field + ".source")) : "";
  std::vector<std::string> options;
  if (const json* opts = member(mount, "options")) options = TRY(strings_field(*opts, field + ".options"));
  const bool bind =
      type == "bind" || std::ranges::any_of(options, [](const std::string& o) { return o == "bind" || o == "rbind"; });
  const std::string what = fmt::format("{} ({} {} on {})", field, bind ? "bind" : type, source, destination);

  for (const GuestMount& guest : kGuestMounts) {
    if (guest.destination != destination) continue;
    if (std::ranges::find(guest.types, bind ? std::string_view("bind") : std::string_view(type)) != guest.types.end())
      return {};
    // Rootless runc binds the host's /sys (it may not mount sysfs): the guest's own sysfs is that.
    if (destination == "/sys" && bind && source == "/sys") return {};
  }
  if (bind && std::ranges::find(kEngineFiles, destination) != kEngineFiles.end()) {
    std::filesystem::path from(source);
    if (from.is_relative()) from = bundle.dir / from;
    std::string contents = TRY(read_small_regular_file(from, what));
    vmm::ContainerFile file{destination, std::move(contents), 0644};
    if (std::ranges::find(options, "ro") != options.end()) file.mode = 0444;
    bundle.resources.container->files.push_back(std::move(file));
    return {};
  }
  if (bind) {
    return unsupported(what, "the guest cannot see host directories yet (no shared file system)");
  }
  return unsupported(what,
                     "only the guest's own proc, sysfs, /dev, devpts, shm, mqueue, cgroup and /run mounts are, so far");
}

Result<void> parse_hooks(const json& list, std::string_view kind, Bundle& bundle) {
  const std::string field = fmt::format("hooks.{}", kind);
  if (!list.is_array()) return invalid(field, "must be an array of hooks");
  for (std::size_t i = 0; i < list.size(); ++i) {
    const json& entry = list[i];
    const std::string name = fmt::format("{}[{}]", field, i);
    if (!entry.is_object() || member(entry, "path") == nullptr) return invalid(name, "must be an object with a path");
    Hook hook;
    hook.kind = std::string(kind);
    hook.path = TRY(string_field(entry["path"], name + ".path"));
    if (!hook.path.starts_with('/')) return invalid(name + ".path", "must be an absolute path");
    if (const json* args = member(entry, "args")) hook.args = TRY(strings_field(*args, name + ".args"));
    if (hook.args.empty()) hook.args.push_back(hook.path);  // runtime-spec: args has execv's semantics
    if (const json* env = member(entry, "env")) hook.env = TRY(strings_field(*env, name + ".env"));
    if (const json* timeout = member(entry, "timeout")) {
      if (!timeout->is_number_integer() || timeout->get<std::int64_t>() <= 0 ||
          timeout->get<std::int64_t>() > kMaxHookTimeoutSeconds) {
        return invalid(name + ".timeout", fmt::format("must be a number of seconds 1..{}", kMaxHookTimeoutSeconds));
      }
      hook.timeout_seconds = static_cast<int>(timeout->get<std::int64_t>());
    }
    bundle.create_hooks.push_back(std::move(hook));
  }
  return {};
}

// "0-3,5,7-8" -> 6.
Result<unsigned> count_cpus(std::string_view text) {
  unsigned count = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t comma = text.find(',', start);
    const std::string_view part =
        text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    const std::size_t dash = part.find('-');
    unsigned first = 0, last = 0;
    const auto parse = [](std::string_view digits, unsigned& out) {
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
      return ec == std::errc() && end == digits.data() + digits.size() && !digits.empty();
    };
    const bool ok = dash == std::string_view::npos
                        ? parse(part, first) && parse(part, last)
                        : parse(part.substr(0, dash), first) && parse(part.substr(dash + 1), last);
    if (!ok || last < first)
      return invalid("linux.resources.cpu.cpus", fmt::format("'{}' is not a CPU list like 0-3,5", text));
    count += last - first + 1;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (count == 0) return invalid("linux.resources.cpu.cpus", "names no CPU");
  return count;
}

unsigned clamp_vcpus(std::uint64_t count) {
  return static_cast<unsigned>(std::clamp<std::uint64_t>(count, vmm::kMinVcpus, vmm::kMaxVcpus));
}

Result<void> parse_resources(const json& resources, Bundle& bundle) {
  if (!resources.is_object()) return invalid("linux.resources", "must be an object");
  vmm::MachineSpec& machine = bundle.resources.machine_config;
  for (const char* key : {"memory", "cpu"}) {
    if (const json* part = member(resources, key); part != nullptr && !part->is_object()) {
      return invalid(fmt::format("linux.resources.{}", key), "must be an object");
    }
  }
  if (const json* memory = member(resources, "memory")) {
    if (const json* limit = member(*memory, "limit")) {
      if (!limit->is_number_integer()) return invalid("linux.resources.memory.limit", "must be a number of bytes");
      // -1 (and 0): no limit, the default RAM.
      if (limit->is_number_unsigned() && limit->get<std::uint64_t>() > 0) {
        const std::uint64_t bytes = limit->get<std::uint64_t>();
        const std::uint64_t mib = bytes / kMiB + (bytes % kMiB != 0 ? 1 : 0);
        machine.mem_size_mib = std::clamp<std::uint64_t>(mib, vmm::kMinMemoryMib, vmm::kMaxMemoryMib);
      }
    }
  }
  if (const json* cpu = member(resources, "cpu")) {
    std::optional<unsigned> vcpus;
    const json* quota = member(*cpu, "quota");
    const json* period = member(*cpu, "period");
    if (quota != nullptr && !quota->is_number_integer()) {
      return invalid("linux.resources.cpu.quota", "must be a whole number of microseconds (-1: none)");
    }
    if (quota != nullptr && quota->is_number_unsigned() && quota->get<std::uint64_t>() > 0) {
      const std::uint64_t p =
          period != nullptr ? TRY(uint_field(*period, "linux.resources.cpu.period", UINT32_MAX)) : 100000;
      if (p == 0) return invalid("linux.resources.cpu.period", "must not be 0");
      const std::uint64_t q = quota->get<std::uint64_t>();
      vcpus = clamp_vcpus(q / p + (q % p != 0 ? 1 : 0));
    }
    if (const json* cpus = member(*cpu, "cpus")) {
      const std::string list = TRY(string_field(*cpus, "linux.resources.cpu.cpus"));
      if (!list.empty()) {
        const unsigned counted = clamp_vcpus(TRY(count_cpus(list)));
        vcpus = vcpus ? std::min(*vcpus, counted) : counted;
      }
    }
    if (vcpus) machine.vcpu_count = *vcpus;
  }
  // What is applied above: memory.limit, cpu.quota/period/cpus. "devices" (the device cgroup's
  // rules) is moot: the guest has its own virtual devices only. Anything else set is named.
  std::vector<std::string> ignored;
  for (const auto& [key, value] : resources.items()) {
    if (value.is_null() || (value.is_structured() && value.empty()) || key == "devices") continue;
    if (key != "memory" && key != "cpu") {
      ignored.push_back(key);
      continue;
    }
    for (const auto& [inner, setting] : value.items()) {
      const bool applied =
          key == "memory" ? inner == "limit" : inner == "quota" || inner == "period" || inner == "cpus";
      if (!applied && !setting.is_null()) ignored.push_back(fmt::format("{}.{}", key, inner));
    }
  }
  if (!ignored.empty()) {
    bundle.warnings.push_back(
        fmt::format("config.json: linux.resources {} not applied: only memory.limit (guest RAM) "
                    "and cpu quota/cpus (vCPUs) are",
                    fmt::join(ignored, ", ")));
  }
  return {};
}

Result<void> parse_linux(const json& section, Bundle& bundle) {
  if (!section.is_object()) return invalid("linux", "must be an object");
  if (const json* namespaces = member(section, "namespaces")) {
    if (!namespaces->is_array()) return invalid("linux.namespaces", "must be an array");
    for (std::size_t i = 0; i < namespaces->size(); ++i) {
      const json& ns = (*namespaces)[i];
      const std::string field = fmt::format("linux.namespaces[{}]", i);
      if (!ns.is_object() || member(ns, "type") == nullptr) return invalid(field, "must be an object with a type");
      const std::string type = TRY(string_field(ns["type"], field + ".type"));
      if (type == "user") return unsupported(field + " (user)", "user namespaces (rootless containers) are not yet");
      if (std::ranges::find(kMootNamespaces, type) == kMootNamespaces.end()) {
        return invalid(field + ".type", fmt::format("'{}' is not a namespace type", type));
      }
      if (const json* path = member(ns, "path")) {
        const std::string joined = TRY(string_field(*path, field + ".path"));
        if (!joined.empty()) {
          return unsupported(
              fmt::format("{} ({} at {})", field, type, joined),
              type == "network"
                  ? "the guest is not connected to a network namespace yet (use --network none)"
                  : "joining another namespace (another container's) is not: each container is its own VM");
        }
      }
    }
  }
  for (const char* key : {"uidMappings", "gidMappings"}) {
    if (non_empty(member(section, key))) {
      return unsupported(fmt::format("linux.{}", key), "user namespaces (rootless containers) are not yet");
    }
  }
  if (non_empty(member(section, "devices"))) {
    return unsupported("linux.devices", "the guest has only its own virtual devices");
  }
  if (const json* resources = member(section, "resources")) TRY_VOID(parse_resources(*resources, bundle));
  if (non_empty(member(section, "sysctl"))) {
    bundle.warnings.push_back("config.json: linux.sysctl not applied: the guest kernel's defaults hold");
  }
  if (const json* offsets = member(section, "timeOffsets"); non_empty(offsets)) {
    return unsupported("linux.timeOffsets", "the guest's clocks are not offset yet");
  }
  return {};
}

Result<std::uint64_t> annotation_number(const std::map<std::string, std::string>& annotations, std::string_view key,
                                        std::uint64_t min, std::uint64_t max) {
  const std::string& text = annotations.at(std::string(key));
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return invalid(fmt::format("annotation {}", key), fmt::format("'{}' is not a number {}..{}", text, min, max));
  }
  return value;
}

}  // namespace

Result<Bundle> parse_bundle_config(std::string_view text, const std::filesystem::path& dir) {
  json config;
  try {
    config = json::parse(text);
  } catch (const json::parse_error& error) {
    std::string_view what = error.what();
    if (const std::size_t end = what.find("] "); end != std::string_view::npos) what.remove_prefix(end + 2);
    return fail("config.json is not valid JSON: {}", what);
  }
  if (!config.is_object()) return fail("config.json must hold a JSON object");
  Bundle bundle;
  bundle.dir = dir;
  if (const json* version = member(config, "ociVersion")) {
    const std::string v = TRY(string_field(*version, "ociVersion"));
    if (!v.starts_with("1."))
      return unsupported(fmt::format("ociVersion {}", v), "microvm implements runtime-spec 1.x");
  }
  const json* process = member(config, "process");
  if (process == nullptr) return invalid("process", "is missing: microvm needs the process to run");
  TRY_VOID(parse_process(*process, bundle));

  const json* root = member(config, "root");
  if (root == nullptr || !root->is_object() || member(*root, "path") == nullptr) {
    return invalid("root.path", "is missing: the container's root file system directory is required");
  }
  std::filesystem::path rootfs(TRY(string_field((*root)["path"], "root.path")));
  bundle.rootfs = rootfs.is_relative() ? dir / rootfs : rootfs;
  if (const json* readonly = member(*root, "readonly")) {
    if (!readonly->is_boolean()) return invalid("root.readonly", "must be true or false");
    bundle.resources.container->read_only_root = readonly->get<bool>();
  }
  if (const json* hostname = member(config, "hostname")) {
    const std::string name = TRY(string_field(*hostname, "hostname"));
    if (name.size() > 64) return invalid("hostname", "must be at most 64 bytes");  // HOST_NAME_MAX
    if (!name.empty()) bundle.resources.container->hostname = name;
  }
  if (const json* domain = member(config, "domainname");
      domain != nullptr && domain->is_string() && !domain->get<std::string>().empty()) {
    return unsupported("domainname", "the guest init sets no NIS domain name yet");
  }
  if (const json* hooks = member(config, "hooks")) {
    if (!hooks->is_object()) return invalid("hooks", "must be an object");
    for (const auto& [kind, list] : hooks->items()) {
      if (list.is_null() || list.empty()) continue;
      if (kind != "prestart" && kind != "createRuntime") {
        return unsupported(fmt::format("hooks.{}", kind), "only prestart and createRuntime hooks are run, so far");
      }
    }
    for (const char* kind : {"prestart", "createRuntime"}) {
      if (const json* list = member(*hooks, kind)) TRY_VOID(parse_hooks(*list, kind, bundle));
    }
  }
  if (const json* mounts = member(config, "mounts")) {
    if (!mounts->is_array()) return invalid("mounts", "must be an array");
    for (std::size_t i = 0; i < mounts->size(); ++i) TRY_VOID(parse_mount((*mounts)[i], i, bundle));
  }
  if (const json* annotations = member(config, "annotations")) {
    if (!annotations->is_object()) return invalid("annotations", "must be an object of strings");
    for (const auto& [key, value] : annotations->items()) {
      bundle.annotations[key] = TRY(string_field(value, fmt::format("annotations.{}", key)));
    }
  }
  for (const char* other : {"solaris", "windows", "vm", "zos"}) {
    if (member(config, other) != nullptr) return unsupported(other, "microvm runs Linux containers");
  }
  if (const json* section = member(config, "linux")) TRY_VOID(parse_linux(*section, bundle));

  // microvm's own knobs win over what linux.resources implied.
  if (bundle.annotations.contains(std::string(kKernelAnnotation))) {
    bundle.resources.boot_source.kernel_image_path = bundle.annotations.at(std::string(kKernelAnnotation));
  }
  if (bundle.annotations.contains(std::string(kVcpusAnnotation))) {
    bundle.resources.machine_config.vcpu_count = static_cast<unsigned>(
        TRY(annotation_number(bundle.annotations, kVcpusAnnotation, vmm::kMinVcpus, vmm::kMaxVcpus)));
  }
  if (bundle.annotations.contains(std::string(kMemoryAnnotation))) {
    bundle.resources.machine_config.mem_size_mib =
        TRY(annotation_number(bundle.annotations, kMemoryAnnotation, vmm::kMinMemoryMib, vmm::kMaxMemoryMib));
  }
  return bundle;
}

Result<Bundle> load_bundle(const std::filesystem::path& dir) {
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(dir, ec);
  if (ec) return fail("bundle {}: {}", dir.string(), ec.message());
  if (!std::filesystem::is_directory(absolute, ec)) return fail("bundle {} is not a directory", dir.string());
  const std::filesystem::path config = absolute / kConfigFileName;
  std::ifstream file(config, std::ios::binary);
  if (!file) return fail("bundle {} has no readable {}: {}", dir.string(), kConfigFileName, errno_text(errno));
  std::stringstream text;
  text << file.rdbuf();
  Bundle bundle = TRY(parse_bundle_config(text.str(), absolute.lexically_normal()));
  if (!std::filesystem::is_directory(bundle.rootfs, ec)) {
    return fail("config.json: root.path {} is not a directory", bundle.rootfs.string());
  }
  return bundle;
}

}  // namespace microvm::oci
