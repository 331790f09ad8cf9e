// Whole-file reads for the init (spec.json, the image's /etc/passwd and /etc/group).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "guest/protocol/result.h"

namespace microvm::guest {

// The file's contents; an error when it cannot be read or is larger than max_bytes.
[[nodiscard]] Result<std::string> read_file(const std::string& path, std::size_t max_bytes);
// The same, but nullopt when the file does not exist (ENOENT or ENOTDIR).
[[nodiscard]] Result<std::optional<std::string>> read_optional_file(const std::string& path, std::size_t max_bytes);

}  // namespace microvm::guest
