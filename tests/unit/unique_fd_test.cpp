// UniqueFd: closes its descriptor exactly once, hands it over on move, and gives it up on release().
#include "base/unique_fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace microvm {
namespace {

bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

int open_null() {
  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  return fd;
}

TEST(UniqueFd, DefaultIsInvalid) {
  const UniqueFd fd;
  EXPECT_FALSE(fd.valid());
  EXPECT_EQ(fd.get(), -1);
}

TEST(UniqueFd, ClosesOnDestruction) {
  int raw = -1;
  {
    const UniqueFd fd(open_null());
    raw = fd.get();
    EXPECT_TRUE(fd.valid());
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw));
}

TEST(UniqueFd, MoveTransfersOwnership) {
  UniqueFd a(open_null());
  const int raw = a.get();
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_EQ(b.get(), raw);
  UniqueFd c(open_null());
  const int replaced = c.get();
  c = std::move(b);  // closes c's own descriptor
  EXPECT_FALSE(is_open(replaced));
  EXPECT_EQ(c.get(), raw);
  EXPECT_TRUE(is_open(raw));
}

TEST(UniqueFd, ResetClosesTheOldDescriptor) {
  UniqueFd fd(open_null());
  const int old = fd.get();
  fd.reset(open_null());  // the new descriptor is opened before the old one is closed
  EXPECT_NE(fd.get(), old);
  EXPECT_FALSE(is_open(old));
  EXPECT_TRUE(is_open(fd.get()));
  fd.reset();
  EXPECT_FALSE(fd.valid());
}

TEST(UniqueFd, ReleaseGivesUpOwnershipWithoutClosing) {
  int raw = -1;
  {
    UniqueFd fd(open_null());
    raw = fd.release();
    EXPECT_FALSE(fd.valid());
  }
  EXPECT_TRUE(is_open(raw));
  ::close(raw);
}

}  // namespace
}  // namespace microvm
