// The API socket server and client end to end on a temporary Unix socket: keep-alive, pipelining,
// limits, timeouts, many clients, and the API thread against a VMM loop that is busy or gone.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/http/client.h"
#include "api/http/server.h"
#include "base/unique_fd.h"
#include "tests/unit/api_fake_controller.h"

namespace microvm::api {
namespace {

using nlohmann::json;
using test::body_of;
using test::call;
using test::FakeController;
using test::fault;
using namespace std::chrono_literals;

// --- the socket server ----------------------------------------------------------------------------------------

// A temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "microvm-api-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A raw client socket with blocking I/O and a receive timeout.
class RawClient {
 public:
  explicit RawClient(const std::string& path) : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof(address.sun_path) - 1);
    connected_ = ::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
    const timeval timeout{5, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  }

  bool connected() const { return connected_; }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Sends what fits without blocking; the number of bytes sent.
  std::size_t send_nonblocking(std::string_view bytes) {
    const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }

  // One response (status line, headers, Content-Length body), or nullopt on EOF/error/timeout.
  std::optional<Response> read_response() {
    std::size_t header_end;
    while ((header_end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    const std::string head = pending_.substr(0, header_end);
    if (!head.starts_with("HTTP/1.1 ") || head.size() < 12) {
      ADD_FAILURE() << "not an HTTP/1.1 response: " << head;
      return std::nullopt;
    }
    Response response;
    response.status = static_cast<unsigned>(std::stoul(head.substr(9, 3)));
    std::size_t length = 0;
    const auto at = head.find("Content-Length: ");
    if (at != std::string::npos) length = std::stoul(head.substr(at + 16));
    while (pending_.size() < header_end + 4 + length) {
      if (!fill()) return std::nullopt;
    }
    response.body = pending_.substr(header_end + 4, length);
    last_head_ = head;
    pending_.erase(0, header_end + 4 + length);
    return response;
  }

  const std::string& last_head() const { return last_head_; }

  // True if the server sent something (or closed) within `timeout`.
  bool readable(std::chrono::milliseconds timeout) {
    if (!pending_.empty()) return true;
    pollfd entry{fd_.get(), POLLIN, 0};
    return ::poll(&entry, 1, static_cast<int>(timeout.count())) > 0;
  }

  // True if the server closed the connection (EOF or reset) with nothing more to read.
  bool closed_by_server() {
    char byte;
    const ssize_t n = ::recv(fd_.get(), &byte, 1, 0);
    return pending_.empty() && (n == 0 || (n < 0 && errno == ECONNRESET));
  }

  void close() { fd_.reset(); }

 private:
  bool fill() {
    char chunk[4096];
    const ssize_t n = ::recv(fd_.get(), chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    pending_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  UniqueFd fd_;
  bool connected_ = false;
  std::string pending_;
  std::string last_head_;
};

std::string get(std::string_view target) {
  return fmt::format("GET {} HTTP/1.1\r\nHost: localhost\r\n\r\n", target);
}

std::string put(std::string_view target, std::string_view body) {
  return fmt::format("PUT {} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{}", target, body.size(), body);
}

// The server (on its own API thread) with the controller called on `io_`, the VMM loop, run by a
// thread of its own as in the VMM.
class ApiServer : public ::testing::Test {
 protected:
  void start(Limits limits = {}) {
    path_ = dir_.file("api.sock");
    auto server = Server::create(io_, path_, controller_, limits);
    ASSERT_TRUE(server.has_value()) << server.error().message;
    server_ = std::move(*server);
    thread_ = std::thread([this] { io_.run(); });
  }

  // Destroys the server on the VMM thread (as microvm does), then stops the loop.
  void stop() {
    if (!thread_.joinable()) return;
    std::promise<void> destroyed;
    boost::asio::post(io_, [&] {
      server_.reset();
      destroyed.set_value();
    });
    destroyed.get_future().wait();
    work_.reset();
    io_.stop();
    thread_.join();
  }

  void TearDown() override {
    release_vmm();
    stop();
  }

  // Occupies the VMM loop, as a slow device or a pause waiting for a vCPU would, until release_vmm();
  // returns once the loop is occupied. With `then_stop`, the loop stops when released (as when the
  // VM ends), whatever it still holds.
  void block_vmm(bool then_stop = false) {
    auto blocked = std::make_shared<std::promise<void>>();
    boost::asio::post(io_, [this, blocked, released = released_.get_future().share(), then_stop] {
      blocked->set_value();
      released.wait();
      if (then_stop) io_.stop();
    });
    blocked->get_future().wait();
  }
  void release_vmm() {
    if (!released_set_) released_.set_value();
    released_set_ = true;
  }
  // Returns once the VMM loop has run everything posted to it so far.
  void drain_vmm() {
    auto drained = std::make_shared<std::promise<void>>();
    boost::asio::post(io_, [drained] { drained->set_value(); });
    drained->get_future().wait();
  }

  TempDir dir_;
  std::string path_;
  FakeController controller_;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{io_.get_executor()};
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::promise<void> released_;
  bool released_set_ = false;
};

std::string put_drive(int n) {
  return put(fmt::format("/drives/d{}", n),
             fmt::format(R"({{"drive_id": "d{}", "path_on_host": "/d", "is_root_device": false}})", n));
}

TEST_F(ApiServer, KeepAliveServesSeveralRequestsOnOneConnection) {
  start();
  RawClient client(path_);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(get("/")));
  auto first = client.read_response();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->status, 200U);
  EXPECT_EQ(json::parse(first->body)["app_name"], "microvm");

  ASSERT_TRUE(client.send(put("/machine-config", R"({"vcpu_count": 4, "mem_size_mib": 512})")));
  auto second = client.read_response();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->status, 204U) << second->body;
  EXPECT_EQ(client.last_head().find("Content-Type"), std::string::npos) << "204 has no body";

  ASSERT_TRUE(client.send(get("/machine-config")));
  auto third = client.read_response();
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(json::parse(third->body)["vcpu_count"], 4);
}

TEST_F(ApiServer, PipelinedRequestsAreAnsweredInOrder) {
  start();
  RawClient client(path_);
  std::string batch;
  for (int i = 0; i < 10; ++i) {
    batch += put("/machine-config", fmt::format(R"({{"vcpu_count": {}, "mem_size_mib": 64}})", i + 1));
    batch += get("/machine-config");
  }
  ASSERT_TRUE(client.send(batch));
  for (int i = 0; i < 10; ++i) {
    auto put_response = client.read_response();
    ASSERT_TRUE(put_response.has_value()) << i;
    EXPECT_EQ(put_response->status, 204U);
    auto get_response = client.read_response();
    ASSERT_TRUE(get_response.has_value()) << i;
    EXPECT_EQ(json::parse(get_response->body)["vcpu_count"], i + 1);
  }
}

TEST_F(ApiServer, ExpectContinueIsAnsweredBeforeTheBodyIsSent) {
  start();
  RawClient client(path_);
  const std::string body = R"({"action_type": "InstanceStart"})";
  ASSERT_TRUE(client.send(
      fmt::format("PUT /actions HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", body.size())));
  auto interim = client.read_response();
  ASSERT_TRUE(interim.has_value());
  EXPECT_EQ(interim->status, 100U);
  ASSERT_TRUE(client.send(body));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 204U) << response->body;
  EXPECT_EQ(controller_.calls_made(), (std::vector<std::string>{"start"}));
}

TEST_F(ApiServer, OversizeBodyGets413AndTheConnectionCloses) {
  start();
  RawClient client(path_);
  ASSERT_TRUE(client.send(put("/boot-source", std::string(51201, ' '))));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413U);
  EXPECT_TRUE(client.closed_by_server());
  EXPECT_TRUE(controller_.calls_made().empty());
}

