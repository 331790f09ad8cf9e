// The in-memory initramfs (boot/initramfs.h): newc records the kernel's unpacker accepts, read back
// here with an independent parser, and the paths it refuses.
#include "boot/initramfs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "guest/protocol/spec.h"
#include "tests/unit/test_support.h"
#include "vmm/machine.h"

namespace microvm::boot {
namespace {

struct Parsed {
  std::string name;
  std::uint32_t mode, nlink, filesize, rmajor, rminor;
  std::string data;
};

std::uint32_t hex(const std::string& s, std::size_t at) {
  return static_cast<std::uint32_t>(std::stoul(s.substr(at, 8), nullptr, 16));
}

std::vector<Parsed> parse(const std::vector<std::byte>& archive) {
  const std::string s(reinterpret_cast<const char*>(archive.data()), archive.size());
  std::vector<Parsed> out;
  std::size_t at = 0;
  auto align = [](std::size_t n) { return (n + 3) & ~std::size_t{3}; };
  while (at + 110 <= s.size()) {
    EXPECT_EQ(s.substr(at, 6), "070701") << "at " << at;
    Parsed p;
    p.mode = hex(s, at + 6 + 8);
    p.nlink = hex(s, at + 6 + 4 * 8);
    p.filesize = hex(s, at + 6 + 6 * 8);
    p.rmajor = hex(s, at + 6 + 9 * 8);
    p.rminor = hex(s, at + 6 + 10 * 8);
    const std::uint32_t namesize = hex(s, at + 6 + 11 * 8);
    p.name = s.substr(at + 110, namesize - 1);
    EXPECT_EQ(s[at + 110 + namesize - 1], '\0');
    at = align(at + 110 + namesize);
    p.data = s.substr(at, p.filesize);
    at = align(at + p.filesize);
    out.push_back(p);
    if (p.name == "TRAILER!!!") break;
  }
  EXPECT_EQ(at, s.size()) << "bytes after the trailer";
  return out;
}

std::vector<std::byte> bytes(std::string_view text) {
  const auto* b = reinterpret_cast<const std::byte*>(text.data());
  return {b, b + text.size()};
}

TEST(Initramfs, RecordsRoundTrip) {
  const std::vector<CpioEntry> entries{
      {"dev", S_IFDIR | 0755, {}, 0, 0},
      {"dev/console", S_IFCHR | 0600, {}, 5, 1},
      {"init", S_IFREG | 0755, bytes("#!/bin/sh\necho hi\n"), 0, 0},
      {"microvm/spec.json", S_IFREG | 0644, bytes("{\"args\":[\"x\"]}"), 0, 0},
      {"empty", S_IFREG | 0644, {}, 0, 0},
  };
  auto archive = build_cpio(entries);
  ASSERT_TRUE(archive.has_value()) << archive.error().message;
  EXPECT_EQ(archive->size() % 4, 0U);
  const std::vector<Parsed> parsed = parse(*archive);
  ASSERT_EQ(parsed.size(), entries.size() + 1);
  EXPECT_EQ(parsed[0].name, "dev");
  EXPECT_EQ(parsed[0].mode, static_cast<std::uint32_t>(S_IFDIR | 0755));
  EXPECT_EQ(parsed[0].nlink, 2U);
  EXPECT_EQ(parsed[1].name, "dev/console");
  EXPECT_EQ(parsed[1].rmajor, 5U);
  EXPECT_EQ(parsed[1].rminor, 1U);
  EXPECT_EQ(parsed[2].name, "init");
  EXPECT_EQ(parsed[2].data, "#!/bin/sh\necho hi\n");
  EXPECT_EQ(parsed[3].data, "{\"args\":[\"x\"]}");
  EXPECT_EQ(parsed[4].filesize, 0U);
  EXPECT_EQ(parsed.back().name, "TRAILER!!!");
}

TEST(Initramfs, CpioToolReadsIt) {
  // GNU cpio (tools/setup installs it) as a second, independent reader.
  auto archive = build_cpio(std::vector<CpioEntry>{{"init", S_IFREG | 0755, bytes("abc"), 0, 0},
                                                   {"a", S_IFDIR | 0755, {}, 0, 0},
                                                   {"a/b.txt", S_IFREG | 0644, bytes("hello"), 0, 0}});
  ASSERT_TRUE(archive.has_value());
  const std::string path = ::testing::TempDir() + "initramfs_test.cpio";
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(archive->data()), static_cast<std::streamsize>(archive->size()));
  const std::string command = "cpio -it --quiet < " + path + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string listing;
  char buffer[256];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) listing += buffer;
  EXPECT_EQ(::pclose(pipe), 0) << listing;
  EXPECT_EQ(listing, "init\na\na/b.txt\n");
  std::remove(path.c_str());
}

TEST(Initramfs, ContainerInitramfsHoldsTheInitAndTheSpec) {
  const std::string init_path = ::testing::TempDir() + "initramfs_test_init";
  std::ofstream(init_path, std::ios::binary) << "\x7f"
                                                "ELF-not-really";
  vmm::VmResources resources;
  resources.container = vmm::ContainerSpec{{"/bin/true"}, {}, std::nullopt, std::nullopt, std::nullopt};
  auto archive = vmm::build_container_initramfs(init_path, resources);
  ASSERT_TRUE(archive.has_value()) << archive.error().message;
  std::string init_data, spec_data;
  bool console = false;
  for (const Parsed& p : parse(*archive)) {
    if (p.name == "init") init_data = p.data;
    if (p.name == "microvm/spec.json") spec_data = p.data;
    if (p.name == "dev/console") console = S_ISCHR(p.mode);
  }
  EXPECT_EQ(init_data,
            "\x7f"
            "ELF-not-really");
  EXPECT_EQ(spec_data, guest::spec_to_json(*resources.container_spec()));
  auto spec = guest::parse_spec(spec_data);
  ASSERT_TRUE(spec.has_value()) << spec.error().message;
  EXPECT_EQ(spec->args, (std::vector<std::string>{"/bin/true"}));
  EXPECT_TRUE(console);
  std::remove(init_path.c_str());
  EXPECT_ERROR_CONTAINS(vmm::build_container_initramfs("/nonexistent/microvm-init", resources),
                        "/nonexistent/microvm-init");
}

TEST(Initramfs, RefusesUnsafePaths) {
  for (const char* path : {"", "/init", "..", "../etc/passwd", "a/../../b", "a/.."}) {
    SCOPED_TRACE(path);
    EXPECT_ERROR_CONTAINS(build_cpio(std::vector<CpioEntry>{{path, S_IFREG | 0644, {}, 0, 0}}), "initramfs path");
  }
  EXPECT_ERROR_CONTAINS(build_cpio(std::vector<CpioEntry>{{"d", S_IFDIR | 0755, bytes("x"), 0, 0}}), "not a file");
}

}  // namespace
}  // namespace microvm::boot
