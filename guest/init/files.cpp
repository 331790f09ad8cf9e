#include "guest/init/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "base/unique_fd.h"

namespace microvm::guest {

namespace {

constexpr std::size_t kReadChunk = 4096;

Result<std::optional<std::string>> read_impl(const std::string& path, std::size_t max_bytes, bool optional) {
  const UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (optional && (errno == ENOENT || errno == ENOTDIR)) return std::nullopt;
    {
      const int err = errno;
      return fail_errno("cannot open " + path, err);
    }
  }
  std::string contents;
  char buffer[kReadChunk];
  while (true) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      return fail_errno("cannot read " + path, err);
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<std::size_t>(n));
    if (contents.size() > max_bytes) {
      return fail(path + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  return contents;
}

}  // namespace

Result<std::string> read_file(const std::string& path, std::size_t max_bytes) {
  auto contents = read_impl(path, max_bytes, false);
  if (!contents) return std::unexpected(contents.error());
  return std::move(**contents);
}

Result<std::optional<std::string>> read_optional_file(const std::string& path, std::size_t max_bytes) {
  return read_impl(path, max_bytes, true);
}

}  // namespace microvm::guest
