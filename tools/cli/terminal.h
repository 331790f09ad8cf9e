// Puts a terminal in raw mode for the guest console (keeping Ctrl-C as a signal to microvm) and
// restores it on destruction. Does nothing when the fd is not a terminal.
#pragma once

#include <termios.h>

#include <optional>

namespace microvm::cli {

class RawTerminal {
 public:
  explicit RawTerminal(int fd);
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_;
  std::optional<termios> saved_;
};

}  // namespace microvm::cli