TEST_F(ApiServer, MalformedHttpGets400AndTheConnectionCloses) {
  start();
  RawClient client(path_);
  ASSERT_TRUE(client.send("HELLO\r\n\r\n"));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 400U);
  EXPECT_TRUE(client.closed_by_server());
}

TEST_F(ApiServer, HalfSentRequestTimesOutWithoutBlockingOthers) {
  start(Limits{.timeout = 300ms});
  RawClient stalled(path_);
  ASSERT_TRUE(stalled.send("PUT /actions HTTP/1.1\r\nContent-Length: 40\r\n\r\n{\"action"));
  RawClient idle(path_);

  // Others are served while both stall.
  RawClient other(path_);
  ASSERT_TRUE(other.send(get("/")));
  auto answer = other.read_response();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 200U);

  const auto started = std::chrono::steady_clock::now();
  auto response = stalled.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 408U);
  EXPECT_TRUE(stalled.closed_by_server());
  EXPECT_TRUE(idle.closed_by_server()) << "an idle connection is closed without an answer";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  EXPECT_TRUE(controller_.calls_made().empty());
}

TEST_F(ApiServer, AClientThatNeverReadsIsDroppedAndDoesNotHoldUpOthers) {
  controller_.metrics_value = json{{"blob", std::string(64 * 1024, 'x')}};  // a few fill the socket buffers
  start(Limits{.timeout = 300ms});
  RawClient hog(path_);
  // Pipelines requests without reading.
  constexpr std::size_t kRequests = 200;
  const std::string request = get("/microvm/metrics");
  std::size_t sent = 0;
  for (std::size_t i = 0; i < kRequests; ++i) {
    const std::size_t n = hog.send_nonblocking(request);
    if (n < request.size()) break;
    ++sent;
  }
  EXPECT_GT(sent, 20U);

  RawClient other(path_);
  ASSERT_TRUE(other.send(get("/")));
  auto answer = other.read_response();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 200U);

  // After the write deadline the server gives up on the hog: draining it ends in EOF or a reset.
  std::this_thread::sleep_for(600ms);
  std::optional<Response> response;
  int answered = 0;
  while ((response = hog.read_response())) ++answered;
  EXPECT_GT(answered, 0);
  EXPECT_LT(static_cast<std::size_t>(answered), sent) << "the server must have given up on the hog";
}

