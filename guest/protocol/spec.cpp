#include "guest/protocol/spec.h"

#include <algorithm>
#include <initializer_list>

#include <nlohmann/json.hpp>

#include "guest/protocol/user.h"

namespace microvm::guest {

namespace {

using nlohmann::json;

std::string field_name(std::string_view path) {
  return "\"" + std::string(path) + "\"";
}

std::unexpected<Error> bad(std::string_view path, std::string_view what) {
  return fail("spec: " + field_name(path) + " " + std::string(what));
}

Result<void> reject_unknown_fields(const json& object, std::string_view path,
                                   std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      const std::string where = path.empty() ? std::string("the spec") : field_name(path);
      return fail("spec: unknown field " + in_quotes(key) + " in " + where);
    }
  }
  return {};
}

// A string without NUL bytes (every string ends up in a C API).
Result<std::string> get_string(const json& value, std::string_view path) {
  if (!value.is_string()) return bad(path, "must be a string");
  std::string text = value.get<std::string>();
  if (text.find('\0') != std::string::npos) return bad(path, "must not contain a NUL character");
  return text;
}

Result<std::vector<std::string>> get_strings(const json& value, std::string_view path) {
  if (!value.is_array()) return bad(path, "must be an array of strings");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < value.size(); ++i) {
    auto text = get_string(value[i], std::string(path) + "[" + std::to_string(i) + "]");
    if (!text) return std::unexpected(text.error());
    out.push_back(std::move(*text));
  }
  return out;
}

Result<void> parse_args(const json& value, Spec& spec) {
  auto args = get_strings(value, "args");
  if (!args) return std::unexpected(args.error());
  if (args->empty()) return bad("args", "must have at least one element (the executable)");
  if (args->front().empty()) return bad("args[0]", "must not be empty");
  spec.args = std::move(*args);
  return {};
}

Result<void> parse_env(const json& value, Spec& spec) {
  auto env = get_strings(value, "env");
  if (!env) return std::unexpected(env.error());
  for (std::size_t i = 0; i < env->size(); ++i) {
    const std::string& entry = (*env)[i];
    const std::size_t equals = entry.find('=');
    if (equals == std::string::npos || equals == 0) {
      return bad("env[" + std::to_string(i) + "]", "must be KEY=VALUE with a non-empty KEY, not " + in_quotes(entry));
    }
  }
  spec.env = std::move(*env);
  return {};
}

Result<void> parse_root(const json& value, Spec& spec) {
  if (!value.is_object()) return bad("root", "must be an object");
  if (auto ok = reject_unknown_fields(value, "root", {"device", "fstype", "writable_overlay"}); !ok) return ok;
  if (value.contains("device")) {
    auto device = get_string(value["device"], "root.device");
    if (!device) return std::unexpected(device.error());
    if (!device->starts_with('/')) return bad("root.device", "must be an absolute path, not " + in_quotes(*device));
    spec.root.device = std::move(*device);
  }
  if (value.contains("fstype")) {
    auto fstype = get_string(value["fstype"], "root.fstype");
    if (!fstype) return std::unexpected(fstype.error());
    if (fstype->empty()) return bad("root.fstype", "must not be empty");
    spec.root.fstype = std::move(*fstype);
  }
  if (value.contains("writable_overlay")) {
    if (!value["writable_overlay"].is_boolean()) return bad("root.writable_overlay", "must be true or false");
    spec.root.writable_overlay = value["writable_overlay"].get<bool>();
  }
  return {};
}

Result<std::optional<Ipv4Address>> get_optional_ipv4(const json& object, const char* key, const std::string& path) {
  if (!object.contains(key)) return std::nullopt;
  auto text = get_string(object[key], path);
  if (!text) return std::unexpected(text.error());
  if (text->empty()) return std::nullopt;
  const auto address = parse_ipv4(*text);
  if (!address) return bad(path, "must be an IPv4 address like 169.254.0.1, not " + in_quotes(*text));
  return address;
}

