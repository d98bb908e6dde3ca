// What the LLM family sends a requester: http.* messages that decode to
// what was said, in the order said.

#include "actors/llm/requester.hpp"

#include <catch2/catch.hpp>

#include "tests/support/deterministic.hpp"

using namespace troupe;
using troupe::test::deterministic_system;

namespace {

envelope next(deterministic_system& sys) {
  sys.run();
  auto got = sys.take_mail();
  REQUIRE(got);
  CHECK_FALSE(got->second);  // told, not asked
  return got->first;
}

}  // namespace

TEST_CASE("requester: a whole reply, or a stream's head, chunks and end, or dropped") {
  deterministic_system sys;
  // Every message carries the correlation id of the requester's request.
  const llm::answer_to me{sys.self(), 42};

  llm::send_reply(me, 200, {{"content-type", "application/json"}}, R"({"id":"m"})");
  auto reply = next(sys);
  REQUIRE(reply.type == http_msg::reply_type);
  CHECK(reply.correlation_id == 42);
  auto r = decode<http_msg::reply>(reply.body);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->bytes == R"({"id":"m"})");
  REQUIRE(r->headers.size() == 1);
  CHECK(r->headers.front().value == "application/json");

  llm::send_head(me, 200, {{"content-type", "text/event-stream"}});
  llm::send_chunk(me, "event: ping\n\n");
  llm::send_end(me);
  auto head = next(sys);
  CHECK(head.type == http_msg::head_type);
  CHECK(head.correlation_id == 42);
  auto chunk = next(sys);
  REQUIRE(chunk.type == http_msg::chunk_type);
  CHECK(decode<http_msg::chunk>(chunk.body)->bytes == "event: ping\n\n");
  CHECK(next(sys).type == http_msg::end_type);

  llm::send_dropped(me);
  CHECK(next(sys).type == http_msg::dropped_type);
  CHECK_FALSE(sys.has_mail());
}
