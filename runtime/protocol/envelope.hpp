#pragma once

// The one message that crosses actor boundaries: a type name and a msgpack
// body. The same bytes travel in-process, between nodes (inside BASP), to
// troupectl and over WebSocket; only the receiving actor decodes the body.
// Inside CAF an envelope travels as three built-in values (see
// runtime/actor/envelope_message.hpp).

#include <cstdint>
#include <string>
#include <string_view>

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

  // Compared as views: lengths first, so most types are told apart at once.
  [[nodiscard]] bool is_error() const noexcept { return std::string_view(type) == error_type; }
};

/// A received envelope, read in place from the message that carries it.
struct envelope_view {
  std::string_view type;
  std::string_view body;
  uint64_t correlation_id = 0;

  envelope_view() = default;
  envelope_view(std::string_view t, std::string_view b, uint64_t id)
      : type(t), body(b), correlation_id(id) {}
  // NOLINTNEXTLINE(google-explicit-constructor): a view of an envelope, as string_view is
  envelope_view(const envelope& e) : type(e.type), body(e.body), correlation_id(e.correlation_id) {}
};

}  // namespace troupe
