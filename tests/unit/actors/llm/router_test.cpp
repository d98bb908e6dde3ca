// The LLM router alone, on CAF's deterministic test coordinator, with the
// test's actor as both the requester and the provider: what the router
// hands a provider (llm.call, sent as the requester), how it walks the
// chain on what comes back (llm.done), and what a requester hears when the
// client leaves or the provider goes down. (Real upstreams, streams and
// the whole node are in tests/integration/llm_test.cpp.)

#include "actors/llm/router.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "actors/llm/messages.hpp"
#include "runtime/node/http_exchange.hpp"
#include "tests/support/deterministic.hpp"

using namespace troupe;
using namespace troupe::llm;
using troupe::test::deterministic_system;
using json = nlohmann::json;

namespace {

node_config chain_config() {
  node_config cfg;
  cfg.llm.fallback_models = {"claude-backup"};
  return cfg;
}

struct router_fixture {
  router_fixture() : sys(chain_config()) {
    router = router_child(sys.ctx(), nullptr).start(sys.system(), "llm/router");
    sys.run();
  }
  ~router_fixture() {
    caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
    sys.run();
  }

  /// Registers `who` as the running `llm/anthropic`.
  void provider_is(const caf::actor& who) { sys.register_running("llm/anthropic", who); }

  /// A /v1/messages request from the test's actor (cache bypassed: no shard
  /// runs here); the router's acknowledgement is taken off the mailbox.
  void ask(const std::string& text) {
    const json body{{"model", "claude-test"},
                    {"max_tokens", 64},
                    {"messages", {{{"role", "user"}, {"content", text}}}}};
    http_msg::request req{"POST",
                          "/v1/messages",
                          {{"anthropic-version", "2023-06-01"}, {"x-troupe-cache", "bypass"}},
                          body.dump(),
                          "test-client"};
    auto ack = sys.call(router, make_envelope(http_msg::request_type, req));
    CHECK(ack.type == std::string(http_msg::request_type) + ".reply");
  }

  /// The next message for the test's actor, which must be of `type`.
  template <class T>
  T next(const char* type) {
    auto mail = sys.take_mail();
    REQUIRE(mail);
    REQUIRE(mail->first.type == type);
    auto body = decode<T>(mail->first.body);
    REQUIRE(body);
    return std::move(*body);
  }

  void answer(msg::call_result done) { sys.send(router, make_envelope(msg::done_type, done)); }

  deterministic_system sys;
  caf::actor router;
};

std::string header(const std::vector<http_msg::header>& headers, const std::string& name) {
  for (const auto& h : headers) {
    if (h.name == name) {
      return h.value;
    }
  }
  return {};
}

msg::call_result ok_answer(uint64_t id, const std::string& model) {
  msg::call_result done;
  done.id = id;
  done.outcome = static_cast<uint8_t>(msg::outcome::ok);
  done.last.status = 200;
  done.last.json_ok = true;
  done.last.usage = {12, 3, 0, 0};
  done.last.body = json{{"type", "message"},
                        {"model", model},
                        {"content", {{{"type", "text"}, {"text", "hi"}}}},
                        {"usage", {{"input_tokens", 12}, {"output_tokens", 3}}}}
                       .dump();
  return done;
}

}  // namespace

