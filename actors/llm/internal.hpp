#pragma once

// What the router and the providers share (llm family only).

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <nlohmann/json.hpp>

#include "actors/llm/anthropic.hpp"
#include "actors/llm/limiter.hpp"
#include "actors/llm/sse.hpp"
#include "actors/llm/upstream.hpp"
#include "runtime/node/http_exchange.hpp"

namespace troupe::llm {

using clock = std::chrono::steady_clock;

/// How a request may use the response cache (X-Troupe-Cache).
enum class cache_mode : uint8_t { use, bypass, refresh };

/// One place in the fallback chain.
struct chain_step {
  /// Child name of the provider actor ("anthropic", "local").
  std::string provider;
  std::string model;
};

/// One client request to /v1/messages (or count_tokens), from arrival to
/// answer. Owned by the router; providers hold it while they call.
struct exchange_state {
  exchange_state(exchange_request r, std::shared_ptr<exchange_sink> s)
      : req(std::move(r)), sink(std::move(s)), started(clock::now()) {}
  exchange_state(const exchange_state&) = delete;
  exchange_state& operator=(const exchange_state&) = delete;
  // Dropped unanswered (an actor died holding it), its sink still answers
  // (the gateway's abandon()), so no client waits forever.

  exchange_request req;
  std::shared_ptr<exchange_sink> sink;
  clock::time_point started;
  /// The parsed body; its model is the resolved one (aliases applied).
  nlohmann::json body;
  request_info info;
  /// The request bytes to forward: the client's own unless the body changed.
  std::string body_text;
  std::string key;
  bool cacheable = false;
  cache_mode mode = cache_mode::use;
  std::vector<std::string> deps;
  std::string agent;
  int priority = 1;
  /// Where the request may go, in order (worked out at its first step).
  std::vector<chain_step> chain;
  /// Index of the chain step being tried.
  size_t step = 0;
  /// Why each step tried so far failed ("provider/model: reason"), for the
  /// error when every step did.
  std::vector<std::string> failures;
  uint64_t retries = 0;
  bool queued = false;
  /// What the limiter was told to expect; settled with the real usage.
  ticket ticket_estimate;
  /// Set once the client got its answer (or its stream's head).
  std::atomic<bool> answered{false};
  /// Identical requests wait for this one's answer (set by the router when
  /// the first joins): its call goes on even if its own client leaves.
  std::atomic<bool> shared{false};
  /// Whether this request leads its key's flight in the router (router only).
  bool leads = false;

  /// Nobody waits for the answer any more: producers should stop.
  [[nodiscard]] bool abandoned() const { return sink->gone() && !shared.load(); }
};

/// How an attempt ended.
enum class outcome : uint8_t {
  /// 200: `body` (non-streamed) or a stream already sent to the client.
  ok,
  /// The upstream refused the request itself (4xx, spend limit): pass its
  /// answer on; another upstream would refuse it too.
  refused,
  /// Overloaded, down, breaker open, retries spent: try the next step.
  unavailable,
};

/// One call of the chain at one provider (with its retries).
struct attempt {
  std::shared_ptr<exchange_state> x;
  caf::actor reply_to;
  chain_step step;
  /// "/v1/messages" or "/v1/messages/count_tokens".
  std::string path;
  bool stream = false;
  int tries = 0;
  clock::time_point started;

  /// Whether the answer is kept (the response cache, identical requests
  /// waiting on it): only then is a stream captured and its content
  /// assembled. Set before the call starts.
  bool keep = true;

  // Filled while a stream runs (on an upstream thread, one at a time).
  bool committed = false;
  /// When a streamed 200's head arrived: the breaker's measure of the call.
  clock::time_point head_at{};
  std::string captured;
  bool capture_overflow = false;
  sse_parser parser;
  stream_assembler assembler;

  /// A whole 200's body, parsed once (on the upstream thread when it was
  /// answered there): `parsed` holds it, discarded when it is not JSON.
  /// Everyone after (breaker, usage, cache, stream replay) reads this.
  bool body_parsed = false;
  nlohmann::json parsed;

  /// Parses the response body if that was not done yet; whether it is JSON.
  bool parse_body() {
    if (!body_parsed) {
      parsed = nlohmann::json::parse(response.body, nullptr, false);
      body_parsed = true;
    }
    return !parsed.is_discarded();
  }

  // The end.
  outcome result = outcome::unavailable;
  upstream_response response;
  /// Why it failed, for logs and the final error.
  std::string reason;
};

struct exchange_msg {
  std::shared_ptr<exchange_state> x;
};
struct call_msg {
  std::shared_ptr<attempt> a;
};
struct upstream_done_msg {
  std::shared_ptr<attempt> a;
};
struct attempt_done_msg {
  std::shared_ptr<attempt> a;
};

/// (pause, "provider/model", ms): that upstream model said to wait; the
/// router calls it no sooner (capped by llm.retry_after_max_ms).
using pause_atom = caf::atom_constant<caf::atom("llmpause")>;

/// Header names the gateway adds to answers.
inline constexpr const char* cache_header = "x-troupe-cache";
inline constexpr const char* upstream_header = "x-troupe-upstream";

/// Upstream headers worth passing on to the client.
[[nodiscard]] http_headers passthrough_headers(const upstream_response& r);

}  // namespace troupe::llm

// Local only: they carry sinks and callbacks and never leave the node.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::llm::exchange_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::llm::call_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::llm::upstream_done_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::llm::attempt_done_msg)
