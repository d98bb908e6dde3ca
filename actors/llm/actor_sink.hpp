#pragma once

// The LLM family's side of an exchange that arrived as a message: what the
// router and the providers write to it (any thread) goes to the requesting
// actor as `http.*` messages (runtime/node/http_exchange.hpp). It learns
// that the client left from an `http.gone` the router passes on.

#include <atomic>
#include <memory>
#include <string>

#include <caf/actor.hpp>

#include "runtime/node/http_exchange.hpp"

namespace troupe::llm {

class actor_sink : public exchange_sink {
 public:
  explicit actor_sink(caf::actor to) : to_(std::move(to)) {}
  /// Let go of before the answer ended: the requester hears `http.dropped`
  /// (and answers 500 if nothing was answered, or ends the stream).
  ~actor_sink() override;
  actor_sink(const actor_sink&) = delete;
  actor_sink& operator=(const actor_sink&) = delete;

  void reply(int status, http_headers headers, std::string body) override;
  void begin_stream(int status, http_headers headers) override;
  void stream(std::string chunk) override;
  void end_stream() override;
  [[nodiscard]] bool gone() const override { return gone_.load(std::memory_order_relaxed); }

  /// The client left (the requester said `http.gone`).
  void mark_gone() { gone_.store(true, std::memory_order_relaxed); }
  [[nodiscard]] const caf::actor& requester() const { return to_; }

 private:
  void send(const char* type, std::string body);

  caf::actor to_;
  std::atomic<bool> gone_{false};
  /// A whole reply or a stream's end went out: nothing to drop.
  std::atomic<bool> done_{false};
};

}  // namespace troupe::llm
