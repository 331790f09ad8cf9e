// The state file of a snapshot: everything but guest memory (which is the memory file beside it),
// as a versioned binary container. Layout (little-endian):
//
//   offset  size  field
//   0       8     magic "MVMSTATE"
//   8       4     format version (kFormatVersion): the container and every section's encoding
//   12      4     number of sections (at most kMaxSections)
//   16      8     the file's size in bytes, checksum included
//   24      64    the host CPU it was made on (x86_64/cpu_model.h)
//   88      ...   sections: u32 id, u32 version, u64 length, then `length` bytes of payload
//   end-8   8     CRC-64/XZ (crc64.h) of every byte before it
//
// parse() checks, in this order, and refuses with one line saying which: a file too short to hold
// a header, the magic, the format version, the size the header records (truncated, or longer than
// it says), the checksum, the CPU model, and the section table (each length inside the file, no id
// twice). What a section holds is its owner's to check (codec.h decodes it with bounds checks).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/snapshot/x86_64/cpu_model.h"

namespace microvm::snapshot {

inline constexpr std::array<char, 8> kMagic{'M', 'V', 'M', 'S', 'T', 'A', 'T', 'E'};
inline constexpr std::uint32_t kFormatVersion = 1;
inline constexpr std::uint32_t kMaxSections = 64;
// Far above any real state (32 vCPUs of XSAVE, LAPIC and MSRs is well under 1 MiB): a bigger file is
// not one of ours, and is not read into memory.
inline constexpr std::uint64_t kMaxStateFileBytes = 64ULL << 20;
inline constexpr std::size_t kHeaderBytes = 88;  // up to the first section
inline constexpr std::size_t kChecksumBytes = 8;

// The sections a snapshot has; each is versioned on its own (state_file users pass the version they read).
enum class SectionId : std::uint32_t {
  kResources = 1,  // the VmResources it was built from (GET /vm/config after load)
  kMemory = 2,     // guest RAM ranges and where each lies in the memory file
  kVm = 3,         // PIC, IOAPIC, PIT, kvmclock
  kVcpus = 4,      // every vCPU's registers, MSRs, LAPIC, ...
  kDevices = 5,    // the platform and virtio devices' State
};
[[nodiscard]] std::string_view section_name(SectionId id);

class StateFile {
 public:
  struct Section {
    SectionId id;
    std::uint32_t version;
    std::vector<std::byte> payload;
  };

  void add(SectionId id, std::uint32_t version, std::vector<std::byte> payload);
  // The payload of section `id`; fails when it is missing or not of `version`.
  [[nodiscard]] Result<std::span<const std::byte>> section(SectionId id, std::uint32_t version) const;
  [[nodiscard]] std::span<const Section> sections() const { return sections_; }

  // The whole file, made on `cpu`.
  [[nodiscard]] std::vector<std::byte> serialize(const CpuModel& cpu) const;
  // The checks above, with `host` the CPU this process runs on. Messages do not name the file; the
  // caller adds that.
  [[nodiscard]] static Result<StateFile> parse(std::span<const std::byte> bytes, const CpuModel& host);

 private:
  std::vector<Section> sections_;
};

// A file that replaces `path` only once complete: created beside it under a unique name (same
// directory, so the rename cannot cross file systems), and renamed over `path` by commit() after an
// fsync. Until then `path` keeps its old contents (and a process that mapped the old file keeps
// its pages: the rename leaves the old inode alive for it). Dropped uncommitted, it is removed.
class ReplacementFile {
 public:
  [[nodiscard]] static Result<ReplacementFile> create(const std::string& path);
  ReplacementFile(ReplacementFile&& other) noexcept
      : path_(std::move(other.path_)), temp_path_(std::exchange(other.temp_path_, {})), fd_(std::move(other.fd_)) {}
  ReplacementFile& operator=(ReplacementFile&&) = delete;
  ReplacementFile(const ReplacementFile&) = delete;
  ReplacementFile& operator=(const ReplacementFile&) = delete;
  ~ReplacementFile();

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] Result<void> write(std::span<const std::byte> bytes);
  [[nodiscard]] Result<void> commit();

 private:
  ReplacementFile(std::string path, std::string temp_path, UniqueFd fd)
      : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(std::move(fd)) {}
  std::string path_;
  std::string temp_path_;  // empty once committed (or moved from)
  UniqueFd fd_;
};

// Writes `bytes` to `path` through a ReplacementFile: `path` holds either its old contents or all
// of `bytes`, never part of them.
[[nodiscard]] Result<void> write_file(const std::string& path, std::span<const std::byte> bytes);
// Reads the state file at `path`; refuses anything larger than kMaxStateFileBytes.
[[nodiscard]] Result<std::vector<std::byte>> read_state_file(const std::string& path);

}  // namespace microvm::snapshot
