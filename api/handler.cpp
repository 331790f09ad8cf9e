// Routing and request parsing for the API (api/handler.h). Every field of every body is checked
// here, so the controller only ever sees well-formed values; state checks are the controller's.
#include "api/handler.h"

#include <fmt/format.h>

#include "base/error.h"
#include "guest/protocol/ipv4.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace microvm::api {
namespace {

using nlohmann::json;

// Firecracker's limits (its swagger spec, MachineConfiguration), the VMM's own (vmm/vm_resources.h).
constexpr std::uint64_t kMinVcpus = vmm::kMinVcpus;
constexpr std::uint64_t kMaxVcpus = vmm::kMaxVcpus;
constexpr std::uint64_t kMinMemMib = vmm::kMinMemoryMib;
constexpr std::uint64_t kMaxMemMib = vmm::kMaxMemoryMib;
// Firecracker's resource ids (drive_id, iface_id): [A-Za-z0-9_], at most 64 bytes.
constexpr std::size_t kMaxIdLength = 64;
// IFNAMSIZ (<linux/if.h>) is 16 including the terminating NUL.
constexpr std::size_t kMaxIfaceNameLength = 15;
// HOST_NAME_MAX (<limits.h>, sethostname(2)).
constexpr std::size_t kMaxHostnameLength = 64;
// How much of a client-supplied key or id a fault message quotes.
constexpr std::size_t kMaxQuoted = 64;

std::string quote_text(std::string_view text) {
  if (text.size() <= kMaxQuoted) return fmt::format("`{}`", text);
  return fmt::format("`{}...`", text.substr(0, kMaxQuoted));
}

std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The shown part of a JSON value in "got ..." messages: numbers and short strings by value, the rest
// by type.
std::string describe(const json& value) {
  if (value.is_number()) return dump(value);
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_null()) return "null";
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    return text.size() <= kMaxQuoted ? fmt::format("the string {}", dump(value)) : "a long string";
  }
  return fmt::format("an {}", value.type_name());  // array, object, binary
}

bool contains_nul(std::string_view text) {
  return text.find('\0') != std::string_view::npos;
}

// The members of one JSON object, taken field by field; finish() rejects the fields nobody took.
class Fields {
 public:
  // `what` names the object in messages ("machine-config", "drives[1]").
  static Result<Fields> of(const json& value, std::string what) {
    if (!value.is_object()) return fail("{}: expected a JSON object, got {}", what, describe(value));
    return Fields(value, std::move(what));
  }

  // Absent and null are the same for optional fields (as Firecracker's serde Option).
  const json* find(std::string_view key) {
    taken_.emplace(key);
    const auto it = object_->find(key);
    if (it == object_->end() || it->is_null()) return nullptr;
    return &*it;
  }

  Result<std::optional<std::string>> optional_string(std::string_view key) {
    const json* value = find(key);
    if (value == nullptr) return std::nullopt;
    if (!value->is_string()) return fail("{}: field `{}` must be a string, got {}", what_, key, describe(*value));
    const auto& text = value->get_ref<const std::string&>();
    if (contains_nul(text)) return fail("{}: field `{}` must not contain NUL characters", what_, key);
    return text;
  }

  Result<std::string> required_string(std::string_view key) {
    auto text = TRY(optional_string(key));
    if (!text) return fail("{}: missing required field `{}` (a string)", what_, key);
    return std::move(*text);
  }

  // A required string that must not be empty (paths, names).
  Result<std::string> required_nonempty(std::string_view key) {
    auto text = TRY(required_string(key));
    if (text.empty()) return fail("{}: field `{}` must not be empty", what_, key);
    return text;
  }

  Result<std::optional<bool>> optional_bool(std::string_view key) {
    const json* value = find(key);
    if (value == nullptr) return std::nullopt;
    if (!value->is_boolean()) {
      return fail("{}: field `{}` must be a boolean (true or false), got {}", what_, key, describe(*value));
    }
    return value->get<bool>();
  }

  Result<bool> required_bool(std::string_view key) {
    const auto flag = TRY(optional_bool(key));
    if (!flag) return fail("{}: missing required field `{}` (a boolean)", what_, key);
    return *flag;
  }

