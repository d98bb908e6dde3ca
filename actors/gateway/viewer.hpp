#pragma once

// A WebSocket viewer's actor: the connection's side of the terminal
// protocol (runtime/node/terminal.hpp). It attaches to "sessions/live/<id>",
// receives the session's output and notices and hands them to its
// connection, and when the session's incarnation goes down (a restart) it
// attaches to the next one from where it left off. The connection sends its
// keystrokes, resizes and acknowledgements to the session as this actor.
// Its turns run on the connection's strand (runtime/net/strand_actor.hpp):
// output goes from the session to the socket with no hop in between.

#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <caf/fwd.hpp>

#include "runtime/error.hpp"

namespace troupe {

struct node_context;

/// What the viewer actor does to its connection. Called in the actor's
/// turns, on the connection's executor.
class viewer_socket {
 public:
  virtual ~viewer_socket() = default;
  /// Attached (again) to `session`, whose terminal is `cols` x `rows`.
  virtual void attached(caf::actor session, uint16_t cols, uint16_t rows) = 0;
  /// The first attach failed (no such session, or it cannot be reached).
  virtual void refused(error why) = 0;
  virtual void output(std::string bytes) = 0;
  virtual void control(std::string json) = 0;
  /// The session ended, or cannot be reached again: close the connection.
  virtual void close(std::string why) = 0;
};

/// Spawns the viewer actor of session `id` on `executor` (its connection's
/// strand). It ends when told to (an exit message, when its connection is
/// gone) or after close().
[[nodiscard]] caf::actor spawn_viewer(caf::actor_system& system,
                                      boost::asio::any_io_executor executor,
                                      std::shared_ptr<node_context> ctx, std::string id,
                                      bool readonly, std::shared_ptr<viewer_socket> socket);

}  // namespace troupe
