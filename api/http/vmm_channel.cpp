#include "api/http/vmm_channel.h"

#include <boost/asio/post.hpp>
#include <utility>

#include "api/handler.h"

namespace microvm::api {

bool VmmChannel::Ticket::cancel() {
  int expected = kQueued;
  return state_.compare_exchange_strong(expected, kCancelled);
}

bool VmmChannel::Ticket::take() {
  int expected = kQueued;
  return state_.compare_exchange_strong(expected, kTaken);
}

VmmChannel::VmmChannel(boost::asio::io_context& vmm, Controller& controller, boost::asio::io_context& api)
    : vmm_(vmm), controller_(controller), api_(api) {}

std::shared_ptr<VmmChannel::Ticket> VmmChannel::submit(Request request, Reply reply) {
  auto ticket = std::make_shared<Ticket>();
  boost::asio::post(vmm_, [self = shared_from_this(), ticket, request = std::move(request),
                           reply = std::move(reply)]() mutable { self->run(*ticket, request, reply); });
  return ticket;
}

void VmmChannel::run(Ticket& ticket, const Request& request, Reply& reply) {
  // Held across the Controller call: close() returns only once no call is running.
  std::lock_guard lock(mutex_);
  if (!open_ || !ticket.take()) return;
  Response response = handle(controller_, request);
  boost::asio::post(
      api_, [reply = std::move(reply), response = std::move(response)]() mutable { reply(std::move(response)); });
}

void VmmChannel::close() {
  std::lock_guard lock(mutex_);
  open_ = false;
}

}  // namespace microvm::api
