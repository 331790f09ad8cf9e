// The guest console's way out to the host (microvm's stdout, a log file, a pipe): a bounded buffer
// that a writer thread of its own drains into the output fd (Cloud Hypervisor's serial_buffer).
// write() never blocks: a vCPU thread (serial) or the event loop (virtio-console) appends and goes
// on; when the host stops reading (a full pipe, Ctrl-S on a terminal) the buffer fills, the oldest
// bytes are dropped and counted, and the guest, the API and signal handling keep running.
//
// It also keeps the guest's last lines for a crash report, and can be muted (container mode: once the
// workload exited, what follows is the kernel powering off, not the workload's output).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"

namespace microvm::vmm {

class ConsoleOutput {
 public:
  // Cloud Hypervisor keeps 1 MiB; a guest flooding its console loses the oldest bytes beyond it.
  static constexpr std::size_t kDefaultCapacity = 1U << 20;
  static constexpr std::size_t kTailLines = 20;  // guest lines kept for a crash report
  static constexpr std::size_t kMaxLineBytes = 512;

  struct Stats {
    std::uint64_t written_bytes = 0;   // reached the output fd
    std::uint64_t dropped_bytes = 0;   // dropped: the buffer was full, or the output fd failed
    std::uint64_t buffered_bytes = 0;  // waiting in the buffer now
  };

  // Starts the writer thread on `fd` (not owned; it must stay open until this is destroyed). A pipe
  // or terminal is reopened non-blocking (through /proc/self/fd) so the writer never blocks in
  // write(2) and can always be stopped.
  explicit ConsoleOutput(int fd, std::size_t capacity = kDefaultCapacity);
  // Stops the writer thread; bytes still buffered are dropped (flush() first to keep them).
  ~ConsoleOutput();
  ConsoleOutput(const ConsoleOutput&) = delete;
  ConsoleOutput& operator=(const ConsoleOutput&) = delete;

  // Any thread, never blocks (beyond a short mutex).
  void write(std::span<const std::uint8_t> bytes);
  // From now on every write is dropped (and not counted as dropped).
  void mute();
  // Waits until everything buffered reached the fd, or until it made no progress for `stall`:
  // true when everything written so far reached it (false also once the fd failed). Call it when the VM has ended,
  // never on the event loop.
  bool flush(std::chrono::milliseconds stall);

  [[nodiscard]] Stats stats() const;
  // The guest's last complete lines and the one being written, oldest first, without '\r'.
  [[nodiscard]] std::vector<std::string> last_lines() const;

 private:
  void run_writer();
  // Writes `chunk` to the fd, waiting for it to be writable; false when the fd failed (reader gone).
  bool write_out(std::span<const std::uint8_t> chunk);

  const UniqueFd own_fd_;  // a non-blocking description of the output, where one can be had
  const int fd_;           // what the writer writes to: own_fd_, or the fd it was given
  const bool socket_;
  const std::size_t capacity_;

  mutable std::mutex mutex_;  // everything below
  std::condition_variable changed_;
  std::deque<std::uint8_t> buffer_;
  std::size_t in_flight_ = 0;  // bytes the writer took out of buffer_ and is writing now
  bool stopping_ = false;
  bool muted_ = false;
  bool broken_ = false;  // the fd failed: drop from now on
  Stats stats_;
  std::deque<std::string> tail_;
  std::string partial_;

  std::thread writer_;  // last: starts after everything it uses exists
};

}  // namespace microvm::vmm
