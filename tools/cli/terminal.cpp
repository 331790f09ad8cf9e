#include "tools/cli/terminal.h"

#include <unistd.h>

namespace microvm::cli {

RawTerminal::RawTerminal(int fd) : fd_(fd) {
  termios current{};
  if (::isatty(fd) == 0 || ::tcgetattr(fd, &current) != 0) return;
  saved_ = current;
  ::cfmakeraw(&current);
  current.c_lflag |= ISIG;  // Ctrl-C still stops microvm
  ::tcsetattr(fd, TCSANOW, &current);
}

RawTerminal::~RawTerminal() {
  if (saved_) ::tcsetattr(fd_, TCSANOW, &*saved_);
}

}  // namespace microvm::cli
