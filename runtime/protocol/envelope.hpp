#pragma once

// The one message that crosses actor boundaries: a type name and a msgpack
// body. The same bytes travel in-process, between nodes (inside BASP), to
// troupectl and over WebSocket; only the receiving actor decodes the body.
// Inside CAF an envelope travels as four built-in values (see
// runtime/actor/envelope_message.hpp).

#include <cstdint>
#include <string>

namespace troupe {

/// Type name of the reply that carries an error body `{code, message}`.
inline constexpr const char* error_type = "error";

struct envelope {
  /// Message type name, `family.verb` (e.g. "sys.echo"), or "error".
  std::string type;
  /// msgpack-encoded body: a map with named fields.
  std::string body;
  /// Set by the caller; a reply carries the request's id.
  uint64_t correlation_id = 0;
  /// Optional actor path for replies that are sent, not returned.
  std::string reply_to;

  [[nodiscard]] bool is_error() const noexcept { return type == error_type; }
};

}  // namespace troupe
