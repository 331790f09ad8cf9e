// How a virtio device yields: it does a bounded amount of work per notification (kNotifyBudget
// chains), and when more is left it schedules the rest as a DeferredWork on the executor it was
// given (the VMM's event loop; an io_context a test runs by hand). That is the one way every device
// in devices/virtio defers work, so none of them needs to know about KVM, ioeventfds or threads.
//
// A DeferredWork is one continuation: schedule() queues at most one run of `work` at a time (calls
// while a run is queued fold into it; a call during a run queues the next one). cancel(), which the
// destructor calls, returns once `work` cannot start any more and no run is in progress, so the
// owner may then go away even though a run is still queued on the executor (it will do nothing),
// and even if the executor's io_context never runs again or is destroyed first.
//
// Threads: schedule() from any thread, also with the owner's locks held (it takes none of them).
// `work` runs on the executor and typically takes the owner's lock. cancel() must not be called from
// inside `work`, nor with a lock `work` takes.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>

#include <boost/asio/any_io_executor.hpp>

namespace microvm::devices::virtio {

// Chains a device handles per notification, per backend-readiness callback and per deferred run,
// before it yields the event loop to other devices and the API. A second vCPU that re-posts buffers
// as fast as they are used keeps the device busy, not the loop.
inline constexpr unsigned kNotifyBudget = 64;

class DeferredWork {
 public:
  DeferredWork(boost::asio::any_io_executor executor, std::function<void()> work);
  ~DeferredWork();
  DeferredWork(const DeferredWork&) = delete;
  DeferredWork& operator=(const DeferredWork&) = delete;

  void schedule();
  void cancel();

  // Whether a run is queued and has not started (for tests and assertions).
  [[nodiscard]] bool scheduled() const;

 private:
  struct State {
    std::function<void()> work;
    std::atomic<bool> queued{false};
    std::mutex run_mutex;    // held while `work` runs; cancel() takes it to wait for a run to end
    bool cancelled = false;  // under run_mutex
  };

  boost::asio::any_io_executor executor_;
  std::shared_ptr<State> state_;  // shared with the queued handler, which may outlive this object
};

}  // namespace microvm::devices::virtio