TEST_CASE("llm router: a step that fails passes the request to the next model, by message") {
  router_fixture f;
  f.provider_is(f.sys.self());
  f.ask("hello");
  auto first = f.next<msg::call>(msg::call_type);
  CHECK(first.model == "claude-test");
  CHECK(first.body_model == "claude-test");
  CHECK(first.path == "/v1/messages");
  CHECK(first.version == "2023-06-01");
  CHECK(first.cache_label == "bypass");
  CHECK(json::parse(first.body)["messages"][0]["content"] == "hello");

  msg::call_result failed;
  failed.id = first.id;
  failed.outcome = static_cast<uint8_t>(msg::outcome::unavailable);
  failed.reason = "anthropic: overloaded (529)";
  f.answer(failed);
  auto second = f.next<msg::call>(msg::call_type);
  CHECK(second.id == first.id);
  CHECK(second.model == "claude-backup");
  CHECK(second.body_model == "claude-test");

  // Not answered on the upstream's thread: the router answers itself.
  f.answer(ok_answer(second.id, "claude-backup"));
  auto reply = f.next<http_msg::reply>(http_msg::reply_type);
  CHECK(reply.status == 200);
  CHECK(header(reply.headers, "x-troupe-upstream") == "anthropic/claude-backup");
  CHECK(header(reply.headers, "x-troupe-cache") == "bypass");
  CHECK(json::parse(reply.bytes)["content"][0]["text"] == "hi");
  CHECK_FALSE(f.sys.has_mail());
  // A late or repeated result for a finished request changes nothing.
  f.answer(ok_answer(second.id, "claude-backup"));
  CHECK_FALSE(f.sys.has_mail());
}

TEST_CASE("llm router: an answer the upstream sent already is not sent twice, a refusal passes") {
  router_fixture f;
  f.provider_is(f.sys.self());
  f.ask("answered upstream");
  auto call = f.next<msg::call>(msg::call_type);
  auto done = ok_answer(call.id, "claude-test");
  done.last.answered = true;
  f.answer(done);
  CHECK_FALSE(f.sys.has_mail());

  f.ask("refused");
  call = f.next<msg::call>(msg::call_type);
  msg::call_result refused;
  refused.id = call.id;
  refused.outcome = static_cast<uint8_t>(msg::outcome::refused);
  refused.last.status = 400;
  refused.last.headers = {{"request-id", "req_9"}};
  refused.last.body = R"({"type":"error","error":{"type":"invalid_request_error"}})";
  f.answer(refused);
  auto reply = f.next<http_msg::reply>(http_msg::reply_type);
  CHECK(reply.status == 400);
  CHECK(header(reply.headers, "request-id") == "req_9");
  CHECK(reply.bytes == refused.last.body);
}

TEST_CASE("llm router: a client that leaves cancels its call at the provider") {
  router_fixture f;
  f.provider_is(f.sys.self());
  f.ask("never mind");
  auto call = f.next<msg::call>(msg::call_type);
  f.sys.send(f.router, make_envelope(http_msg::gone_type, empty_body{}));
  auto cancel = f.next<msg::cancel>(msg::cancel_type);
  CHECK(cancel.id == call.id);
  // The call ends as the provider saw it; nobody is answered but the
  // requester is told the exchange is over.
  msg::call_result gone;
  gone.id = call.id;
  gone.reason = "anthropic: the client went away";
  f.answer(gone);
  auto mail = f.sys.take_mail();
  REQUIRE(mail);
  CHECK(mail->first.type == http_msg::dropped_type);
}

TEST_CASE("llm router: a provider that goes down drops the calls it ran") {
  router_fixture f;
  auto provider = f.sys.system().spawn([](caf::event_based_actor*) -> caf::behavior {
    return {[](const std::string&, const std::string&, uint64_t) {}};
  });
  f.provider_is(provider);
  f.ask("lost");
  CHECK_FALSE(f.sys.has_mail());
  caf::anon_send_exit(provider, caf::exit_reason::kill);
  f.sys.run();
  auto mail = f.sys.take_mail();
  REQUIRE(mail);
  CHECK(mail->first.type == http_msg::dropped_type);
  CHECK_FALSE(f.sys.has_mail());
}

TEST_CASE("llm router: a body it cannot read is refused in Anthropic's shape, by message") {
  router_fixture f;
  f.provider_is(f.sys.self());
  http_msg::request req{"POST", "/v1/messages", {}, "{not json", "test-client"};
  CHECK_FALSE(f.sys.call(f.router, make_envelope(http_msg::request_type, req)).is_error());
  auto reply = f.next<http_msg::reply>(http_msg::reply_type);
  CHECK(reply.status == 400);
  CHECK(json::parse(reply.bytes)["error"]["type"] == "invalid_request_error");
}
