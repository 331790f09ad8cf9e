// The container's root directory (the bundle's root.path) as the ext4 image the guest boots from,
// built with tools/rootfs-build (mkfs.ext4 -d) and cached by content:
//   CACHE/oci-rootfs/<key>.ext4, CACHE as tools/cache-dir has it ($MICROVM_CACHE, else
//   $XDG_CACHE_HOME/microvm, else $HOME/.cache/microvm, /root without a HOME).
// The key is a SHA-256 over the tree's metadata, not its file contents (reading every byte would
// cost as much as building the image): each entry's path, type and mode, owner and group, size,
// mtime (ns), device number and symlink target, plus the builder's own size and mtime. A tool that
// rewrites a file keeping its size and mtime would be missed; container engines never do (a new
// layer is a new directory).
// The builder writes a temporary file beside the image and renames it (concurrent creates of the
// same tree are safe: the last rename wins with identical content). Where the cache directory
// cannot be created or written (a read-only home), the image is built into `fallback_dir`
// instead, for this container alone.
// The image is attached read-only: microvm-init lays a tmpfs overlay on it (or mounts it read-only
// for root.readonly), so writes stay in the VM and vanish when it ends; containers never share them.
#pragma once

#include <filesystem>
#include <string>

#include "base/result.h"

namespace microvm::oci {

inline constexpr std::string_view kImageCacheSubdir = "oci-rootfs";
inline constexpr std::string_view kFallbackImageName = "rootfs.ext4";

// The cache directory (tools/cache-dir's rule).
[[nodiscard]] std::filesystem::path cache_dir();

// The tree's key: 64 hex digits. `salt` goes into the hash first (the builder's identity).
[[nodiscard]] Result<std::string> tree_key(const std::filesystem::path& dir, std::string_view salt);

struct RootfsImage {
  std::filesystem::path path;
  bool cached = false;  // false: built into fallback_dir, the container's own
  bool built = false;   // false: it was in the cache already
};

// The image for `rootfs`: from the cache, else built by `builder` (tools/rootfs-build).
[[nodiscard]] Result<RootfsImage> rootfs_image(const std::filesystem::path& rootfs, const std::filesystem::path& cache,
                                               const std::filesystem::path& fallback_dir,
                                               const std::filesystem::path& builder);

}  // namespace microvm::oci
