#include "devices/virtio/deferred_work.h"

#include <utility>

#include <boost/asio/post.hpp>

namespace microvm::devices::virtio {

DeferredWork::DeferredWork(boost::asio::any_io_executor executor, std::function<void()> work)
    : executor_(std::move(executor)), state_(std::make_shared<State>()) {
  state_->work = std::move(work);
}

DeferredWork::~DeferredWork() {
  cancel();
}

void DeferredWork::schedule() {
  if (state_->queued.exchange(true, std::memory_order_acq_rel)) return;  // a run is queued already
  boost::asio::post(executor_, [state = state_] {
    // Cleared before the run, so that work scheduled during it (or by it) gets a run of its own.
    state->queued.store(false, std::memory_order_release);
    std::lock_guard lock(state->run_mutex);
    if (!state->cancelled) state->work();
  });
}

void DeferredWork::cancel() {
  std::lock_guard lock(state_->run_mutex);
  state_->cancelled = true;
}

bool DeferredWork::scheduled() const {
  return state_->queued.load(std::memory_order_acquire);
}

}  // namespace microvm::devices::virtio