  Result<std::optional<std::uint64_t>> optional_uint(std::string_view key, std::uint64_t min, std::uint64_t max) {
    const json* value = find(key);
    if (value == nullptr) return std::nullopt;
    const bool in_range =
        value->is_number_unsigned() && value->get<std::uint64_t>() >= min && value->get<std::uint64_t>() <= max;
    if (!in_range) {
      return fail("{}: field `{}` must be an integer from {} to {}, got {}", what_, key, min, max, describe(*value));
    }
    return value->get<std::uint64_t>();
  }

  Result<std::uint64_t> required_uint(std::string_view key, std::uint64_t min, std::uint64_t max) {
    const auto number = TRY(optional_uint(key, min, max));
    if (!number) return fail("{}: missing required field `{}` (an integer from {} to {})", what_, key, min, max);
    return *number;
  }

  Result<std::optional<std::vector<std::string>>> optional_string_array(std::string_view key) {
    const json* value = find(key);
    if (value == nullptr) return std::nullopt;
    if (!value->is_array()) {
      return fail("{}: field `{}` must be an array of strings, got {}", what_, key, describe(*value));
    }
    std::vector<std::string> out;
    out.reserve(value->size());
    for (std::size_t i = 0; i < value->size(); ++i) {
      const json& item = (*value)[i];
      if (!item.is_string()) return fail("{}: field `{}[{}]` must be a string, got {}", what_, key, i, describe(item));
      const auto& text = item.get_ref<const std::string&>();
      if (contains_nul(text)) return fail("{}: field `{}[{}]` must not contain NUL characters", what_, key, i);
      out.push_back(text);
    }
    return out;
  }

  // A Firecracker field microvm does not implement: accepted when absent, null or one of the
  // `accepted` values (the ones that mean what microvm does anyway), else a clear refusal.
  Result<void> only(std::string_view key, std::initializer_list<json> accepted) {
    const json* value = find(key);
    if (value == nullptr) return {};
    if (std::ranges::find(accepted, *value) != accepted.end()) return {};
    if (accepted.size() == 0) return fail("{}: field `{}` is not supported by microvm (omit it)", what_, key);
    std::string values;
    for (const json& item : accepted) values += (values.empty() ? "" : ", ") + dump(item);
    return fail("{}: field `{}` is not supported by microvm except as {}, got {}", what_, key, values,
                describe(*value));
  }

  // Rejects every member no getter asked for.
  Result<void> finish() const {
    for (const auto& [key, value] : object_->items()) {
      if (!taken_.contains(key)) return fail("{}: unknown field {}", what_, quote_text(key));
    }
    return {};
  }

  const std::string& what() const { return what_; }

 private:
  Fields(const json& object, std::string what) : object_(&object), what_(std::move(what)) {}

  const json* object_;
  std::string what_;
  std::set<std::string, std::less<>> taken_;
};

