// vmm::Thread: a joinable thread with a chosen stack size (the vCPU threads' stacks).
#include "vmm/thread.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace microvm::vmm {
namespace {

std::size_t own_stack_size() {
  pthread_attr_t attr;
  std::size_t size = 0;
  if (::pthread_getattr_np(::pthread_self(), &attr) == 0) {
    ::pthread_attr_getstacksize(&attr, &size);
    ::pthread_attr_destroy(&attr);
  }
  return size;
}

TEST(Thread, RunsTheBodyOnAStackOfTheAskedSize) {
  std::size_t seen = 0;
  {
    Thread t(std::size_t{1} << 20, [&seen] { seen = own_stack_size(); });
    t.join();
    EXPECT_FALSE(t.joinable());
  }
  EXPECT_GE(seen, std::size_t{1} << 20);
  EXPECT_LT(seen, std::size_t{2} << 20);  // too small for a transparent huge page
}

TEST(Thread, DestructorJoinsAndMovesTransferTheThread) {
  std::atomic<int> ran{0};
  {
    std::vector<Thread> threads;
    for (int i = 0; i < 4; ++i) threads.emplace_back(64 * 1024, [&ran] { ++ran; });
    Thread moved(std::move(threads.front()));
    EXPECT_TRUE(moved.joinable());
    EXPECT_FALSE(threads.front().joinable());  // NOLINT(bugprone-use-after-move): the moved-from state
  }
  EXPECT_EQ(ran.load(), 4);
}

TEST(Thread, TinyStacksAreRaisedToTheMinimum) {
  bool ran = false;
  Thread t(1, [&ran] { ran = true; });
  t.join();
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace microvm::vmm