TEST_F(ApiServer, AClientThatLeavesBeforeTheAnswerDoesNotHurtTheServer) {
  start();
  for (int i = 0; i < 20; ++i) {
    RawClient client(path_);
    ASSERT_TRUE(client.send(get("/microvm/metrics")));
    client.close();
  }
  RawClient client(path_);
  ASSERT_TRUE(client.send(get("/")));
  auto answer = client.read_response();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 200U);
}

TEST_F(ApiServer, HundredConcurrentClientsAllGetWellFormedAnswers) {
  start();
  constexpr int kClients = 100;
  constexpr int kRequestsEach = 3;
  std::atomic<int> good{0};
  std::vector<std::string> failures(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      for (int r = 0; r < kRequestsEach; ++r) {
        auto response = r == 1 ? request(path_, "PUT", "/actions", R"({"action_type": "FlushMetrics"})")
                               : request(path_, "GET", r == 0 ? "/" : "/microvm/status", "");
        if (!response) {
          failures[i] = response.error().message;
          return;
        }
        const unsigned expected = r == 1 ? 204 : 200;
        if (response->status != expected || (expected == 200 && !json::accept(response->body))) {
          failures[i] = fmt::format("status {} body {}", response->status, response->body);
          return;
        }
        ++good;
      }
    });
  }
  for (auto& client : clients) client.join();
  for (int i = 0; i < kClients; ++i) EXPECT_EQ(failures[i], "") << "client " << i;
  EXPECT_EQ(good.load(), kClients * kRequestsEach);
}

TEST_F(ApiServer, ConnectionsBeyondTheLimitGet503) {
  start(Limits{.max_connections = 2});
  RawClient first(path_);
  RawClient second(path_);
  for (RawClient* client : {&first, &second}) {
    ASSERT_TRUE(client->send(get("/")));
    ASSERT_TRUE(client->read_response().has_value());
  }
  RawClient third(path_);
  auto refused = third.read_response();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 503U);
  EXPECT_NE(refused->body.find("too many API connections (limit 2)"), std::string::npos);
  EXPECT_TRUE(third.closed_by_server());

  // A freed slot is usable again (the server notices the close asynchronously).
  first.close();
  bool served = false;
  for (int attempt = 0; attempt < 50 && !served; ++attempt) {
    RawClient fourth(path_);
    fourth.send(get("/"));
    auto response = fourth.read_response();
    served = response.has_value() && response->status == 200;
    if (!served) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(served);
}

