#include "guest/init/system.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <sys/io.h>
#endif

#include <sys/sysmacros.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

#include "base/unique_fd.h"

namespace microvm::guest::sys {

namespace {

using namespace std::chrono_literals;

constexpr unsigned kDirMode = 0755;
constexpr unsigned kFileMode = 0644;
constexpr auto kDeviceWait = 5s;  // the root device normally exists before /init runs
constexpr auto kDeviceWaitStep = 10ms;
constexpr auto kMediaWaitStep = 1ms;     // a template boot's drive gets its image right before the spec
constexpr auto kSpecPollInterval = 1ms;  // how often a template boot's init polls for its spec
constexpr auto kSpecWaitLimit = 24h;     // a template may sit paused for long; the host ends a VM it forgot
constexpr std::uint64_t kNsPerSecond = 1'000'000'000;
constexpr auto kDrainWait = 2s;
constexpr auto kDrainStep = 1ms;

constexpr unsigned long kApiFlags = MS_NOSUID | MS_NODEV | MS_NOEXEC;

std::string join(std::string_view a, std::string_view b) {
  return std::string(a) + std::string(b);
}

Result<void> mount_at(const std::string& source, const std::string& target, const std::string& fstype,
                      unsigned long flags, const std::string& data) {
  if (auto made = make_directories(target, kDirMode); !made) return made;
  if (::mount(source.c_str(), target.c_str(), fstype.empty() ? nullptr : fstype.c_str(), flags,
              data.empty() ? nullptr : data.c_str()) != 0) {
    {
      const int err = errno;
      return fail_errno("cannot mount " + source + " (" + (fstype.empty() ? "bind/move" : fstype) + ") on " + target,
                        err);
    }
  }
  return {};
}

Result<void> move_mount(const std::string& from, const std::string& to) {
  if (auto made = make_directories(to, kDirMode); !made) return made;
  if (::mount(from.c_str(), to.c_str(), nullptr, MS_MOVE, nullptr) != 0) {
    {
      const int err = errno;
      return fail_errno("cannot move the mount " + from + " to " + to, err);
    }
  }
  return {};
}

Result<void> write_file(const std::string& path, std::string_view contents) {
  const UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, kFileMode));
  if (!fd.valid()) {
    const int err = errno;
    return fail_errno("cannot create " + path, err);
  }
  while (!contents.empty()) {
    const ssize_t n = ::write(fd.get(), contents.data(), contents.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      return fail_errno("cannot write " + path, err);
    }
    contents.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

Result<void> wait_for_device(const std::string& device) {
  const auto deadline = std::chrono::steady_clock::now() + kDeviceWait;
  struct stat st {};
  while (::stat(device.c_str(), &st) != 0) {
    if (errno != ENOENT || std::chrono::steady_clock::now() >= deadline) {
      {
        const int err = errno;
        return fail_errno("root device " + device + " is not there (is the drive attached?)", err);
      }
    }
    std::this_thread::sleep_for(kDeviceWaitStep);
  }
  return {};
}

// The image, read-only. A journal that needs recovery cannot be replayed on a read-only device:
// ext3/ext4 then refuse with EROFS, and "noload" mounts it as it is on disk.
Result<void> mount_image(const RootSpec& root, const std::string& target) {
  if (auto made = make_directories(target, kDirMode); !made) return made;
  if (::mount(root.device.c_str(), target.c_str(), root.fstype.c_str(), MS_RDONLY, nullptr) == 0) return {};
  if (errno == EROFS && (root.fstype == "ext4" || root.fstype == "ext3")) {
    return mount_at(root.device, target, root.fstype, MS_RDONLY, "noload");
  }
  {
    const int err = errno;
    return fail_errno("cannot mount the root device " + root.device + " (" + root.fstype + ") read-only", err);
  }
}

// /etc/resolv.conf for the name servers: written into a writable root, else bind-mounted from the
// tmpfs over the image's own file.
Result<void> install_resolv_conf(const std::vector<Ipv4Address>& dns, bool writable) {
  const std::string contents = render_resolv_conf(dns);
  const std::string etc = join(kNewRoot, "/etc");
  const std::string target = etc + "/resolv.conf";
  if (writable) {
    if (auto made = make_directories(etc, kDirMode); !made) return made;
    if (::unlink(target.c_str()) != 0 && errno != ENOENT) {
      const int err = errno;
      return fail_errno("cannot replace " + target, err);
    }
    return write_file(target, contents);
  }
  struct stat st {};
  if (::lstat(target.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return fail(
        "cannot set the DNS servers: the read-only root has no regular /etc/resolv.conf to cover "
        "(use a writable overlay)");
  }
  const std::string source = join(kRwDir, "/resolv.conf");
  if (auto written = write_file(source, contents); !written) return written;
  return mount_at(source, target, "", MS_BIND, "");
}

Result<void> mount_api_filesystems() {
  const std::string root(kNewRoot);
  // Move the initramfs's /proc, /sys and /dev instead of mounting them twice.
  for (const char* dir : {"/proc", "/sys", "/dev"}) {
    if (auto moved = move_mount(dir, root + dir); !moved) return moved;
  }
  const struct {
    const char* target;
    const char* fstype;
    unsigned long flags;
    const char* data;
  } mounts[] = {
      // gid 5 is "tty" in Debian, Alpine and Fedora images (runc uses the same options).
      {"/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"},
      {"/dev/shm", "tmpfs", kApiFlags, "mode=1777,size=65536k"},  // Docker's default 64 MiB
      {"/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"},
      {"/sys/fs/cgroup", "cgroup2", kApiFlags, ""},
  };
  for (const auto& m : mounts) {
    if (auto mounted = mount_at(m.fstype, root + m.target, m.fstype, m.flags, m.data); !mounted) return mounted;
  }
  // What runc adds to /dev: devtmpfs has no such links.
  const struct {
    const char* link;
    const char* target;
  } links[] = {{"/dev/fd", "/proc/self/fd"},
               {"/dev/stdin", "/proc/self/fd/0"},
               {"/dev/stdout", "/proc/self/fd/1"},
               {"/dev/stderr", "/proc/self/fd/2"}};
  for (const auto& l : links) {
    const std::string path = root + l.link;
    if (::symlink(l.target, path.c_str()) != 0 && errno != EEXIST) {
      const int err = errno;
      return fail_errno("cannot create " + path, err);
    }
  }
  return {};
}

}  // namespace

void print_error(std::string_view message) {
  std::string line = "microvm-init: ";
  line += message;
  line += '\n';
  std::string_view rest = line;
  while (!rest.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
}

Result<void> make_directories(std::string_view path, unsigned mode) {
  std::string prefix;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::size_t end = slash == std::string_view::npos ? path.size() : slash;
    prefix = std::string(path.substr(0, end));
    if (!prefix.empty() && ::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      const int err = errno;
      struct stat st {};  // EROFS and the like are fine for a directory that is already there
      if (::stat(prefix.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return fail_errno("cannot create " + prefix, err);
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return {};
}

Result<void> mount_early() {
  if (auto ok = mount_at("proc", "/proc", "proc", kApiFlags, ""); !ok) return ok;
  if (auto ok = mount_at("sysfs", "/sys", "sysfs", kApiFlags, ""); !ok) return ok;
  if (auto ok = mount_at("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"); !ok) return ok;
  if (::fcntl(STDOUT_FILENO, F_GETFD) < 0 || ::fcntl(STDERR_FILENO, F_GETFD) < 0) {
    const int console = ::open("/dev/console", O_RDWR | O_NOCTTY);
    if (console < 0) {
      const int err = errno;
      return fail_errno("cannot open /dev/console", err);
    }
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; ++fd) {
      if (fd != console) ::dup2(console, fd);
    }
    if (console > STDERR_FILENO) ::close(console);
  }
  return {};
}

Result<void> make_console_byte_exact(int fd) {
  termios tio{};
  if (::tcgetattr(fd, &tio) != 0) {
    if (errno == ENOTTY) return {};
    {
      const int err = errno;
      return fail_errno("cannot read the console's terminal settings", err);
    }
  }
  tio.c_oflag &= ~static_cast<tcflag_t>(OPOST);
  if (::tcsetattr(fd, TCSANOW, &tio) != 0) {
    const int err = errno;
    return fail_errno("cannot set the console's terminal settings", err);
  }
  return {};
}

void drain_console(int fd) {
  const auto deadline = std::chrono::steady_clock::now() + kDrainWait;
  int queued = 0;
  while (::ioctl(fd, TIOCOUTQ, &queued) == 0 && queued > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(kDrainStep);
  }
}

Result<void> prepare_root(const RootSpec& root, const std::vector<Ipv4Address>& dns) {
  if (auto ok = wait_for_device(root.device); !ok) return ok;
  const std::string new_root(kNewRoot);
  const std::string rw(kRwDir);
  // Scratch space for the overlay's upper layer and for what is bind-mounted over a read-only root
  // (resolv.conf, spec.files).
  if (auto ok = mount_at("tmpfs", rw, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"); !ok) return ok;
  if (root.writable_overlay) {
    const std::string lower(kLowerDir);
    if (auto ok = mount_image(root, lower); !ok) return ok;
    for (const char* dir : {"/upper", "/work"}) {
      if (auto ok = make_directories(rw + dir, kDirMode); !ok) return ok;
    }
    const std::string options = "lowerdir=" + lower + ",upperdir=" + rw + "/upper,workdir=" + rw + "/work";
    if (auto ok = mount_at("overlay", new_root, "overlay", 0, options); !ok) return ok;
  } else {
    if (auto ok = mount_image(root, new_root); !ok) return ok;
  }
  if (auto ok = mount_api_filesystems(); !ok) return ok;
  if (!dns.empty()) return install_resolv_conf(dns, root.writable_overlay);
  return {};
}

Result<void> install_files(const std::vector<FileSpec>& files) {
  for (std::size_t i = 0; i < files.size(); ++i) {
    const FileSpec& file = files[i];
    const std::string target = join(kNewRoot, file.path);
    const std::string parent = target.substr(0, target.rfind('/'));
    // A read-only root may lack the directory: then the file cannot be placed, which is reported below
    // (that message says more than make_directories' EROFS would).
    [[maybe_unused]] const auto made = make_directories(parent, kDirMode);
    if (::access(parent.c_str(), W_OK) == 0) {  // EROFS on a read-only root
      if (::unlink(target.c_str()) != 0 && errno != ENOENT) {
        const int err = errno;
        return fail_errno("cannot replace " + file.path, err);
      }
      if (auto written = write_file(target, file.contents); !written) return written;
      if (::chmod(target.c_str(), file.mode) != 0) {
        const int err = errno;
        return fail_errno("cannot set the mode of " + file.path, err);
      }
      continue;
    }
    struct stat st {};
    if (::lstat(target.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return fail("cannot place " + file.path + ": the read-only root has no regular file there to cover");
    }
    const std::string source = join(kRwDir, "/file" + std::to_string(i));
    if (auto written = write_file(source, file.contents); !written) return written;
    if (::chmod(source.c_str(), file.mode) != 0) {
      const int err = errno;
      return fail_errno("cannot set the mode of " + source, err);
    }
    if (auto mounted = mount_at(source, target, "", MS_BIND, ""); !mounted) return mounted;
  }
  return {};
}

Result<void> switch_root(std::string_view new_root) {
  const std::string path(new_root);
  if (::chdir(path.c_str()) != 0) {
    const int err = errno;
    return fail_errno("cannot enter " + path, err);
  }
  if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) {
    const int err = errno;
    return fail_errno("cannot move " + path + " onto /", err);
  }
  if (::chroot(".") != 0) {
    const int err = errno;
    return fail_errno("cannot chroot into " + path, err);
  }
  if (::chdir("/") != 0) {
    const int err = errno;
    return fail_errno("cannot enter the new root", err);
  }
  return {};
}

Result<void> set_hostname(std::string_view hostname) {
  if (hostname.empty()) return {};
  if (::sethostname(hostname.data(), hostname.size()) != 0) {
    {
      const int err = errno;
      return fail_errno("cannot set the hostname to " + in_quotes(hostname), err);
    }
  }
  return {};
}

namespace {

ifreq interface_request(const std::string& name) {
  ifreq request{};
  std::memcpy(request.ifr_name, name.data(), std::min(name.size(), sizeof(request.ifr_name) - 1));
  return request;
}

sockaddr ipv4_sockaddr(Ipv4Address address) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(address.value);
  sockaddr out{};
  static_assert(sizeof(in) <= sizeof(out));
  std::memcpy(&out, &in, sizeof(in));
  return out;
}

Result<void> link_up(int sock, const std::string& name) {
  ifreq request = interface_request(name);
  if (::ioctl(sock, SIOCGIFFLAGS, &request) != 0) {
    {
      const int err = errno;
      return fail_errno("network interface " + name + " (is the --net device attached?)", err);
    }
  }
  request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
  if (::ioctl(sock, SIOCSIFFLAGS, &request) != 0) {
    const int err = errno;
    return fail_errno("cannot bring " + name + " up", err);
  }
  return {};
}

Result<void> configure_interface(int sock, const NetworkSpec& net) {
  if (net.address) {
    ifreq request = interface_request(net.interface);
    request.ifr_addr = ipv4_sockaddr(net.address->address);
    if (::ioctl(sock, SIOCSIFADDR, &request) != 0) {
      {
        const int err = errno;
        return fail_errno("cannot give " + net.interface + " the address " + to_string(*net.address), err);
      }
    }
    request = interface_request(net.interface);
    request.ifr_netmask = ipv4_sockaddr(prefix_netmask(net.address->prefix));
    if (::ioctl(sock, SIOCSIFNETMASK, &request) != 0) {
      {
        const int err = errno;
        return fail_errno("cannot set the netmask of " + net.interface + " to /" + std::to_string(net.address->prefix),
                          err);
      }
    }
  }
  if (auto up = link_up(sock, net.interface); !up) return up;
  if (net.gateway) {
    rtentry route{};
    route.rt_dst = ipv4_sockaddr(Ipv4Address{0});
    route.rt_genmask = ipv4_sockaddr(Ipv4Address{0});
    route.rt_gateway = ipv4_sockaddr(*net.gateway);
    route.rt_flags = RTF_UP | RTF_GATEWAY;
    std::string device = net.interface;  // rt_dev is a char*, not const
    route.rt_dev = device.data();
    if (::ioctl(sock, SIOCADDRT, &route) != 0) {
      {
        const int err = errno;
        return fail_errno("cannot add the default route via " + to_string(*net.gateway) + " on " + net.interface, err);
      }
    }
  }
  return {};
}

}  // namespace

Result<void> configure_network(const std::vector<NetworkSpec>& interfaces) {
  const UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) {
    const int err = errno;
    return fail_errno("cannot open a socket to configure the network", err);
  }
  if (auto up = link_up(sock.get(), "lo"); !up) return up;
  for (const NetworkSpec& net : interfaces) {
    if (auto ok = configure_interface(sock.get(), net); !ok) return ok;
  }
  return {};
}

#if defined(__x86_64__) || defined(__i386__)
Result<StatusPort> StatusPort::open() {
  if (::ioperm(status_port::kBase, status_port::kSize, 1) != 0) {
    {
      const int err = errno;
      return fail_errno("no access to the status port (the guest kernel needs CONFIG_X86_IOPL_IOPERM)", err);
    }
  }
  return StatusPort(true);
}

void StatusPort::report(status_port::Event event, std::uint32_t payload) const {
  if (enabled_) ::outl(status_port::encode(event, payload), status_port::kBase);
}

bool StatusPort::stop_requested() const {
  return enabled_ && status_port::stop_requested(::inl(status_port::kBase));
}

namespace {

// The spec registers through real port I/O (ioperm was granted for the whole range).
class HardwarePorts final : public status_port::PortIo {
 public:
  std::uint32_t in32(std::uint16_t offset) override {
    return ::inl(static_cast<std::uint16_t>(status_port::kBase + offset));
  }
  void out32(std::uint16_t offset, std::uint32_t value) override {
    ::outl(value, static_cast<std::uint16_t>(status_port::kBase + offset));
  }
  void in8_string(std::uint16_t offset, std::span<std::uint8_t> bytes) override {
    ::insb(static_cast<std::uint16_t>(status_port::kBase + offset), bytes.data(), bytes.size());
  }
};

}  // namespace

Result<std::string> StatusPort::receive_spec(std::size_t max_bytes) const {
  if (!enabled_) return fail("no status port: a template boot cannot get its spec");
  report(status_port::Event::kSpecWanted, 0);
  HardwarePorts ports;
  const auto give_up = std::chrono::steady_clock::now() + kSpecWaitLimit;
  return status_port::receive_spec(ports, max_bytes, [give_up] {
    std::this_thread::sleep_for(kSpecPollInterval);
    return std::chrono::steady_clock::now() < give_up;
  });
}

void StatusPort::drop_access() {
  ::ioperm(status_port::kBase, status_port::kSize, 0);
}
#else
Result<StatusPort> StatusPort::open() {
  return fail("the status port is an x86 I/O port");
}
void StatusPort::report(status_port::Event, std::uint32_t) const {}
bool StatusPort::stop_requested() const {
  return false;
}
void StatusPort::drop_access() {}
Result<std::string> StatusPort::receive_spec(std::size_t) const {
  return fail("the status port is an x86 I/O port");
}
#endif

Result<void> set_wall_clock(std::uint64_t realtime_ns) {
  const timespec now{static_cast<time_t>(realtime_ns / kNsPerSecond), static_cast<long>(realtime_ns % kNsPerSecond)};
  if (::clock_settime(CLOCK_REALTIME, &now) != 0) {
    const int err = errno;
    return fail_errno("cannot set the wall clock", err);
  }
  return {};
}

Result<void> wait_for_media(const std::string& device) {
  if (auto ok = wait_for_device(device); !ok) return ok;
  struct stat st {};
  if (::stat(device.c_str(), &st) != 0) {
    const int err = errno;
    return fail_errno("cannot stat the root device " + device, err);
  }
  if (!S_ISBLK(st.st_mode)) return {};  // not a disk: nothing to wait for
  const std::string size_path =
      "/sys/dev/block/" + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev)) + "/size";
  const auto deadline = std::chrono::steady_clock::now() + kDeviceWait;
  while (true) {
    std::ifstream file(size_path);
    std::uint64_t sectors = 0;
    if (file >> sectors; file && sectors > 0) return {};
    if (std::chrono::steady_clock::now() >= deadline) {
      return fail("the root device " + device + " still has no medium (size 0 in " + size_path + ")");
    }
    std::this_thread::sleep_for(kMediaWaitStep);
  }
}

void power_off() {
  ::sync();
  ::reboot(RB_POWER_OFF);
  // No power-off (no ACPI?): a reset ends the VM too (the kernel's reboot=k goes through the i8042).
  print_error(std::string("power-off failed: ") + std::strerror(errno) + "; resetting instead");
  ::reboot(RB_AUTOBOOT);
  while (true) ::pause();
}

}  // namespace microvm::guest::sys
