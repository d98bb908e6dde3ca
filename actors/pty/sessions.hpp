#pragma once

// The sessions family: durable terminals as supervised actors. Under the
// `sessions` supervisor, `sessions/manager` answers /v1/sessions and
// `sessions/live` (a dynamic supervisor) holds one actor per session,
// `sessions/live/<id>`, each owning a real PTY. A shell that dies abnormally
// is restarted with the same id, command, cwd and env (restart intensity
// and backoff bound a crash loop); its scrollback lives in memory shared by
// the session's incarnations, so it survives the restart.
//
// PTY bytes never block a scheduler thread: the master fd is read on Asio
// threads of their own and its output reaches the actor as messages.

#include <memory>

#include "runtime/node/http_exchange.hpp"
#include "runtime/node/terminal.hpp"
#include "runtime/supervisor/supervisor.hpp"

namespace boost::asio {
class io_context;
}

namespace troupe {
struct node_context;
class db;
}  // namespace troupe

namespace troupe::pty {

/// The node's sessions by id, shared by the manager and the attach handler.
class session_table;
[[nodiscard]] std::shared_ptr<session_table> make_session_table();

/// `io` reads the PTYs (the node's troupe-pty threads); it must outlive the
/// actors (the node destroys it after the actor system).
/// `store` keeps persistent sessions (description and scrollback) so they
/// come back after a node restart.
[[nodiscard]] child_spec sessions_child(std::shared_ptr<node_context> ctx,
                                        std::shared_ptr<session_table> table,
                                        std::shared_ptr<db> store, boost::asio::io_context& io);

/// What the gateway calls for GET /v1/sessions/{id}/attach once the
/// WebSocket is up.
[[nodiscard]] attach_handler sessions_attach(std::shared_ptr<node_context> ctx,
                                             std::shared_ptr<session_table> table);

/// What the gateway calls for /v1/sessions...: hands the exchange to
/// `sessions/manager`.
[[nodiscard]] exchange_handler sessions_entry(std::shared_ptr<node_context> ctx);

}  // namespace troupe::pty