Result<NetworkSpec> parse_interface(const json& value, const std::string& path) {
  if (!value.is_object()) return bad(path, "must be an object");
  if (auto ok = reject_unknown_fields(value, path, {"interface", "address", "gateway", "dns"}); !ok) {
    return std::unexpected(ok.error());
  }
  NetworkSpec net;
  if (!value.contains("interface")) return bad(path + ".interface", "is required");
  auto name = get_string(value["interface"], path + ".interface");
  if (!name) return std::unexpected(name.error());
  const bool bad_char = std::any_of(name->begin(), name->end(), [](char c) {
    return c == '/' || c == ':' || static_cast<unsigned char>(c) <= ' ' || c == 0x7f;
  });
  if (name->empty() || name->size() > kMaxInterfaceNameBytes || bad_char || *name == "." || *name == "..") {
    return bad(path + ".interface", "must be a network interface name like eth0, not " + in_quotes(*name));
  }
  net.interface = std::move(*name);

  if (value.contains("address")) {
    auto text = get_string(value["address"], path + ".address");
    if (!text) return std::unexpected(text.error());
    if (!text->empty()) {
      net.address = parse_ipv4_cidr(*text);
      if (!net.address) {
        return bad(path + ".address",
                   "must be IPv4 ADDRESS/PREFIX (prefix 0..32) like 169.254.0.2/16, not " + in_quotes(*text));
      }
    }
  }
  auto gateway = get_optional_ipv4(value, "gateway", path + ".gateway");
  if (!gateway) return std::unexpected(gateway.error());
  net.gateway = *gateway;
  if (net.gateway) {
    if (!net.address) return bad(path + ".gateway", "needs an \"address\" on the same interface");
    if (!in_subnet(*net.address, *net.gateway) || *net.gateway == net.address->address) {
      return bad(path + ".gateway", to_string(*net.gateway) + " is not another host in " + to_string(*net.address));
    }
  }

  if (value.contains("dns")) {
    auto servers = get_strings(value["dns"], path + ".dns");
    if (!servers) return std::unexpected(servers.error());
    for (std::size_t i = 0; i < servers->size(); ++i) {
      const auto server = parse_ipv4((*servers)[i]);
      if (!server) {
        return bad(path + ".dns[" + std::to_string(i) + "]",
                   "must be an IPv4 address like 169.254.0.1, not " + in_quotes((*servers)[i]));
      }
      net.dns.push_back(*server);
    }
  }
  return net;
}

Result<void> parse_network(const json& value, Spec& spec) {
  if (!value.is_array()) return bad("network", "must be an array of interfaces");
  for (std::size_t i = 0; i < value.size(); ++i) {
    auto net = parse_interface(value[i], "network[" + std::to_string(i) + "]");
    if (!net) return std::unexpected(net.error());
    for (const NetworkSpec& other : spec.network) {
      if (other.interface == net->interface) {
        return bad("network[" + std::to_string(i) + "].interface", "names " + net->interface + " twice");
      }
      if (other.gateway && net->gateway) {
        return bad("network[" + std::to_string(i) + "].gateway",
                   "is a second default route (" + other.interface + " has one already)");
      }
    }
    spec.network.push_back(std::move(*net));
  }
  return {};
}

Result<void> parse_additional_gids(const json& value, Spec& spec) {
  if (!value.is_array()) return bad("additional_gids", "must be an array of group ids");
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_number_unsigned() || value[i].get<std::uint64_t>() > kMaxId) {
      return bad("additional_gids[" + std::to_string(i) + "]", "must be a group id 0.." + std::to_string(kMaxId));
    }
    spec.additional_gids.push_back(static_cast<std::uint32_t>(value[i].get<std::uint64_t>()));
  }
  return {};
}

// An absolute path without empty, "." or ".." components: the init writes below its new root only.
bool is_clean_absolute(std::string_view path) {
  if (!path.starts_with('/') || path.size() < 2 || path.ends_with('/')) return false;
  std::size_t start = 1;
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::string_view part =
        path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return true;
}

Result<void> parse_files(const json& value, Spec& spec) {
  if (!value.is_array()) return bad("files", "must be an array of files");
  if (value.size() > kMaxFiles) return bad("files", "must have at most " + std::to_string(kMaxFiles) + " entries");
  for (std::size_t i = 0; i < value.size(); ++i) {
    const std::string path = "files[" + std::to_string(i) + "]";
    const json& entry = value[i];
    if (!entry.is_object()) return bad(path, "must be an object");
    if (auto ok = reject_unknown_fields(entry, path, {"path", "contents", "mode"}); !ok) return ok;
    FileSpec file;
    if (!entry.contains("path")) return bad(path + ".path", "is required");
    auto where = get_string(entry["path"], path + ".path");
    if (!where) return std::unexpected(where.error());
    if (!is_clean_absolute(*where)) {
      return bad(path + ".path", "must be an absolute path without . or .. components, not " + in_quotes(*where));
    }
    file.path = std::move(*where);
    if (entry.contains("contents")) {
      if (!entry["contents"].is_string()) return bad(path + ".contents", "must be a string");
      file.contents = entry["contents"].get<std::string>();
    }
    if (entry.contains("mode")) {
      if (!entry["mode"].is_number_unsigned() || entry["mode"].get<std::uint64_t>() > kMaxFileMode) {
        return bad(path + ".mode", "must be a file mode 0..4095 (07777)");
      }
      file.mode = static_cast<std::uint32_t>(entry["mode"].get<std::uint64_t>());
    }
    spec.files.push_back(std::move(file));
  }
  return {};
}

