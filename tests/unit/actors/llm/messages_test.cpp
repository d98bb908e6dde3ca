// Every message of the LLM family round-trips through msgpack with all its
// fields, so any of them can go to an actor on another node unchanged.

#include <catch2/catch.hpp>

#include "actors/llm/messages.hpp"
#include "runtime/protocol/codec.hpp"
#include "tests/support/round_trip.hpp"

using namespace troupe;
using troupe::test::round_trips;
using namespace troupe::llm::msg;

namespace {

upstream_result a_result() {
  upstream_result r;
  r.id = 77;
  r.status = 200;
  r.headers = {{"request-id", "req_1"}, {"anthropic-ratelimit-requests-remaining", "9"}};
  r.body = R"({"type":"message","usage":{"input_tokens":3}})";
  r.error = "upstream stopped";
  r.timed_out = true;
  r.delivered = true;
  r.cancelled = true;
  r.not_sent = true;
  r.queued_ms = 12;
  r.took_us = 3456;
  r.committed = true;
  r.answered = true;
  r.json_ok = true;
  r.usage = {3, 5, 7, 11};
  r.stream = {true, "event: ping\ndata: {}\n\n", true, R"({"id":"m"})", "overloaded_error",
              "busy"};
  return r;
}

}  // namespace

TEST_CASE("llm messages: every type round-trips through msgpack") {
  call c;
  c.id = 1;
  c.model = "claude-fallback";
  c.body_model = "claude-test";
  c.path = "/v1/messages";
  c.body = R"({"model":"claude-test","messages":[]})";
  c.stream = true;
  c.keep = true;
  c.version = "2023-06-01";
  c.beta = "prompt-caching-2024-07-31";
  c.cache_label = "bypass";
  round_trips(c);
  round_trips(cancel{42, false});
  round_trips(a_result());
  round_trips(call_result{9, static_cast<uint8_t>(outcome::refused), "refused with 400", 2,
                          a_result()});
  prepared p;
  p.id = 5;
  p.error_status = 400;
  p.error_body = R"({"type":"error"})";
  p.model = "claude-test";
  p.stream = true;
  p.temperature = 0.25;
  p.max_tokens = 1024;
  p.body_text = "{}";
  p.key = "k+beta";
  p.cacheable = true;
  p.mode = 2;
  p.deps = {"/src/a.cpp", "/src/b.cpp"};
  p.agent = "reviewer";
  p.priority = 0;
  round_trips(p);
}
