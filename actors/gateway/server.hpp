#pragma once

// The node's HTTP server (Boost.Beast): a listening socket and a session per
// connection on the node's HTTP io_context (a WebSocket viewer moves to the
// terminals' io_context when it upgrades). Owned by the `gateway/http`
// actor (actors/gateway/listener.hpp): each incarnation has a server of its
// own, and a crash closes its connections. Requests go to the routes; what
// an actor answers comes back as messages to a short-lived actor of the
// request's own, which posts to the connection's strand, so no I/O thread
// ever waits for an actor.

#include <cstdint>
#include <memory>
#include <string>

#include "runtime/error.hpp"

namespace boost::asio {
class io_context;
}

namespace caf {
class actor_system;
}

namespace troupe {

struct node_context;

/// The threads a gateway's connections run on. Both io_contexts must
/// outlive every connection (the node owns them).
struct gateway_io {
  /// Requests and their answers, LLM streams included.
  boost::asio::io_context& http;
  /// Attached terminals: a connection that upgrades to a WebSocket viewer
  /// moves here (the node's PTY threads), so that a keystroke's echo never
  /// queues behind a burst of LLM stream writes.
  boost::asio::io_context& terminals;
};

class gateway_server {
 public:
  /// Binds `listen` ("HOST:PORT") for connections run on `io`.
  /// Connections wait in the backlog until serve(). Errors (address in use,
  /// bad address) are returned, not thrown.
  [[nodiscard]] static expected<std::unique_ptr<gateway_server>> start(
      std::shared_ptr<node_context> ctx, std::string token, const std::string& listen,
      gateway_io io);

  /// Starts accepting. `system` spawns the actors of calls, exchanges and
  /// viewers; it must outlive the I/O threads' last handler.
  void serve(caf::actor_system& system);

  /// stop()s.
  ~gateway_server();
  gateway_server(const gateway_server&) = delete;
  gateway_server& operator=(const gateway_server&) = delete;

  /// "host:port" actually bound (port 0 resolved).
  [[nodiscard]] std::string address() const;

  /// Closes the listening socket and makes /readyz and new actor calls fail.
  void stop_accepting();

  /// Requests read and not yet answered.
  [[nodiscard]] uint32_t in_flight() const;

  /// Closes the listening socket (waiting for it to be closed, so the
  /// address can be bound again at once) and every open connection, and
  /// ends the WebSocket viewers' actors.
  void stop();

  /// Defined in server.cpp only (its sessions need it).
  struct impl;

 private:
  explicit gateway_server(std::shared_ptr<impl> p);
  std::shared_ptr<impl> impl_;
};

}  // namespace troupe