// drive_id, iface_id: what Firecracker accepts.
Result<void> check_id(std::string_view what, std::string_view field, std::string_view id) {
  if (id.empty()) return fail("{}: `{}` must not be empty", what, field);
  if (id.size() > kMaxIdLength) return fail("{}: `{}` must be at most {} characters", what, field, kMaxIdLength);
  const bool valid = std::ranges::all_of(id, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
  if (!valid) return fail("{}: `{}` {} may only contain letters, digits and '_'", what, field, quote_text(id));
  return {};
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

Result<void> check_mac(std::string_view what, std::string_view mac) {
  // "xx:xx:xx:xx:xx:xx": six two-digit hex octets.
  constexpr std::size_t kMacTextLength = 17;
  bool valid = mac.size() == kMacTextLength;
  for (std::size_t i = 0; valid && i < mac.size(); ++i) valid = i % 3 == 2 ? mac[i] == ':' : is_hex(mac[i]);
  if (!valid) return fail("{}: `guest_mac` must look like 06:00:ac:10:00:02, got {}", what, quote_text(mac));
  const auto high_digit = static_cast<unsigned char>(mac[1]);
  const unsigned first_octet_low_nibble =
      high_digit <= '9' ? high_digit - '0' : (high_digit | 0x20U) - 'a' + 10;  // 0x20: ASCII lower case
  if ((first_octet_low_nibble & 1U) != 0) {
    return fail("{}: `guest_mac` {} is a multicast address (the first octet must be even)", what, quote_text(mac));
  }
  return {};
}

// What Linux's dev_valid_name accepts, minus the cases a TAP name never needs.
Result<void> check_iface_name(std::string_view what, std::string_view name) {
  if (name.size() > kMaxIfaceNameLength) {
    return fail("{}: `host_dev_name` must be at most {} characters, got {}", what, kMaxIfaceNameLength,
                quote_text(name));
  }
  const bool valid =
      name != "." && name != ".." && std::ranges::none_of(name, [](char c) {
        return c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
      });
  if (!valid) return fail("{}: `host_dev_name` {} is not a valid interface name", what, quote_text(name));
  return {};
}

// --- parsing each resource ---------------------------------------------------------------------------

// PUT (base == nullptr: vcpu_count and mem_size_mib required) or PATCH (fields over `base`).
Result<MachineSpec> parse_machine_config(const json& body, std::string what, const MachineSpec* base) {
  auto fields = TRY(Fields::of(body, std::move(what)));
  MachineSpec config = base != nullptr ? *base : MachineSpec{};
  if (base == nullptr) {
    config.vcpu_count = static_cast<unsigned>(TRY(fields.required_uint("vcpu_count", kMinVcpus, kMaxVcpus)));
    config.mem_size_mib = TRY(fields.required_uint("mem_size_mib", kMinMemMib, kMaxMemMib));
    config.smt = TRY(fields.optional_bool("smt")).value_or(false);
  } else {
    if (auto vcpus = TRY(fields.optional_uint("vcpu_count", kMinVcpus, kMaxVcpus))) {
      config.vcpu_count = static_cast<unsigned>(*vcpus);
    }
    if (auto mem = TRY(fields.optional_uint("mem_size_mib", kMinMemMib, kMaxMemMib))) config.mem_size_mib = *mem;
    if (auto smt = TRY(fields.optional_bool("smt"))) config.smt = *smt;
  }
  TRY_VOID(fields.only("cpu_template", {"None"}));
  TRY_VOID(fields.only("track_dirty_pages", {false}));
  TRY_VOID(fields.only("huge_pages", {"None"}));
  TRY_VOID(fields.finish());
  if (config.smt && config.vcpu_count > 1 && config.vcpu_count % 2 != 0) {
    return fail("{}: with `smt` enabled, `vcpu_count` must be 1 or even, got {}", fields.what(), config.vcpu_count);
  }
  return config;
}

Result<BootSource> parse_boot_source(const json& body, std::string what) {
  auto fields = TRY(Fields::of(body, std::move(what)));
  BootSource source;
  source.kernel_image_path = TRY(fields.required_nonempty("kernel_image_path"));
  source.boot_args = TRY(fields.optional_string("boot_args"));
  source.initrd_path = TRY(fields.optional_string("initrd_path"));
  if (source.initrd_path && source.initrd_path->empty()) {
    return fail("{}: field `initrd_path` must not be empty (omit it for no initrd)", fields.what());
  }
  TRY_VOID(fields.finish());
  return source;
}

Result<DriveConfig> parse_drive(const json& body, std::string what) {
  auto fields = TRY(Fields::of(body, std::move(what)));
  DriveConfig drive;
  drive.drive_id = TRY(fields.required_string("drive_id"));
  TRY_VOID(check_id(fields.what(), "drive_id", drive.drive_id));
  drive.path_on_host = TRY(fields.required_nonempty("path_on_host"));
  drive.is_root_device = TRY(fields.required_bool("is_root_device"));
  drive.is_read_only = TRY(fields.optional_bool("is_read_only")).value_or(false);
  // microvm's block device completes flushes with fdatasync: right for both of Firecracker's modes.
  TRY_VOID(fields.only("cache_type", {"Unsafe", "Writeback"}));
  TRY_VOID(fields.only("io_engine", {"Sync"}));
  TRY_VOID(fields.only("partuuid", {}));
  TRY_VOID(fields.only("rate_limiter", {}));
  TRY_VOID(fields.only("socket", {}));
  TRY_VOID(fields.finish());
  return drive;
}

Result<std::optional<std::string>> optional_ipv4(Fields& fields, std::string_view key) {
  auto value = TRY(fields.optional_string(key));
  if (value && !guest::parse_ipv4(*value)) {
    return fail("{}: `{}` must be an IPv4 address like 169.254.0.1, got {}", fields.what(), key, quote_text(*value));
  }
  return value;
}

Result<NetworkInterfaceConfig> parse_network_interface(const json& body, std::string what) {
  auto fields = TRY(Fields::of(body, std::move(what)));
  NetworkInterfaceConfig iface;
  iface.iface_id = TRY(fields.required_string("iface_id"));
  TRY_VOID(check_id(fields.what(), "iface_id", iface.iface_id));
  iface.host_dev_name = TRY(fields.required_nonempty("host_dev_name"));
  TRY_VOID(check_iface_name(fields.what(), iface.host_dev_name));
  iface.guest_mac = TRY(fields.optional_string("guest_mac"));
  if (iface.guest_mac) TRY_VOID(check_mac(fields.what(), *iface.guest_mac));
  // microvm's own: how the container-mode init configures the guest's side of the interface.
  iface.guest_ip = TRY(fields.optional_string("guest_ip"));
  if (iface.guest_ip && !guest::parse_ipv4_cidr(*iface.guest_ip)) {
    return fail("{}: `guest_ip` must be an IPv4 address with a prefix length like 169.254.0.2/16, got {}",
                fields.what(), quote_text(*iface.guest_ip));
  }
  iface.guest_gateway = TRY(optional_ipv4(fields, "guest_gateway"));
  iface.guest_dns = TRY(optional_ipv4(fields, "guest_dns"));
  TRY_VOID(fields.only("mtu", {}));
  TRY_VOID(fields.only("rx_rate_limiter", {}));
  TRY_VOID(fields.only("tx_rate_limiter", {}));
  TRY_VOID(fields.finish());
  return iface;
}

Result<ContainerSpec> parse_container(const json& body, std::string what) {
  auto fields = TRY(Fields::of(body, std::move(what)));
  ContainerSpec spec;
  auto args = TRY(fields.optional_string_array("args"));
  if (!args) return fail("{}: missing required field `args` (an array of strings: the command)", fields.what());
  if (args->empty() || args->front().empty()) {
    return fail("{}: field `args` must start with a non-empty command", fields.what());
  }
  spec.args = std::move(*args);
  spec.env = TRY(fields.optional_string_array("env")).value_or(std::vector<std::string>{});
  for (std::size_t i = 0; i < spec.env.size(); ++i) {
    const auto equals = spec.env[i].find('=');
    if (equals == std::string::npos || equals == 0) {
      return fail("{}: field `env[{}]` must be KEY=VALUE with a non-empty KEY, got {}", fields.what(), i,
                  quote_text(spec.env[i]));
    }
  }
  spec.cwd = TRY(fields.optional_string("cwd"));
  if (spec.cwd && !spec.cwd->starts_with('/')) {
    return fail("{}: field `cwd` must be an absolute path, got {}", fields.what(), quote_text(*spec.cwd));
  }
  spec.user = TRY(fields.optional_string("user"));
  spec.hostname = TRY(fields.optional_string("hostname"));
  if (spec.hostname && (spec.hostname->empty() || spec.hostname->size() > kMaxHostnameLength)) {
    return fail("{}: field `hostname` must be 1 to {} characters long", fields.what(), kMaxHostnameLength);
  }
  TRY_VOID(fields.finish());
  return spec;
}

Result<ConsoleKind> parse_console(const json& body, std::string what) {
  auto fields = TRY(Fields::of(body, std::move(what)));
  const std::string kind = TRY(fields.required_string("kind"));
  TRY_VOID(fields.finish());
  if (kind == "serial") return ConsoleKind::kSerial;
  if (kind == "virtio") return ConsoleKind::kVirtio;
  return fail("{}: `kind` must be \"serial\" or \"virtio\", got {}", fields.what(), quote_text(kind));
}

// --- serializing -------------------------------------------------------------------------------------

json to_json(const MachineSpec& config) {
  return {{"vcpu_count", config.vcpu_count}, {"mem_size_mib", config.mem_size_mib}, {"smt", config.smt}};
}

json to_json(const BootSource& source) {
  json out = {{"kernel_image_path", source.kernel_image_path}};
  if (source.boot_args) out["boot_args"] = *source.boot_args;
  if (source.initrd_path) out["initrd_path"] = *source.initrd_path;
  return out;
}

json to_json(const DriveConfig& drive) {
  return {{"drive_id", drive.drive_id},
          {"path_on_host", drive.path_on_host},
          {"is_root_device", drive.is_root_device},
          {"is_read_only", drive.is_read_only}};
}

json to_json(const NetworkInterfaceConfig& iface) {
  json out = {{"iface_id", iface.iface_id}, {"host_dev_name", iface.host_dev_name}};
  if (iface.guest_mac) out["guest_mac"] = *iface.guest_mac;
  if (iface.guest_ip) out["guest_ip"] = *iface.guest_ip;
  if (iface.guest_gateway) out["guest_gateway"] = *iface.guest_gateway;
  if (iface.guest_dns) out["guest_dns"] = *iface.guest_dns;
  return out;
}

json to_json(ConsoleKind kind) {
  return {{"kind", kind == ConsoleKind::kVirtio ? "virtio" : "serial"}};
}

json to_json(const ContainerSpec& spec) {
  json out = {{"args", spec.args}, {"env", spec.env}};
  if (spec.cwd) out["cwd"] = *spec.cwd;
  if (spec.user) out["user"] = *spec.user;
  if (spec.hostname) out["hostname"] = *spec.hostname;
  return out;
}

// --- routing -----------------------------------------------------------------------------------------

Response json_response(const json& body) {
  return Response{kStatusOk, dump(body)};
}

Response result_response(const Result<void>& result) {
  if (!result) return error_response(kStatusBadRequest, result.error().message);
  return Response{kStatusNoContent, {}};
}

// The body of a PUT/PATCH as JSON, or the 400 to answer.
Result<json> body_json(const Request& request) {
  if (request.body.empty()) return fail("{} {}: the request needs a JSON body", request.method, request.target);
  return parse_json(request.body);
}

// What a known path answers to a method it does not take.
Response method_not_allowed(const Request& request, std::string_view path_pattern) {
  return error_response(kStatusMethodNotAllowed, fmt::format("{} is not supported on {} (allowed: {})", request.method,
                                                             path_pattern, allowed_methods(request.target)));
}

// Firecracker endpoints microvm does not implement: 404 that says so.
constexpr std::string_view kFirecrackerOnly[] = {"/balloon",
                                                 "/balloon/statistics",
                                                 "/balloon/hinting/start",
                                                 "/balloon/hinting/status",
                                                 "/balloon/hinting/stop",
                                                 "/cpu-config",
                                                 "/logger",
                                                 "/metrics",
                                                 "/mmds",
                                                 "/mmds/config",
                                                 "/entropy",
                                                 "/serial",
                                                 "/hotplug/memory",
                                                 "/snapshot/create",
                                                 "/snapshot/load",
                                                 "/vsock"};

Response route_put_resource(Controller& controller, const Request& request, std::string_view kind,
                            std::string_view path_id) {
  const bool is_drive = kind == "drives";
  const std::string id_field = is_drive ? "drive_id" : "iface_id";
  const std::string pattern = fmt::format("/{}/{{{}}}", kind, id_field);
  if (request.method != "PUT") return method_not_allowed(request, pattern);
  if (auto valid = check_id(fmt::format("path {}", pattern), id_field, path_id); !valid) {
    return error_response(kStatusBadRequest, valid.error().message);
  }
  auto body = body_json(request);
  if (!body) return error_response(kStatusBadRequest, body.error().message);
  const std::string what = std::string(kind == "drives" ? "drive" : "network-interface");
  if (is_drive) {
    auto drive = parse_drive(*body, what);
    if (!drive) return error_response(kStatusBadRequest, drive.error().message);
    if (drive->drive_id != path_id) {
      return error_response(kStatusBadRequest,
                            fmt::format("drive: `drive_id` {} in the body differs from {} in the path",
                                        quote_text(drive->drive_id), quote_text(path_id)));
    }
    return result_response(controller.put_drive(*drive));
  }
  auto iface = parse_network_interface(*body, what);
  if (!iface) return error_response(kStatusBadRequest, iface.error().message);
  if (iface->iface_id != path_id) {
    return error_response(kStatusBadRequest,
                          fmt::format("network-interface: `iface_id` {} in the body differs from {} in the path",
                                      quote_text(iface->iface_id), quote_text(path_id)));
  }
  return result_response(controller.put_network_interface(*iface));
}

Response route_actions(Controller& controller, const Request& request) {
  if (request.method != "PUT") return method_not_allowed(request, "/actions");
  auto body = body_json(request);
  if (!body) return error_response(kStatusBadRequest, body.error().message);
  auto fields = Fields::of(*body, "actions");
  if (!fields) return error_response(kStatusBadRequest, fields.error().message);
  auto action = fields->required_string("action_type");
  if (!action) return error_response(kStatusBadRequest, action.error().message);
  if (auto done = fields->finish(); !done) return error_response(kStatusBadRequest, done.error().message);
  if (*action == "InstanceStart") return result_response(controller.start());
  if (*action == "SendCtrlAltDel") return result_response(controller.send_ctrl_alt_del());
  if (*action == "FlushMetrics") return result_response(controller.flush_metrics());
  return error_response(kStatusBadRequest,
                        fmt::format("actions: `action_type` must be \"InstanceStart\", \"SendCtrlAltDel\" or "
                                    "\"FlushMetrics\", got {}",
                                    quote_text(*action)));
}

Response route_vm(Controller& controller, const Request& request) {
  if (request.method != "PATCH") return method_not_allowed(request, "/vm");
  auto body = body_json(request);
  if (!body) return error_response(kStatusBadRequest, body.error().message);
  auto fields = Fields::of(*body, "vm");
  if (!fields) return error_response(kStatusBadRequest, fields.error().message);
  auto state = fields->required_string("state");
  if (!state) return error_response(kStatusBadRequest, state.error().message);
  if (auto done = fields->finish(); !done) return error_response(kStatusBadRequest, done.error().message);
  if (*state == "Paused") return result_response(controller.pause());
  if (*state == "Resumed") return result_response(controller.resume());
  return error_response(kStatusBadRequest,
                        fmt::format("vm: `state` must be \"Paused\" or \"Resumed\", got {}", quote_text(*state)));
}

Response route_machine_config(Controller& controller, const Request& request) {
  if (request.method == "GET") return json_response(to_json(controller.machine_config()));
  if (request.method != "PUT" && request.method != "PATCH") {
    return method_not_allowed(request, "/machine-config");
  }
  auto body = body_json(request);
  if (!body) return error_response(kStatusBadRequest, body.error().message);
  std::optional<MachineSpec> base;
  if (request.method == "PATCH") base = controller.machine_config();
  auto config = parse_machine_config(*body, "machine-config", base ? &*base : nullptr);
  if (!config) return error_response(kStatusBadRequest, config.error().message);
  return result_response(controller.put_machine_config(*config));
}

template <typename T, typename Parse, typename Put>
Response route_put(Controller& controller, const Request& request, std::string_view path, std::string_view what,
                   Parse parse, Put put) {
  if (request.method != "PUT") return method_not_allowed(request, path);
  auto body = body_json(request);
  if (!body) return error_response(kStatusBadRequest, body.error().message);
  Result<T> value = parse(*body, std::string(what));
  if (!value) return error_response(kStatusBadRequest, value.error().message);
  return result_response(std::invoke(put, controller, *value));
}

Response route_get(const Request& request, std::string_view path, const std::function<json()>& get) {
  if (request.method != "GET") return method_not_allowed(request, path);
  return json_response(get());
}

Response route(Controller& controller, const Request& request) {
  const std::string_view target = request.target;
  const auto query = target.find('?');
  if (query != std::string_view::npos) {
    return error_response(kStatusBadRequest, fmt::format("query strings are not supported: {}", quote_text(target)));
  }
  const std::string_view path = target;

  if (path == "/") {
    return route_get(request, "/", [&] {
      const InstanceInfo info = controller.instance_info();
      return json{
          {"id", info.id}, {"state", info.state}, {"vmm_version", info.vmm_version}, {"app_name", info.app_name}};
    });
  }
  if (path == "/version") {
    return route_get(request, "/version", [&] {
      return json{{"firecracker_version", controller.instance_info().vmm_version}};
    });
  }
  if (path == "/machine-config") return route_machine_config(controller, request);
  if (path == "/boot-source") {
    return route_put<BootSource>(controller, request, path, "boot-source", parse_boot_source,
                                 &Controller::put_boot_source);
  }
  if (path == "/actions") return route_actions(controller, request);
  if (path == "/vm") return route_vm(controller, request);
  if (path == "/vm/config") return route_get(request, path, [&] { return api::to_json(controller.vm_config()); });
  if (path == "/microvm/container") {
    return route_put<ContainerSpec>(controller, request, path, "container", parse_container,
                                    &Controller::put_container);
  }
  if (path == "/microvm/console") {
    return route_put<ConsoleKind>(controller, request, path, "console", parse_console, &Controller::put_console);
  }
  if (path == "/microvm/status") {
    return route_get(request, path, [&] {
      const Status status = controller.status();
      json out = {{"state", status.state}};
      if (status.exit_code) out["exit_code"] = *status.exit_code;
      return out;
    });
  }
  if (path == "/microvm/metrics") {
    if (request.method != "GET") return method_not_allowed(request, path);
    json metrics = controller.metrics();
    if (!metrics.is_object()) {
      return error_response(kStatusInternalError, fmt::format("metrics are {}, not a JSON object", describe(metrics)));
    }
    return json_response(metrics);
  }
  for (const std::string_view kind : {std::string_view("drives"), std::string_view("network-interfaces")}) {
    const std::string prefix = fmt::format("/{}/", kind);
    if (path.starts_with(prefix) && path.find('/', prefix.size()) == std::string_view::npos) {
      return route_put_resource(controller, request, kind, path.substr(prefix.size()));
    }
  }
  if (std::ranges::find(kFirecrackerOnly, path) != std::end(kFirecrackerOnly) || path.starts_with("/pmem/")) {
    return error_response(kStatusNotFound,
                          fmt::format("{} is a Firecracker endpoint microvm does not implement", quote_text(path)));
  }
  return error_response(kStatusNotFound, fmt::format("no such endpoint: {}", quote_text(path)));
}

// An optional section of the config file: absent or null is "not given".
const json* section(const json& config, std::string_view key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return nullptr;
  return &*it;
}

template <typename T, typename Parse>
Result<std::vector<T>> parse_list(const json& config, std::string_view key, Parse parse) {
  std::vector<T> out;
  const json* list = section(config, key);
  if (list == nullptr) return out;
  if (!list->is_array()) return fail("{}: expected an array, got {}", key, describe(*list));
  for (std::size_t i = 0; i < list->size(); ++i) out.push_back(TRY(parse((*list)[i], fmt::format("{}[{}]", key, i))));
  return out;
}

// Firecracker config-file sections microvm does not implement.
constexpr std::string_view kFirecrackerOnlySections[] = {"balloon",        "cpu-config",  "logger", "metrics",
                                                         "memory-hotplug", "mmds-config", "pmem",   "serial",
                                                         "vsock",          "entropy"};

}  // namespace

std::string_view allowed_methods(std::string_view target) {
  if (target == "/" || target == "/version" || target == "/vm/config" || target == "/microvm/status" ||
      target == "/microvm/metrics") {
    return "GET";
  }
  if (target == "/machine-config") return "GET, PUT, PATCH";
  if (target == "/boot-source" || target == "/actions" || target == "/microvm/container" ||
      target == "/microvm/console") {
    return "PUT";
  }
  if (target == "/vm") return "PATCH";
  for (const std::string_view prefix : {std::string_view("/drives/"), std::string_view("/network-interfaces/")}) {
    if (target.starts_with(prefix) && target.find('/', prefix.size()) == std::string_view::npos) return "PUT";
  }
  return "";
}

Response error_response(unsigned status, std::string_view message) {
  return Response{status, dump(json{{"fault_message", message}})};
}

Result<json> parse_json(std::string_view text) {
  // Thrown from the parser callback to stop at the first violation.
  struct Rejected {
    std::string message;
  };
  std::vector<std::set<std::string>> keys;  // the keys seen so far in each open object
  const json::parser_callback_t check = [&keys](int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxJsonDepth) throw Rejected{fmt::format("JSON nests deeper than {} levels", kMaxJsonDepth)};
    switch (event) {
      case json::parse_event_t::object_start: keys.emplace_back(); break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second) {
          throw Rejected{fmt::format("duplicate field {}", quote_text(parsed.get<std::string>()))};
        }
        break;
      default: break;
    }
    return true;
  };
  try {
    return json::parse(text, check, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const Rejected& rejected) {
    return fail("invalid JSON: {}", rejected.message);
  } catch (const json::exception& error) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." without the tag.
    std::string_view message = error.what();
    if (const auto tag_end = message.find("] "); message.starts_with("[json.") && tag_end != std::string_view::npos) {
      message.remove_prefix(tag_end + 2);
    }
    return fail("invalid JSON: {}", message);
  }
}

