// Mapping: anonymous guest RAM, read-only file images, and single ownership of each mapping.
#include "base/mapping.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/unit/test_support.h"

namespace microvm {
namespace {

// A file in a fresh temporary directory, removed with it.
class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (std::filesystem::temp_directory_path() / "microvm-mapping-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write_file(const std::string& name, const std::string& contents) {
    const std::filesystem::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << contents;
    return path.string();
  }

  std::filesystem::path dir_;
};

bool is_mapped(const void* address) {
  // mincore() fails with ENOMEM for unmapped pages.
  unsigned char vec = 0;
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  auto* aligned = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(address) & ~(page - 1));
  return ::mincore(aligned, 1, &vec) == 0;
}

TEST(Mapping, AnonymousIsZeroedAndWritable) {
  auto m = Mapping::anonymous(2 * 4096);
  ASSERT_TRUE(m.has_value()) << m.error().message;
  ASSERT_EQ(m->size(), 2U * 4096);
  EXPECT_EQ(m->bytes().size(), m->size());
  EXPECT_EQ(m->data()[8191], std::byte{0});
  m->data()[8191] = std::byte{0x5a};
  EXPECT_EQ(m->bytes()[8191], std::byte{0x5a});
}

// The VmFlags line of the smaps entry that starts at `address` ("" when there is none).
std::string vm_flags_at(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto want = reinterpret_cast<std::uintptr_t>(address);
  std::string line;
  bool in_entry = false;
  while (std::getline(smaps, line)) {
    if (const auto dash = line.find('-');
        dash != std::string::npos && line.find(' ') > dash && std::isxdigit(static_cast<unsigned char>(line[0]))) {
      in_entry = std::stoull(line.substr(0, dash), nullptr, 16) == want;
    } else if (in_entry && line.starts_with("VmFlags:")) {
      return line;
    }
  }
  return "";
}

TEST(Mapping, GuestSizedRamIsHugePageAlignedAndAdvised) {
  for (const std::size_t size : {Mapping::kHugePageSize, std::size_t{128} << 20, (std::size_t{3} << 20) + 4096}) {
    auto m = Mapping::anonymous(size);
    ASSERT_TRUE(m.has_value()) << m.error().message;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(m->data()) % Mapping::kHugePageSize, 0U) << size;
    EXPECT_EQ(m->size(), size);
    EXPECT_NE(vm_flags_at(m->data()).find(" hg"), std::string::npos) << "MADV_HUGEPAGE: " << vm_flags_at(m->data());
    m->data()[size - 1] = std::byte{1};  // the whole size is mapped
    EXPECT_TRUE(is_mapped(m->data() + size - 1));
  }
}

TEST(Mapping, SmallAnonymousMemoryIsNotAdvised) {
  auto m = Mapping::anonymous(64 * 1024);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(vm_flags_at(m->data()).find(" hg"), std::string::npos);
}

TEST(Mapping, AnonymousTooLargeFails) {
  auto m = Mapping::anonymous(std::size_t{1} << 62);  // more than any user address space
  EXPECT_ERROR_CONTAINS(m, "cannot reserve");
}

TEST(Mapping, MoveTransfersOwnership) {
  auto m = Mapping::anonymous(4096);
  ASSERT_TRUE(m.has_value());
  std::byte* data = m->data();
  Mapping moved(std::move(*m));
  EXPECT_EQ(m->data(), nullptr);  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_EQ(m->size(), 0U);
  EXPECT_EQ(moved.data(), data);
  EXPECT_EQ(moved.size(), 4096U);
  EXPECT_TRUE(is_mapped(data));
}

TEST(Mapping, DestructionAndMoveAssignmentUnmap) {
  std::byte* first = nullptr;
  std::byte* second = nullptr;
  {
    auto a = Mapping::anonymous(4096);
    auto b = Mapping::anonymous(4096);
    ASSERT_TRUE(a.has_value() && b.has_value());
    first = a->data();
    second = b->data();
    *a = std::move(*b);  // releases a's old mapping
    EXPECT_FALSE(is_mapped(first));
    EXPECT_EQ(a->data(), second);
    EXPECT_EQ(b->data(), nullptr);  // NOLINT(bugprone-use-after-move)
  }
  EXPECT_FALSE(is_mapped(second));
}

TEST_F(TempDir, FileReadOnlyMapsTheContents) {
  const std::string path = write_file("kernel", "vmlinux bytes");
  auto m = Mapping::file_read_only(path);
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_EQ(test::text_of(m->bytes()), "vmlinux bytes");
}

TEST_F(TempDir, FileReadOnlyErrorsNameTheFile) {
  const std::string missing = (dir_ / "missing").string();
  EXPECT_ERROR_CONTAINS(Mapping::file_read_only(missing), missing);
  EXPECT_ERROR_CONTAINS(Mapping::file_read_only(missing), "No such file");
  EXPECT_ERROR_CONTAINS(Mapping::file_read_only(write_file("empty", "")), "is empty");
  EXPECT_ERROR_CONTAINS(Mapping::file_read_only(dir_.string()), "not a regular file");
}

}  // namespace
}  // namespace microvm
