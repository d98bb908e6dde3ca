// The HTTP API's semantics without a socket: auth, paths, bodies, limits.

#include "actors/gateway/routes.hpp"

#include <catch2/catch.hpp>

#include <random>

#include <nlohmann/json.hpp>

#include "runtime/node/node_context.hpp"

using namespace troupe;
using json = nlohmann::json;

namespace {

struct fixture {
  std::shared_ptr<node_context> ctx = std::make_shared<node_context>(node_config{});
  router routes{ctx, "secret"};

  fixture() {
    ctx->registry.put(
        actor_info{"", "root", "", actor_kind::supervisor, actor_state::running, 0, {}, 0, 0}, {},
        {});
    ctx->registry.put(
        actor_info{"sys", "sys", "", actor_kind::worker, actor_state::running, 0, {}, 0, 0}, {},
        {});
  }

  routed post(std::string target, std::string body, std::string content_type = "application/json") {
    body_ = std::move(body);
    target_ = std::move(target);
    content_type_ = std::move(content_type);
    return routes.route(
        http_request_view{"POST", target_, content_type_, "Bearer secret", "", "", body_});
  }

 private:
  std::string body_;
  std::string target_;
  std::string content_type_;
};

std::pair<int, std::string> error_of(const routed& r) {
  const auto* reply = std::get_if<http_reply>(&r);
  REQUIRE(reply != nullptr);
  auto doc = json::parse(reply->body);
  return {reply->status, doc["error"]["code"].get<std::string>()};
}

}  // namespace

TEST_CASE("a well-formed message becomes an actor call with a msgpack body") {
  fixture f;
  auto r = f.post("/v1/actors/sys/messages?timeout_ms=250",
                  R"({"type":"sys.echo","body":{"text":"x"}})");
  auto* call = std::get_if<actor_call>(&r);
  REQUIRE(call != nullptr);
  CHECK(call->path == "sys");
  CHECK(call->msg.type == "sys.echo");
  CHECK(call->timeout == std::chrono::milliseconds(250));
  CHECK(json::from_msgpack(call->msg.body) == json{{"text", "x"}});
}

TEST_CASE("requests without the token are refused before anything else") {
  fixture f;
  auto r = f.routes.route(
      http_request_view{"POST", "/v1/actors/sys/messages", "", "Bearer nope", "", "", "{}"});
  CHECK(error_of(r) == std::pair<int, std::string>{401, "unauthorized"});
}

TEST_CASE("a mistyped path names the actor that exists above it") {
  fixture f;
  auto r = f.post("/v1/actors/sys/echo/messages", R"({"type":"x"})");
  const auto& reply = std::get<http_reply>(r);
  CHECK(reply.status == 404);
  CHECK(json::parse(reply.body)["error"]["message"].get<std::string>().find(
            "'sys' exists: the message type goes in the body") != std::string::npos);
}

TEST_CASE("deeply nested JSON is refused before conversion") {
  fixture f;
  std::string deep =
      R"({"type":"sys.echo","body":{"a":)" + std::string(100, '[') + std::string(100, ']') + "}}";
  CHECK(error_of(f.post("/v1/actors/sys/messages", deep)) ==
        std::pair<int, std::string>{413, "too_large"});
}

TEST_CASE("the kill route is forbidden while chaos is off") {
  fixture f;
  CHECK(error_of(f.post("/v1/actors/sys/kill", "")) ==
        std::pair<int, std::string>{403, "forbidden"});
}

TEST_CASE("mutated JSON and msgpack request bodies are answered, never crash") {
  fixture f;
  std::mt19937_64 rng(42);
  const std::string json_seed = R"({"type":"sys.echo","body":{"text":"hi","n":[1,2,{"k":null}]}})";
  auto packed = json::to_msgpack(json::parse(json_seed));
  const std::string msgpack_seed(packed.begin(), packed.end());
  std::uniform_int_distribution<int> byte(0, 255);
  for (int i = 0; i < 20000; ++i) {
    const bool use_msgpack = i % 2 == 0;
    std::string body = use_msgpack ? msgpack_seed : json_seed;
    for (int flips = 1 + i % 3; flips > 0; --flips) {
      body[std::uniform_int_distribution<size_t>(0, body.size() - 1)(rng)] =
          static_cast<char>(byte(rng));
    }
    auto r = f.post("/v1/actors/sys/messages", body,
                    use_msgpack ? "application/msgpack" : "application/json");
    if (const auto* reply = std::get_if<http_reply>(&r)) {
      REQUIRE(reply->status >= 400);
      REQUIRE(json::parse(reply->body).contains("error"));
    } else {
      REQUIRE(std::holds_alternative<actor_call>(r));
    }
  }
}
