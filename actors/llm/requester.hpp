#pragma once

// Answers to a requester (the actor that sent `http.request`: the gateway's
// exchange actor, or any actor) as `http.*` messages
// (runtime/node/http_exchange.hpp). The router answers with them, and so
// does an upstream connection's thread while it streams, each for the part
// of the exchange it owns at the time.

#include <cstdint>
#include <string>

#include <caf/actor.hpp>

#include "runtime/node/http_exchange.hpp"

namespace troupe::llm {

/// Who an exchange's answers go to: the actor that sent `http.request`, and
/// that message's correlation id, which every answer carries back (so an
/// actor whose exchanges follow one another, an agent, tells an answer it
/// waits for from what is left of one it let go of).
struct answer_to {
  caf::actor actor;
  uint64_t correlation = 0;
  explicit operator bool() const noexcept { return static_cast<bool>(actor); }
};

void send_reply(const answer_to& to, int status, http_headers headers, std::string body);
void send_head(const answer_to& to, int status, http_headers headers);
void send_chunk(const answer_to& to, std::string_view bytes);
/// A chunk already packed where its bytes were read (http_msg::chunk_packer).
void send_packed_chunk(const answer_to& to, std::string packed);
void send_end(const answer_to& to);
/// The family let go of the exchange unanswered: the requester answers 500,
/// or ends a stream it began with an error.
void send_dropped(const answer_to& to);

}  // namespace troupe::llm
