// A joinable thread with a stack size of the caller's choosing (std::thread always takes the
// process default, 8 MiB on Linux). The vCPU threads use it: a stack mapping smaller than 2 MiB
// can never hold a transparent huge page, so a vCPU thread costs its few touched 4 KiB pages
// instead of a whole 2 MiB page on hosts with THP set to "always".
#pragma once

#include <pthread.h>

#include <cstddef>
#include <functional>

namespace microvm::vmm {

class Thread {
 public:
  // Starts `body` on a new thread with a stack of `stack_bytes` (rounded up by the C library to
  // its minimum). Throws std::system_error when the thread cannot be created, like std::thread.
  Thread(std::size_t stack_bytes, std::function<void()> body);
  Thread(Thread&& other) noexcept;
  Thread& operator=(Thread&& other) noexcept;
  Thread(const Thread&) = delete;
  Thread& operator=(const Thread&) = delete;
  ~Thread();  // joins a thread that was not joined yet

  void join();
  [[nodiscard]] bool joinable() const { return joinable_; }
  [[nodiscard]] pthread_t native_handle() const { return handle_; }

 private:
  pthread_t handle_{};
  bool joinable_ = false;
};

}  // namespace microvm::vmm
