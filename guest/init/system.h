// The init's thin layer over the system calls that need PID 1 in a VM (mounts, the console,
// network interfaces, the status port, power-off). Not unit-tested: the end-to-end tests boot it.
// Every decision that can be tested on the host lives in spec.h, user.h, workload.h and net.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "guest/protocol/ipv4.h"
#include "guest/protocol/result.h"
#include "guest/protocol/spec.h"
#include "guest/protocol/spec_channel.h"
#include "guest/protocol/status_port.h"

namespace microvm::guest::sys {

// Where the init assembles the container's root before switching to it (in the initramfs).
inline constexpr std::string_view kLowerDir = "/mnt/lower";  // the image, read-only
inline constexpr std::string_view kRwDir = "/mnt/rw";        // tmpfs: the overlay's upper and work dirs
inline constexpr std::string_view kNewRoot = "/mnt/root";    // what becomes "/"

// One line "microvm-init: <message>" on stderr (the console).
void print_error(std::string_view message);

// /proc, /sys and devtmpfs on /dev in the initramfs; then makes sure fds 0-2 are the console (the
// kernel leaves them closed when the initramfs has no /dev/console).
[[nodiscard]] Result<void> mount_early();

// Clears OPOST on the console so "\n" is not sent as "\r\n": the workload's output arrives on the
// host byte for byte. Not a terminal (ENOTTY): nothing to do.
[[nodiscard]] Result<void> make_console_byte_exact(int fd);
// Waits (bounded) until the console's output queue is empty, so nothing is lost at power-off.
void drain_console(int fd);

// Mounts spec.root at kNewRoot (read-only image, or the overlay over it), the API file systems
// inside it (/proc, /sys and /dev moved from the initramfs; /dev/pts, /dev/shm, /run,
// /sys/fs/cgroup), and /etc/resolv.conf for the given name servers (none: the image's is kept).
[[nodiscard]] Result<void> prepare_root(const RootSpec& root, const std::vector<Ipv4Address>& dns);
// Writes spec.files into kNewRoot (after prepare_root): each replaces what the image has at its
// path; where the root is read-only, the contents are bind-mounted over the image's regular file.
[[nodiscard]] Result<void> install_files(const std::vector<FileSpec>& files);
// Makes `new_root` the root directory the way busybox's switch_root does: chdir, MS_MOVE onto
// "/", chroot(".").
[[nodiscard]] Result<void> switch_root(std::string_view new_root);

[[nodiscard]] Result<void> set_hostname(std::string_view hostname);
// lo up; each interface's address, netmask and link up; the default route via its gateway.
[[nodiscard]] Result<void> configure_network(const std::vector<NetworkSpec>& interfaces);

// mkdir -p with `mode` for the directories it creates.
[[nodiscard]] Result<void> make_directories(std::string_view path, unsigned mode);

// The guest side of status_port.h. Without I/O port access (ioperm failed: no status device in this
// kernel) reports go nowhere and a stop is never requested.
class StatusPort {
 public:
  static Result<StatusPort> open();
  StatusPort() = default;

  void report(status_port::Event event, std::uint32_t payload) const;
  [[nodiscard]] bool stop_requested() const;
  // A template boot: reports kSpecWanted, then reads the spec from the host (spec_channel.h),
  // polling until the host publishes one.
  [[nodiscard]] Result<std::string> receive_spec(std::size_t max_bytes) const;
  // Gives up the port access in a child before it execs the workload.
  static void drop_access();

 private:
  explicit StatusPort(bool enabled) : enabled_(enabled) {}
  bool enabled_ = false;
};

// clock_settime(CLOCK_REALTIME) to the host's time the spec carries.
[[nodiscard]] Result<void> set_wall_clock(std::uint64_t realtime_ns);
// A template boot: the drive was attached empty and gets its image when the spec is delivered
// (the host raises a virtio config change); waits (bounded) until `device` has a non-zero size.
[[nodiscard]] Result<void> wait_for_media(const std::string& device);

// sync, power off (reboot(RB_POWER_OFF)); never returns (PID 1 must not exit: the kernel panics).
[[noreturn]] void power_off();

}  // namespace microvm::guest::sys