TEST_F(ApiServer, SocketFileIsRemovedOnDestruction) {
  start();
  RawClient client(path_);
  ASSERT_TRUE(client.send(get("/")));
  ASSERT_TRUE(client.read_response().has_value());
  struct stat info {};
  ASSERT_EQ(::stat(path_.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600U);
  stop();
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_TRUE(client.closed_by_server());
  // Handlers still queued after the Server is gone run harmlessly.
  io_.restart();
  io_.poll();
}

TEST_F(ApiServer, InUseSocketIsRefusedAndStaleOneReplaced) {
  start();
  FakeController other;
  auto second = Server::create(io_, path_, other);
  ASSERT_FALSE(second.has_value());
  EXPECT_NE(second.error().message.find("is in use by another process"), std::string::npos) << second.error().message;

  // A socket file nobody listens on is stale: replaced.
  const std::string stale = dir_.file("stale.sock");
  {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    stale.copy(address.sun_path, sizeof(address.sun_path) - 1);
    ASSERT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  }
  boost::asio::io_context io;
  auto replaced = Server::create(io, stale, other);
  ASSERT_TRUE(replaced.has_value()) << replaced.error().message;
  replaced->reset();
  EXPECT_FALSE(std::filesystem::exists(stale));

  // A regular file is never removed.
  const std::string regular = dir_.file("regular");
  std::ofstream(regular) << "data";
  auto refused = Server::create(io, regular, other);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("exists and is not a socket"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(regular));

  auto too_long = Server::create(io, "/tmp/" + std::string(200, 'x'), other);
  ASSERT_FALSE(too_long.has_value());
  EXPECT_NE(too_long.error().message.find("Unix sockets allow at most 107"), std::string::npos);
}

// --- the API thread and the VMM loop ------------------------------------------------------------------------

TEST_F(ApiServer, KeepsAnsweringWhileTheVmmLoopIsBlockedAndServesItsRequestsInOrderOnceFree) {
  start();
  block_vmm();
  // What the API thread decides alone is answered at once.
  RawClient malformed(path_);
  ASSERT_TRUE(malformed.send("HELLO\r\n\r\n"));
  auto bad = malformed.read_response();
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->status, 400U);
  RawClient oversize(path_);
  ASSERT_TRUE(oversize.send(put("/boot-source", std::string(51201, ' '))));
  auto too_large = oversize.read_response();
  ASSERT_TRUE(too_large.has_value());
  EXPECT_EQ(too_large->status, 413U);

  // Requests for the VMM are accepted and read, and wait for it.
  constexpr int kClients = 5;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<RawClient>(path_));
    ASSERT_TRUE(clients.back()->connected());
    ASSERT_TRUE(clients.back()->send(put_drive(i)));
    std::this_thread::sleep_for(100ms);  // so that the API thread reads them in this order
  }
  for (const auto& client : clients) EXPECT_FALSE(client->readable(0ms)) << "answered while the VMM was busy";
  EXPECT_TRUE(controller_.calls_made().empty());

  release_vmm();
  for (int i = 0; i < kClients; ++i) {
    auto response = clients[static_cast<std::size_t>(i)]->read_response();
    ASSERT_TRUE(response.has_value()) << i;
    EXPECT_EQ(response->status, 204U) << response->body;
  }
  EXPECT_EQ(controller_.calls_made(),
            (std::vector<std::string>{"drive d0", "drive d1", "drive d2", "drive d3", "drive d4"}));
}

