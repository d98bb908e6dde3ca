#pragma once

// What the LLM family's actors and threads say to each other. Every type
// has a msgpack encoding (TROUPE_FIELDS); in one process they are moved
// without encoding.
//
//   router -> provider    llm.call {call}, sent as the requester (the
//                         provider streams the answer straight to it as
//                         http.* messages); llm.cancel {id, cancelled}
//                         when nobody waits for the answer any more (or
//                         somebody does again)
//   upstream thread -> provider   llm.upstream {upstream_result}: how one
//                         try ended (a stream's bytes went to the requester)
//   provider -> router    llm.done {call_result}: how the call ended, after
//                         its retries; llm.pause (atom, "provider/model", ms)
//   parse pool -> router  llm.prepared {prepared}: a large body checked
//
// A request's state stays in the router; a call's in its provider; a try's
// stream state on its upstream connection's strand. Each hands the next
// what it needs by value.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/node/http_exchange.hpp"
#include "runtime/protocol/fields.hpp"

namespace troupe::llm::msg {

inline constexpr const char* call_type = "llm.call";
inline constexpr const char* cancel_type = "llm.cancel";
inline constexpr const char* upstream_type = "llm.upstream";
inline constexpr const char* done_type = "llm.done";
inline constexpr const char* prepared_type = "llm.prepared";
/// The readiness probe (/readyz): a provider answers upstream_health.
inline constexpr const char* health_type = "health";

struct usage_counts {
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cache_creation_input_tokens = 0;
  int64_t cache_read_input_tokens = 0;
  TROUPE_FIELDS(input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens)
};

/// One step of a request's chain, for its provider to run (with retries).
struct call {
  /// The router's name for the request; every answer about it carries it.
  uint64_t id = 0;
  /// The model to ask; the body may name another (the client's).
  std::string model;
  /// The model the body names.
  std::string body_model;
  /// "/v1/messages" or "/v1/messages/count_tokens".
  std::string path;
  std::string body;
  bool stream = false;
  /// The answer is kept (response cache, identical requests waiting): a
  /// stream's bytes are captured and its message assembled.
  bool keep = false;
  /// The client's anthropic-version and anthropic-beta ("" if none).
  std::string version;
  std::string beta;
  /// x-troupe-cache on the answer: "miss" or "bypass".
  std::string cache_label;
  /// The requester's correlation id (its `http.request`'s), which the
  /// answers it streams carry back.
  uint64_t correlation = 0;
  TROUPE_FIELDS(id, model, body_model, path, body, stream, keep, version, beta, cache_label,
                correlation)
};

/// Whether the answer to `id` is still wanted: a client that left alone
/// cancels; a request that joins it before the call ended revokes that.
struct cancel {
  uint64_t id = 0;
  bool cancelled = true;
  TROUPE_FIELDS(id, cancelled)
};

/// What a streamed 200 left behind, once it ended.
struct stream_summary {
  /// message_stop arrived and no error event.
  bool complete = false;
  /// The events as sent (only when the call keeps its answer and they fit
  /// in cache.value_bytes_max).
  std::string captured;
  bool overflow = false;
  /// The assembled message as JSON, when complete but not captured.
  std::string message;
  /// The stream's error event, if any.
  std::string error_type;
  std::string error_message;
  TROUPE_FIELDS(complete, captured, overflow, message, error_type, error_message)
};

/// How one try at the upstream ended (from its connection's thread).
struct upstream_result {
  uint64_t id = 0;
  /// 0 when no response arrived (see `error`).
  int32_t status = 0;
  std::vector<http_msg::header> headers;
  /// A whole answer's body (not a stream's).
  std::string body;
  std::string error;
  bool timed_out = false;
  bool delivered = false;
  bool cancelled = false;
  bool not_sent = false;
  int64_t queued_ms = 0;
  /// Microseconds from the try's start to its end, or to a stream's head.
  int64_t took_us = 0;
  /// A stream began: its head reached the requester.
  bool committed = false;
  /// The requester has its answer (a stream's head, or a whole 200).
  bool answered = false;
  /// A whole 200's body is JSON (checked once, on the upstream thread).
  bool json_ok = false;
  usage_counts usage;
  stream_summary stream;
  TROUPE_FIELDS(id, status, headers, body, error, timed_out, delivered, cancelled, not_sent,
                queued_ms, took_us, committed, answered, json_ok, usage, stream)
};

/// How a call ended.
enum class outcome : uint8_t {
  /// 200: a whole body, or a stream already sent to the client.
  ok = 0,
  /// The upstream refused the request itself (4xx, spend limit): pass its
  /// answer on; another upstream would refuse it too.
  refused = 1,
  /// Overloaded, down, breaker open, retries spent: try the next step.
  unavailable = 2,
};

struct call_result {
  uint64_t id = 0;
  /// An `outcome`.
  uint8_t outcome = 2;
  /// Why it failed, for logs and the final error.
  std::string reason;
  /// Retries made at the provider.
  uint64_t retries = 0;
  upstream_result last;
  TROUPE_FIELDS(id, outcome, reason, retries, last)
};

/// A request body checked off the router (or on it): what the router keeps
/// of it, or the error answer.
struct prepared {
  uint64_t id = 0;
  /// 0 when the request is good; else the answer's status and body.
  int32_t error_status = 0;
  std::string error_body;
  std::string model;
  bool stream = false;
  double temperature = 1.0;
  int64_t max_tokens = 0;
  /// The bytes to forward: the client's own unless the body changed.
  std::string body_text;
  std::string key;
  bool cacheable = false;
  /// A cache_mode.
  uint8_t mode = 0;
  std::vector<std::string> deps;
  std::string agent;
  std::string persona;
  int32_t priority = 1;
  TROUPE_FIELDS(id, error_status, error_body, model, stream, temperature, max_tokens, body_text,
                key, cacheable, mode, deps, agent, persona, priority)
};

/// A provider's upstream as /readyz shows it.
struct upstream_health {
  std::string provider;
  /// Connections open and calls waiting for one (llm.connections_max).
  uint64_t connections = 0;
  uint64_t waiting = 0;
  /// Calls this provider runs now.
  uint64_t calls = 0;
  /// Models whose breaker is "open" or "half_open" (closed ones are not
  /// listed).
  std::map<std::string, std::string> breakers;
  TROUPE_FIELDS(provider, connections, waiting, calls, breakers)
};

}  // namespace troupe::llm::msg
