// An exchange actor alone, on CAF's test coordinator: the test's own actor
// plays llm/router, a recording sink plays the connection.

#include "actors/gateway/exchange_actor.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "runtime/node/http_exchange.hpp"
#include "tests/support/deterministic.hpp"

using namespace troupe;
using troupe::test::deterministic_system;

namespace {

/// What the connection was told, in order.
class recording_sink : public exchange_sink {
 public:
  void reply(int status, http_headers, std::string body) override {
    events.push_back("reply " + std::to_string(status) + " " + body);
  }
  void begin_stream(int status, http_headers headers) override {
    events.push_back("head " + std::to_string(status) + " " +
                     (headers.empty() ? "" : headers.front().second));
  }
  void stream(std::string chunk) override { events.push_back("chunk " + chunk); }
  void end_stream() override { events.push_back("end"); }
  bool gone() const override { return false; }

  std::vector<std::string> events;
};

exchange_request a_request() {
  return exchange_request{
      "POST", "/v1/messages", {{"anthropic-version", "2023-06-01"}}, R"({"model":"m"})", "token-1"};
}

/// The router's acknowledgement of a request it took.
envelope taken() {
  return make_envelope(std::string(http_msg::request_type) + ".reply", empty_body{});
}

}  // namespace

TEST_CASE("exchange actor: the request goes to the router, a stream comes back in order") {
  deterministic_system sys;
  sys.register_running("llm/router", sys.self());
  auto sink = std::make_shared<recording_sink>();
  auto exchange = spawn_exchange(sys.system(), sys.ctx(), family_exchange{}, a_request(), sink);
  sys.run();
  // A request (a router that dies with it unread is noticed), acknowledged
  // as the router does once it takes it.
  auto got = sys.answer_next(taken());
  REQUIRE(got);
  CHECK(got->type == http_msg::request_type);
  auto req = decode<http_msg::request>(got->body);
  REQUIRE(req);
  CHECK(req->target == "/v1/messages");
  CHECK(req->client == "token-1");

  sys.send(exchange, make_envelope(http_msg::head_type,
                                   http_msg::head{200, {{"content-type", "text/event-stream"}}}));
  sys.send(exchange, make_envelope(http_msg::chunk_type, http_msg::chunk{"event: a\n\n"}));
  sys.send(exchange, make_envelope(http_msg::chunk_type, http_msg::chunk{"event: b\n\n"}));
  sys.send(exchange, make_envelope(http_msg::end_type, empty_body{}));
  CHECK(sink->events == std::vector<std::string>{"head 200 text/event-stream", "chunk event: a\n\n",
                                                 "chunk event: b\n\n", "end"});
}

TEST_CASE("exchange actor: a whole reply, and the client's leaving told to the router") {
  deterministic_system sys;
  sys.register_running("llm/router", sys.self());
  auto sink = std::make_shared<recording_sink>();
  auto exchange = spawn_exchange(sys.system(), sys.ctx(), family_exchange{}, a_request(), sink);
  sys.run();
  REQUIRE(sys.answer_next(taken()));
  // The connection says its client left: the router hears it.
  sys.send(exchange, make_envelope(http_msg::gone_type, empty_body{}));
  auto gone = sys.take_mail();
  REQUIRE(gone);
  CHECK(gone->first.type == http_msg::gone_type);
  sys.send(exchange,
           make_envelope(http_msg::reply_type, http_msg::reply{404, {}, R"({"type":"error"})"}));
  CHECK(sink->events == std::vector<std::string>{R"(reply 404 {"type":"error"})"});
}

TEST_CASE("exchange actor: no router, or one that is down, is a 529 the client may retry") {
  deterministic_system sys;
  auto none = std::make_shared<recording_sink>();
  (void)spawn_exchange(sys.system(), sys.ctx(), family_exchange{}, a_request(), none);
  sys.run();
  REQUIRE(none->events.size() == 1);
  CHECK(none->events.front().starts_with("reply 529 "));
  CHECK(none->events.front().find("not started") != std::string::npos);

  auto dead = sys.system().spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](const std::string&, const std::string&, uint64_t) {}};
  });
  caf::anon_send_exit(dead, caf::exit_reason::user_shutdown);
  sys.run();
  sys.register_running("llm/router", dead);
  auto down = std::make_shared<recording_sink>();
  (void)spawn_exchange(sys.system(), sys.ctx(), family_exchange{}, a_request(), down);
  sys.run();
  REQUIRE(down->events.size() == 1);
  CHECK(down->events.front().starts_with("reply 529 "));
  CHECK(down->events.front().find("went down") != std::string::npos);
}

TEST_CASE("exchange actor: a target that does not exist is troupe's 404 on troupe's routes") {
  deterministic_system sys;
  auto sink = std::make_shared<recording_sink>();
  (void)spawn_exchange(sys.system(), sys.ctx(),
                       family_exchange{"agents/live/x", false, "no agent 'x'"}, a_request(), sink);
  sys.run();
  REQUIRE(sink->events.size() == 1);
  CHECK(sink->events.front().starts_with("reply 404 "));
  CHECK(sink->events.front().find(R"({"error":{"code":"not_found","message":"no agent 'x'"}})") !=
        std::string::npos);
}
