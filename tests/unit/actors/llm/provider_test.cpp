// An LLM provider alone, on CAF's deterministic test coordinator, over a
// fake upstream pool the test answers by hand: retries and their backoff,
// the breaker, a stream passed to the requester as it comes and closed
// properly when it breaks off, and a cancelled call that stops reading. The
// test's actor is the requester (the call comes from it) and the router
// (registered as llm/router). Real sockets are in
// tests/integration/llm_test.cpp.

#include "actors/llm/provider.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "actors/llm/messages.hpp"
#include "actors/llm/upstream.hpp"
#include "runtime/node/http_exchange.hpp"
#include "tests/support/deterministic.hpp"

using namespace troupe;
using namespace troupe::llm;
using troupe::test::deterministic_system;
using json = nlohmann::json;

namespace {

/// What the upstream hands on: `bytes` read into their chunk message.
bool feed(upstream_callbacks& cb, std::string_view bytes) {
  http_msg::chunk_packer packed;
  packed.append(bytes);
  return cb.on_data(packed);
}

/// Keeps every call; the test plays the upstream through their callbacks.
class fake_pool : public upstream_pool {
 public:
  struct call {
    upstream_request request;
    upstream_callbacks callbacks;
  };
  void send(upstream_request request, upstream_callbacks callbacks) override {
    calls.push_back({std::move(request), std::move(callbacks)});
  }
  [[nodiscard]] size_t connections() const override { return 0; }
  [[nodiscard]] size_t waiting() const override { return 0; }
  std::vector<call> calls;
};

node_config provider_config() {
  node_config cfg;
  cfg.llm.retries_max = 2;
  cfg.llm.retry_backoff_min_ms = 10;
  cfg.llm.retry_backoff_max_ms = 10;
  cfg.breaker.failures_max = 2;
  return cfg;
}

struct provider_fixture {
  provider_fixture() : sys(provider_config()) {
    actor_info info;
    info.path = "llm/router";
    info.name = "router";
    info.parent = "llm";
    info.state = actor_state::running;
    sys.ctx()->registry.put(info, sys.self(), caf::actor{});
    provider_spec spec;
    spec.name = "anthropic";
    spec.api_key = "sk-ant-test";
    spec.version = "2023-06-01";
    spec.pool_for_tests = [pool = pool] { return pool; };
    provider = provider_child(sys.ctx(), spec).start(sys.system(), "llm/anthropic");
    sys.run();
  }
  ~provider_fixture() {
    caf::anon_send_exit(provider, caf::exit_reason::user_shutdown);
    sys.run();
  }

  void call(uint64_t id, bool stream = false, const std::string& model = "claude-test") {
    msg::call c;
    c.id = id;
    c.model = model;
    c.body_model = "claude-test";
    c.path = "/v1/messages";
    c.body = json{{"model", "claude-test"},
                  {"max_tokens", 16},
                  {"stream", stream},
                  {"messages", {{{"role", "user"}, {"content", "hi"}}}}}
                 .dump();
    c.stream = stream;
    c.keep = true;
    c.cache_label = "miss";
    sys.send(provider, make_envelope(msg::call_type, c));
  }

  /// The upstream answers the last call it got.
  void answer(int status, std::string body = {}, http_headers headers = {}) {
    REQUIRE_FALSE(pool->calls.empty());
    upstream_response r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    r.delivered = true;
    auto done = std::move(pool->calls.back().callbacks.on_done);
    done(std::move(r));
    sys.run();
  }

  template <class T>
  T next(const char* type) {
    auto mail = sys.take_mail();
    REQUIRE(mail);
    REQUIRE(mail->first.type == type);
    auto body = decode<T>(mail->first.body, decode_limits{.body_bytes_max = 1u << 24});
    REQUIRE(body);
    return std::move(*body);
  }

  std::shared_ptr<fake_pool> pool = std::make_shared<fake_pool>();
  deterministic_system sys;
  caf::actor provider;
};

const std::string message_body =
    json{{"type", "message"},
         {"model", "claude-test"},
         {"content", {{{"type", "text"}, {"text", "hello"}}}},
         {"usage", {{"input_tokens", 7}, {"output_tokens", 2}}}}
        .dump();

std::string header(const std::vector<http_msg::header>& headers, const std::string& name) {
  for (const auto& h : headers) {
    if (h.name == name) {
      return h.value;
    }
  }
  return {};
}

}  // namespace

