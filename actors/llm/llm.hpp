#pragma once

// The LLM family: an Anthropic-compatible gateway. Under the `llm`
// supervisor, one provider actor per upstream (`llm/anthropic`, and
// `llm/local` when an OpenAI-compatible fallback is configured), each behind
// its own circuit breaker, and `llm/router`, which answers /v1/messages:
// response cache, fair limiter, fallback chain, token ledger.
//
// A request arrives as an `http.request` message from its requester (the
// gateway's exchange actor, or any actor) and is answered by `http.*`
// messages to it (runtime/node/http_exchange.hpp): the router wraps the
// requester in an actor_sink, providers drive the upstream call on Asio
// threads and send chunks through it as they come; actors make the
// decisions (admit, retry, fail over, cache, book).

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

}  // namespace troupe::llm
