#pragma once

// An HTTP exchange that a family answers itself, possibly as a stream (the
// LLM gateway's /v1/messages). It travels as messages: the connection's
// exchange actor (actors/gateway/exchange_actor) sends the request to the
// family's actor, which answers that actor by message; the exchange actor
// hands each answer to its connection through an `exchange_sink`.
//
//   edge -> family   http.request {method, target, headers, body, client}
//                    (a request; answered at once with http.request.reply {}
//                    once taken), http.gone {} when the client left
//   family -> edge   http.reply {status, headers, bytes}, or
//                    http.head {status, headers}, http.chunk {bytes}...,
//                    http.end {}; http.dropped {} when the family let go of
//                    the exchange (unanswered, the edge answers 500)
//
// Every message the family sends the requester carries, as its correlation
// id, the one its http.request carried: a requester whose exchanges follow
// one another (an agent's model calls, a connection's requests) tells the
// one it waits for from what is left of one it let go of.

#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/protocol/fields.hpp"

namespace troupe {

using http_headers = std::vector<std::pair<std::string, std::string>>;

/// A header name in lower case (names are ASCII; no locale lookups).
[[nodiscard]] inline std::string lower_name(std::string_view name) {
  std::string out(name);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c + ('a' - 'A'));
    }
  }
  return out;
}

/// The fields of a parsed HTTP head (a Beast message: fields with
/// name_string() and value()) as headers, names lower-cased.
template <class Fields>
[[nodiscard]] http_headers lowered_headers(const Fields& fields) {
  http_headers out;
  out.reserve(static_cast<size_t>(std::distance(fields.begin(), fields.end())));
  for (const auto& field : fields) {
    const auto name = field.name_string();
    const auto value = field.value();
    out.emplace_back(lower_name({name.data(), name.size()}),
                     std::string(value.data(), value.size()));
  }
  return out;
}

struct exchange_request {
  std::string method;
  std::string target;
  /// Every request header, names lower-cased.
  http_headers headers;
  std::string body;
  /// Who is asking, for the ledger and the limiter's fairness: a label
  /// derived from the credential, never the credential itself.
  std::string client;

  [[nodiscard]] std::string_view header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) {
        return value;
      }
    }
    return {};
  }
};

/// The connection's side of its exchanges, as its exchange actor sees it:
/// called only on the connection's thread (the actor runs there), in the
/// order the answers' messages came, each call naming its exchange (a
/// connection has one at a time; what comes late for an earlier one is the
/// connection's to ignore). Exactly one of reply() or begin_stream() ...
/// end_stream() answers an exchange; abandon() says its family let go of it
/// without (fully) answering.
class exchange_sink {
 public:
  virtual ~exchange_sink() = default;
  /// A whole response.
  virtual void reply(uint64_t id, int status, http_headers headers, std::string body) = 0;
  /// A streamed response (chunked): the head now, then chunks, then the end.
  virtual void begin_stream(uint64_t id, int status, http_headers headers) = 0;
  /// `chunk` is valid for the call only.
  virtual void stream(uint64_t id, std::string_view chunk) = 0;
  virtual void end_stream(uint64_t id) = 0;
  /// Nothing more comes for `id`: a request never answered gets a 500, a
  /// stream never ended an error event and its end.
  virtual void abandon(uint64_t id) = 0;
};

namespace http_msg {

inline constexpr const char* request_type = "http.request";
inline constexpr const char* gone_type = "http.gone";
inline constexpr const char* reply_type = "http.reply";
inline constexpr const char* head_type = "http.head";
inline constexpr const char* chunk_type = "http.chunk";
inline constexpr const char* end_type = "http.end";
inline constexpr const char* dropped_type = "http.dropped";

struct header {
  std::string name;
  std::string value;
  TROUPE_FIELDS(name, value)
};

struct request {
  std::string method;
  std::string target;
  std::vector<header> headers;
  std::string body;
  std::string client;
  TROUPE_FIELDS(method, target, headers, body, client)
};

struct reply {
  int32_t status = 0;
  std::vector<header> headers;
  std::string bytes;
  TROUPE_FIELDS(status, headers, bytes)
};

struct head {
  int32_t status = 0;
  std::vector<header> headers;
  TROUPE_FIELDS(status, headers)
};

struct chunk {
  std::string bytes;
  TROUPE_FIELDS(bytes)
};

/// A chunk without a string of its own: packed straight from bytes the
/// sender does not own (an I/O thread's read buffer), and decoded as a view
/// into the body it came in (valid while that body is), so that neither end
/// copies the bytes to pass them on. The wire form of `chunk`.
struct chunk_view {
  std::string_view bytes;
  TROUPE_FIELDS(bytes)
};

[[nodiscard]] inline std::vector<header> to_fields(http_headers headers) {
  std::vector<header> out;
  out.reserve(headers.size());
  for (auto& [name, value] : headers) {
    out.push_back(header{std::move(name), std::move(value)});
  }
  return out;
}

[[nodiscard]] inline http_headers to_headers(std::vector<header> fields) {
  http_headers out;
  out.reserve(fields.size());
  for (auto& f : fields) {
    out.emplace_back(std::move(f.name), std::move(f.value));
  }
  return out;
}

[[nodiscard]] inline request to_message(exchange_request r) {
  return request{std::move(r.method), std::move(r.target), to_fields(std::move(r.headers)),
                 std::move(r.body), std::move(r.client)};
}

[[nodiscard]] inline exchange_request from_message(request r) {
  return exchange_request{std::move(r.method), std::move(r.target),
                          to_headers(std::move(r.headers)), std::move(r.body), std::move(r.client)};
}

}  // namespace http_msg

}  // namespace troupe
