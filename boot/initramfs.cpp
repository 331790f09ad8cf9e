#include "boot/initramfs.h"

#include <sys/stat.h>

#include <fmt/format.h>

#include <cstring>
#include <limits>

namespace microvm::boot {

namespace {

constexpr std::string_view kNewcMagic = "070701";    // buffer-format.rst: "070701" (no checksum)
constexpr std::string_view kTrailer = "TRAILER!!!";  // the last record's name
constexpr std::size_t kHeaderFields = 13;            // 8-hex-digit fields after the magic
constexpr std::size_t kAlign = 4;                    // header+name and data are padded to 4 bytes

void append(std::vector<std::byte>& out, std::string_view text) {
  const auto* bytes = reinterpret_cast<const std::byte*>(text.data());
  out.insert(out.end(), bytes, bytes + text.size());
}

void pad(std::vector<std::byte>& out) {
  while (out.size() % kAlign != 0) out.push_back(std::byte{0});
}

void append_record(std::vector<std::byte>& out, std::uint32_t ino, const CpioEntry& entry, std::string_view name) {
  const bool directory = S_ISDIR(entry.mode);
  const std::uint32_t fields[kHeaderFields] = {
      ino,
      entry.mode,
      0,                    // uid: root
      0,                    // gid: root
      directory ? 2U : 1U,  // nlink
      0,                    // mtime
      static_cast<std::uint32_t>(entry.data.size()),
      0,  // devmajor
      0,  // devminor
      entry.rdev_major,
      entry.rdev_minor,
      static_cast<std::uint32_t>(name.size() + 1),  // namesize, with the NUL
      0,                                            // check (newc has none)
  };
  append(out, kNewcMagic);
  for (std::uint32_t field : fields) append(out, fmt::format("{:08X}", field));
  append(out, name);
  out.push_back(std::byte{0});
  pad(out);
  out.insert(out.end(), entry.data.begin(), entry.data.end());
  pad(out);
}

}  // namespace

Result<std::vector<std::byte>> build_cpio(std::span<const CpioEntry> entries) {
  std::vector<std::byte> out;
  std::uint32_t ino = 1;
  for (const CpioEntry& entry : entries) {
    const std::string_view path = entry.path;
    if (path.empty() || path.front() == '/') return fail("initramfs path '{}' must be relative and non-empty", path);
    if (path == ".." || path.starts_with("../") || path.ends_with("/..") || path.find("/../") != std::string::npos) {
      return fail("initramfs path '{}' must not contain '..'", path);
    }
    if (entry.data.size() > std::numeric_limits<std::uint32_t>::max()) {
      return fail("initramfs file '{}' is {} bytes; cpio newc holds at most 4 GiB - 1", path, entry.data.size());
    }
    if (!S_ISREG(entry.mode) && !entry.data.empty())
      return fail("initramfs entry '{}' has data but is not a file", path);
    append_record(out, ino++, entry, path);
  }
  append_record(out, 0, CpioEntry{std::string(kTrailer), 0, {}, 0, 0}, kTrailer);
  return out;
}

}  // namespace microvm::boot
