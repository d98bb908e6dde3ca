#pragma once

// The `gateway` actor: carries calls from the HTTP threads into the actor
// world and their replies back. HTTP threads never block on an actor: they
// hand over a call with a completion, which runs exactly once.

#include <functional>
#include <memory>
#include <string>

#include "actors/gateway/routes.hpp"
#include "runtime/supervisor/supervisor.hpp"

namespace troupe {

struct node_context;

using call_done = std::function<void(envelope)>;

/// The child spec of the `gateway` actor (a permanent worker).
[[nodiscard]] child_spec gateway_child(std::shared_ptr<node_context> ctx);

/// Sends `call` through the `gateway` actor. `done` runs exactly once, on an
/// actor thread: with the reply, or with an error if the call is lost.
void submit_call(const node_context& ctx, actor_call call, call_done done);

/// Crashes the actor at `path` (chaos). Errors: unknown_actor, conflict
/// (not running right now).
[[nodiscard]] expected<bool> kill_actor(const node_context& ctx, const std::string& path);

}  // namespace troupe
