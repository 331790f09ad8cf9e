// VmmChannel: the one path from the API thread into the VMM (Firecracker's api_server_adapter). A
// parsed request is posted onto the VMM's event loop; handle() (api/handler.h) runs there against
// the Controller; the response is posted back onto the API thread's loop, which writes it. The
// Controller is never called anywhere else, and the API thread never waits for the VMM.
//
// Lifetime: create it before the API thread runs; close() it before the API loop goes away. The VMM
// loop must outlive the channel's last submit(); handlers it still holds after close() (a loop that
// stopped, or runs later) do nothing and may be destroyed on any thread.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <mutex>

#include "api/controller.h"
#include "api/message.h"

namespace microvm::api {

class VmmChannel : public std::enable_shared_from_this<VmmChannel> {
 public:
  // One submitted request, as both threads see it: queued until the VMM loop takes it (then it is
  // answered for sure) or the API thread cancels it (then it is never applied).
  class Ticket {
   public:
    // On the API thread: true if the request was still queued and now never runs.
    [[nodiscard]] bool cancel();

   private:
    friend class VmmChannel;
    enum State : int { kQueued, kTaken, kCancelled };
    // On the VMM thread: true if the request was still queued and may now run.
    [[nodiscard]] bool take();
    std::atomic<int> state_{kQueued};
  };
  using Reply = std::function<void(Response)>;

  // `vmm` is the VMM's event loop (where `controller` is called), `api` the API thread's.
  VmmChannel(boost::asio::io_context& vmm, Controller& controller, boost::asio::io_context& api);
  VmmChannel(const VmmChannel&) = delete;
  VmmChannel& operator=(const VmmChannel&) = delete;

  // On the API thread: queues `request` on the VMM loop; `reply` later runs on the API loop with its
  // response, unless the ticket was cancelled or the channel closed first. `reply` may be destroyed
  // on either thread, so it must hold nothing that needs the API thread to be released (a weak_ptr,
  // not a shared_ptr, to a connection).
  [[nodiscard]] std::shared_ptr<Ticket> submit(Request request, Reply reply);

  // From its return on, no Controller call runs or starts and nothing more is posted to the API loop:
  // it waits for a call in progress, so it must not be called from inside one.
  void close();

 private:
  void run(Ticket& ticket, const Request& request, Reply& reply);

  boost::asio::io_context& vmm_;
  Controller& controller_;
  boost::asio::io_context& api_;
  std::mutex mutex_;  // held while a request runs on the VMM loop, and by close()
  bool open_ = true;
};

}  // namespace microvm::api
