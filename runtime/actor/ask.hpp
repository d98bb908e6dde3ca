#pragma once

// Requests to actors by stable path, sent from inside an actor.
//
// - The fast path goes straight to the running incarnation. Its handle is
//   cached until the registry changes, so a request takes no lock.
// - While the target restarts, or if it died before reading the request, the
//   request goes through its supervisor, which stashes it until the next
//   incarnation runs. The retry resends the request as it was sent: the
//   message is shared with the mailbox, not copied.
// - The reply handler is called exactly once, with the reply or an `error`
//   envelope (unknown actor, down, timeout).
//
// Deadlines are kept here rather than in CAF's clock. CAF 0.17 puts every
// request that has a timeout on its clock thread twice (set, then cancel),
// and each of those wakes that thread: two futex wake-ups and a context
// switch per request. An asker keeps its requests in deadline order and has
// at most one clock entry at a time, for the earliest deadline. Like any
// awaited reply, that entry keeps the actor alive: an actor that would end
// once it waits for nothing should quit() instead, or it lives on until the
// entry's deadline passes.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string_view>

#include "runtime/protocol/envelope.hpp"

namespace caf {
class event_based_actor;
}

namespace troupe {

class actor_registry;

using reply_handler = std::function<void(envelope)>;

/// Sends an actor's requests and keeps their deadlines. One per asking actor,
/// kept in its state and used only from that actor.
class asker {
 public:
  /// Not usable until assigned one made from a registry.
  asker();
  /// `registry` must outlive the asker (it is the node's, which outlives
  /// every actor).
  explicit asker(const actor_registry& registry);
  ~asker();
  asker(asker&&) noexcept;
  asker& operator=(asker&&) noexcept;
  asker(const asker&) = delete;
  asker& operator=(const asker&) = delete;

  /// Sends `msg` to the actor at `path`; `on_reply` gets its reply, or an
  /// error after `timeout` (a retry through the supervisor starts a new
  /// `timeout`).
  void ask(caf::event_based_actor* self, std::string_view path, envelope msg,
           std::chrono::milliseconds timeout, reply_handler on_reply);

  /// Requests sent and not yet answered (counted from the deadlines kept).
  [[nodiscard]] size_t waiting() const;

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace troupe
