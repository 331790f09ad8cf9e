// Fuzzes the API server's request handling (api/handler.h, api/http/serve_bytes.h) with hostile clients. The
// first byte picks what the rest of the input is (each form is plain text, so seeds are readable):
//   '0' (mod 3): raw bytes on one connection, through the server's HTTP parser (serve_bytes), with
//                small limits so the 413/431 paths are reached;
//   '1' (mod 3): "METHOD TARGET\n" then the body, straight into handle();
//   '2' (mod 3): a config file (Firecracker's full-config JSON), through parse_vm_config and
//                apply_config_file.
// Whatever the input, nothing may crash or throw, every answer is well-formed (a known status, a
// JSON body where one is due, a fault_message on errors), the controller only ever sees values the
// API promises to have checked, and a parsed config file survives a round trip through to_json.
#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "api/handler.h"
#include "api/http/serve_bytes.h"
#include "api/json.h"
#include "api/resources/vm_config.h"
#include "guest/protocol/ipv4.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using microvm::Result;
using nlohmann::json;
namespace api = microvm::api;
namespace guest = microvm::guest;

bool valid_id(const std::string& id) {
  constexpr std::size_t kMaxIdLength = 64;  // Firecracker's resource ids
  if (id.empty() || id.size() > kMaxIdLength) return false;
  for (const char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// Accepts everything; checks that what reaches it was validated.
class CheckingController : public api::Controller {
 public:
  api::InstanceInfo instance_info() override { return {"fuzz", "Not started", "0.0.0", "microvm"}; }
  api::MachineSpec machine_config() override { return config_.machine_config; }
  Result<void> put_machine_config(const api::MachineSpec& config) override {
    FUZZ_CHECK(config.vcpu_count >= 1 && config.vcpu_count <= 32, "vcpu_count {}", config.vcpu_count);
    FUZZ_CHECK(config.mem_size_mib >= 32 && config.mem_size_mib <= (1ULL << 20), "mem_size_mib {}",
               config.mem_size_mib);
    FUZZ_CHECK(!config.smt || config.vcpu_count == 1 || config.vcpu_count % 2 == 0, "smt with {} vCPUs",
               config.vcpu_count);
    config_.machine_config = config;
    return {};
  }
  Result<void> put_boot_source(const api::BootSource& source) override {
    FUZZ_CHECK(!source.kernel_image_path.empty(), "empty kernel path");
    FUZZ_CHECK(source.kernel_image_path.find('\0') == std::string::npos, "NUL in kernel path");
    return {};
  }
  Result<void> put_drive(const api::DriveConfig& drive) override {
    FUZZ_CHECK(valid_id(drive.drive_id), "drive_id {:?}", drive.drive_id);
    FUZZ_CHECK(!drive.path_on_host.empty(), "empty drive path");
    return {};
  }
  Result<void> put_network_interface(const api::NetworkInterfaceConfig& iface) override {
    FUZZ_CHECK(valid_id(iface.iface_id), "iface_id {:?}", iface.iface_id);
    FUZZ_CHECK(!iface.host_dev_name.empty() && iface.host_dev_name.size() <= 15, "host_dev_name {:?}",
               iface.host_dev_name);
    FUZZ_CHECK(!iface.guest_mac || iface.guest_mac->size() == 17, "guest_mac {:?}", *iface.guest_mac);
    FUZZ_CHECK(!iface.guest_ip || guest::parse_ipv4_cidr(*iface.guest_ip), "guest_ip {:?}", *iface.guest_ip);
    return {};
  }
  Result<void> put_container(const api::ContainerSpec& spec) override {
    FUZZ_CHECK(!spec.args.empty() && !spec.args[0].empty(), "container without a command");
    for (const std::string& entry : spec.env)
      FUZZ_CHECK(entry.find('=') != 0 && entry.find('=') != std::string::npos, "env entry {:?}", entry);
    FUZZ_CHECK(!spec.cwd || spec.cwd->starts_with('/'), "cwd {:?}", *spec.cwd);
    return {};
  }
  Result<void> put_console(api::ConsoleKind kind) override {
    config_.console = kind;
    return {};
  }
  // State decisions are the controller's: refuse every other action so that path is covered too.
  Result<void> start() override { return {}; }
  Result<void> send_ctrl_alt_del() override { return microvm::fail("the VM is not running"); }
  Result<void> flush_metrics() override { return {}; }
  Result<void> pause() override { return microvm::fail("the VM is not running"); }
  Result<void> resume() override { return {}; }
  Result<void> create_snapshot(const api::SnapshotCreateParams& params) override {
    FUZZ_CHECK(!params.snapshot_path.empty() && !params.mem_file_path.empty(), "empty snapshot path");
    return microvm::fail("the VM is not paused");
  }
  Result<void> load_snapshot(const api::SnapshotLoadParams& params) override {
    FUZZ_CHECK(!params.snapshot_path.empty() && !params.mem_file_path.empty(), "empty snapshot path");
    for (const auto& o : params.network_overrides)
      FUZZ_CHECK(valid_id(o.iface_id) && !o.host_dev_name.empty() && o.host_dev_name.size() <= 15,
                 "network override {:?} {:?}", o.iface_id, o.host_dev_name);
    return {};
  }
  api::VmResources vm_config() override { return config_; }
  api::Status status() override { return {"Not started", std::nullopt}; }
  json metrics() override { return json{{"requests", 1}}; }

 private:
  api::VmResources config_;
};

void check_response(const api::Response& response) {
  switch (response.status) {
    case api::kStatusNoContent: FUZZ_CHECK(response.body.empty(), "204 with a body: {}", response.body); return;
    case api::kStatusOk: FUZZ_CHECK(json::accept(response.body), "200 body is not JSON: {}", response.body); return;
    case api::kStatusBadRequest:
    case api::kStatusNotFound:
    case api::kStatusMethodNotAllowed: {
      const json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
      FUZZ_CHECK(body.is_object() && body.contains("fault_message") && body["fault_message"].is_string() &&
                     !body["fault_message"].get<std::string>().empty(),
                 "{} without a fault_message: {}", response.status, response.body);
      return;
    }
    default: FUZZ_CHECK(false, "unexpected status {} ({})", response.status, response.body);
  }
}

void fuzz_http(std::string_view input) {
  CheckingController controller;
  const api::Limits limits{.max_body = 4096, .max_header = 1024};
  const std::string output = api::serve_bytes(controller, input, limits);
  FUZZ_CHECK(output.empty() || output.starts_with("HTTP/1.1 "), "output is not HTTP: {:?}", output.substr(0, 64));
}

void fuzz_handle(std::string_view input) {
  api::Request request;
  const auto line_end = input.find('\n');
  const std::string_view line = input.substr(0, line_end);
  const auto space = line.find(' ');
  request.method = std::string(line.substr(0, space));
  if (space != std::string_view::npos) request.target = std::string(line.substr(space + 1));
  if (line_end != std::string_view::npos) request.body = std::string(input.substr(line_end + 1));
  CheckingController controller;
  check_response(api::handle(controller, request));
}

void fuzz_config(std::string_view input) {
  auto parsed_json = api::parse_json(input);
  if (!parsed_json) return;
  auto config = api::parse_vm_config(*parsed_json);
  CheckingController controller;
  auto applied = api::apply_config_file(controller, *parsed_json);
  FUZZ_CHECK(config.has_value() == applied.has_value(), "parse and apply disagree: {}",
             config ? applied.error().message : config.error().message);
  if (!config) return;
  const json round_trip = api::to_json(*config);
  auto again = api::parse_vm_config(round_trip);
  FUZZ_CHECK(again.has_value(), "to_json output does not parse back: {}", again.error().message);
  FUZZ_CHECK(*again == *config, "round trip changed the config: {}", round_trip.dump());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  microvm::fuzz::silence_logging();
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: fuzz_http(rest); break;
    case 1: fuzz_handle(rest); break;
    default: fuzz_config(rest); break;
  }
  return 0;
}
