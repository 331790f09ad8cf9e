#include "vmm/thread.h"

#include <memory>
#include <system_error>
#include <utility>

namespace microvm::vmm {

namespace {

void* run_body(void* arg) {
  const std::unique_ptr<std::function<void()>> body(static_cast<std::function<void()>*>(arg));
  (*body)();
  return nullptr;
}

}  // namespace

Thread::Thread(std::size_t stack_bytes, std::function<void()> body) {
  pthread_attr_t attr;
  if (int err = ::pthread_attr_init(&attr); err != 0) throw std::system_error(err, std::generic_category());
  // PTHREAD_STACK_MIN is a sysconf() call (a long) in glibc 2.34 and later.
  const auto minimum = static_cast<std::size_t>(PTHREAD_STACK_MIN);
  if (stack_bytes < minimum) stack_bytes = minimum;
  int err = ::pthread_attr_setstacksize(&attr, stack_bytes);
  // The new thread owns the body from here (run_body frees it); on failure it comes back.
  auto owned = std::make_unique<std::function<void()>>(std::move(body));
  if (err == 0) err = ::pthread_create(&handle_, &attr, run_body, owned.get());
  ::pthread_attr_destroy(&attr);
  if (err != 0) throw std::system_error(err, std::generic_category(), "cannot start a thread");
  (void)owned.release();
  joinable_ = true;
}

Thread::Thread(Thread&& other) noexcept : handle_(other.handle_), joinable_(std::exchange(other.joinable_, false)) {}

Thread& Thread::operator=(Thread&& other) noexcept {
  if (this != &other) {
    join();
    handle_ = other.handle_;
    joinable_ = std::exchange(other.joinable_, false);
  }
  return *this;
}

Thread::~Thread() {
  join();
}

void Thread::join() {
  if (!joinable_) return;
  ::pthread_join(handle_, nullptr);
  joinable_ = false;
}

}  // namespace microvm::vmm
