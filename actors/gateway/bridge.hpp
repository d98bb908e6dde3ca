#pragma once

// Actor calls from the HTTP side. A call (an `actor_call` the routes made)
// gets a short-lived actor of its own, which asks `gateway/calls` to relay
// it (`gateway.call`, once per path for a fan-out) and hands the reply to
// the connection. `gateway/calls` keeps one circuit breaker per target path.
// Only messages travel: the completion stays with the call's own actor.

#include <functional>
#include <memory>
#include <string>

#include "actors/gateway/routes.hpp"
#include "runtime/supervisor/supervisor.hpp"

namespace caf {
class actor_system;
}

namespace troupe {

struct node_context;

using call_done = std::function<void(envelope)>;

/// The child spec of `calls` (a permanent worker under `gateway`): relays
/// `gateway.call` to its target behind the target's breaker.
[[nodiscard]] child_spec calls_child(std::shared_ptr<node_context> ctx);

/// Makes `call` from an actor of its own. `done` runs exactly once, on an
/// actor thread: with the reply (a fan-out's replies merged), or with an
/// error if the call is lost.
void submit_call(caf::actor_system& system, std::shared_ptr<node_context> ctx, actor_call call,
                 call_done done);

/// The running incarnation at `path`, to be crashed by chaos. Errors:
/// unknown_actor, conflict (not running right now).
[[nodiscard]] expected<caf::actor> chaos_target(const node_context& ctx, const std::string& path);

/// Crashes `target` (chaos): it exits as if it had failed.
void crash(const caf::actor& target);

}  // namespace troupe
