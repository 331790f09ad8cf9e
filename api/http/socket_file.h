// The API socket's file in the file system: what may be replaced before binding, and removal of
// exactly the file this process bound (not one another process put there since).
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.h"

namespace microvm::api {

// Before binding `path`: nothing there is fine; a stale socket (nobody listening) is removed. Fails
// if `path` is not a socket, or is one some process is listening on.
[[nodiscard]] Result<void> clear_stale_socket(const std::string& path);

class SocketFile {
 public:
  // Right after binding `path`, before listening: makes it the owner's only (0600) and remembers
  // which file it is. On failure the file is removed.
  [[nodiscard]] static Result<SocketFile> adopt(std::string path);
  // Removes the file if it is still the one adopted.
  ~SocketFile();
  SocketFile(SocketFile&& other) noexcept;
  SocketFile& operator=(SocketFile&&) = delete;
  SocketFile(const SocketFile&) = delete;
  SocketFile& operator=(const SocketFile&) = delete;

 private:
  SocketFile(std::string path, dev_t dev, ino_t ino) : path_(std::move(path)), dev_(dev), ino_(ino) {}

  std::string path_;  // empty once moved from
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

}  // namespace microvm::api
