#pragma once

// The LLM family: an Anthropic-compatible gateway. Under the `llm`
// supervisor, one provider actor per upstream (`llm/anthropic`, and
// `llm/local` when an OpenAI-compatible fallback is configured), each behind
// its own circuit breaker, and `llm/router`, which answers /v1/messages:
// response cache, fair limiter, fallback chain, token ledger.
//
// Request and answer bytes never cross an actor mailbox: the gateway hands
// an exchange (request + a thread-safe sink) to the router, providers drive
// the upstream call on Asio threads and stream chunks straight to the sink;
// actors make the decisions (admit, retry, fail over, cache, book).

#include <memory>

#include "runtime/node/http_exchange.hpp"
#include "runtime/supervisor/supervisor.hpp"

namespace troupe {
struct node_context;
class db;
}  // namespace troupe

namespace troupe::llm {

struct llm_family {
  /// The `llm` supervisor with its providers and router.
  child_spec child;
  /// The upstream client's threads and pools. The caller keeps this until
  /// the actor system is gone, so no provider outlives its connections.
  std::shared_ptr<void> resources;
};

/// The upstream client runs `llm.io_threads` threads of its own. Errors: a
/// bad upstream URL in the config.
[[nodiscard]] expected<llm_family> llm_child(std::shared_ptr<node_context> ctx,
                                             std::shared_ptr<db> store);

/// What the gateway calls for /v1/messages, /v1/messages/count_tokens and
/// /v1/usage: hands the exchange to `llm/router`.
[[nodiscard]] exchange_handler exchange_entry(std::shared_ptr<node_context> ctx);

}  // namespace troupe::llm
