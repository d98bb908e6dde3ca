// The node's HTTP client against real sockets: the node's own server for
// answers, a closed port for a refusal, and a socket that never answers for
// the timeout.

#include "client/http_client.hpp"

#include <catch2/catch.hpp>

#include "actors/gateway/server.hpp"
#include "runtime/net/io_threads.hpp"
#include "tests/support/actor_harness.hpp"
#include "tests/support/silent_socket.hpp"

using namespace troupe;
using troupe::test::actor_harness;

namespace {

/// The node's HTTP server, serving, on a port of its own.
struct served {
  served() {
    http.start();
    auto bound =
        gateway_server::start(h.ctx(), "secret", "127.0.0.1:0", {http.context(), http.context()});
    REQUIRE(bound);
    server = std::move(*bound);
    server->serve(h.system());
  }
  ~served() {
    server->stop();
    http.stop();
  }
  http_client client(const std::string& token = "secret", uint32_t timeout_ms = 3000) {
    auto url = parse_node_url("http://" + server->address());
    REQUIRE(url);
    return http_client(*url, token, timeout_ms);
  }
  io_threads http{"test-http", 1};
  actor_harness h;
  std::unique_ptr<gateway_server> server;
};

}  // namespace

TEST_CASE("http client: node URLs, https refused") {
  CHECK(parse_node_url("http://127.0.0.1:7700"));
  CHECK(parse_node_url("http://[::1]:7700/prefix"));
  auto tls = parse_node_url("https://example.com");
  REQUIRE_FALSE(tls);
  CHECK(tls.err().code == errc::bad_request);
  CHECK_FALSE(parse_node_url("not a url"));
}

TEST_CASE("http client: answers over one kept-alive connection, any status a value") {
  served s;
  auto c = s.client();
  auto healthy = c.request("GET", "/healthz");
  REQUIRE(healthy);
  CHECK(healthy->status == 200);
  // A status the node answers with is a value, not an error.
  auto unknown = c.request("GET", "/v1/no-such-route");
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  CHECK_FALSE(find_header(*unknown, "CONTENT-TYPE").empty());
  auto anonymous = s.client("").request("GET", "/v1/node");
  REQUIRE(anonymous);
  CHECK(anonymous->status == 401);
}

TEST_CASE("http client: malformed requests are refused before they are sent") {
  served s;
  auto c = s.client();
  auto method = c.request("GE T", "/healthz");
  REQUIRE_FALSE(method);
  CHECK(method.err().code == errc::bad_request);
  // A CR LF in a header would inject another header.
  auto header = c.request("GET", "/healthz", "", "", {{"x-a\r\nx-b", "y"}});
  REQUIRE_FALSE(header);
  CHECK(header.err().code == errc::bad_request);
  auto value = c.request("GET", "/healthz", "", "", {{"x-a", "y\r\nx-b: z"}});
  REQUIRE_FALSE(value);
  CHECK(value.err().code == errc::bad_request);
  // The client goes on.
  auto fine = c.request("GET", "/healthz");
  REQUIRE(fine);
  CHECK(fine->status == 200);
}

TEST_CASE("http client: nobody listening is unavailable, nobody answering a timeout") {
  std::string address;
  {
    served s;
    address = s.server->address();
  }
  auto url = parse_node_url("http://" + address);
  REQUIRE(url);
  auto refused = http_client(*url, "", 3000).request("GET", "/healthz");
  REQUIRE_FALSE(refused);
  CHECK(refused.err().code == errc::unavailable);

  test::silent_socket silent;
  auto quiet = parse_node_url("http://127.0.0.1:" + std::to_string(silent.port));
  REQUIRE(quiet);
  auto waited = http_client(*quiet, "", 200).request("GET", "/healthz");
  REQUIRE_FALSE(waited);
  CHECK(waited.err().code == errc::timeout);
}
