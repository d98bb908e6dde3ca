#pragma once

// Sending a request to an actor by its stable path, from inside an actor.
// The fast path goes straight to the running incarnation; while it restarts
// (or if it died before our message was read) the request goes through its
// supervisor, which stashes it until the next incarnation runs. The reply
// handler is called exactly once, with the reply or an `error` envelope.

#include <chrono>
#include <functional>
#include <string_view>

#include "runtime/protocol/envelope.hpp"
#include "runtime/supervisor/actor_registry.hpp"

namespace caf {
class event_based_actor;
}

namespace troupe {

using reply_handler = std::function<void(envelope)>;

/// `registry` must outlive the request (it is the node's, which outlives
/// every actor).
void ask(caf::event_based_actor* self, const actor_registry& registry, std::string_view path,
         envelope msg, std::chrono::milliseconds timeout, reply_handler on_reply);

}  // namespace troupe
