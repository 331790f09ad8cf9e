// The API's HTTP layer without a socket (serve_bytes): pipelining, limits, Expect: 100-continue,
// keep-alive, the Allow header, chunked bodies.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/http/serve_bytes.h"
#include "tests/unit/api_fake_controller.h"

namespace microvm::api {
namespace {

using nlohmann::json;
using test::body_of;
using test::call;
using test::FakeController;
using test::fault;

// --- the HTTP layer without a socket --------------------------------------------------------------------------

// The status codes of every response in `output`, in order.
std::vector<unsigned> statuses(const std::string& output) {
  std::vector<unsigned> out;
  for (std::size_t at = output.find("HTTP/1.1 "); at != std::string::npos; at = output.find("HTTP/1.1 ", at + 1)) {
    out.push_back(static_cast<unsigned>(std::stoul(output.substr(at + 9, 3))));
  }
  return out;
}

TEST(ApiHttp, PipelinedRequestsAreAnsweredInOrder) {
  FakeController controller;
  const std::string body = R"({"vcpu_count": 2, "mem_size_mib": 64})";
  const std::string output =
      serve_bytes(controller,
                  "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                  "PUT /machine-config HTTP/1.1\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n\r\n" + body + "GET /machine-config HTTP/1.1\r\n\r\n");
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{200, 204, 200})) << output;
  EXPECT_NE(output.find(R"({"mem_size_mib":64,"smt":false,"vcpu_count":2})"), std::string::npos) << output;
  EXPECT_NE(output.find("Content-Type: application/json"), std::string::npos);
}

TEST(ApiHttp, MalformedRequestGets400AndEndsTheConnection) {
  FakeController controller;
  const std::string output = serve_bytes(controller, "GET / HTTP/9\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{400})) << output;
  EXPECT_NE(output.find("malformed HTTP request"), std::string::npos) << output;
  EXPECT_NE(output.find("Connection: close"), std::string::npos) << output;
}

TEST(ApiHttp, OversizeBodyGets413BeforeTheBodyIsRead) {
  FakeController controller;
  const std::string output =
      serve_bytes(controller, "PUT /boot-source HTTP/1.1\r\nContent-Length: 51201\r\n\r\n{", Limits{});
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{413})) << output;
  EXPECT_NE(output.find("larger than the limit of 51200 bytes"), std::string::npos) << output;
}

TEST(ApiHttp, OversizeHeaderGets431) {
  FakeController controller;
  const std::string output =
      serve_bytes(controller, "GET / HTTP/1.1\r\nX-Filler: " + std::string(10000, 'x') + "\r\n\r\n");
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{431})) << output;
}

TEST(ApiHttp, ExpectContinueGetsAnInterimResponse) {
  FakeController controller;
  const std::string body = R"({"action_type": "InstanceStart"})";
  const std::string output = serve_bytes(
      controller, "PUT /actions HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) +
                      "\r\n\r\n" + body);
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{100, 204})) << output;
}

TEST(ApiHttp, ConnectionCloseEndsAfterTheFirstAnswer) {
  FakeController controller;
  const std::string output =
      serve_bytes(controller, "GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{200})) << output;
}

TEST(ApiHttp, MethodNotAllowedSendsAnAllowHeader) {
  FakeController controller;
  const std::string output = serve_bytes(controller, "POST /machine-config HTTP/1.1\r\n\r\n");
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{405})) << output;
  EXPECT_NE(output.find("\r\nAllow: GET, PUT, PATCH\r\n"), std::string::npos) << output;
}

TEST(ApiHttp, NoContentHasNoContentLength) {
  FakeController controller;
  const std::string body = R"({"action_type": "FlushMetrics"})";
  const std::string output =
      serve_bytes(controller, fmt::format("PUT /actions HTTP/1.1\r\nContent-Length: {}\r\n\r\n{}", body.size(), body));
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{204})) << output;
  EXPECT_EQ(output.find("Content-Length"), std::string::npos) << output;
}

TEST(ApiHttp, ChunkedBodiesWork) {
  FakeController controller;
  const std::string output = serve_bytes(controller,
                                         "PUT /actions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                         "10\r\n{\"action_type\": \r\n10\r\n\"InstanceStart\"}\r\n0\r\n\r\n");
  EXPECT_EQ(statuses(output), (std::vector<unsigned>{204})) << output;
  EXPECT_EQ(controller.calls, (std::vector<std::string>{"start"}));
}
}  // namespace
}  // namespace microvm::api