Result<Spec> parse_object(const json& root) {
  if (!root.is_object()) return fail("spec: must be a JSON object");
  if (auto ok = reject_unknown_fields(root, "",
                                      {"args", "env", "cwd", "user", "hostname", "root", "network", "stop_grace_ms",
                                       "additional_gids", "files", "realtime_ns"});
      !ok) {
    return std::unexpected(ok.error());
  }
  Spec spec;
  if (!root.contains("args")) return bad("args", "is required (the command to run)");
  if (auto ok = parse_args(root["args"], spec); !ok) return std::unexpected(ok.error());
  if (root.contains("env")) {
    if (auto ok = parse_env(root["env"], spec); !ok) return std::unexpected(ok.error());
  }
  if (root.contains("cwd")) {
    auto cwd = get_string(root["cwd"], "cwd");
    if (!cwd) return std::unexpected(cwd.error());
    if (!cwd->starts_with('/')) return bad("cwd", "must be an absolute path, not " + in_quotes(*cwd));
    spec.cwd = std::move(*cwd);
  }
  if (root.contains("user")) {
    auto user = get_string(root["user"], "user");
    if (!user) return std::unexpected(user.error());
    if (auto checked = parse_user_spec(*user); !checked) return fail("spec: \"user\": " + checked.error().message);
    spec.user = std::move(*user);
  }
  if (root.contains("hostname")) {
    auto hostname = get_string(root["hostname"], "hostname");
    if (!hostname) return std::unexpected(hostname.error());
    if (hostname->size() > kMaxHostnameBytes) {
      return bad("hostname", "must be at most " + std::to_string(kMaxHostnameBytes) + " bytes");
    }
    spec.hostname = std::move(*hostname);
  }
  if (root.contains("root")) {
    if (auto ok = parse_root(root["root"], spec); !ok) return std::unexpected(ok.error());
  }
  if (root.contains("network")) {
    if (auto ok = parse_network(root["network"], spec); !ok) return std::unexpected(ok.error());
  }
  if (root.contains("stop_grace_ms")) {
    const json& grace = root["stop_grace_ms"];
    if (!grace.is_number_unsigned() || grace.get<std::uint64_t>() > kMaxStopGraceMs) {
      return bad("stop_grace_ms", "must be a whole number of milliseconds 0.." + std::to_string(kMaxStopGraceMs));
    }
    spec.stop_grace_ms = static_cast<std::uint32_t>(grace.get<std::uint64_t>());
  }
  if (root.contains("additional_gids")) {
    if (auto ok = parse_additional_gids(root["additional_gids"], spec); !ok) return std::unexpected(ok.error());
  }
  if (root.contains("files")) {
    if (auto ok = parse_files(root["files"], spec); !ok) return std::unexpected(ok.error());
  }
  if (root.contains("realtime_ns")) {
    const json& now = root["realtime_ns"];
    if (!now.is_number_unsigned()) return bad("realtime_ns", "must be a whole number of nanoseconds since 1970");
    spec.realtime_ns = now.get<std::uint64_t>();
  }
  return spec;
}

}  // namespace

Result<Spec> parse_spec(std::string_view text) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& error) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ...": keep what follows "] ".
    std::string_view what = error.what();
    if (const std::size_t end = what.find("] "); end != std::string_view::npos) what.remove_prefix(end + 2);
    return fail("spec: not valid JSON: " + std::string(what));
  }
  return parse_object(root);
}

std::string spec_to_json(const Spec& spec) {
  json root = json::object();
  root["args"] = spec.args;
  root["env"] = spec.env;
  root["cwd"] = spec.cwd;
  root["user"] = spec.user;
  root["hostname"] = spec.hostname;
  root["root"] = {
      {"device", spec.root.device}, {"fstype", spec.root.fstype}, {"writable_overlay", spec.root.writable_overlay}};
  json network = json::array();
  for (const NetworkSpec& net : spec.network) {
    json entry = {{"interface", net.interface}};
    if (net.address) entry["address"] = to_string(*net.address);
    if (net.gateway) entry["gateway"] = to_string(*net.gateway);
    json dns = json::array();
    for (const Ipv4Address server : net.dns) dns.push_back(to_string(server));
    entry["dns"] = std::move(dns);
    network.push_back(std::move(entry));
  }
  root["network"] = std::move(network);
  root["stop_grace_ms"] = spec.stop_grace_ms;
  root["additional_gids"] = spec.additional_gids;
  json files = json::array();
  for (const FileSpec& file : spec.files)
    files.push_back({{"path", file.path}, {"contents", file.contents}, {"mode", file.mode}});
  root["files"] = std::move(files);
  if (spec.realtime_ns) root["realtime_ns"] = *spec.realtime_ns;
  // Arguments need not be UTF-8 on Linux, JSON strings must: such bytes become U+FFFD, never a throw.
  return root.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::vector<Ipv4Address> all_dns_servers(const Spec& spec) {
  std::vector<Ipv4Address> servers;
  for (const NetworkSpec& net : spec.network) {
    for (const Ipv4Address server : net.dns) {
      if (std::find(servers.begin(), servers.end(), server) == servers.end()) servers.push_back(server);
    }
  }
  return servers;
}

}  // namespace microvm::guest
