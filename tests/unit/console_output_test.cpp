// ConsoleOutput (vmm/console_output.h): the guest console's bounded, never-blocking way out.
#include "vmm/console_output.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "base/unique_fd.h"

namespace microvm::vmm {
namespace {

using namespace std::chrono_literals;

struct Pipe {
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
  }
  // Everything readable within `quiet` of the last byte.
  std::string drain(std::chrono::milliseconds quiet = 200ms) {
    ::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
    std::string out;
    auto last = std::chrono::steady_clock::now();
    char buffer[65536];
    while (std::chrono::steady_clock::now() - last < quiet) {
      const ssize_t n = ::read(read_end.get(), buffer, sizeof(buffer));
      if (n > 0) {
        out.append(buffer, static_cast<std::size_t>(n));
        last = std::chrono::steady_clock::now();
      } else {
        ::usleep(1000);
      }
    }
    return out;
  }
  UniqueFd read_end;
  UniqueFd write_end;
};

std::span<const std::uint8_t> bytes_of(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

TEST(ConsoleOutput, BytesReachTheFdInOrder) {
  Pipe pipe;
  ConsoleOutput console(pipe.write_end.get());
  std::string sent;
  for (int i = 0; i < 1000; ++i) {
    const std::string line = "line " + std::to_string(i) + "\n";
    console.write(bytes_of(line));
    sent += line;
  }
  std::string received;
  while (received.size() < sent.size()) {
    char buffer[4096];
    const ssize_t n = ::read(pipe.read_end.get(), buffer, sizeof(buffer));
    ASSERT_GT(n, 0);
    received.append(buffer, static_cast<std::size_t>(n));
  }
  EXPECT_EQ(received, sent);
  EXPECT_TRUE(console.flush(1s));
  EXPECT_EQ(console.stats().written_bytes, sent.size());
  EXPECT_EQ(console.stats().dropped_bytes, 0U);
}

TEST(ConsoleOutput, AStalledReaderNeverBlocksTheWriterAndKeepsTheNewestBytes) {
  Pipe pipe;  // nobody reads it until the end: it fills after 64 KiB
  constexpr std::size_t kCapacity = 64 * 1024;
  ConsoleOutput console(pipe.write_end.get(), kCapacity);
  const std::string block(4096, 'x');
  const auto start = std::chrono::steady_clock::now();
  constexpr int kBlocks = 2560;  // 10 MiB, far more than the pipe and the buffer hold
  for (int i = 0; i < kBlocks; ++i) console.write(bytes_of(block));
  const std::string last = "the end\n";
  console.write(bytes_of(last));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s) << "write() must not wait for the reader";
  EXPECT_FALSE(console.flush(200ms)) << "no progress while nobody reads";
  const ConsoleOutput::Stats stalled = console.stats();
  EXPECT_GT(stalled.dropped_bytes, 9U * 1024 * 1024);

  const std::string received = pipe.drain();
  EXPECT_TRUE(console.flush(1s));
  EXPECT_TRUE(received.ends_with(last)) << "the newest bytes survive";
  const ConsoleOutput::Stats done = console.stats();
  EXPECT_EQ(done.written_bytes, received.size());
  EXPECT_EQ(done.written_bytes + done.dropped_bytes, kBlocks * block.size() + last.size()) << "every byte accounted";
  EXPECT_EQ(stalled.written_bytes + stalled.dropped_bytes + stalled.buffered_bytes,
            kBlocks * block.size() + last.size());
  EXPECT_EQ(done.buffered_bytes, 0U);
}

TEST(ConsoleOutput, StopsPromptlyWhileThePipeHasLessRoomThanAChunk) {
  Pipe pipe;
  ASSERT_GE(::fcntl(pipe.write_end.get(), F_SETPIPE_SZ, 4096), 0);  // one page: a 4 KiB write would block
  const auto start = std::chrono::steady_clock::now();
  {
    ConsoleOutput console(pipe.write_end.get());
    console.write(bytes_of("x"));  // the pipe's one buffer page is now in use
    ASSERT_TRUE(console.flush(1s));
    console.write(bytes_of(std::string(64 * 1024, 'y')));
    EXPECT_FALSE(console.flush(200ms));
  }  // the destructor must not wait for a reader that never comes
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(ConsoleOutput, AWriteLargerThanTheBufferKeepsItsTail) {
  Pipe pipe;
  ConsoleOutput console(pipe.write_end.get(), 16);
  std::string big(100, 'a');
  big += "0123456789abcdef";
  console.write(bytes_of(big));
  const std::string received = pipe.drain();
  EXPECT_TRUE(received.ends_with("0123456789abcdef"));
  EXPECT_EQ(console.stats().written_bytes + console.stats().dropped_bytes, big.size());
}

TEST(ConsoleOutput, MutedOutputIsDropped) {
  Pipe pipe;
  ConsoleOutput console(pipe.write_end.get());
  console.write(bytes_of("before\n"));
  ASSERT_TRUE(console.flush(1s));
  console.mute();
  console.write(bytes_of("after\n"));
  EXPECT_TRUE(console.flush(1s));
  EXPECT_EQ(pipe.drain(), "before\n");
  EXPECT_EQ(console.last_lines(), (std::vector<std::string>{"before"}));
}

TEST(ConsoleOutput, KeepsTheLastLinesWithoutCarriageReturns) {
  Pipe pipe;
  ConsoleOutput console(pipe.write_end.get());
  for (std::size_t i = 0; i < ConsoleOutput::kTailLines + 5; ++i) {
    console.write(bytes_of("line " + std::to_string(i) + "\r\n"));
  }
  console.write(bytes_of("partial"));
  const std::vector<std::string> lines = console.last_lines();
  ASSERT_EQ(lines.size(), ConsoleOutput::kTailLines + 1);
  EXPECT_EQ(lines.front(), "line 5");
  EXPECT_EQ(lines[lines.size() - 2], "line " + std::to_string(ConsoleOutput::kTailLines + 4));
  EXPECT_EQ(lines.back(), "partial");
}

TEST(ConsoleOutput, AReaderThatWentAwayDropsOutputAndNothingElse) {
  // microvm ignores SIGPIPE (tools/cli/main.cpp); so does this test while it runs.
  struct IgnoreSigpipe {
    IgnoreSigpipe() : previous(::signal(SIGPIPE, SIG_IGN)) {}
    ~IgnoreSigpipe() { ::signal(SIGPIPE, previous); }
    sighandler_t previous;
  } ignore;
  Pipe pipe;
  ConsoleOutput console(pipe.write_end.get());
  pipe.read_end.reset();  // EPIPE from now on
  const std::string text(10000, 'y');
  console.write(bytes_of(text));
  EXPECT_FALSE(console.flush(1s));
  console.write(bytes_of(text));
  EXPECT_EQ(console.stats().written_bytes, 0U);
  EXPECT_EQ(console.stats().dropped_bytes, 2 * text.size());
}

}  // namespace
}  // namespace microvm::vmm