Response handle(Controller& controller, const Request& request) {
  try {
    return route(controller, request);
  } catch (const std::exception& error) {
    return error_response(kStatusInternalError, fmt::format("internal error: {}", error.what()));
  } catch (...) {
    return error_response(kStatusInternalError, "internal error");
  }
}

Result<VmResources> parse_vm_config(const json& config) {
  if (!config.is_object()) return fail("config: expected a JSON object, got {}", describe(config));
  for (const auto& [key, value] : config.items()) {
    const bool known = key == "boot-source" || key == "machine-config" || key == "drives" ||
                       key == "network-interfaces" || key == "container" || key == "console";
    if (known) continue;
    if (std::ranges::find(kFirecrackerOnlySections, key) == std::end(kFirecrackerOnlySections)) {
      return fail("config: unknown section {}", quote_text(key));
    }
    if (!value.is_null() && !(value.is_array() && value.empty())) {
      return fail("config: section `{}` is not supported by microvm (remove it or make it null)", key);
    }
  }
  VmResources out;
  if (const json* source = section(config, "boot-source")) {
    out.boot_source = TRY(parse_boot_source(*source, "boot-source"));
  }
  if (const json* machine = section(config, "machine-config")) {
    out.machine_config = TRY(parse_machine_config(*machine, "machine-config", nullptr));
  }
  const auto drives = TRY(parse_list<DriveConfig>(config, "drives", parse_drive));
  const auto ifaces = TRY(parse_list<NetworkInterfaceConfig>(config, "network-interfaces", parse_network_interface));
  for (std::size_t i = 0; i < drives.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (drives[j].drive_id == drives[i].drive_id) {
        return fail("drives[{}]: `drive_id` {} is already used by drives[{}]", i, quote_text(drives[i].drive_id), j);
      }
    }
    if (auto put = out.put_drive(drives[i]); !put) {
      return std::unexpected(put.error().context(fmt::format("drives[{}]", i)));
    }
  }
  for (std::size_t i = 0; i < ifaces.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (ifaces[j].iface_id == ifaces[i].iface_id) {
        return fail("network-interfaces[{}]: `iface_id` {} is already used by network-interfaces[{}]", i,
                    quote_text(ifaces[i].iface_id), j);
      }
    }
    out.put_network_interface(ifaces[i]);
  }
  if (const json* container = section(config, "container")) {
    out.container = TRY(parse_container(*container, "container"));
  }
  if (const json* console = section(config, "console")) out.console = TRY(parse_console(*console, "console"));
  return out;
}

