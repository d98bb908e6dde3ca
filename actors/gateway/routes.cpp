#include "actors/gateway/routes.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include <nlohmann/json.hpp>

#include "actors/agents/messages.hpp"
#include "actors/cache/client.hpp"
#include "actors/cache/messages.hpp"
#include "actors/llm/messages.hpp"
#include "actors/pty/messages.hpp"
#include "actors/system/messages.hpp"
#include "runtime/error.hpp"
#include "runtime/net/percent.hpp"
#include "runtime/node/error_answer.hpp"
#include "runtime/node/json_body.hpp"
#include "runtime/node/node_context.hpp"
#include "runtime/protocol/codec.hpp"

namespace troupe {

namespace {

using json = nlohmann::json;

/// Deepest JSON nesting accepted: the msgpack writer recurses, so a hostile
/// body of 100k '[' must be refused before it is converted.
constexpr int json_depth_max = 64;

constexpr std::string_view v1_prefix = "/v1/";
constexpr std::string_view actors_prefix = "/v1/actors/";
constexpr std::string_view cache_prefix = "/v1/cache/";

/// Serializes with invalid UTF-8 replaced: error messages may quote bytes of
/// the caller's request, and a plain dump() would throw on them.
std::string dump(const json& doc) {
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

http_reply json_reply(int status, const json& body) {
  return http_reply{status, "application/json", dump(body), {}};
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool valid_actor_path(std::string_view path) {
  if (path.empty() || path.front() == '/' || path.back() == '/') {
    return false;
  }
  for (char c : path) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.' || c == '/';
    if (!ok) {
      return false;
    }
  }
  return path.find("//") == std::string_view::npos;
}

/// "no actor at 'sys/echo'", with the nearest actor above it when there is
/// one: a common slip is writing the message type into the path.
std::string nearest_ancestor(const actor_registry& registry, std::string_view path) {
  while (true) {
    auto slash = path.rfind('/');
    if (slash == std::string_view::npos) {
      return {};
    }
    path = path.substr(0, slash);
    if (registry.find(path)) {
      return std::string(path);
    }
  }
}

json tree_json(const std::vector<actor_info>& all, const actor_info& node) {
  json children = json::array();
  for (const auto& child : all) {
    if (child.parent == node.path && !child.path.empty()) {
      children.push_back(tree_json(all, child));
    }
  }
  return json{
      {"path", node.path},
      {"name", node.name},
      {"kind", to_string(node.kind)},
      {"state", to_string(node.state)},
      {"restarts", node.restarts},
      {"stashed", node.stashed},
      {"last_failure", node.last_failure.empty() ? json(nullptr) : json(node.last_failure)},
      {"children", std::move(children)},
  };
}

expected<json> parse_json_body(std::string_view body) {
  return troupe::parse_json_body(body, json_depth_max);
}

/// Parses a msgpack request body, bounded by the codec's limits first.
expected<json> parse_msgpack_body(std::string_view body, uint64_t bytes_max) {
  msgpack::zone zone(512);
  auto checked = detail::parse(
      body, zone,
      decode_limits{
          .body_bytes_max = bytes_max, .depth_max = json_depth_max, .elements_max = 65536});
  if (!checked) {
    return std::move(checked).err();
  }
  try {
    return json::from_msgpack(body.begin(), body.end());
  } catch (const json::exception& e) {
    return make_error(errc::bad_body, std::string("body is not valid msgpack: ") + e.what());
  }
}

}  // namespace

http_reply error_reply(errc code, std::string_view message) {
  auto answer = troupe_error(code, message);
  http_reply reply{answer.status, "application/json", std::move(answer.body), {}};
  if (reply.status == 503) {
    // Restarting, a breaker open, a drain: each passes within about a second
    // or is told again; a client that honours the hint does not hammer.
    reply.headers.emplace_back("Retry-After", "1");
  }
  return reply;
}

namespace {

http_reply error_reply_of(const error& err) {
  return error_reply(err.code, err.message);
}

http_reply cache_get_reply(const envelope& reply) {
  auto body = decode<cache::get_reply>(reply.body);
  if (!body) {
    return error_reply(errc::internal, "unreadable cache reply: " + body.err().message);
  }
  if (!body->found) {
    auto r = error_reply(errc::not_found, "no entry for that key (" + body->miss + ")");
    r.headers.emplace_back("X-Troupe-Cache", "miss-" + body->miss);
    return r;
  }
  http_reply r{200, "application/octet-stream", std::move(body->value), {}};
  r.headers.emplace_back("X-Troupe-Cache", "hit-" + body->tier);
  return r;
}

}  // namespace

routed router::route_cache(const http_request_view& req, std::string_view path) const {
  if (path == "/v1/cache") {
    return req.method == "GET" ? cache_stats()
                               : error_reply(errc::method_not_allowed, "use GET /v1/cache");
  }
  if (path == "/v1/cache/invalidate" && req.method == "POST") {
    return cache_invalidate(req);
  }
  auto key = percent_decode(path.substr(cache_prefix.size()));
  if (!key) {
    return error_reply(errc::bad_request, "the key in the path has a malformed %-escape");
  }
  if (key->empty()) {
    return error_reply(errc::bad_request, "the key is empty: use /v1/cache/{key}");
  }
  // A hot entry without dependencies is served here, on the HTTP thread,
  // from what its shard published.
  if (req.method == "GET") {
    if (auto value = cache().hot_get(*key)) {
      http_reply r{200, "application/octet-stream", std::move(*value), {}};
      r.headers.emplace_back("X-Troupe-Cache", "hit-hot");
      return r;
    }
  }
  const auto shard = cache().shard_for(*key);
  const auto timeout = std::chrono::milliseconds{ctx_->config.gateway.request_timeout_ms};
  if (req.method == "GET") {
    return actor_call{shard,   make_envelope(cache::get_type, cache::get_request{*key}),
                      timeout, reply_shape::cache_get,
                      {},      {}};
  }
  if (req.method == "DELETE") {
    return actor_call{shard,   make_envelope(cache::del_type, cache::del_request{*key}),
                      timeout, reply_shape::body_json,
                      {},      {}};
  }
  if (req.method != "PUT") {
    return error_reply(errc::method_not_allowed, "use GET, PUT or DELETE /v1/cache/{key}");
  }
  cache::put_request put{*key, std::string(req.body), 0, query_values(req.target, "dep"),
                         query_values(req.target, "dep_key")};
  if (auto ttl = query_values(req.target, "ttl"); !ttl.empty()) {
    auto [end, ec] = std::from_chars(ttl[0].data(), ttl[0].data() + ttl[0].size(), put.ttl_s);
    if (ec != std::errc{} || end != ttl[0].data() + ttl[0].size() || put.ttl_s == 0 ||
        put.ttl_s > cache::ttl_s_max) {
      return error_reply(errc::bad_request, "ttl must be a number of seconds from 1 to " +
                                                std::to_string(cache::ttl_s_max));
    }
  }
  return actor_call{shard, make_envelope(cache::put_type, put), timeout, reply_shape::body_json, {},
                    {}};
}

routed router::route_sessions(const http_request_view& req, std::string_view path) const {
  const auto timeout = std::chrono::milliseconds{ctx_->config.gateway.request_timeout_ms};
  auto call = [&](const char* type, const auto& body, reply_shape shape) -> routed {
    return actor_call{"sessions/manager", make_envelope(type, body), timeout, shape, {}, {}};
  };
  if (path == "/v1/sessions" || path == "/v1/sessions/") {
    if (req.method == "GET") {
      return call(pty::list_type, empty_body{}, reply_shape::body_json);
    }
    if (req.method != "POST") {
      return error_reply(errc::method_not_allowed, "use GET or POST /v1/sessions");
    }
    auto spec = parse_json_body(req.body.empty() ? std::string_view("{}") : req.body);
    if (!spec) {
      return error_reply_of(spec.err());
    }
    if (!spec->is_object()) {
      return error_reply(errc::bad_request, "the body must be a JSON object");
    }
    const auto bytes = json::to_msgpack(*spec);
    return actor_call{"sessions/manager",
                      envelope{pty::create_type, std::string(bytes.begin(), bytes.end()), 0},
                      timeout,
                      reply_shape::body_json,
                      {},
                      {}};
  }
  auto rest = path.substr(std::string_view("/v1/sessions/").size());
  const auto slash = rest.find('/');
  const std::string id(rest.substr(0, slash));
  const auto what = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  if (id.empty()) {
    return error_reply(errc::not_found, "no route for '" + std::string(path) + "'");
  }
  if (what.empty() && req.method == "GET") {
    return call(pty::get_type, pty::session_id{id}, reply_shape::body_json);
  }
  if (what.empty() && req.method == "DELETE") {
    return call(pty::end_type, pty::session_id{id}, reply_shape::body_json);
  }
  if (what == "/scrollback" && req.method == "GET") {
    return call(pty::scrollback_type, pty::session_id{id}, reply_shape::raw_document);
  }
  if (what == "/cast" && req.method == "GET") {
    return call(pty::cast_type, pty::session_id{id}, reply_shape::raw_document);
  }
  if (what == "/attach" && req.method == "GET") {
    const auto readonly = query_values(req.target, "readonly");
    return session_attach{id, !readonly.empty() && readonly.front() == "1"};
  }
  return error_reply(errc::not_found,
                     "no route for " + std::string(req.method) + " " + std::string(path));
}

routed router::route_personas(const http_request_view& req, std::string_view path) const {
  const auto timeout = std::chrono::milliseconds{ctx_->config.gateway.request_timeout_ms};
  auto call = [&](const char* type, const auto& body) -> routed {
    return actor_call{
        agents::personas_path, make_envelope(type, body), timeout, reply_shape::body_json, {}, {}};
  };
  if (const auto agent = query_values(req.target, "agent"); !agent.empty()) {
    if (path != "/v1/personas" && path != "/v1/personas/") {
      return error_reply(errc::bad_request, "?agent= goes with GET /v1/personas only");
    }
    if (req.method != "GET") {
      return error_reply(errc::method_not_allowed, "use GET /v1/personas");
    }
    return actor_call{agents::manager_path,
                      make_envelope(agents::agent_personas_type, agents::agent_name{agent.front()}),
                      timeout,
                      reply_shape::body_json,
                      {},
                      {}};
  }
  const auto workspaces = query_values(req.target, "workspace");
  const auto workspace = workspaces.empty() ? std::string() : workspaces.front();
  if (path == "/v1/personas" || path == "/v1/personas/") {
    if (req.method != "GET") {
      return error_reply(errc::method_not_allowed, "use GET /v1/personas");
    }
    return call(agents::persona_list_type, agents::persona_scope{workspace});
  }
  const auto name = path.substr(std::string_view("/v1/personas/").size());
  if (name == "match") {
    if (req.method != "POST") {
      return error_reply(errc::method_not_allowed, "use POST /v1/personas/match");
    }
    auto body = parse_json_body(req.body);
    if (!body) {
      return error_reply_of(body.err());
    }
    const auto& doc = *body;
    const bool prompt_ok = doc.is_object() && doc.contains("prompt") && doc["prompt"].is_string();
    const bool workspace_ok =
        doc.is_object() && (!doc.contains("workspace") || doc["workspace"].is_string());
    if (!prompt_ok || !workspace_ok) {
      return error_reply(errc::bad_request,
                         "the body must be {\"prompt\": string, \"workspace\": string (optional)}");
    }
    return call(
        agents::persona_match_type,
        agents::match_request{doc["prompt"].get<std::string>(), doc.value("workspace", workspace)});
  }
  if (name.empty() || name.find('/') != std::string_view::npos) {
    return error_reply(errc::not_found, "no route for '" + std::string(path) + "'");
  }
  if (req.method != "GET") {
    return error_reply(errc::method_not_allowed, "use GET /v1/personas/{name}");
  }
  return call(agents::persona_get_type, agents::persona_name{std::string(name), workspace});
}

routed router::route_agents(const http_request_view& req, std::string_view path) const {
  const auto timeout = std::chrono::milliseconds{ctx_->config.gateway.request_timeout_ms};
  auto call = [&](std::string to, envelope msg) -> routed {
    return actor_call{std::move(to), std::move(msg), timeout, reply_shape::body_json, {}, {}};
  };
  if (path == "/v1/agents" || path == "/v1/agents/") {
    if (req.method == "GET") {
      return call(agents::manager_path, make_envelope(agents::agent_list_type, empty_body{}));
    }
    if (req.method != "POST") {
      return error_reply(errc::method_not_allowed, "use GET or POST /v1/agents");
    }
    auto spec = parse_json_body(req.body);
    if (!spec) {
      return error_reply_of(spec.err());
    }
    if (!spec->is_object()) {
      return error_reply(errc::bad_request, "the body must be a JSON object");
    }
    const auto bytes = json::to_msgpack(*spec);
    return call(agents::manager_path,
                envelope{agents::agent_create_type, std::string(bytes.begin(), bytes.end()), 0});
  }
  auto rest = path.substr(std::string_view("/v1/agents/").size());
  const auto slash = rest.find('/');
  const std::string name(rest.substr(0, slash));
  const auto what = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  if (name.empty()) {
    return error_reply(errc::not_found, "no route for '" + std::string(path) + "'");
  }
  if (what.empty() && req.method == "GET") {
    return call(agents::manager_path,
                make_envelope(agents::agent_get_type, agents::agent_name{name}));
  }
  if (what.empty() && req.method == "DELETE") {
    return call(agents::manager_path,
                make_envelope(agents::agent_delete_type, agents::agent_name{name}));
  }
  if (what == "/prompt" && req.method == "POST") {
    if (draining.load()) {
      return error_reply(errc::shutting_down, "the troupe node is shutting down");
    }
    return family_exchange{agents::live_prefix + name, false, "no agent '" + name + "'"};
  }
  if (what == "/approvals" && req.method == "GET") {
    return call(agents::live_prefix + name,
                make_envelope(agents::agent_approvals_type, empty_body{}));
  }
  if (what.starts_with("/approvals/") && req.method == "POST") {
    auto id = percent_decode(what.substr(std::string_view("/approvals/").size()));
    if (!id) {
      return error_reply(errc::bad_request, "the id in the path has a malformed %-escape");
    }
    auto body = parse_json_body(req.body);
    if (!body) {
      return error_reply_of(body.err());
    }
    const auto& doc = *body;
    const auto decision = doc.is_object() && doc.contains("decision") && doc["decision"].is_string()
                              ? doc["decision"].get<std::string>()
                              : std::string();
    if ((decision != "approve" && decision != "deny") ||
        (doc.contains("reason") && !doc["reason"].is_string())) {
      return error_reply(errc::bad_request,
                         "the body must be {\"decision\": \"approve\" | \"deny\", "
                         "\"reason\": string (optional)}");
    }
    return call(agents::live_prefix + name,
                make_envelope(agents::agent_decide_type,
                              agents::decide_request{*id, decision == "approve",
                                                     doc.value("reason", std::string())}));
  }
  if (what == "/stop" && req.method == "POST") {
    return call(agents::live_prefix + name, make_envelope(agents::agent_stop_type, empty_body{}));
  }
  if (what == "/transcript" && req.method == "GET") {
    agents::transcript_query q{name, 0, 0};
    for (auto [field, into] : {std::pair{"after", &q.after}, std::pair{"limit", &q.limit}}) {
      const auto values = query_values(req.target, field);
      if (values.empty()) {
        continue;
      }
      auto [end, ec] =
          std::from_chars(values[0].data(), values[0].data() + values[0].size(), *into);
      if (ec != std::errc{} || end != values[0].data() + values[0].size()) {
        return error_reply(
            errc::bad_request,
            std::string(field) + " must be a whole number (got '" + values[0] + "')");
      }
    }
    return call(agents::manager_path, make_envelope(agents::agent_transcript_type, q));
  }
  return error_reply(errc::not_found,
                     "no route for " + std::string(req.method) + " " + std::string(path));
}

routed router::cache_invalidate(const http_request_view& req) const {
  auto parsed = parse_json_body(req.body);
  if (!parsed) {
    return error_reply_of(parsed.err());
  }
  cache::invalidate_request inv;
  const auto& doc = *parsed;
  auto strings = [&doc](const char* field, std::vector<std::string>& out) {
    if (!doc.contains(field)) {
      return true;
    }
    if (!doc[field].is_array()) {
      return false;
    }
    for (const auto& v : doc[field]) {
      if (!v.is_string()) {
        return false;
      }
      out.push_back(v.get<std::string>());
    }
    return true;
  };
  if (!doc.is_object() || !strings("paths", inv.paths) || !strings("keys", inv.keys) ||
      std::any_of(inv.paths.begin(), inv.paths.end(), [](const auto& p) { return p.empty(); })) {
    return error_reply(
        errc::bad_request,
        "the body must be {\"paths\": [non-empty string...]} and/or {\"keys\": [string...]}");
  }
  actor_call call{"",
                  make_envelope(cache::invalidate_type, inv),
                  std::chrono::milliseconds{ctx_->config.gateway.request_timeout_ms},
                  reply_shape::body_json,
                  {},
                  {}};
  // Every shard acts on the keys it owns: the total is the sum, and any
  // shard's error is the answer.
  call.fanout = cache().shards();
  call.merge = &cache::client::add_invalidations;
  return call;
}

routed router::cache_stats() const {
  actor_call call{"",
                  make_envelope(cache::stats_type, empty_body{}),
                  std::chrono::milliseconds{ctx_->config.gateway.request_timeout_ms},
                  reply_shape::body_json,
                  cache().shards(),
                  {}};
  // The node's client outlives every connection (it is the context's).
  call.merge = [client = ctx_->cache ? ctx_->cache : routing_only_](
                   const std::vector<envelope>& replies) { return client->add_stats(replies); };
  return call;
}

const cache::client& router::cache() const {
  return ctx_->cache ? *ctx_->cache : *routing_only_;
}

router::router(std::shared_ptr<node_context> ctx, std::string token)
    : ctx_(std::move(ctx)),
      token_(std::move(token)),
      routing_only_(std::make_shared<const cache::client>(ctx_->config)) {}

routed router::route(const http_request_view& req) const {
  auto path = req.target.substr(0, req.target.find('?'));
  if (path == "/healthz") {
    return json_reply(200, json{{"status", "ok"}});
  }
  if (path == "/readyz") {
    return readyz();
  }
  if (path == "/metrics") {
    return http_reply{200, "text/plain; version=0.0.4; charset=utf-8", ctx_->metrics.render(), {}};
  }
  if (path.substr(0, v1_prefix.size()) != v1_prefix) {
    return error_reply(errc::not_found, "no route for '" + std::string(path) + "'");
  }
  const bool anthropic = is_anthropic_route(path);
  if (!authorized(req)) {
    if (anthropic) {
      // Anthropic clients parse the API's own error shape.
      return anthropic_error_reply(
          errc::unauthorized,
          "invalid x-api-key: use the troupe node's token (see <data_dir>/token)");
    }
    return error_reply(errc::unauthorized,
                       "this route needs 'Authorization: Bearer <token>' with the node's token "
                       "(see <data_dir>/token)");
  }
  if (anthropic) {
    if (draining.load()) {
      return anthropic_error_reply(errc::shutting_down, "the troupe node is shutting down");
    }
    return family_exchange{};
  }
  if (path == "/v1/usage") {
    // The LLM family's ledger, but troupe's own route: troupe's error shape.
    if (req.method != "GET") {
      return error_reply(errc::method_not_allowed, "use GET /v1/usage");
    }
    if (draining.load()) {
      return error_reply(errc::shutting_down, "the troupe node is shutting down");
    }
    return family_exchange{};
  }
  return route_v1(req);
}

bool is_anthropic_route(std::string_view path) {
  return path == "/v1/messages" || path == "/v1/messages/count_tokens";
}

bool router::authorized(const http_request_view& req) const {
  constexpr std::string_view bearer = "Bearer ";
  if (req.authorization.substr(0, bearer.size()) == bearer &&
      constant_time_equal(req.authorization.substr(bearer.size()), token_)) {
    return true;
  }
  return !req.api_key.empty() && constant_time_equal(req.api_key, token_);
}

routed router::route_v1(const http_request_view& req) const {
  auto path = req.target.substr(0, req.target.find('?'));
  if (path == "/v1/node") {
    return req.method == "GET" ? node_info()
                               : error_reply(errc::method_not_allowed, "use GET /v1/node");
  }
  if (path == "/v1/cache" || path.substr(0, cache_prefix.size()) == cache_prefix) {
    return route_cache(req, path);
  }
  if (path == "/v1/sessions" || path.starts_with("/v1/sessions/")) {
    return route_sessions(req, path);
  }
  if (path == "/v1/personas" || path.starts_with("/v1/personas/")) {
    return route_personas(req, path);
  }
  if (path == "/v1/agents" || path.starts_with("/v1/agents/")) {
    return route_agents(req, path);
  }
  if (path == "/v1/actors") {
    return req.method == "GET" ? actor_tree()
                               : error_reply(errc::method_not_allowed, "use GET /v1/actors");
  }
  if (path.substr(0, actors_prefix.size()) == actors_prefix) {
    return route_actor(req, path.substr(actors_prefix.size()));
  }
  return error_reply(errc::not_found, "no route for '" + std::string(path) + "'");
}

routed router::route_actor(const http_request_view& req, std::string_view rest) const {
  constexpr std::string_view messages = "/messages";
  constexpr std::string_view kill = "/kill";
  const bool is_messages = ends_with(rest, messages);
  const bool is_kill = ends_with(rest, kill);
  if (!is_messages && !is_kill) {
    return error_reply(errc::not_found,
                       "use POST /v1/actors/{path}/messages or POST /v1/actors/{path}/kill");
  }
  if (req.method != "POST") {
    return error_reply(errc::method_not_allowed, "use POST");
  }
  auto path = rest.substr(0, rest.size() - (is_messages ? messages.size() : kill.size()));
  if (!valid_actor_path(path)) {
    return error_reply(errc::bad_request,
                       "'" + std::string(path) +
                           "' is not an actor path (segments of [A-Za-z0-9_.-] joined by '/')");
  }
  if (!ctx_->registry.find(path)) {
    if (ctx_->registry.coming_back(path)) {
      return error_reply(errc::restarting,
                         "actor '" + std::string(path) + "' is restarting with its supervisor");
    }
    return error_reply(errc::unknown_actor, unknown_actor_message(path));
  }
  if (is_kill) {
    if (!ctx_->config.chaos.enabled) {
      return error_reply(errc::forbidden, "fault injection is off (set chaos.enabled = true)");
    }
    return actor_kill{std::string(path)};
  }
  if (draining.load(std::memory_order_relaxed)) {
    return error_reply(errc::shutting_down, "the node is shutting down");
  }
  return parse_actor_call(req, std::string(path));
}

std::string router::unknown_actor_message(std::string_view path) const {
  auto message = "no actor at '" + std::string(path) + "' (GET /v1/actors lists them)";
  if (auto above = nearest_ancestor(ctx_->registry, path); !above.empty()) {
    message += "; '" + above +
               "' exists: the message type goes in the body, e.g. POST /v1/actors/" + above +
               "/messages {\"type\": \"" + above + "." +
               std::string(path.substr(above.size() + 1)) + "\"}";
  }
  return message;
}

routed router::parse_actor_call(const http_request_view& req, std::string path) const {
  constexpr std::string_view msgpack_type = "application/msgpack";
  const bool msgpack = req.content_type.substr(0, msgpack_type.size()) == msgpack_type;
  auto parsed = msgpack ? parse_msgpack_body(req.body, ctx_->config.gateway.body_bytes_max)
                        : parse_json_body(req.body);
  if (!parsed) {
    return error_reply_of(parsed.err());
  }
  const auto& doc = *parsed;
  if (!doc.is_object() || !doc.contains("type") || !doc["type"].is_string()) {
    return error_reply(errc::bad_request,
                       "the body must be an object {\"type\": \"family.verb\", \"body\": {...}}");
  }
  json body = doc.value("body", json::object());
  if (!body.is_object()) {
    return error_reply(errc::bad_request, "'body' must be an object (a msgpack map)");
  }
  auto timeout_ms = ctx_->config.gateway.request_timeout_ms;
  if (auto values = query_values(req.target, "timeout_ms"); !values.empty()) {
    const std::string& t = values.front();
    uint32_t value = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
    if (ec != std::errc{} || end != t.data() + t.size() || value == 0 ||
        value > ctx_->config.gateway.request_timeout_max_ms) {
      return error_reply(errc::bad_request,
                         "timeout_ms must be an integer from 1 to " +
                             std::to_string(ctx_->config.gateway.request_timeout_max_ms));
    }
    timeout_ms = value;
  }
  std::vector<uint8_t> bytes = json::to_msgpack(body);
  envelope msg{doc["type"].get<std::string>(), std::string(bytes.begin(), bytes.end()), 0};
  return actor_call{std::move(path),
                    std::move(msg),
                    std::chrono::milliseconds{timeout_ms},
                    msgpack ? reply_shape::envelope_msgpack : reply_shape::envelope_json,
                    {},
                    {}};
}

http_reply router::reply_for(const envelope& reply, reply_shape shape) const {
  if (reply.is_error()) {
    auto body = decode<error_body>(reply.body);
    if (!body) {
      return error_reply(errc::internal, "unreadable error reply: " + body.err().message);
    }
    // A code this build does not know is the callee's failure.
    return error_reply(errc_from_string(body->code), body->message);
  }
  if (shape == reply_shape::raw_document) {
    auto doc = decode<pty::raw_document>(
        reply.body, decode_limits{.body_bytes_max = std::max<size_t>(reply.body.size(), 1)});
    if (!doc) {
      return error_reply(errc::internal, "unreadable document reply: " + doc.err().message);
    }
    return http_reply{200, std::move(doc->content_type), std::move(doc->bytes), {}};
  }
  json body;
  try {
    body = json::from_msgpack(reply.body.begin(), reply.body.end());
  } catch (const json::exception& e) {
    return error_reply(errc::internal, "the actor replied with a body that is not msgpack: " +
                                           std::string(e.what()));
  }
  if (shape == reply_shape::cache_get) {
    return cache_get_reply(reply);
  }
  if (shape == reply_shape::body_json) {
    return json_reply(200, body);
  }
  if (shape == reply_shape::readiness) {
    const bool ready = body.value("status", "") == "ready";
    return json_reply(ready ? 200 : 503, body);
  }
  json doc{{"type", reply.type}, {"body", std::move(body)}};
  if (shape == reply_shape::envelope_msgpack) {
    auto bytes = json::to_msgpack(doc);
    return http_reply{200, "application/msgpack", std::string(bytes.begin(), bytes.end()), {}};
  }
  return json_reply(200, doc);
}

routed router::readyz() const {
  if (draining.load(std::memory_order_relaxed)) {
    return json_reply(503, json{{"status", "draining"}});
  }
  json not_running = json::array();
  auto top = ctx_->registry.children("");
  for (const auto& child : top) {
    if (child.state != actor_state::running) {
      not_running.push_back(child.path);
    }
  }
  if (!not_running.empty()) {
    return json_reply(503, json{{"status", "degraded"}, {"not_running", not_running}});
  }
  // The root registers its children one by one: a partial list whose
  // members all run is still starting.
  if (top.empty() || top.size() < ctx_->top_level_children) {
    return json_reply(503, json{{"status", "starting"}});
  }
  // Every actor runs: how the store takes writes (sys) and how each
  // upstream is doing (its provider), asked of the actors that own them.
  actor_call call{"",
                  make_envelope(sys::health_type, empty_body{}),
                  std::chrono::milliseconds{ctx_->config.gateway.request_timeout_ms},
                  reply_shape::readiness,
                  {"sys", "llm/anthropic"},
                  {}};
  if (!ctx_->config.llm.local_base_url.empty()) {
    call.fanout.push_back("llm/local");
  }
  call.merge = [paths = call.fanout](const std::vector<envelope>& replies) {
    json doc{{"status", "ready"}, {"upstreams", json::object()}};
    json problems = json::array();
    for (size_t i = 0; i < replies.size() && i < paths.size(); ++i) {
      const auto& r = replies[i];
      if (r.is_error()) {
        problems.push_back(paths[i] + ": " + read_error(r).message);
        continue;
      }
      if (paths[i] == "sys") {
        if (auto h = decode<sys::health_reply>(r.body)) {
          const auto& s = h->storage;
          doc["storage"] = {{"ok", s.ok},
                            {"failed_writes", s.failed_writes},
                            {"last_error", s.last_error},
                            {"last_error_age_s", s.last_error_age_s},
                            {"background_errors", s.background_errors},
                            {"writes_stopped", s.writes_stopped}};
          if (s.enabled && !s.ok) {
            problems.push_back("storage: " +
                               (s.writes_stopped ? std::string("writes stopped")
                                : s.background_errors != 0
                                    ? std::string("background errors")
                                    : "a write failed " + std::to_string(s.last_error_age_s) +
                                          " s ago: " + s.last_error));
          }
        }
        continue;
      }
      if (auto h = decode<llm::msg::upstream_health>(r.body)) {
        doc["upstreams"][h->provider] = {{"connections", h->connections},
                                         {"waiting", h->waiting},
                                         {"calls", h->calls},
                                         {"breakers", h->breakers}};
      }
    }
    if (!problems.empty()) {
      doc["status"] = "degraded";
      doc["problems"] = std::move(problems);
    }
    const auto bytes = json::to_msgpack(doc);
    return envelope{"readyz", std::string(bytes.begin(), bytes.end()), 0};
  };
  return call;
}

http_reply router::node_info() const {
  auto counts = ctx_->registry.counts();
  const auto uptime =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - ctx_->started_at);
  return json_reply(200, json{
                             {"name", ctx_->config.node.name},
                             {"version", troupe_version},
                             {"uptime_s", uptime.count()},
                             {"data_dir", ctx_->config.node.data_dir},
                             {"listen", ctx_->listen_address},
                             {"scheduler_threads", ctx_->config.node.scheduler_threads},
                             {"chaos", ctx_->config.chaos.enabled},
                             {"actors",
                              {{"total", counts.total},
                               {"running", counts.running},
                               {"restarting", counts.restarting},
                               {"stopped", counts.stopped}}},
                         });
}

http_reply router::actor_tree() const {
  auto all = ctx_->registry.snapshot();
  for (const auto& node : all) {
    if (node.path.empty()) {
      return json_reply(200, tree_json(all, node));
    }
  }
  return error_reply(errc::unavailable, "the supervision tree is not up yet");
}

http_reply anthropic_error_reply(errc code, std::string_view message) {
  auto answer = anthropic_error(code, message);
  return http_reply{answer.status, "application/json", std::move(answer.body), {}};
}

}  // namespace troupe
