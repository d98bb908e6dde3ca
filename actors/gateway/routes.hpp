#pragma once

// The HTTP API's semantics, apart from any socket: authentication, routing,
// JSON/msgpack conversion, error bodies. The server feeds it parsed requests
// and carries out what it returns (a reply now, an actor call, a kill).

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/protocol/envelope.hpp"

namespace troupe {

namespace cache {
class client;
}

struct node_context;

/// What the router needs of a request.
struct http_request_view {
  std::string_view method;
  std::string_view target;
  std::string_view content_type;
  std::string_view authorization;
  std::string_view api_key;
  std::string_view accept;
  std::string_view body;
};

struct http_reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

/// How an actor's reply becomes an HTTP answer.
enum class reply_shape : uint8_t {
  /// {"type", "body"} as JSON.
  envelope_json,
  /// The same map in msgpack.
  envelope_msgpack,
  /// GET /v1/cache/{key}: the raw value, or 404 on a miss.
  cache_get,
  /// PUT and DELETE /v1/cache/{key}, /v1/sessions: the reply body as JSON.
  body_json,
  /// A document of its own ({content_type, bytes}): the bytes as they are.
  raw_document,
  /// GET /readyz: the body as JSON, 200 when its status is "ready", else 503.
  readiness,
};

/// Send `msg` to the actor at `path`, answer with its reply.
struct actor_call {
  std::string path;
  envelope msg;
  std::chrono::milliseconds timeout{0};
  reply_shape shape = reply_shape::envelope_json;
  /// When set, `msg` goes to each of these paths (not `path`) and `merge`
  /// turns their replies into one.
  std::vector<std::string> fanout;
  std::function<envelope(const std::vector<envelope>&)> merge;
};

/// Fault injection: crash the actor at `path`.
struct actor_kill {
  std::string path;
};

/// Routes a family answers itself: the connection's exchange actor sends
/// the whole request (`http.request`) to the actor at `path` (llm/router
/// for the LLM routes, agents/live/<name> for a prompt), which answers by
/// message, maybe streamed.
struct family_exchange {
  std::string path = "llm/router";
  /// Errors the edge itself answers are in Anthropic's shape (the LLM
  /// routes), else in troupe's.
  bool anthropic = true;
  /// What to answer (404) when nothing is at `path`; empty: the family is
  /// down (503).
  std::string missing;
};

/// GET /v1/sessions/{id}/attach: the connection becomes a terminal viewer.
struct session_attach {
  std::string id;
  bool readonly = false;
};

using routed = std::variant<http_reply, actor_call, actor_kill, family_exchange, session_attach>;

/// /v1/messages and /v1/messages/count_tokens: the routes that answer in the
/// Anthropic API's own error shape (/v1/usage, also the LLM family's, is
/// troupe's own route and answers in troupe's).
[[nodiscard]] bool is_anthropic_route(std::string_view path);

class router {
 public:
  router(std::shared_ptr<node_context> ctx, std::string token);

  [[nodiscard]] routed route(const http_request_view& req) const;

  /// The HTTP answer for an actor's reply envelope.
  [[nodiscard]] http_reply reply_for(const envelope& reply, reply_shape shape) const;

  /// Set while the node drains: /readyz fails, new actor calls get 503.
  std::atomic<bool> draining{false};

 private:
  [[nodiscard]] bool authorized(const http_request_view& req) const;
  [[nodiscard]] routed route_v1(const http_request_view& req) const;
  [[nodiscard]] routed route_actor(const http_request_view& req, std::string_view rest) const;
  [[nodiscard]] routed parse_actor_call(const http_request_view& req, std::string path) const;
  [[nodiscard]] std::string unknown_actor_message(std::string_view path) const;
  [[nodiscard]] routed route_cache(const http_request_view& req, std::string_view path) const;
  [[nodiscard]] routed route_sessions(const http_request_view& req, std::string_view path) const;
  [[nodiscard]] routed route_personas(const http_request_view& req, std::string_view path) const;
  [[nodiscard]] routed route_agents(const http_request_view& req, std::string_view path) const;
  [[nodiscard]] routed cache_stats() const;
  [[nodiscard]] routed cache_invalidate(const http_request_view& req) const;
  /// The cache family's client: the node's, or one that only routes.
  [[nodiscard]] const cache::client& cache() const;
  [[nodiscard]] routed readyz() const;
  [[nodiscard]] http_reply node_info() const;
  [[nodiscard]] http_reply actor_tree() const;

  std::shared_ptr<node_context> ctx_;
  std::string token_;
  /// Routes cache requests when the node has no cache family (tests).
  std::shared_ptr<const cache::client> routing_only_;
};

/// troupe's error shape for `code`, with its status (runtime/node/error_answer).
[[nodiscard]] http_reply error_reply(errc code, std::string_view message);

/// The Anthropic API's error shape for `code`, for what the gateway refuses
/// on the Anthropic routes before the LLM family sees the request.
[[nodiscard]] http_reply anthropic_error_reply(errc code, std::string_view message);

}  // namespace troupe
