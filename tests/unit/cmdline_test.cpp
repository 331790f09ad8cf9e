// validate_cmdline: the limit excludes the terminating NUL, and embedded NULs are refused.
#include "boot/cmdline.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/unit/test_support.h"

namespace microvm::boot {
namespace {

TEST(Cmdline, AcceptsUpToTheLimit) {
  EXPECT_TRUE(validate_cmdline("", 0).has_value());
  EXPECT_TRUE(validate_cmdline("console=ttyS0", 13).has_value());
  EXPECT_TRUE(validate_cmdline(std::string(2048, 'x'), 2048).has_value());
}

TEST(Cmdline, RejectsOneByteOverTheLimit) {
  const auto result = validate_cmdline("console=ttyS0", 12);
  EXPECT_ERROR_CONTAINS(result, "13 bytes");
  EXPECT_ERROR_CONTAINS(result, "at most 12");
  EXPECT_FALSE(validate_cmdline("x", 0).has_value());
}

TEST(Cmdline, RejectsEmbeddedNul) {
  EXPECT_ERROR_CONTAINS(validate_cmdline(std::string_view("quiet\0init=/bin/sh", 18), 2048), "NUL");
  EXPECT_ERROR_CONTAINS(validate_cmdline(std::string_view("\0", 1), 2048), "NUL");
}

}  // namespace
}  // namespace microvm::boot
