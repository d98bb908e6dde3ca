// The gateway family with a real listener on a real socket: gateway/http
// serves the socket bound at boot, comes back on the same address after a
// crash (closing what it held), and drains on gateway.drain.

#include "actors/gateway/listener.hpp"

#include <catch2/catch.hpp>

#include "actors/gateway/bridge.hpp"
#include "actors/gateway/messages.hpp"
#include "actors/gateway/server.hpp"
#include "actors/system/system_actor.hpp"
#include "client/http_client.hpp"
#include "runtime/net/base_url.hpp"
#include "runtime/net/io_threads.hpp"
#include "tests/support/actor_harness.hpp"

using namespace troupe;
using namespace std::chrono_literals;
using troupe::test::actor_harness;
using troupe::test::wait_until;

namespace {

/// A node's gateway without the node: HTTP threads, the socket bound as the
/// node binds it, `sys` to call, and the family under a root.
struct gateway_fixture {
  gateway_fixture() {
    http.start();
    auto bound = gateway_server::start(h.ctx(), "secret", "127.0.0.1:0", io());
    REQUIRE(bound);
    h.ctx()->listen_address = (*bound)->address();
    supervisor_spec spec;
    spec.children = {system_child(h.ctx(), nullptr),
                     gateway_family(h.ctx(), "secret", io(), std::move(*bound))};
    h.ctx()->top_level_children = spec.children.size();
    h.start_root(std::move(spec));
    REQUIRE(wait_until([&] { return h.state_of(gateway::http_path) == actor_state::running; }));
  }
  ~gateway_fixture() {
    (void)h.stop_root();
    http.stop();
  }

  http_client client() {
    auto url = parse_base_url("http://" + h.ctx()->listen_address);
    REQUIRE(url);
    return http_client(*url, "secret", 3000);
  }

  // The HTTP threads outlive the actor system (declared first).
  io_threads http{"test-http", 1};
  /// No terminals attach here: one io_context for both.
  gateway_io io() { return {http.context(), http.context()}; }
  actor_harness h;
};

}  // namespace

TEST_CASE("gateway/http: a crashed listener comes back on the same address") {
  gateway_fixture g;
  auto before = g.client();
  REQUIRE(before.request("GET", "/healthz"));
  auto echo =
      before.request("POST", "/v1/actors/sys/messages",
                     R"({"type":"sys.echo","body":{"text":"through calls"}})", "application/json");
  REQUIRE(echo);
  CHECK(echo->status == 200);
  CHECK(echo->body.find("through calls") != std::string::npos);

  const auto first = g.h.registry().current(gateway::http_path);
  crash(first);
  REQUIRE(wait_until([&] {
    auto next = g.h.registry().current(gateway::http_path);
    return next && next != first;
  }));
  // Same address; the kept-alive connection of the old listener was
  // closed, which the client sees as a connection to open again.
  auto after = g.client();
  REQUIRE(wait_until([&] {
    auto r = after.request("GET", "/healthz");
    return r && r->status == 200;
  }));
  auto again = before.request("GET", "/healthz");
  REQUIRE(again);
  CHECK(again->status == 200);
}

TEST_CASE("gateway/http: gateway.drain stops accepting and says when nothing is in flight") {
  gateway_fixture g;
  auto c = g.client();
  REQUIRE(c.request("GET", "/healthz"));
  CHECK(drain_gateway(g.h.system(), *g.h.ctx(), 2000ms));
  auto ready = c.request("GET", "/readyz");
  // The connection kept alive may still answer: not ready any more.
  if (ready) {
    CHECK(ready->status == 503);
  }
  auto fresh = g.client();
  CHECK_FALSE(fresh.request("GET", "/healthz"));  // nobody accepts now
}
