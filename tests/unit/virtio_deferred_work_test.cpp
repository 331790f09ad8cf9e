// DeferredWork (devices/virtio/deferred_work.h), the continuation every virtio device yields with:
// runs fold while queued, a run can queue the next, and once cancelled (or destroyed) nothing runs,
// even with a run still queued on an io_context that runs later or is destroyed first.
#include "devices/virtio/deferred_work.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace microvm::devices::virtio {
namespace {

TEST(DeferredWorkTest, RunsOnTheExecutorNotInSchedule) {
  boost::asio::io_context io;
  int runs = 0;
  DeferredWork work(io.get_executor(), [&] { ++runs; });
  work.schedule();
  EXPECT_EQ(runs, 0);
  EXPECT_TRUE(work.scheduled());
  EXPECT_EQ(io.poll(), 1u);
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(work.scheduled());
}

TEST(DeferredWorkTest, SchedulesWhileQueuedFoldIntoOneRun) {
  boost::asio::io_context io;
  int runs = 0;
  DeferredWork work(io.get_executor(), [&] { ++runs; });
  for (int i = 0; i < 1000; ++i) work.schedule();
  EXPECT_EQ(io.poll(), 1u);
  EXPECT_EQ(runs, 1);
}

TEST(DeferredWorkTest, ARunCanScheduleTheNextOne) {
  boost::asio::io_context io;
  int runs = 0;
  std::optional<DeferredWork> work;
  work.emplace(io.get_executor(), [&] {
    if (++runs < 5) work->schedule();
  });
  work->schedule();
  // One run per handler: the loop gets to run other handlers between them.
  for (int i = 1; i <= 5; ++i) {
    EXPECT_EQ(io.poll_one(), 1u);
    EXPECT_EQ(runs, i);
  }
  EXPECT_EQ(io.poll(), 0u);
}

TEST(DeferredWorkTest, DestroyedWithARunQueuedThenTheLoopRuns) {
  boost::asio::io_context io;
  auto owner = std::make_unique<int>(0);  // what `work` touches: ASan reports a use after free
  auto work = std::make_unique<DeferredWork>(io.get_executor(), [&owner] { ++*owner; });
  work->schedule();
  work.reset();
  owner.reset();
  EXPECT_EQ(io.poll(), 1u);  // the handler runs and does nothing
}

TEST(DeferredWorkTest, DestroyedWithARunQueuedThenTheLoopIsDestroyed) {
  auto io = std::make_unique<boost::asio::io_context>();
  int runs = 0;
  {
    DeferredWork work(io->get_executor(), [&] { ++runs; });
    work.schedule();
  }
  io.reset();  // destroys the queued handler (and the state it shares) without running it
  EXPECT_EQ(runs, 0);
}

TEST(DeferredWorkTest, LoopDestroyedBeforeTheOwner) {
  auto io = std::make_unique<boost::asio::io_context>();
  int runs = 0;
  DeferredWork work(io->get_executor(), [&] { ++runs; });
  work.schedule();
  io.reset();
  work.cancel();
  EXPECT_EQ(runs, 0);
}

TEST(DeferredWorkTest, CancelWaitsForARunInProgress) {
  boost::asio::io_context io;
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  DeferredWork work(io.get_executor(), [&] {
    started = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    finished = true;
  });
  work.schedule();
  std::thread loop([&] { io.run(); });
  while (!started) std::this_thread::yield();
  work.cancel();
  EXPECT_TRUE(finished.load());  // cancel() returned only after the run ended
  loop.join();
}

TEST(DeferredWorkTest, ScheduleFromManyThreadsNeverLosesARequest) {
  // Every schedule() either queues a run or finds one queued that has not started: after the last
  // schedule() returns, at least one run starts after it.
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  std::atomic<int> generation{0};
  std::atomic<int> seen{-1};
  DeferredWork work(io.get_executor(), [&] { seen = generation.load(); });
  std::thread loop([&] { io.run(); });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        ++generation;
        work.schedule();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const int last = generation.load();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (seen.load() != last && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_EQ(seen.load(), last);
  guard.reset();
  loop.join();
  work.cancel();
}

}  // namespace
}  // namespace microvm::devices::virtio
