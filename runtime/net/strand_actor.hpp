#pragma once

// An actor that lives on an I/O thread: messages sent to it from any thread
// are posted to an Asio executor (a connection's strand) and handled there,
// one at a time, in the order they arrived. What it handles may touch the
// connection directly, with no second hop: a stream's chunk goes from the
// thread that produced it to the connection's thread as one message.
//
// It is a CAF actor like any other (an address, monitors, requests it
// makes); only its turn runs on the strand instead of a scheduler thread.
// Its owner (the connection) holds it: when the owner lets go, the actor
// ends if it still runs, and messages still on their way are dropped.
// Include only where Asio is used already (the connection's .cpp files).

#include <functional>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <caf/fwd.hpp>

namespace caf {
class actor_companion;
}

namespace troupe {

class strand_actor {
 public:
  /// An actor whose messages run on `executor` (a strand, or an io_context
  /// with one thread). Give it a behavior (`self()->become(...)`) before
  /// anything can reach it.
  strand_actor(caf::actor_system& system, boost::asio::any_io_executor executor);
  /// Ends the actor if it still runs: its monitors hear it, its behavior
  /// (and whatever that holds) is released.
  ~strand_actor();
  strand_actor(const strand_actor&) = delete;
  strand_actor& operator=(const strand_actor&) = delete;

  /// The actor itself, for become(), send() and quit(). Use it only on the
  /// executor's thread (or before any message can reach the actor).
  [[nodiscard]] caf::actor_companion* self() const;
  /// Its handle, for others to send to.
  [[nodiscard]] caf::actor handle() const;
  /// Whether it ended itself (quit() in a turn, or an exception). On the
  /// executor's thread.
  [[nodiscard]] bool ended() const;
  /// Runs `hook` in the turn in which the actor ends itself (not when its
  /// owner lets go). Set it before anything can reach the actor.
  void on_end(std::function<void()> hook);

  /// Sends `request`'s values to `dest` as a request (CAF's request/response:
  /// if `dest` ends with it unanswered, the actor gets an error); `on_reply`
  /// is the behavior the response (or that error) is matched against.
  /// On the executor's thread, or before any message can reach the actor.
  void request(const caf::actor& dest, caf::message request, caf::behavior on_reply);

 private:
  struct core;
  std::shared_ptr<core> core_;
};

}  // namespace troupe
