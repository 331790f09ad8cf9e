// The container spec: what the VMM tells microvm-init to run. The VMM writes it as JSON to
// /microvm/spec.json in the initramfs it builds; the init reads it once at boot. Unknown fields are
// errors (the init and the VMM ship together, so a typo is caught instead of ignored).
//
// {
//   "args": ["/bin/sh", "-c", "echo hi"],
//       Required. The workload's argv, at least one element, args[0] non-empty. args[0] without a
//       '/' is searched in the PATH of "env" (Docker's default PATH when "env" has none); with a
//       '/' it is used as is (relative to "cwd"). Not found: exit 127, found but not executable: 126.
//   "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "K=V"],
//       Optional, default []. The workload's whole environment, each "KEY=VALUE" with a non-empty
//       KEY; a later KEY replaces an earlier one. The init adds HOSTNAME (when "hostname" is set)
//       and HOME (from /etc/passwd, else "/") unless given here, as Docker does.
//   "cwd": "/",
//       Optional, default "/". Absolute. Created (mode 0755, owned by root) when missing.
//   "user": "1000:1000" | "nobody" | "nobody:nogroup" | "",
//       Optional, default "" (root). USER[:GROUP], each a name or a number; names are resolved from
//       the image's /etc/passwd and /etc/group (guest/protocol/user.h has the rules).
//   "hostname": "microvm",
//       Optional, default "" (the kernel's own). At most 64 bytes; set with sethostname().
//   "root": {"device": "/dev/vda", "fstype": "ext4", "writable_overlay": true},
//       Optional, each field too (these are the defaults). The image's block device (absolute path)
//       and file system, mounted read-only; with writable_overlay an overlay with a tmpfs upper layer
//       makes the root writable while the image stays unmodified (the writes vanish at power-off).
//   "network": [{"interface": "eth0", "address": "169.254.0.2/16", "gateway": "169.254.0.1",
//                "dns": ["169.254.0.1"]}],
//       Optional, default []. Per interface: "interface" (required, a kernel name of 1..15 bytes,
//       unique), "address" (optional, IPv4 "A.B.C.D/PREFIX"; absent or "": the link is only brought
//       up), "gateway" (optional, IPv4 inside the address's subnet: the default route; at most one
//       interface has one), "dns" (optional IPv4 name servers: /etc/resolv.conf lists every
//       interface's in order). The loopback interface is always brought up.
//   "stop_grace_ms": 3000,
//       Optional, default 10000 (Docker's). When the host asks for a stop, the workload gets
//       SIGTERM, then SIGKILL this many milliseconds later. 0..86400000.
//   "additional_gids": [50, 100],
//       Optional, default []. Added to the user's supplementary groups (OCI process.user.additionalGids),
//       each 0..2147483647.
//   "files": [{"path": "/etc/hosts", "contents": "127.0.0.1 localhost\n", "mode": 420}]
//       Optional, default []. Written into the new root after the API file systems are mounted and
//       before the workload starts, replacing what the image has there (parent directories are
//       created). "path" absolute, without "." or ".." components; "mode" 0..07777 (default 0644).
//       With a read-only root, a file outside a tmpfs must already exist as a regular file in the
//       image: the new contents are bind-mounted over it. At most kMaxFiles files.
//   "realtime_ns": 1796000000000000000
//       Optional. The host's CLOCK_REALTIME when it handed the spec over, in ns since the epoch: the
//       init sets the guest's wall clock to it first (clock_settime). Only a spec delivered through
//       the status port at run time has it (a warm start: the guest was restored from a template
//       whose clock stopped when the template was saved); a spec in the initramfs is older than the
//       boot and the kernel's kvmclock is the better clock there.
// }
//
// Where the init finds the spec: /microvm/spec.json in the initramfs (a cold boot), or, when the
// initramfs has kSpecFromHostPath instead (a template boot, runtime/warm_start.h), from the host
// through the status port (guest/protocol/status_port.h: kSpecWanted, then the spec registers).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "guest/protocol/ipv4.h"
#include "guest/protocol/result.h"

namespace microvm::guest {

inline constexpr std::string_view kSpecPath = "/microvm/spec.json";
inline constexpr std::string_view kSpecFromHostPath = "/microvm/spec-from-host";
inline constexpr std::size_t kMaxSpecBytes = 1U << 20;
inline constexpr std::uint32_t kDefaultStopGraceMs = 10000;
inline constexpr std::uint32_t kMaxStopGraceMs = 86'400'000;  // a day
inline constexpr std::size_t kMaxHostnameBytes = 64;          // HOST_NAME_MAX in <limits.h>
inline constexpr std::size_t kMaxInterfaceNameBytes = 15;     // IFNAMSIZ - 1 in <net/if.h>

struct RootSpec {
  std::string device = "/dev/vda";
  std::string fstype = "ext4";
  bool writable_overlay = true;
  friend bool operator==(const RootSpec&, const RootSpec&) = default;
};

struct NetworkSpec {
  std::string interface;
  std::optional<Ipv4Cidr> address;
  std::optional<Ipv4Address> gateway;
  std::vector<Ipv4Address> dns;
  friend bool operator==(const NetworkSpec&, const NetworkSpec&) = default;
};

inline constexpr std::size_t kMaxFiles = 64;
inline constexpr std::uint32_t kDefaultFileMode = 0644;
inline constexpr std::uint32_t kMaxFileMode = 07777;

struct FileSpec {
  std::string path;
  std::string contents;
  std::uint32_t mode = kDefaultFileMode;
  friend bool operator==(const FileSpec&, const FileSpec&) = default;
};

struct Spec {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd = "/";
  std::string user;
  std::string hostname;
  RootSpec root;
  std::vector<NetworkSpec> network;
  std::uint32_t stop_grace_ms = kDefaultStopGraceMs;
  std::vector<std::uint32_t> additional_gids;
  std::vector<FileSpec> files;
  std::optional<std::uint64_t> realtime_ns;
  friend bool operator==(const Spec&, const Spec&) = default;
};

// Parses and validates spec.json. The error names the field: `spec: "args" must be a non-empty
// array of strings`.
[[nodiscard]] Result<Spec> parse_spec(std::string_view json);

// The JSON the VMM writes for `spec` (parse_spec(spec_to_json(s)) == s for a valid spec).
[[nodiscard]] std::string spec_to_json(const Spec& spec);

// Every name server of every interface, in order, without duplicates.
[[nodiscard]] std::vector<Ipv4Address> all_dns_servers(const Spec& spec);

}  // namespace microvm::guest
