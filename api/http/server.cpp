#include "api/http/server.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <optional>
#include <thread>
#include <utility>

#include "api/http/listener.h"
#include "api/http/socket_file.h"
#include "api/http/vmm_channel.h"
#include "api/http/wire.h"
#include "base/error.h"

namespace microvm::api {

namespace asio = boost::asio;

// Declared in the order they are built; ~Server takes them down in its own order.
struct Server::Impl {
  explicit Impl(std::string socket_path) : path(std::move(socket_path)) {}

  const std::string path;
  asio::io_context io;  // the API thread's loop
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::shared_ptr<VmmChannel> channel;
  std::shared_ptr<Listener> listener;
  std::optional<SocketFile> socket_file;
  std::thread thread;
};

Result<std::unique_ptr<Server>> Server::create(asio::io_context& vmm, const std::string& path, Controller& controller,
                                               Limits limits) {
  if (path.empty()) return fail("API socket path is empty");
  if (path.size() > wire::kMaxSocketPath) {
    return fail("API socket path {} is {} bytes long; Unix sockets allow at most {}: choose a shorter path", path,
                path.size(), wire::kMaxSocketPath);
  }
  if (path.find('\0') != std::string::npos) return fail("API socket path contains a NUL character");
  if (limits.max_connections == 0 || limits.timeout.count() <= 0 || limits.vmm_timeout.count() <= 0) {
    return fail("API limits need at least one connection and positive timeouts");
  }
  TRY_VOID(clear_stale_socket(path));

  auto impl = std::make_unique<Impl>(path);
  impl->channel = std::make_shared<VmmChannel>(vmm, controller, impl->io);
  impl->listener = std::make_shared<Listener>(impl->io, path, limits, impl->channel);
  TRY_VOID(impl->listener->bind());
  impl->socket_file.emplace(TRY(SocketFile::adopt(path)));  // 0600 before anyone can connect
  TRY_VOID(impl->listener->listen());
  impl->listener->start();
  impl->thread = std::thread([&io = impl->io] { io.run(); });
  return std::make_unique<Server>(std::move(impl));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  Impl& impl = *impl_;
  impl.channel->close();  // from here on the VMM loop neither calls the Controller nor posts answers
  asio::post(impl.io, [listener = impl.listener] { listener->stop(); });
  impl.work.reset();
  // Every operation the stop cancelled completes, then the loop runs out of work and the thread ends.
  impl.thread.join();
  impl.listener.reset();
  impl.socket_file.reset();  // removes the socket file
}

const std::string& Server::path() const {
  return impl_->path;
}

std::size_t Server::connection_count() const {
  return impl_->listener->connection_count();
}

}  // namespace microvm::api
