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

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <stdexcept>
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

/// Part of a string, kept together with the string: a streamed chunk as it
/// came, inside the body of its message, so that the bytes go from that
/// message to the socket without a copy. An offset, not a view: a moved
/// string keeps its bytes where they were only when they are on the heap.
struct body_slice {
  std::string storage;
  std::size_t offset = 0;
  std::size_t size = 0;

  [[nodiscard]] std::string_view view() const { return {storage.data() + offset, size}; }
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
  /// The chunk's bytes and what holds them (its message's body), handed
  /// over.
  virtual void stream(uint64_t id, body_slice chunk) = 0;
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

/// Builds an http.chunk body in place, for a reader that writes a stream's
/// bytes straight into the message that carries them (one copy, out of its
/// read buffer): the bytes go behind room left for the header, which take()
/// fills in. The result is chunk_view's wire form with the string's length
/// always in four bytes (msgpack's str 32, which readers take for any
/// length), so the header's size is known before the bytes are.
class chunk_packer {
 public:
  chunk_packer() { body_.resize(header_bytes); }
  chunk_packer(const chunk_packer&) = delete;
  chunk_packer& operator=(const chunk_packer&) = delete;
  /// The packer moved from starts over, empty.
  chunk_packer(chunk_packer&& other) noexcept : body_(std::move(other.body_)) {
    other.body_.assign(header_bytes, '\0');
  }
  chunk_packer& operator=(chunk_packer&& other) noexcept {
    body_ = std::move(other.body_);
    other.body_.assign(header_bytes, '\0');
    return *this;
  }
  ~chunk_packer() = default;

  /// Room for `n` more bytes, so that appending them allocates at most once.
  void reserve(std::size_t n) { body_.reserve(body_.size() + n); }
  void append(std::string_view bytes) { body_.append(bytes); }
  [[nodiscard]] std::string_view bytes() const {
    return std::string_view(body_).substr(header_bytes);
  }
  [[nodiscard]] std::size_t size() const { return body_.size() - header_bytes; }
  /// Empty again, keeping its room.
  void clear() { body_.resize(header_bytes); }

  /// The packed body; the packer starts over, empty. A message holds one
  /// read's bytes: far below the 4 GiB that the header can say.
  [[nodiscard]] std::string take() {
    if (size() > UINT32_MAX) {
      throw std::length_error("an http.chunk holds at most 4 GiB");
    }
    char* h = body_.data();
    h[0] = static_cast<char>(0x81);  // a map of one field
    std::memcpy(h + 1, key.bytes.data(), key.size);
    h[1 + key.size] = static_cast<char>(0xdb);  // str 32
    const auto n = static_cast<uint32_t>(size());
    for (int i = 0; i < 4; ++i) {
      h[2 + key.size + i] = static_cast<char>((n >> (8 * (3 - i))) & 0xffu);
    }
    std::string out = std::move(body_);
    body_.assign(header_bytes, '\0');
    return out;
  }

 private:
  static_assert(chunk_view::troupe_field_names().size() == 1);
  static constexpr detail::packed_key key = detail::pack_keys(chunk_view::troupe_field_names())[0];
  static constexpr std::size_t header_bytes = 1 + key.size + 5;
  std::string body_;
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
