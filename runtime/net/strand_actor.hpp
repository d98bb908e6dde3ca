#pragma once

// Actors that live on an I/O thread: messages sent to one from any thread
// are posted to an Asio executor (a connection's strand, a terminal thread)
// and handled there, one at a time, in the order they arrived. What it
// handles may touch that thread's objects (a connection, a PTY) directly,
// with no second hop: a stream's chunk goes from the thread that produced
// it to the connection's thread as one message.
//
// Each is a CAF actor like any other (an address, monitors, requests with
// `then` or `await`, delayed sends, exit and down handlers); only its turn
// runs on the executor instead of a scheduler thread. Two ways to have one:
// - `strand_actor`: its owner (a connection) holds it; when the owner lets
//   go, the actor ends if it still runs.
// - `spawn_on_strand`: a (stateful) actor spawned as CAF spawns one; it
//   runs until it ends itself (quit, an exit message, an exception), so a
//   supervisor can start, watch and stop it.
// Either way, once it ended, messages still on their way are dropped and a
// request among them gets an error. It must end while the actor system
// runs (its cleanup needs the system): the node stops its supervisors and
// connections, and keeps its I/O threads running until
// `strand_base::running()` is 0. Include only where Asio is used already (the connection's
// and the terminal's .cpp files).

#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>

#include <boost/asio/any_io_executor.hpp>
#include <caf/actor_companion.hpp>
#include <caf/actor_system.hpp>
#include <caf/infer_handle.hpp>
#include <caf/mixin/requester.hpp>
#include <caf/spawn_options.hpp>

namespace troupe {

/// The actor type of a strand actor: CAF's companion (an actor whose
/// messages go to a handler instead of a scheduler) that can also make
/// requests. A stateful one is `caf::stateful_actor<State, strand_base>`.
class strand_base
    : public caf::extend<caf::actor_companion, strand_base>::with<caf::mixin::requester> {
 public:
  using super = caf::extend<caf::actor_companion, strand_base>::with<caf::mixin::requester>;
  explicit strand_base(caf::actor_config& cfg);
  ~strand_base() override;

  /// Keeps the enqueue handler (see the .cpp); a stateful actor's own
  /// on_exit (it destroys the state) does not touch it either.
  void on_exit() override {}

  /// Posts each message the actor gets to `executor`, as a turn, after a
  /// first turn that runs its initialization (its spawn function). A
  /// message on its way holds the actor, as CAF's scheduler holds an actor
  /// with mail. Once, before anyone else has the handle.
  void run_spawned(boost::asio::any_io_executor executor);
  /// Posts each message the actor gets to `executor`, as a turn, while
  /// `owner` lives; a turn holds the owner for its length.
  void run_owned(boost::asio::any_io_executor executor, std::weak_ptr<void> owner);
  /// Ends the actor now if it did not end itself (its monitors hear
  /// `user_shutdown`); late messages are dropped, requests among them
  /// answered with an error. Never while one of its turns runs.
  void stop();
  /// Whether it ended (itself, or by stop()).
  [[nodiscard]] bool ended() const { return ended_; }
  /// Runs `hook` at the end of the turn in which the actor ends itself.
  void on_end(std::function<void()> hook) { on_end_ = std::move(hook); }

  /// Strand actors of this process that began and have not ended. Their
  /// ends run on their executors' threads, so the node keeps those threads
  /// running until none is left.
  [[nodiscard]] static int64_t running();

 protected:
  /// Runs the spawn function, as an event-based actor does (CAF's
  /// companion has no behavior of its own to start with).
  void initialize() override;

 private:
  struct turns;
  void start();
  void turn(caf::mailbox_element_ptr m);
  void retry_skipped();
  void finish();
  void began();
  /// Ended (once): no longer counted in running(); skipped requests are
  /// answered with an error.
  void mark_ended();

  std::unique_ptr<turns> turns_;
  bool began_ = false;
  bool ended_ = false;
  std::function<void()> on_end_;
};

/// Spawns `fun` as CAF's function-based spawn does (its first argument is
/// the actor: `caf::stateful_actor<State, strand_base>*`), but the actor's
/// turns, the spawn function's first, run on `executor`. Like any CAF actor
/// it lives while someone holds its handle or a message is on its way to
/// it; monitors, links and a supervisor's exit message work as with any
/// actor.
template <class F>
caf::actor spawn_on_strand(caf::actor_system& system, boost::asio::any_io_executor executor,
                           F fun) {
  static_assert(std::is_base_of_v<strand_base, typename caf::infer_handle_from_fun<F>::impl>,
                "the spawn function's first argument must be a strand_base (or a "
                "caf::stateful_actor<State, strand_base>)");
  // Hidden: not counted by the system's shutdown wait (which waits on the
  // scheduler); whoever owns it (a supervisor, a connection) ends it, and
  // the node waits for running() to reach 0 before it stops the threads.
  auto handle = system.spawn<caf::hidden>(std::move(fun));
  auto* self = static_cast<strand_base*>(caf::actor_cast<caf::abstract_actor*>(handle));
  // The first turn is posted before anyone else has the handle: it runs
  // before any message.
  self->run_spawned(std::move(executor));
  return handle;
}

class strand_actor {
 public:
  /// An actor whose messages run on `executor` (a strand, or an io_context
  /// with one thread). Give it a behavior (`self()->become(...)`) before
  /// anything can reach it.
  strand_actor(caf::actor_system& system, boost::asio::any_io_executor executor);
  /// Ends the actor if it still runs (at once, or at the end of the turn
  /// running now): its monitors hear it, its behavior (and whatever that
  /// holds) is released.
  ~strand_actor();
  strand_actor(const strand_actor&) = delete;
  strand_actor& operator=(const strand_actor&) = delete;

  /// The actor itself, for become(), send(), request() and quit(). Use it
  /// only on the executor's thread (or before any message can reach the
  /// actor).
  [[nodiscard]] strand_base* self() const;
  /// Its handle, for others to send to.
  [[nodiscard]] caf::actor handle() const;
  /// Whether it ended itself (quit() in a turn, or an exception). On the
  /// executor's thread.
  [[nodiscard]] bool ended() const;
  /// Runs `hook` at the end of the turn in which the actor ends itself.
  /// Set it before anything can reach the actor.
  void on_end(std::function<void()> hook);

 private:
  /// Held by the owner and, for its length, by each turn; the last to let
  /// go ends the actor.
  struct owner_token;
  std::shared_ptr<owner_token> token_;
  strand_base* self_;
};

}  // namespace troupe
