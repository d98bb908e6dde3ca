#pragma once

// What the router and the providers share (llm family only).

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/atom.hpp>

#include "actors/llm/anthropic.hpp"
#include "actors/llm/limiter.hpp"
#include "actors/llm/requester.hpp"
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
/// answer. Owned by the router alone: a provider gets what its call needs
/// by value (msg::call), and the parse pool the request's bytes.
struct exchange_state {
  exchange_state(uint64_t i, exchange_request r, answer_to to)
      : id(i), req(std::move(r)), requester(std::move(to)), started(clock::now()) {}
  /// Let go of unanswered (the router stopping with it), its requester
  /// hears so and answers the client itself.
  ~exchange_state();
  exchange_state(const exchange_state&) = delete;
  exchange_state& operator=(const exchange_state&) = delete;

  uint64_t id;
  exchange_request req;
  /// Where the answer goes (http.* messages).
  answer_to requester;
  clock::time_point started;
  request_info info;
  /// The request bytes to forward: the client's own unless the body changed.
  std::string body_text;
  std::string key;
  bool cacheable = false;
  cache_mode mode = cache_mode::use;
  std::vector<std::string> deps;
  std::string agent;
  /// X-Troupe-Persona: the persona the agent follows (ledger).
  std::string persona;
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
  /// The client got its answer (or its stream's head).
  bool answered = false;
  /// The client left (its requester said http.gone).
  bool gone = false;
  /// Identical requests wait for this one's answer: its call goes on even
  /// if its own client leaves.
  bool shared = false;
  /// Whether this request leads its key's flight.
  bool leads = false;
  /// The provider running this request's call, while one runs.
  caf::actor provider;

  /// Nobody waits for the answer any more: producers should stop.
  [[nodiscard]] bool abandoned() const { return gone && !shared; }
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
