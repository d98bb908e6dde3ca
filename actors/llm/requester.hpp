#pragma once

// Answers to a requester (the actor that sent `http.request`: the gateway's
// exchange actor, or any actor) as `http.*` messages
// (runtime/node/http_exchange.hpp). The router answers with them, and so
// does an upstream connection's thread while it streams, each for the part
// of the exchange it owns at the time.

#include <string>

#include <caf/actor.hpp>

#include "runtime/node/http_exchange.hpp"

namespace troupe::llm {

void send_reply(const caf::actor& to, int status, http_headers headers, std::string body);
void send_head(const caf::actor& to, int status, http_headers headers);
void send_chunk(const caf::actor& to, std::string bytes);
void send_end(const caf::actor& to);
/// The family let go of the exchange unanswered: the requester answers 500,
/// or ends a stream it began with an error.
void send_dropped(const caf::actor& to);

}  // namespace troupe::llm
