#pragma once

// The LLM family: an Anthropic-compatible gateway. Under the `llm`
// supervisor, one provider actor per upstream (`llm/anthropic`, and
// `llm/local` when an OpenAI-compatible fallback is configured), each behind
// its own circuit breaker, and `llm/router`, which answers /v1/messages:
// response cache, fair limiter, fallback chain, token ledger.
//
// A request arrives as an `http.request` message from its requester (the
// gateway's exchange actor, or any actor) and is answered by `http.*`
// messages to it (runtime/node/http_exchange.hpp). The router owns the
// request's state; it hands each chain step to a provider as `llm.call`
// (actors/llm/messages.hpp), whose connection threads stream the answer to
// the requester as it comes; actors make the decisions (admit, retry, fail
// over, cache, book).

#include <memory>

#include "runtime/node/http_exchange.hpp"
#include "runtime/supervisor/supervisor.hpp"

namespace troupe {
struct node_context;
class db;
}  // namespace troupe

namespace troupe::llm {

/// The `llm` supervisor with its providers and router. Each provider runs
/// `llm.io_threads` threads of its own. Errors: a bad upstream URL in the
/// config.
[[nodiscard]] expected<child_spec> llm_child(std::shared_ptr<node_context> ctx,
                                             std::shared_ptr<db> store);

}  // namespace troupe::llm
