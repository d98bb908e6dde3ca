#pragma once

// Schema of the gateway family's own messages.
//   gateway.call  {path, type, body, timeout_ms} -> the target's reply, as it
//                 is (gateway/calls relays it behind the target's breaker)
//   gateway.drain {timeout_ms} -> gateway.drain.reply {drained, in_flight}
//                 (gateway/http: stop accepting, wait for requests in flight)

#include <cstdint>
#include <string>

#include "runtime/protocol/codec.hpp"

namespace troupe::gateway {

inline constexpr const char* call_type = "gateway.call";
inline constexpr const char* drain_type = "gateway.drain";
inline constexpr const char* drain_reply_type = "gateway.drain.reply";

/// The path of the actor that relays calls (gateway.call).
inline constexpr const char* calls_path = "gateway/calls";
/// The path of the HTTP listener (gateway.drain).
inline constexpr const char* http_path = "gateway/http";

/// An envelope for the actor at `path`, with the time it has to answer.
struct call_request {
  std::string path;
  std::string type;
  std::string body;
  uint64_t timeout_ms = 0;
  TROUPE_FIELDS(path, type, body, timeout_ms)
};

struct drain_request {
  uint64_t timeout_ms = 0;
  TROUPE_FIELDS(timeout_ms)
};

struct drain_reply {
  /// No request was in flight any more within the time given.
  bool drained = false;
  /// Requests still in flight when it answered.
  uint64_t in_flight = 0;
  TROUPE_FIELDS(drained, in_flight)
};

}  // namespace troupe::gateway
