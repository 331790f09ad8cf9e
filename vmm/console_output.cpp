#include "vmm/console_output.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace microvm::vmm {

namespace {

// What the writer takes out of the buffer at once, and writes per write(2): after POLLOUT a pipe has
// room for at least one page (Linux pipe_poll), so a write of this size does not block on it.
constexpr std::size_t kChunkBytes = 4096;
// How often the writer looks at the stop flag while the fd is not writable.
constexpr int kPollMs = 50;

// A file description of its own, non-blocking, on what `fd` refers to, so the writer never blocks
// in write(2) (a pipe with less room than the chunk, a stopped terminal) and the shell's own
// description keeps its flags. Regular files and sockets need none (files never block for long;
// sockets get MSG_DONTWAIT); where reopening fails the writer uses `fd` itself.
UniqueFd nonblocking_reopen(int fd) {
  struct stat info {};
  if (::fstat(fd, &info) != 0 || S_ISREG(info.st_mode) || S_ISSOCK(info.st_mode)) return {};
  if (!S_ISFIFO(info.st_mode) && ::isatty(fd) == 0) return {};
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  return UniqueFd(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
}

bool is_socket(int fd) {
  struct stat info {};
  return ::fstat(fd, &info) == 0 && S_ISSOCK(info.st_mode);
}

}  // namespace

ConsoleOutput::ConsoleOutput(int fd, std::size_t capacity)
    : own_fd_(nonblocking_reopen(fd)),
      fd_(own_fd_.valid() ? own_fd_.get() : fd),
      socket_(is_socket(fd)),
      capacity_(std::max<std::size_t>(capacity, 1)),
      ring_(capacity_),
      writer_([this] { run_writer(); }) {}

ConsoleOutput::~ConsoleOutput() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  writer_.join();
}

void ConsoleOutput::write(std::span<const std::uint8_t> bytes) {
  {
    std::lock_guard lock(mutex_);
    if (muted_) return;
    for (const std::uint8_t c : bytes) {
      if (c == '\n') {
        tail_.push_back(std::move(partial_));
        partial_.clear();
        if (tail_.size() > kTailLines) tail_.pop_front();
      } else if (c != '\r' && partial_.size() < kMaxLineBytes) {
        partial_.push_back(static_cast<char>(c));
      }
    }
    if (broken_) {
      stats_.dropped_bytes += bytes.size();
      return;
    }
    // Keep the newest `capacity_` bytes: what does not fit pushes the oldest out.
    if (bytes.size() > capacity_) {
      stats_.dropped_bytes += bytes.size() - capacity_;
      bytes = bytes.subspan(bytes.size() - capacity_);
    }
    const std::size_t overflow = buffered_ + bytes.size() > capacity_ ? buffered_ + bytes.size() - capacity_ : 0;
    head_ = (head_ + overflow) % capacity_;
    buffered_ -= overflow;
    stats_.dropped_bytes += overflow;
    std::size_t tail = (head_ + buffered_) % capacity_;
    while (!bytes.empty()) {
      const std::size_t n = std::min(bytes.size(), capacity_ - tail);
      std::memcpy(ring_.data() + tail, bytes.data(), n);
      bytes = bytes.subspan(n);
      buffered_ += n;
      tail = (tail + n) % capacity_;
    }
  }
  changed_.notify_all();
}

void ConsoleOutput::mute() {
  std::lock_guard lock(mutex_);
  muted_ = true;
}

bool ConsoleOutput::flush(std::chrono::milliseconds stall) {
  std::unique_lock lock(mutex_);
  std::uint64_t written = stats_.written_bytes;
  while (buffered_ != 0 || in_flight_ != 0) {
    if (broken_) return false;
    if (!changed_.wait_for(lock, stall, [&] {
          return (buffered_ == 0 && in_flight_ == 0) || stats_.written_bytes != written || broken_;
        })) {
      return false;  // no progress for `stall`: the host stopped reading
    }
    written = stats_.written_bytes;
  }
  return !broken_;
}

ConsoleOutput::Stats ConsoleOutput::stats() const {
  std::lock_guard lock(mutex_);
  Stats stats = stats_;
  stats.buffered_bytes = buffered_ + in_flight_;
  return stats;
}

std::vector<std::string> ConsoleOutput::last_lines() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> lines(tail_.begin(), tail_.end());
  if (!partial_.empty()) lines.push_back(partial_);
  return lines;
}

void ConsoleOutput::run_writer() {
  std::vector<std::uint8_t> chunk;
  chunk.reserve(kChunkBytes);
  std::unique_lock lock(mutex_);
  while (true) {
    changed_.wait(lock, [&] { return stopping_ || buffered_ != 0; });
    if (stopping_) return;
    // One contiguous piece of the ring at a time.
    const std::size_t n = std::min({buffered_, kChunkBytes, capacity_ - head_});
    chunk.assign(ring_.begin() + static_cast<std::ptrdiff_t>(head_),
                 ring_.begin() + static_cast<std::ptrdiff_t>(head_ + n));
    head_ = (head_ + n) % capacity_;
    buffered_ -= n;
    in_flight_ = n;
    lock.unlock();
    const bool ok = write_out(chunk);
    lock.lock();
    in_flight_ = 0;
    if (ok) {
      stats_.written_bytes += n;
    } else if (!stopping_) {
      // The reader went away (EPIPE, EIO): drop console output, keep the guest running.
      broken_ = true;
      stats_.dropped_bytes += n + buffered_;
      buffered_ = 0;
    }
    changed_.notify_all();
  }
}

bool ConsoleOutput::write_out(std::span<const std::uint8_t> chunk) {
  while (!chunk.empty()) {
    pollfd writable{fd_, POLLOUT, 0};
    const int ready = ::poll(&writable, 1, kPollMs);
    if (ready < 0 && errno != EINTR) return false;
    if (ready <= 0) {
      std::lock_guard lock(mutex_);
      if (stopping_) return false;
      continue;
    }
    if ((writable.revents & (POLLERR | POLLNVAL)) != 0) return false;
    // Non-blocking (our own description, MSG_DONTWAIT, or a terminal's stdout that shares its
    // description with stdin, which the event loop made non-blocking): EAGAIN means poll again.
    const ssize_t written = socket_ ? ::send(fd_, chunk.data(), chunk.size(), MSG_DONTWAIT | MSG_NOSIGNAL)
                                    : ::write(fd_, chunk.data(), chunk.size());
    if (written < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (written <= 0) return false;
    chunk = chunk.subspan(static_cast<std::size_t>(written));
  }
  return true;
}

}  // namespace microvm::vmm
