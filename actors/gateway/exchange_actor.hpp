#pragma once

// An HTTP exchange's actor: the connection's side of an exchange that a
// family answers itself (the LLM routes). It sends the request to the
// family's actor as an `http.request` message, receives the answer as
// messages (`http.reply`, or `http.head`, `http.chunk`... `http.end`) and
// hands them to the connection; when the client leaves it tells the family
// (`http.gone`). See runtime/node/http_exchange.hpp.

#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "actors/gateway/routes.hpp"
#include "runtime/node/http_exchange.hpp"

namespace troupe {

struct node_context;

/// Spawns the actor for one exchange: `request` goes to the actor at
/// `target.path`; what comes back goes to `sink` (the connection's, which
/// answers 500 for an exchange it is let go of unanswered). It ends with
/// the answer, or when the family can no longer give one.
[[nodiscard]] caf::actor spawn_exchange(caf::actor_system& system,
                                        std::shared_ptr<node_context> ctx, family_exchange target,
                                        exchange_request request,
                                        std::shared_ptr<exchange_sink> sink);

}  // namespace troupe
