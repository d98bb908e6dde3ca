// The node's HTTP server alone, on a real socket: what it binds, what it
// refuses to bind, and that stop() frees the address and closes what is
// open. (The listener actor that owns it: listener_test.cpp.)

#include "actors/gateway/server.hpp"

#include <catch2/catch.hpp>

#include "client/http_client.hpp"
#include "runtime/net/base_url.hpp"
#include "runtime/net/io_threads.hpp"
#include "tests/support/actor_harness.hpp"

using namespace troupe;
using troupe::test::actor_harness;

namespace {

struct server_fixture {
  server_fixture() { http.start(); }
  ~server_fixture() { http.stop(); }
  expected<std::unique_ptr<gateway_server>> start(const std::string& listen) {
    return gateway_server::start(h.ctx(), "secret", listen, {http.context(), http.context()});
  }
  http_client client(const std::string& address) {
    auto url = parse_base_url("http://" + address);
    REQUIRE(url);
    return http_client(*url, "secret", 3000);
  }
  // The HTTP threads outlive the actor system (declared first).
  io_threads http{"test-http", 1};
  actor_harness h;
};

}  // namespace

TEST_CASE("gateway server: port 0 binds a real port, an address in use or a bad one is refused") {
  server_fixture f;
  auto first = f.start("127.0.0.1:0");
  REQUIRE(first);
  const auto address = (*first)->address();
  CHECK(address.starts_with("127.0.0.1:"));
  CHECK(address != "127.0.0.1:0");
  CHECK_FALSE(f.start(address));  // in use
  CHECK_FALSE(f.start("not an address"));
  CHECK_FALSE(f.start("127.0.0.1:99999"));
  CHECK_FALSE(f.start("127.0.0.1:http"));
  CHECK_FALSE(f.start("127.0.0.1:"));
  (*first)->stop();
  // stop() waits for the socket to close: the address binds again at once.
  auto again = f.start(address);
  REQUIRE(again);
  (*again)->stop();
}

TEST_CASE("gateway server: it answers once it serves, and stop() closes its connections") {
  server_fixture f;
  auto bound = f.start("127.0.0.1:0");
  REQUIRE(bound);
  auto& server = **bound;
  server.serve(f.h.system());
  auto c = f.client(server.address());
  auto healthy = c.request("GET", "/healthz");
  REQUIRE(healthy);
  CHECK(healthy->status == 200);
  // Counted down once the answer is written, which the client may see first.
  CHECK(troupe::test::wait_until([&] { return server.in_flight() == 0; }));
  server.stop();
  // The connection kept alive was closed, and nobody accepts a new one.
  CHECK_FALSE(c.request("GET", "/healthz"));
  CHECK_FALSE(f.client(server.address()).request("GET", "/healthz"));
}
