#pragma once

// The gateway family, under the `gateway` supervisor (one_for_one):
//   gateway/calls  relays actor calls from HTTP, one breaker per target
//   gateway/http   the HTTP listener: owns the listening socket, its
//                  connections and WebSocket viewers. A crash closes them;
//                  the next incarnation listens on the same address.

#include <chrono>
#include <memory>
#include <string>

#include "runtime/supervisor/supervisor.hpp"

#include "actors/gateway/server.hpp"

namespace troupe {

/// The `gateway` family. `bound` is the server the node bound at boot (so
/// that a bad address fails the boot with its reason): the first
/// incarnation of gateway/http serves it, later ones bind
/// `ctx->listen_address` again. `io` runs every connection; it must
/// outlive the actor system.
[[nodiscard]] child_spec gateway_family(std::shared_ptr<node_context> ctx, std::string token,
                                        gateway_io io, std::unique_ptr<gateway_server> bound);

/// Asks gateway/http to stop accepting and waits up to `timeout` for the
/// requests in flight; true when none was left. Blocks: for the node's
/// main thread at shutdown.
[[nodiscard]] bool drain_gateway(caf::actor_system& system, const node_context& ctx,
                                 std::chrono::milliseconds timeout);

}  // namespace troupe
