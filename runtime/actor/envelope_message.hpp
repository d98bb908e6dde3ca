#pragma once

// How an envelope travels inside CAF: as three built-in values (type, body,
// correlation id) rather than one custom struct. CAF 0.17 matches
// built-in types by a precomputed type token, but custom types element by
// element through RTTI (a strcmp of type names per message); built-in values
// also cross nodes without any type registration.

#include <cstdint>
#include <string>
#include <utility>

#include <caf/make_message.hpp>
#include <caf/message.hpp>
#include <caf/response_promise.hpp>

#include "runtime/protocol/envelope.hpp"

namespace troupe {

/// The CAF message carrying `e`.
[[nodiscard]] inline caf::message to_message(envelope e) {
  return caf::make_message(std::move(e.type), std::move(e.body), e.correlation_id);
}

/// Rebuilds an envelope from a handler's arguments (moves the strings).
[[nodiscard]] inline envelope from_fields(std::string& type, std::string& body,
                                          uint64_t correlation_id) {
  return envelope{std::move(type), std::move(body), correlation_id};
}

/// Answers a request held in `promise` with `e`.
inline void deliver(caf::response_promise& promise, envelope e) {
  promise.deliver(std::move(e.type), std::move(e.body), e.correlation_id);
}

/// Forwards the request held in `promise` to `dest`; its reply goes straight
/// back to the original sender.
template <class Handle>
void delegate(caf::response_promise& promise, const Handle& dest, envelope e) {
  promise.delegate(dest, std::move(e.type), std::move(e.body), e.correlation_id);
}

}  // namespace troupe
