#include "api/http/socket_file.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "base/error.h"
#include "base/unique_fd.h"

namespace microvm::api {
namespace {

// The API socket is the VM's control: its owner only.
constexpr mode_t kSocketMode = 0600;

}  // namespace

Result<void> clear_stale_socket(const std::string& path) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return {};
    return fail("cannot inspect API socket path {}: {}", path, errno_text(errno));
  }
  if (!S_ISSOCK(info.st_mode)) {
    return fail("API socket path {} exists and is not a socket: remove it or choose another path", path);
  }
  // Non-blocking: a listener with a full backlog would otherwise block connect().
  const UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return fail("cannot check whether API socket {} is in use: {}", path, errno_text(errno));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, sizeof(address.sun_path) - 1);
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0 || errno == EAGAIN) {
    return fail("API socket {} is in use by another process (another microvm?): choose another path", path);
  }
  if (errno != ECONNREFUSED) return fail("cannot check whether API socket {} is in use: {}", path, errno_text(errno));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return fail("cannot remove stale API socket {}: {}", path, errno_text(errno));
  }
  spdlog::info("removed stale API socket {}", path);
  return {};
}

Result<SocketFile> SocketFile::adopt(std::string path) {
  struct stat info {};
  if (::chmod(path.c_str(), kSocketMode) != 0 || ::stat(path.c_str(), &info) != 0) {
    const int saved = errno;
    ::unlink(path.c_str());
    return fail("cannot set up API socket {}: {}", path, errno_text(saved));
  }
  return SocketFile(std::move(path), info.st_dev, info.st_ino);
}

SocketFile::SocketFile(SocketFile&& other) noexcept
    : path_(std::exchange(other.path_, {})), dev_(other.dev_), ino_(other.ino_) {}

SocketFile::~SocketFile() {
  if (path_.empty()) return;
  struct stat info {};
  if (::stat(path_.c_str(), &info) == 0 && info.st_dev == dev_ && info.st_ino == ino_) ::unlink(path_.c_str());
}

}  // namespace microvm::api
