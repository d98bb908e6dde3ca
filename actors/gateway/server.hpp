#pragma once

// The node's one HTTP server (Boost.Beast): a listener and a session per
// connection on a small pool of Asio threads. Requests go to the router;
// actor calls go through the `gateway` actor and come back by post to the
// connection's strand, so no Asio thread ever waits for an actor.

#include <chrono>
#include <memory>
#include <string>

#include "runtime/error.hpp"

namespace caf {
class actor_system;
}

namespace troupe {

struct node_context;

class gateway_server {
 public:
  /// Binds `ctx->config.gateway.listen`; connections wait in the backlog
  /// until serve(). Errors (address in use, bad address) are returned, not
  /// thrown. Sets ctx->listen_address.
  [[nodiscard]] static expected<std::unique_ptr<gateway_server>> start(
      std::shared_ptr<node_context> ctx, std::string token);

  /// Starts accepting and the I/O threads. Called once the node_context is
  /// complete (every family's entry points installed): the I/O threads read
  /// it without a lock, so nothing may write it after this. `system` spawns
  /// the WebSocket viewers' actors; it must outlive the server's threads.
  void serve(caf::actor_system& system);

  ~gateway_server();
  gateway_server(const gateway_server&) = delete;
  gateway_server& operator=(const gateway_server&) = delete;

  /// "host:port" actually bound (port 0 resolved).
  [[nodiscard]] std::string address() const;

  /// Closes the listening socket and makes /readyz and new actor calls fail.
  void stop_accepting();

  /// Waits until no request is in flight, or `timeout`; true when drained.
  [[nodiscard]] bool drain(std::chrono::milliseconds timeout);

  /// Stops the Asio threads; open connections are closed.
  void stop();

  /// Defined in server.cpp only (its sessions need it).
  struct impl;

 private:
  explicit gateway_server(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace troupe
