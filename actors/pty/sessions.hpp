#pragma once

// The sessions family: durable terminals as supervised actors. Under the
// `sessions` supervisor, `sessions/manager` answers the family's requests
// (actors/pty/messages.hpp; the gateway maps /v1/sessions onto them) and
// `sessions/live` (a dynamic supervisor) holds one actor per session,
// `sessions/live/<id>`, which owns its PTY, scrollback and viewers
// (actors/pty/session_actor.hpp). A shell that dies abnormally is restarted
// with the same id, command, cwd and env (restart intensity and backoff
// bound a crash loop); its state goes from one incarnation to the next
// through the manager, so the scrollback survives the restart.

#include <memory>

#include "runtime/supervisor/supervisor.hpp"

namespace boost::asio {
class io_context;
}

namespace troupe {
struct node_context;
class db;
}  // namespace troupe

namespace troupe::pty {

/// `io` reads the PTYs (the node's troupe-pty threads); it must outlive the
/// actors (the node destroys it after the actor system).
/// `store` keeps persistent sessions (description and scrollback) so they
/// come back after a node restart.
[[nodiscard]] child_spec sessions_child(std::shared_ptr<node_context> ctx,
                                        std::shared_ptr<db> store, boost::asio::io_context& io);

}  // namespace troupe::pty