TEST_CASE("llm provider: a 500 is retried after its backoff, the 200 is answered at once") {
  provider_fixture f;
  f.call(1);
  REQUIRE(f.pool->calls.size() == 1);
  const auto& sent = f.pool->calls[0].request;
  CHECK(sent.path == "/v1/messages");
  CHECK(json::parse(sent.body)["model"] == "claude-test");
  f.answer(500, R"({"type":"error"})");
  CHECK(f.pool->calls.size() == 1);  // not before its backoff
  f.sys.advance(std::chrono::milliseconds(50));
  REQUIRE(f.pool->calls.size() == 2);
  f.answer(200, message_body);
  // The client's answer first (from the connection's thread), then the
  // router's report.
  auto reply = f.next<http_msg::reply>(http_msg::reply_type);
  CHECK(reply.status == 200);
  CHECK(reply.bytes == message_body);
  CHECK(header(reply.headers, "x-troupe-upstream") == "anthropic/claude-test");
  CHECK(header(reply.headers, "x-troupe-cache") == "miss");
  auto done = f.next<msg::call_result>(msg::done_type);
  CHECK(done.id == 1);
  CHECK(done.outcome == static_cast<uint8_t>(msg::outcome::ok));
  CHECK(done.retries == 1);
  CHECK(done.last.answered);
  CHECK(done.last.json_ok);
  CHECK(done.last.usage.input_tokens == 7);
  CHECK(done.last.usage.output_tokens == 2);
  CHECK_FALSE(f.sys.has_mail());
}

TEST_CASE("llm provider: a fallback model gets the same question with its own name") {
  provider_fixture f;
  f.call(2, false, "claude-backup");
  REQUIRE(f.pool->calls.size() == 1);
  CHECK(json::parse(f.pool->calls[0].request.body)["model"] == "claude-backup");
  CHECK(json::parse(f.pool->calls[0].request.body)["messages"][0]["content"] == "hi");
}

TEST_CASE("llm provider: overload fails over at once, and opens the model's breaker") {
  provider_fixture f;
  for (uint64_t id = 1; id <= 2; ++id) {
    f.call(id);
    f.answer(529, R"({"type":"error","error":{"type":"overloaded_error"}})");
    auto done = f.next<msg::call_result>(msg::done_type);
    CHECK(done.outcome == static_cast<uint8_t>(msg::outcome::unavailable));
    CHECK(done.reason.find("overloaded (529)") != std::string::npos);
  }
  // failures_max = 2: the third call is refused without reaching the pool.
  f.call(3);
  CHECK(f.pool->calls.size() == 2);
  auto done = f.next<msg::call_result>(msg::done_type);
  CHECK(done.outcome == static_cast<uint8_t>(msg::outcome::unavailable));
  CHECK(done.reason.find("circuit breaker open") != std::string::npos);
  // Another model of the same upstream still gets its chance.
  f.call(4, false, "claude-backup");
  CHECK(f.pool->calls.size() == 3);
}

TEST_CASE("llm provider: a stream goes to the requester as it comes, one cut short ends with an "
          "error event") {
  provider_fixture f;
  f.call(5, true);
  REQUIRE(f.pool->calls.size() == 1);
  auto& cb = f.pool->calls[0].callbacks;
  upstream_response head;
  head.status = 200;
  head.headers = {{"request-id", "req_1"}};
  cb.on_head(head);
  CHECK(feed(cb,
             "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
             "{\"id\":\"m\",\"model\":\"claude-test\",\"content\":[],"
             "\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"));
  f.sys.run();
  auto h = f.next<http_msg::head>(http_msg::head_type);
  CHECK(h.status == 200);
  CHECK(header(h.headers, "content-type") == "text/event-stream");
  CHECK(header(h.headers, "request-id") == "req_1");
  auto first = f.next<http_msg::chunk>(http_msg::chunk_type);
  CHECK(first.bytes.starts_with("event: message_start"));
  // The upstream goes silent and the connection gives up half-way.
  upstream_response cut;
  cut.error = "upstream timed out";
  cut.streamed = true;
  cut.delivered = true;
  auto done_fn = std::move(cb.on_done);
  done_fn(std::move(cut));
  f.sys.run();
  auto error_event = f.next<http_msg::chunk>(http_msg::chunk_type);
  CHECK(error_event.bytes.find("event: error") != std::string::npos);
  CHECK(error_event.bytes.find("upstream stream broke off") != std::string::npos);
  auto mail = f.sys.take_mail();
  REQUIRE(mail);
  CHECK(mail->first.type == http_msg::end_type);
  auto done = f.next<msg::call_result>(msg::done_type);
  CHECK(done.outcome == static_cast<uint8_t>(msg::outcome::ok));
  CHECK(done.last.committed);
  CHECK_FALSE(done.last.stream.complete);
  CHECK(done.last.usage.input_tokens == 3);
}

TEST_CASE("llm provider: a cancelled call stops reading, and is wanted again when revoked") {
  provider_fixture f;
  f.call(6, true);
  REQUIRE(f.pool->calls.size() == 1);
  auto& cb = f.pool->calls[0].callbacks;
  CHECK_FALSE(cb.abandoned());
  f.sys.send(f.provider, make_envelope(msg::cancel_type, msg::cancel{6, true}));
  CHECK(cb.abandoned());
  f.sys.send(f.provider, make_envelope(msg::cancel_type, msg::cancel{6, false}));
  CHECK_FALSE(cb.abandoned());
  f.sys.send(f.provider, make_envelope(msg::cancel_type, msg::cancel{6, true}));
  upstream_response head;
  head.status = 200;
  cb.on_head(head);
  CHECK_FALSE(feed(cb, "event: ping\ndata: {}\n\n"));  // nobody reads: stop
}
