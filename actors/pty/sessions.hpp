#pragma once

// The sessions family: durable terminals as supervised actors. Under the
// `sessions` supervisor, `sessions/manager` answers /v1/sessions and
// `sessions/live` (a dynamic supervisor) holds one actor per session,
// `sessions/live/<id>`, each owning a real PTY. A shell that dies abnormally
// is restarted with the same id, command, cwd and env (restart intensity
// and backoff bound a crash loop); its scrollback lives in memory shared by
// the session's incarnations, so it survives the restart.
//
// PTY bytes never block a scheduler thread: the master fd is read on the
// gateway's Asio threads and its output reaches the actor as messages.

#include <memory>

#include "runtime/node/http_exchange.hpp"
#include "runtime/supervisor/supervisor.hpp"

namespace boost::asio {
class io_context;
}

namespace troupe {
struct node_context;
}

namespace troupe::pty {

/// `io` reads the PTYs; it must outlive the actors (the gateway's, which
/// the node destroys after the actor system).
[[nodiscard]] child_spec sessions_child(std::shared_ptr<node_context> ctx,
                                        boost::asio::io_context& io);

/// What the gateway calls for /v1/sessions...: hands the exchange to
/// `sessions/manager`.
[[nodiscard]] exchange_handler sessions_entry(std::shared_ptr<node_context> ctx);

}  // namespace troupe::pty
