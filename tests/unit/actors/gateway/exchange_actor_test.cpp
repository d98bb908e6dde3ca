// A connection's exchange actor alone, on CAF's test coordinator: the
// test's own actor plays llm/router, a recording sink plays the connection,
// and an io_context the test polls plays the connection's strand.

#include "actors/gateway/exchange_actor.hpp"

#include <boost/asio/io_context.hpp>
#include <caf/actor_companion.hpp>
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/node/http_exchange.hpp"
#include "tests/support/deterministic.hpp"

using namespace troupe;
using troupe::test::deterministic_system;

namespace {

/// What the connection was told, in order, each with its exchange's id.
class recording_sink : public exchange_sink {
 public:
  void reply(uint64_t id, int status, http_headers, std::string body) override {
    events.push_back(std::to_string(id) + " reply " + std::to_string(status) + " " + body);
  }
  void begin_stream(uint64_t id, int status, http_headers headers) override {
    events.push_back(std::to_string(id) + " head " + std::to_string(status) + " " +
                     (headers.empty() ? "" : headers.front().second));
  }
  void stream(uint64_t id, body_slice chunk) override {
    events.push_back(std::to_string(id) + " chunk " + std::string(chunk.view()));
  }
  void end_stream(uint64_t id) override { events.push_back(std::to_string(id) + " end"); }
  void abandon(uint64_t id) override { events.push_back(std::to_string(id) + " abandoned"); }

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

/// A connection's exchange actor on a strand the test polls.
struct fixture {
  deterministic_system sys;
  boost::asio::io_context strand;
  std::shared_ptr<recording_sink> sink = std::make_shared<recording_sink>();
  exchange_actor actor{sys.system(), strand.get_executor(), sink};

  /// Runs the actors and the strand until neither has anything left to do.
  void settle() {
    while (sys.run() + strand.poll() > 0) {
      strand.restart();
    }
    strand.restart();
  }
  void start(uint64_t id, family_exchange target = {}) {
    actor.start(*sys.ctx(), std::move(target), a_request(), id);
    settle();
  }
  /// The router (the test's actor) takes the request it was sent.
  std::optional<envelope> take() {
    auto got = sys.answer_next(taken());
    settle();
    return got;
  }
  /// Sends as the router, with exchange `id`'s correlation, and lets it all run.
  template <class T>
  void answer(uint64_t id, const char* type, const T& body) {
    auto msg = make_envelope(type, body);
    msg.correlation_id = id;
    sys.send(actor.handle(), std::move(msg));
    settle();
  }
};

}  // namespace

TEST_CASE("exchange actor: the request goes to the router, a stream comes back in order") {
  fixture f;
  f.sys.register_running("llm/router", f.sys.self());
  f.start(1);
  // A request (a router that dies with it unread is noticed), acknowledged
  // as the router does once it takes it; its correlation names the exchange.
  auto got = f.take();
  REQUIRE(got);
  CHECK(got->type == http_msg::request_type);
  CHECK(got->correlation_id == 1);
  auto req = decode<http_msg::request>(got->body);
  REQUIRE(req);
  CHECK(req->target == "/v1/messages");
  CHECK(req->client == "token-1");

  f.answer(1, http_msg::head_type, http_msg::head{200, {{"content-type", "text/event-stream"}}});
  // Its messages are handled on the connection's strand, in turn: a chunk
  // waits there until the strand runs.
  auto chunk = make_envelope(http_msg::chunk_type, http_msg::chunk{"event: a\n\n"});
  chunk.correlation_id = 1;
  f.sys.send(f.actor.handle(), chunk);
  CHECK(f.sink->events.size() == 1);
  CHECK(f.strand.poll() == 1);
  f.strand.restart();
  f.answer(1, http_msg::chunk_type, http_msg::chunk{"event: b\n\n"});
  // A chunk whose message is short enough to live inside its string (no
  // heap buffer): handed over by offset, it arrives whole all the same.
  f.answer(1, http_msg::chunk_type, http_msg::chunk{"c"});
  // And one packed where it was read, as the upstream sends them.
  http_msg::chunk_packer packer;
  packer.append("event: d\n\n");
  envelope packed{std::string(http_msg::chunk_type), packer.take(), 1};
  f.sys.send(f.actor.handle(), std::move(packed));
  f.settle();
  f.answer(1, http_msg::end_type, empty_body{});
  CHECK(f.sink->events == std::vector<std::string>{"1 head 200 text/event-stream",
                                                   "1 chunk event: a\n\n", "1 chunk event: b\n\n",
                                                   "1 chunk c", "1 chunk event: d\n\n", "1 end"});
}

TEST_CASE(
    "exchange actor: one actor for a connection's exchanges, and what comes late is dropped") {
  fixture f;
  f.sys.register_running("llm/router", f.sys.self());
  f.start(1);
  REQUIRE(f.take());
  f.answer(1, http_msg::reply_type, http_msg::reply{200, {}, "first"});
  f.start(2);
  auto second = f.take();
  REQUIRE(second);
  CHECK(second->correlation_id == 2);
  // A late piece of the first exchange, and one after it ended, go nowhere.
  f.answer(1, http_msg::chunk_type, http_msg::chunk{"late"});
  f.answer(2, http_msg::reply_type, http_msg::reply{200, {}, "second"});
  f.answer(2, http_msg::reply_type, http_msg::reply{200, {}, "again"});
  CHECK(f.sink->events == std::vector<std::string>{"1 reply 200 first", "2 reply 200 second"});
}

TEST_CASE("exchange actor: the client's leaving is told to the router, a drop is abandoned") {
  fixture f;
  f.sys.register_running("llm/router", f.sys.self());
  f.start(3);
  REQUIRE(f.take());
  f.actor.client_left();
  f.settle();
  auto gone = f.sys.take_mail();
  REQUIRE(gone);
  CHECK(gone->first.type == http_msg::gone_type);
  CHECK(gone->first.correlation_id == 3);
  f.answer(3, http_msg::dropped_type, empty_body{});
  CHECK(f.sink->events == std::vector<std::string>{"3 abandoned"});
}

TEST_CASE("exchange actor: no router, or one that is down, is a 529 the client may retry") {
  fixture f;
  f.start(1);
  REQUIRE(f.sink->events.size() == 1);
  CHECK(f.sink->events.front().starts_with("1 reply 529 "));
  CHECK(f.sink->events.front().find("not started") != std::string::npos);

  auto dead = f.sys.system().spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](const std::string&, const std::string&, uint64_t) {}};
  });
  caf::anon_send_exit(dead, caf::exit_reason::user_shutdown);
  f.sys.run();
  f.sys.register_running("llm/router", dead);
  f.start(2);
  REQUIRE(f.sink->events.size() == 2);
  CHECK(f.sink->events.back().starts_with("2 reply 529 "));
  CHECK(f.sink->events.back().find("went down") != std::string::npos);
}

