// The snapshot state file (vmm/snapshot/state_file.h): a round trip keeps every section, and each
// file it must refuse — not a state file, another format version, truncated anywhere, longer than
// its header says, a flipped byte, another CPU model or CPU features, a broken section table — is
// refused with one line saying which, and never read past its end. The byte codec's bounds too.
#include "vmm/snapshot/state_file.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "tests/unit/test_support.h"
#include "vmm/snapshot/codec.h"
#include "vmm/snapshot/crc64.h"

namespace microvm::snapshot {
namespace {

CpuModel test_cpu() {
  CpuModel cpu;
  std::memcpy(cpu.vendor.data(), "GenuineIntel", 12);
  cpu = decode_signature(0x00050654, cpu);  // a Skylake-SP
  for (std::size_t i = 0; i < cpu.features.size(); ++i) cpu.features[i] = 0x1000u * static_cast<std::uint32_t>(i + 1);
  return cpu;
}

StateFile sample() {
  StateFile file;
  file.add(SectionId::kResources, 1, test::to_bytes("resources payload"));
  file.add(SectionId::kVcpus, 3, test::pattern(1000));
  file.add(SectionId::kMemory, 1, {});
  return file;
}

// The refusal message for `bytes`, which must be refused.
std::string refusal(std::span<const std::byte> bytes, const CpuModel& host = test_cpu()) {
  auto parsed = StateFile::parse(bytes, host);
  EXPECT_FALSE(parsed.has_value()) << "a bad state file was accepted";
  if (parsed) return {};
  EXPECT_EQ(parsed.error().kind, ErrorKind::kInvalidArgument);
  EXPECT_EQ(parsed.error().message.find('\n'), std::string::npos) << "not one line: " << parsed.error().message;
  return parsed.error().message;
}

// Rewrites the trailing CRC so that a deliberately corrupted body passes the checksum.
void reseal(std::vector<std::byte>& bytes) {
  const std::uint64_t crc = crc64(std::span(bytes).first(bytes.size() - kChecksumBytes));
  std::memcpy(bytes.data() + bytes.size() - kChecksumBytes, &crc, sizeof(crc));
}

TEST(Crc64, MatchesTheXzCheckValue) {
  EXPECT_EQ(crc64(test::to_bytes("123456789")), 0x995dc9bbdf1939faULL);
  EXPECT_EQ(crc64({}), 0u);
  // Incremental use gives the same value as one call.
  const auto data = test::pattern(5000);
  EXPECT_EQ(crc64(std::span(data).subspan(1234), crc64(std::span(data).first(1234))), crc64(data));
}

TEST(CpuModel, DecodesFamilyModelAndStepping) {
  const CpuModel intel = decode_signature(0x00050654, {});
  EXPECT_EQ(intel.family, 6u);
  EXPECT_EQ(intel.model, 85u);
  EXPECT_EQ(intel.stepping, 4u);
  const CpuModel zen2 = decode_signature(0x00830f10, {});  // extended family counts when the base is 0xf
  EXPECT_EQ(zen2.family, 23u);
  EXPECT_EQ(zen2.model, 49u);
  EXPECT_EQ(zen2.stepping, 0u);
}

TEST(CpuModel, TheHostMatchesItself) {
  const CpuModel host = host_cpu_model();
  EXPECT_TRUE(check_same_cpu(host, host).has_value());
  EXPECT_NE(host.family, 0u) << "CPUID.1 read as zero";
}

TEST(StateFile, RoundTripKeepsEverySection) {
  const std::vector<std::byte> bytes = sample().serialize(test_cpu());
  auto parsed = StateFile::parse(bytes, test_cpu());
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  ASSERT_EQ(parsed->sections().size(), 3u);
  auto vcpus = parsed->section(SectionId::kVcpus, 3);
  ASSERT_TRUE(vcpus.has_value()) << vcpus.error().message;
  EXPECT_EQ(std::vector<std::byte>(vcpus->begin(), vcpus->end()), test::pattern(1000));
  auto resources = parsed->section(SectionId::kResources, 1);
  ASSERT_TRUE(resources.has_value());
  EXPECT_EQ(test::text_of(*resources), "resources payload");
  auto memory = parsed->section(SectionId::kMemory, 1);
  ASSERT_TRUE(memory.has_value());
  EXPECT_TRUE(memory->empty());
}

TEST(StateFile, SectionOfAnotherVersionOrMissingIsRefused) {
  auto parsed = StateFile::parse(sample().serialize(test_cpu()), test_cpu());
  ASSERT_TRUE(parsed.has_value());
  EXPECT_ERROR_CONTAINS(parsed->section(SectionId::kVcpus, 4), "vcpus section is version 3");
  EXPECT_ERROR_CONTAINS(parsed->section(SectionId::kDevices, 1), "no devices section");
}

TEST(StateFile, RefusesWhatIsNotAStateFile) {
  std::vector<std::byte> bytes = sample().serialize(test_cpu());
  bytes[0] = std::byte{'X'};
  EXPECT_NE(refusal(bytes).find("not a microvm state file"), std::string::npos);
  EXPECT_NE(refusal(test::to_bytes("#!/bin/sh\necho hello\n")).find("not a microvm state file"), std::string::npos);
}

TEST(StateFile, RefusesAnotherFormatVersion) {
  std::vector<std::byte> bytes = sample().serialize(test_cpu());
  const std::uint32_t other = kFormatVersion + 1;
  std::memcpy(bytes.data() + 8, &other, sizeof(other));
  const std::string message = refusal(bytes);
  EXPECT_NE(message.find(fmt::format("format version {}", other)), std::string::npos) << message;
  EXPECT_NE(message.find(fmt::format("reads version {}", kFormatVersion)), std::string::npos) << message;
}

TEST(StateFile, RefusesEveryTruncation) {
  const std::vector<std::byte> bytes = sample().serialize(test_cpu());
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    const std::string message = refusal(std::span(bytes).first(size));
    if (size < 8) continue;  // too short to show even its magic: any refusal will do
    EXPECT_NE(message.find("truncated"), std::string::npos) << "at " << size << " bytes: " << message;
  }
  EXPECT_NE(refusal(std::span(bytes).first(bytes.size() - 1)).find(fmt::format("of its {} bytes", bytes.size())),
            std::string::npos);
}

TEST(StateFile, RefusesTrailingBytes) {
  std::vector<std::byte> bytes = sample().serialize(test_cpu());
  bytes.resize(bytes.size() + 5);
  EXPECT_NE(refusal(bytes).find("5 more than its header records"), std::string::npos);
}

TEST(StateFile, RefusesAnyFlippedByteOutsideTheHeaderAsAChecksumMismatch) {
  const std::vector<std::byte> good = sample().serialize(test_cpu());
  // Every byte from the section count on (the magic, version and size have their own refusals).
  for (std::size_t at = 12; at < good.size(); ++at) {
    if (at >= 16 && at < 24) continue;  // the recorded size: read as a truncation or trailing bytes
    std::vector<std::byte> bytes = good;
    bytes[at] ^= std::byte{0x01};
    const std::string message = refusal(bytes);
    EXPECT_NE(message.find("checksum does not match"), std::string::npos) << "byte " << at << ": " << message;
  }
}

TEST(StateFile, RefusesAnotherCpuModel) {
  const std::vector<std::byte> bytes = sample().serialize(test_cpu());
  CpuModel amd = test_cpu();
  std::memcpy(amd.vendor.data(), "AuthenticAMD", 12);
  std::string message = refusal(bytes, amd);
  EXPECT_NE(message.find("another CPU model (GenuineIntel family 6 model 85 stepping 4)"), std::string::npos)
      << message;
  EXPECT_NE(message.find("this host is AuthenticAMD"), std::string::npos) << message;
  CpuModel stepping = test_cpu();
  stepping.stepping = 7;
  EXPECT_NE(refusal(bytes, stepping).find("another CPU model"), std::string::npos);
}

TEST(StateFile, RefusesTheSameModelWithOtherFeatures) {
  const std::vector<std::byte> bytes = sample().serialize(test_cpu());
  CpuModel host = test_cpu();
  host.features[2] ^= 1u << 5;  // CPUID.7.0:EBX.AVX2
  const std::string message = refusal(bytes, host);
  EXPECT_NE(message.find("other CPU features (CPUID.7.0:EBX"), std::string::npos) << message;
}

TEST(StateFile, RefusesABrokenSectionTableEvenWithAGoodChecksum) {
  const std::vector<std::byte> good = sample().serialize(test_cpu());
  {
    std::vector<std::byte> bytes = good;
    const std::uint64_t huge = 1ULL << 40;
    std::memcpy(bytes.data() + kHeaderBytes + 8, &huge, sizeof(huge));  // the first section's length
    reseal(bytes);
    EXPECT_NE(refusal(bytes).find("claims 1099511627776 bytes"), std::string::npos);
  }
  {
    std::vector<std::byte> bytes = good;
    const auto vcpus = static_cast<std::uint32_t>(SectionId::kVcpus);
    std::memcpy(bytes.data() + kHeaderBytes, &vcpus, sizeof(vcpus));  // two vcpus sections
    reseal(bytes);
    EXPECT_NE(refusal(bytes).find("vcpus section (id 4) twice"), std::string::npos);
  }
  {
    std::vector<std::byte> bytes = good;
    const std::uint32_t count = kMaxSections + 1;
    std::memcpy(bytes.data() + 12, &count, sizeof(count));
    reseal(bytes);
    EXPECT_NE(refusal(bytes).find("65 sections"), std::string::npos);
  }
  {
    std::vector<std::byte> bytes = good;
    const std::uint32_t count = 2;  // one section fewer than there is: bytes left over
    std::memcpy(bytes.data() + 12, &count, sizeof(count));
    reseal(bytes);
    EXPECT_NE(refusal(bytes).find("unexpected bytes at the end"), std::string::npos);
  }
}

TEST(StateFile, FilesOnDiskRoundTripAndAreCapped) {
  const std::string path = ::testing::TempDir() + "/microvm-state-file-test";
  const std::vector<std::byte> bytes = sample().serialize(test_cpu());
  ASSERT_TRUE(write_file(path, bytes).has_value());
  auto read = read_state_file(path);
  ASSERT_TRUE(read.has_value()) << read.error().message;
  EXPECT_EQ(*read, bytes);
  EXPECT_ERROR_CONTAINS(read_state_file(path + "-missing"), "cannot open state file");
  EXPECT_ERROR_CONTAINS(read_state_file("/tmp"), "not a regular file");
  std::remove(path.c_str());
}

TEST(Codec, RoundTripsEveryKind) {
  struct Pod {
    std::uint32_t a;
    std::uint16_t b;
    std::uint8_t c[2];
  };
  Encoder out;
  out.u8(7);
  out.u16(0xbeef);
  out.u32(0xdeadbeef);
  out.u64(1ULL << 60);
  out.boolean(true);
  out.string("hello");
  out.pod(Pod{1, 2, {3, 4}});
  const std::vector<std::byte> bytes = out.take();
  Decoder in(bytes, "test");
  EXPECT_EQ(in.u8().value(), 7);
  EXPECT_EQ(in.u16().value(), 0xbeef);
  EXPECT_EQ(in.u32().value(), 0xdeadbeefu);
  EXPECT_EQ(in.u64().value(), 1ULL << 60);
  EXPECT_TRUE(in.boolean().value());
  EXPECT_EQ(in.string(16).value(), "hello");
  const Pod pod = in.pod<Pod>("pod").value();
  EXPECT_EQ(pod.a, 1u);
  EXPECT_EQ(pod.c[1], 4);
  EXPECT_TRUE(in.finish().has_value());
}

TEST(Codec, EveryReadIsBoundsChecked) {
  Encoder out;
  out.u32(100);  // a length of 100 with 2 bytes behind it
  out.u16(1);
  const std::vector<std::byte> bytes = out.take();
  {
    Decoder in(bytes, "section X");
    EXPECT_ERROR_CONTAINS(in.bytes(1000), "section X: truncated at byte 4 (needs 100 more bytes, 2 left)");
  }
  {
    Decoder in(bytes, "section X");
    EXPECT_ERROR_CONTAINS(in.bytes(50), "a field of 100 bytes, at most 50");
  }
  {
    Decoder in(bytes, "section X");
    EXPECT_ERROR_CONTAINS(in.count(10, "vCPUs"), "100 vCPUs, at most 10");
  }
  {
    Decoder in(bytes, "section X");
    EXPECT_ERROR_CONTAINS(in.pod<std::uint64_t>("regs"), "regs is 100 bytes, this microvm's is 8");
  }
  {
    Decoder in(bytes, "section X");
    EXPECT_ERROR_CONTAINS(in.u64(), "truncated");
  }
  {
    Decoder in(bytes, "section X");
    ASSERT_TRUE(in.u32().has_value());
    EXPECT_ERROR_CONTAINS(in.finish(), "2 unexpected bytes");
  }
  {
    const std::vector<std::byte> two{std::byte{2}};
    Decoder in(two, "flags");
    EXPECT_ERROR_CONTAINS(in.boolean(), "should be a boolean");
  }
  {
    Encoder with_nul;
    with_nul.string(std::string("a\0b", 3));
    const std::vector<std::byte> nul = with_nul.take();
    Decoder in(nul, "names");
    EXPECT_ERROR_CONTAINS(in.string(10), "NUL");
  }
}

}  // namespace
}  // namespace microvm::snapshot