TEST_F(ApiServer, ARequestTheVmmLoopDoesNotTakeInTimeGets503AndIsNeverApplied) {
  start(Limits{.vmm_timeout = 200ms});
  block_vmm();
  RawClient client(path_);
  const auto sent = std::chrono::steady_clock::now();
  ASSERT_TRUE(client.send(put("/actions", R"({"action_type": "InstanceStart"})")));
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 503U);
  EXPECT_NE(fault(*response).find("did not take the request within 200 ms, so it was not applied"), std::string::npos)
      << response->body;
  EXPECT_LT(std::chrono::steady_clock::now() - sent, 3s);
  EXPECT_TRUE(client.closed_by_server());

  release_vmm();
  auto later = request(path_, "GET", "/", "");
  ASSERT_TRUE(later.has_value()) << later.error().message;
  EXPECT_EQ(later->status, 200U);
  EXPECT_EQ(json::parse(later->body)["state"], "Not started");
  EXPECT_TRUE(controller_.calls_made().empty()) << "a request answered 503 must not run";
}

TEST_F(ApiServer, ARequestTheVmmLoopHasTakenIsAnsweredHoweverLongItTakes) {
  controller_.delay = 500ms;
  start(Limits{.vmm_timeout = 100ms});
  auto response = request(path_, "PUT", "/actions", R"({"action_type": "InstanceStart"})");
  ASSERT_TRUE(response.has_value()) << response.error().message;
  EXPECT_EQ(response->status, 204U) << response->body;
  EXPECT_EQ(controller_.calls_made(), (std::vector<std::string>{"start"}));
}

TEST_F(ApiServer, RequestsQueuedWhenTheVmmLoopStopsGet503) {
  start(Limits{.vmm_timeout = 300ms});
  block_vmm(/*then_stop=*/true);
  RawClient client(path_);
  ASSERT_TRUE(client.send(put("/actions", R"({"action_type": "InstanceStart"})")));
  std::this_thread::sleep_for(100ms);
  release_vmm();  // the loop stops with the request still queued on it
  thread_.join();
  auto response = client.read_response();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 503U) << response->body;
  // The server goes first, then (the fixture) the stopped loop with the request it never ran.
  server_.reset();
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_TRUE(controller_.calls_made().empty());
}

TEST_F(ApiServer, DestroyingTheServerDropsRequestsTheVmmLoopHoldsAndNeverRunsThem) {
  start();
  block_vmm();
  RawClient client(path_);
  ASSERT_TRUE(client.send(put("/actions", R"({"action_type": "InstanceStart"})")));
  std::this_thread::sleep_for(100ms);
  server_.reset();  // on this thread, while the VMM loop holds the request
  EXPECT_TRUE(client.closed_by_server());
  EXPECT_FALSE(std::filesystem::exists(path_));
  release_vmm();
  drain_vmm();  // the loop runs what it held: the channel is closed, so nothing reaches the controller
  EXPECT_TRUE(controller_.calls_made().empty());
}

// --- the client ------------------------------------------------------------------------------------------------

TEST_F(ApiServer, ClientGetsErrorResponsesAsResponses) {
  start();
  auto response = request(path_, "PUT", "/machine-config", R"({"vcpu_count": 0, "mem_size_mib": 64})");
  ASSERT_TRUE(response.has_value()) << response.error().message;
  EXPECT_EQ(response->status, 400U);
  EXPECT_NE(fault(*response).find("`vcpu_count`"), std::string::npos);

  auto oversize = request(path_, "PUT", "/boot-source", std::string(60000, ' '));
  ASSERT_TRUE(oversize.has_value()) << oversize.error().message;
  EXPECT_EQ(oversize->status, 413U);
}

TEST(ApiClient, ReportsAMissingSocket) {
  auto response = request("/nonexistent/microvm-api.sock", "GET", "/", "");
  ASSERT_FALSE(response.has_value());
  EXPECT_NE(response.error().message.find("cannot connect to API socket /nonexistent/microvm-api.sock"),
            std::string::npos)
      << response.error().message;
}

TEST(ApiClient, TimesOutOnASilentServer) {
  TempDir dir;
  const std::string path = dir.file("silent.sock");
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  path.copy(address.sun_path, sizeof(address.sun_path) - 1);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(listener.get(), 1), 0);  // never accepts: connect succeeds, nothing answers
  const auto started = std::chrono::steady_clock::now();
  auto response = request(path, "GET", "/", "", 200ms);
  ASSERT_FALSE(response.has_value());
  EXPECT_NE(response.error().message.find("no answer to GET / within 200 ms"), std::string::npos)
      << response.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
}

}  // namespace
}  // namespace microvm::api
