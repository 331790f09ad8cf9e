#include "vmm/snapshot/state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "base/unique_fd.h"
#include "vmm/snapshot/codec.h"
#include "vmm/snapshot/crc64.h"

namespace microvm::snapshot {

namespace {

constexpr std::size_t kMagicOffset = 0;
constexpr std::size_t kVersionOffset = 8;
constexpr std::size_t kSizeOffset = 16;
constexpr std::size_t kCpuOffset = 24;
constexpr std::size_t kSectionHeaderBytes = 16;  // u32 id, u32 version, u64 length

template <typename T>
T load(std::span<const std::byte> bytes, std::size_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

}  // namespace

std::string_view section_name(SectionId id) {
  switch (id) {
    case SectionId::kResources: return "resources";
    case SectionId::kMemory: return "memory";
    case SectionId::kVm: return "vm";
    case SectionId::kVcpus: return "vcpus";
    case SectionId::kDevices: return "devices";
  }
  return "unknown";
}

void StateFile::add(SectionId id, std::uint32_t version, std::vector<std::byte> payload) {
  std::erase_if(sections_, [id](const Section& s) { return s.id == id; });
  sections_.push_back(Section{id, version, std::move(payload)});
}

Result<std::span<const std::byte>> StateFile::section(SectionId id, std::uint32_t version) const {
  const auto found = std::ranges::find(sections_, id, &Section::id);
  if (found == sections_.end()) return fail("it has no {} section", section_name(id));
  if (found->version != version) {
    return fail("its {} section is version {}, this microvm reads version {}", section_name(id), found->version,
                version);
  }
  return std::span<const std::byte>(found->payload);
}

std::vector<std::byte> StateFile::serialize(const CpuModel& cpu) const {
  Encoder out;
  out.raw(kMagic.data(), kMagic.size());
  out.u32(kFormatVersion);
  out.u32(static_cast<std::uint32_t>(sections_.size()));
  std::uint64_t size = kHeaderBytes + kChecksumBytes;
  for (const Section& section : sections_) size += kSectionHeaderBytes + section.payload.size();
  out.u64(size);
  encode(out, cpu);
  for (const Section& section : sections_) {
    out.u32(static_cast<std::uint32_t>(section.id));
    out.u32(section.version);
    out.u64(section.payload.size());
    out.raw(section.payload.data(), section.payload.size());
  }
  std::vector<std::byte> bytes = out.take();
  const std::uint64_t crc = crc64(bytes);
  const auto* crc_bytes = reinterpret_cast<const std::byte*>(&crc);
  bytes.insert(bytes.end(), crc_bytes, crc_bytes + sizeof(crc));
  return bytes;
}

Result<StateFile> StateFile::parse(std::span<const std::byte> bytes, const CpuModel& host) {
  const std::size_t size = bytes.size();
  if (size >= kMagic.size() && std::memcmp(bytes.data() + kMagicOffset, kMagic.data(), kMagic.size()) != 0) {
    return fail("it is not a microvm state file (no MVMSTATE magic at its start)");
  }
  if (size < kVersionOffset + sizeof(std::uint32_t)) {
    return fail("it is truncated: {} bytes, shorter than a state file header", size);
  }
  if (const auto version = load<std::uint32_t>(bytes, kVersionOffset); version != kFormatVersion) {
    return fail("it is in state file format version {}, this microvm reads version {}", version, kFormatVersion);
  }
  if (size < kHeaderBytes + kChecksumBytes) {
    return fail("it is truncated: {} bytes, shorter than a state file header ({} bytes)", size,
                kHeaderBytes + kChecksumBytes);
  }
  const auto recorded = load<std::uint64_t>(bytes, kSizeOffset);
  if (size < recorded) return fail("it is truncated: {} of its {} bytes", size, recorded);
  if (size > recorded) return fail("it has {} bytes, {} more than its header records", size, size - recorded);
  const std::span<const std::byte> body = bytes.first(size - kChecksumBytes);
  const auto stored = load<std::uint64_t>(bytes, size - kChecksumBytes);
  if (const std::uint64_t computed = crc64(body); computed != stored) {
    return fail("its checksum does not match (CRC-64 {:#018x} recorded, {:#018x} computed): the file is corrupt",
                stored, computed);
  }

  Decoder header(body.subspan(kCpuOffset), "state file header");
  const CpuModel saved = TRY(decode_cpu_model(header));
  TRY_VOID(check_same_cpu(saved, host));

  const auto count = load<std::uint32_t>(bytes, kVersionOffset + sizeof(std::uint32_t));
  if (count > kMaxSections) return fail("it has {} sections, at most {} are possible", count, kMaxSections);
  Decoder in(body.subspan(kHeaderBytes), "state file section table");
  StateFile file;
  for (std::uint32_t i = 0; i < count; ++i) {
    const auto id = static_cast<SectionId>(TRY(in.u32()));
    const std::uint32_t version = TRY(in.u32());
    const std::uint64_t length = TRY(in.u64());
    if (length > in.remaining()) {
      return fail("its section {} claims {} bytes, only {} are left in the file", i, length, in.remaining());
    }
    if (std::ranges::find(file.sections_, id, &Section::id) != file.sections_.end()) {
      return fail("it has the {} section (id {}) twice", section_name(id), static_cast<std::uint32_t>(id));
    }
    const std::span<const std::byte> payload = TRY(in.take(static_cast<std::size_t>(length)));
    file.sections_.push_back(Section{id, version, std::vector<std::byte>(payload.begin(), payload.end())});
  }
  TRY_VOID(in.finish());
  return file;
}

Result<ReplacementFile> ReplacementFile::create(const std::string& path) {
  std::string temp = path + ".XXXXXX";
  UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (!fd.valid()) return fail("cannot create {}: {}", temp, errno_text(errno));
  return ReplacementFile(path, std::move(temp), std::move(fd));
}

ReplacementFile::~ReplacementFile() {
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
}

Result<void> ReplacementFile::write(std::span<const std::byte> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail_host("cannot write {}: {}", path_, n < 0 ? errno_text(errno) : "no progress");
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Result<void> ReplacementFile::commit() {
  if (temp_path_.empty()) return fail_kind(ErrorKind::kInternal, "{} was committed already", path_);
  if (::fsync(fd_.get()) != 0) {  // mkostemp made it 0600
    return fail_host("cannot write {}: fsync: {}", path_, errno_text(errno));
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    return fail("cannot replace {}: {}", path_, errno_text(errno));
  }
  temp_path_.clear();
  return {};
}

Result<void> write_file(const std::string& path, std::span<const std::byte> bytes) {
  ReplacementFile file = TRY(ReplacementFile::create(path));
  TRY_VOID(file.write(bytes));
  return file.commit();
}

Result<std::vector<std::byte>> read_state_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return fail("cannot open state file {}: {}", path, errno_text(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail("cannot stat state file {}: {}", path, errno_text(errno));
  if (!S_ISREG(st.st_mode)) return fail("state file {} is not a regular file", path);
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > kMaxStateFileBytes) {
    return fail("state file {} is {} MiB: not a microvm state file (those are under {} MiB)", path, size >> 20,
                kMaxStateFileBytes >> 20);
  }
  std::vector<std::byte> bytes(static_cast<std::size_t>(size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pread(fd.get(), bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("cannot read state file {}: {}", path, errno_text(errno));
    if (n == 0) break;  // shrank meanwhile: parse() reports it as truncated
    done += static_cast<std::size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

}  // namespace microvm::snapshot