TEST_CASE("exchange actor: a target that does not exist is troupe's 404 on troupe's routes") {
  fixture f;
  f.start(1, family_exchange{"agents/live/x", false, "no agent 'x'"});
  REQUIRE(f.sink->events.size() == 1);
  CHECK(f.sink->events.front().starts_with("1 reply 404 "));
  CHECK(f.sink->events.front().find(R"({"error":{"code":"not_found","message":"no agent 'x'"}})") !=
        std::string::npos);
}

TEST_CASE("exchange actor: it ends with its connection, which answers an exchange left open") {
  fixture f;
  f.sys.register_running("llm/router", f.sys.self());
  caf::scoped_actor watcher{f.sys.system()};
  caf::actor_addr seen;
  {
    // The connection lets go of its actor with an exchange open: the sink
    // (a connection normally already gone) is told, and a monitor hears it.
    exchange_actor second{f.sys.system(), f.strand.get_executor(), f.sink};
    watcher->monitor(second.handle());
    seen = second.handle().address();
    second.start(*f.sys.ctx(), family_exchange{}, a_request(), 7);
    f.settle();
    REQUIRE(f.sys.answer_next(taken()));
  }
  f.settle();
  bool down = false;
  watcher->receive([&](caf::down_msg& d) { down = d.source == seen; },
                   caf::after(std::chrono::seconds(0)) >> [] {});
  CHECK(down);
  CHECK(f.sink->events == std::vector<std::string>{"7 abandoned"});
}

namespace {

/// A family's actor that takes requests (acknowledges them) and answers
/// nothing, until it is ended.
caf::actor taker(caf::actor_system& system) {
  return system.spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](std::string& type, std::string&, uint64_t) -> caf::message {
      return caf::make_message(type + ".reply", encode(empty_body{}), uint64_t{0});
    }};
  });
}

}  // namespace

TEST_CASE("exchange actor: a family that ends after taking the request leaves no client waiting") {
  fixture f;
  auto family = taker(f.sys.system());
  f.sys.register_running("agents/live/a1", family);
  f.start(1, family_exchange{"agents/live/a1", false, ""});
  caf::anon_send_exit(family, caf::exit_reason::user_shutdown);
  f.settle();
  REQUIRE(f.sink->events.size() == 1);
  CHECK(f.sink->events.front().starts_with("1 reply 503 "));
  CHECK(f.sink->events.front().find("went down") != std::string::npos);

  // A stream begun ends with an error event instead (the connection's abandon).
  auto second = taker(f.sys.system());
  f.sys.register_running("agents/live/a2", second);
  f.start(2, family_exchange{"agents/live/a2", false, ""});
  f.answer(2, http_msg::head_type, http_msg::head{200, {{"content-type", "text/event-stream"}}});
  caf::anon_send_exit(second, caf::exit_reason::user_shutdown);
  f.settle();
  CHECK(f.sink->events.back() == "2 abandoned");
  CHECK(f.sink->events.size() == 3);
}

namespace {

/// A connection whose stream() throws (say, out of memory).
class throwing_sink : public recording_sink {
 public:
  void stream(uint64_t, body_slice) override { throw std::runtime_error("boom"); }
};

}  // namespace

TEST_CASE("exchange actor: an exception in a turn ends it, and its open exchange is answered") {
  deterministic_system sys;
  boost::asio::io_context strand;
  auto sink = std::make_shared<throwing_sink>();
  exchange_actor actor{sys.system(), strand.get_executor(), sink};
  sys.register_running("llm/router", sys.self());
  actor.start(*sys.ctx(), family_exchange{}, a_request(), 1);
  auto settle = [&] {
    while (sys.run() + strand.poll() > 0) {
      strand.restart();
    }
    strand.restart();
  };
  settle();
  REQUIRE(sys.answer_next(taken()));
  settle();
  auto chunk = make_envelope(http_msg::chunk_type, http_msg::chunk{"x"});
  chunk.correlation_id = 1;
  sys.send(actor.handle(), chunk);
  settle();
  CHECK(sink->events == std::vector<std::string>{"1 abandoned"});
  CHECK_FALSE(actor.usable());
}
