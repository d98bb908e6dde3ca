// Actor calls from HTTP: each from an actor of its own, relayed by
// gateway/calls behind one circuit breaker per target path.

#include "actors/gateway/bridge.hpp"

#include <catch2/catch.hpp>

#include <future>

#include "actors/system/messages.hpp"
#include "actors/system/system_actor.hpp"
#include "tests/support/actor_harness.hpp"

using namespace troupe;
using namespace std::chrono_literals;
using troupe::test::actor_harness;
using troupe::test::wait_until;

namespace {

/// A worker that takes every message and never answers.
child_spec mute_child() {
  child_spec spec;
  spec.name = "mute";
  spec.start = [](caf::actor_system& system, const std::string&) {
    return system.spawn([](caf::event_based_actor* self) -> caf::behavior {
      return {
          [self](std::string&, std::string&, uint64_t) { return self->make_response_promise(); }};
    });
  };
  return spec;
}

envelope submit(actor_harness& h, const std::string& path, envelope msg,
                std::chrono::milliseconds timeout) {
  std::promise<envelope> promise;
  auto reply = promise.get_future();
  submit_call(h.system(), h.ctx(),
              actor_call{path, std::move(msg), timeout, reply_shape::envelope_json, {}, {}},
              [&promise](envelope r) { promise.set_value(std::move(r)); });
  return reply.get();
}

node_config breaker_config_for_test() {
  node_config config;
  config.breaker.failures_max = 3;
  config.breaker.open_ms = 60000;
  config.breaker.open_ms_max = 60000;
  config.breaker.jitter = 0.0;
  return config;
}

/// The gateway supervisor with only its relay (no listener).
child_spec gateway_calls(actor_harness& h) {
  supervisor_spec spec;
  spec.children = {calls_child(h.ctx())};
  return supervisor_child("gateway", h.ctx(), spec);
}

}  // namespace

TEST_CASE("a call through the gateway actor gets the target's reply") {
  actor_harness h;
  supervisor_spec spec;
  spec.children = {system_child(h.ctx()), gateway_calls(h)};
  h.start_root(spec);
  REQUIRE(wait_until([&] { return h.state_of("gateway/calls") == actor_state::running; }));
  auto reply = submit(h, "sys", make_envelope(sys::echo_type, sys::echo_message{"through"}), 2s);
  REQUIRE_FALSE(reply.is_error());
  CHECK(decode<sys::echo_message>(reply.body)->text == "through");
}

TEST_CASE("a target that keeps timing out opens its breaker, others are unaffected") {
  actor_harness h(breaker_config_for_test());
  supervisor_spec spec;
  spec.children = {system_child(h.ctx()), mute_child(), gateway_calls(h)};
  h.start_root(spec);
  REQUIRE(wait_until([&] { return h.state_of("gateway/calls") == actor_state::running; }));

  for (int i = 0; i < 3; ++i) {
    auto reply = submit(h, "mute", make_envelope("x.y", empty_body{}), 20ms);
    REQUIRE(reply.is_error());
    CHECK(read_error(reply).code == errc::timeout);
  }
  const auto before = std::chrono::steady_clock::now();
  auto refused = submit(h, "mute", make_envelope("x.y", empty_body{}), 5000ms);
  REQUIRE(refused.is_error());
  auto err = read_error(refused);
  CHECK(err.code == errc::breaker_open);
  CHECK(err.message.find("calls to 'mute' keep failing") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - before < 1000ms);  // answered at once, not after 5 s

  auto echo = submit(h, "sys", make_envelope(sys::echo_type, sys::echo_message{"fine"}), 2s);
  CHECK_FALSE(echo.is_error());
  CHECK(h.ctx()->metrics.render().find(
            "troupe_breaker_transitions_total{target=\"mute\",to=\"open\"} 1") !=
        std::string::npos);
}

TEST_CASE("caller mistakes do not count against the target") {
  actor_harness h(breaker_config_for_test());
  supervisor_spec spec;
  spec.children = {system_child(h.ctx()), gateway_calls(h)};
  h.start_root(spec);
  REQUIRE(wait_until([&] { return h.state_of("gateway/calls") == actor_state::running; }));
  for (int i = 0; i < 5; ++i) {
    auto reply = submit(h, "sys", make_envelope("sys.nope", empty_body{}), 2s);
    REQUIRE(reply.is_error());
    CHECK(read_error(reply).code == errc::unknown_type);
  }
  auto echo = submit(h, "sys", make_envelope(sys::echo_type, sys::echo_message{"still"}), 2s);
  CHECK_FALSE(echo.is_error());
}

TEST_CASE("a fan-out call merges every path's reply, in order") {
  actor_harness h;
  supervisor_spec spec;
  spec.children = {system_child(h.ctx()), gateway_calls(h)};
  h.start_root(spec);
  REQUIRE(wait_until([&] { return h.state_of("gateway/calls") == actor_state::running; }));
  actor_call call{"",
                  make_envelope(sys::echo_type, sys::echo_message{"both"}),
                  2s,
                  reply_shape::envelope_json,
                  {"sys", "nobody", "sys"},
                  {}};
  call.merge = [](const std::vector<envelope>& replies) {
    std::string joined;
    for (const auto& r : replies) {
      joined += r.is_error() ? "[" + std::string(to_string(read_error(r).code)) + "]"
                             : decode<sys::echo_message>(r.body)->text;
    }
    return make_envelope(sys::echo_type, sys::echo_message{joined});
  };
  std::promise<envelope> promise;
  auto reply = promise.get_future();
  submit_call(h.system(), h.ctx(), std::move(call),
              [&promise](envelope r) { promise.set_value(std::move(r)); });
  auto merged = reply.get();
  REQUIRE_FALSE(merged.is_error());
  CHECK(decode<sys::echo_message>(merged.body)->text == "both[unknown_actor]both");
}

TEST_CASE("gateway/calls refuses what is not a gateway.call") {
  actor_harness h;
  supervisor_spec spec;
  spec.children = {gateway_calls(h)};
  h.start_root(spec);
  REQUIRE(wait_until([&] { return h.state_of("gateway/calls") == actor_state::running; }));
  auto reply =
      submit(h, "gateway/calls", make_envelope(sys::echo_type, sys::echo_message{"x"}), 2s);
  REQUIRE(reply.is_error());
  CHECK(read_error(reply).code == errc::unknown_type);
}
