// Every message of the gateway family round-trips through msgpack with all
// its fields, so any of them can go to an actor on another node unchanged.

#include "actors/gateway/messages.hpp"

#include <catch2/catch.hpp>

#include "tests/support/round_trip.hpp"

using namespace troupe;
using troupe::test::round_trips;

TEST_CASE("gateway messages: every type round-trips through msgpack") {
  round_trips(
      gateway::call_request{"sessions/manager", "session.list", std::string("\x80\x00", 2), 2500});
  round_trips(gateway::drain_request{15000});
  round_trips(gateway::drain_reply{true, 3});
  auto back = decode<gateway::call_request>(
      encode(gateway::call_request{"sys", "sys.echo", "\x81\xa4text\xa1x", 9}));
  REQUIRE(back);
  CHECK(back->path == "sys");
  CHECK(back->type == "sys.echo");
  CHECK(back->body == "\x81\xa4text\xa1x");
  CHECK(back->timeout_ms == 9);
}