json to_json(const VmResources& config) {
  json drives = json::array();
  for (const DriveConfig& drive : config.drives) drives.push_back(to_json(drive));
  json ifaces = json::array();
  for (const NetworkInterfaceConfig& iface : config.network_interfaces) ifaces.push_back(to_json(iface));
  const bool has_boot_source = config.boot_source != BootSource{};
  return {{"boot-source", has_boot_source ? to_json(config.boot_source) : json(nullptr)},
          {"machine-config", to_json(config.machine_config)},
          {"drives", std::move(drives)},
          {"network-interfaces", std::move(ifaces)},
          {"container", config.container ? to_json(*config.container) : json(nullptr)},
          {"console", to_json(config.console)}};
}

Result<void> apply_config_file(Controller& controller, const json& config) {
  const VmResources parsed = TRY(parse_vm_config(config));
  // Each step's error, prefixed with the section it came from.
  const auto step = [](std::string_view where, Result<void> result) -> Result<void> {
    if (!result) return std::unexpected(result.error().context(where));
    return {};
  };
  if (section(config, "machine-config") != nullptr) {
    TRY_VOID(step("machine-config", controller.put_machine_config(parsed.machine_config)));
  }
  if (section(config, "boot-source") != nullptr) {
    TRY_VOID(step("boot-source", controller.put_boot_source(parsed.boot_source)));
  }
  for (std::size_t i = 0; i < parsed.drives.size(); ++i) {
    TRY_VOID(step(fmt::format("drives[{}]", i), controller.put_drive(parsed.drives[i])));
  }
  for (std::size_t i = 0; i < parsed.network_interfaces.size(); ++i) {
    TRY_VOID(
        step(fmt::format("network-interfaces[{}]", i), controller.put_network_interface(parsed.network_interfaces[i])));
  }
  if (parsed.container) TRY_VOID(step("container", controller.put_container(*parsed.container)));
  if (section(config, "console") != nullptr) TRY_VOID(step("console", controller.put_console(parsed.console)));
  return {};
}

}  // namespace microvm::api
