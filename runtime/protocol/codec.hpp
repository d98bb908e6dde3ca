#pragma once

// Encoding and decoding of message bodies, in one place. Decoding is where
// untrusted bytes meet typed code: it is bounded (size, depth, element
// counts) and every failure becomes an `error` naming what was wrong.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <msgpack.hpp>

#include "runtime/error.hpp"
#include "runtime/protocol/envelope.hpp"
#include "runtime/protocol/fields.hpp"

namespace troupe {

/// The body of an `error` reply.
struct error_body {
  std::string code;
  std::string message;
  TROUPE_FIELDS(code, message)
};

/// An empty body, for messages that carry no fields.
struct empty_body {
  template <class Packer>
  void msgpack_pack(Packer& pk) const {
    pk.pack_map(0);
  }
  /// Accepts any map (fields it does not know are skipped) or nil.
  void troupe_read(detail::msgpack_reader& r);
};

namespace detail {

/// msgpack output stream appending to a std::string (no 8 KiB sbuffer).
struct string_sink {
  std::string* out;
  void write(const char* data, size_t size) {
    // Headers and small values come one byte at a time; push_back is inline.
    if (size == 1) {
      out->push_back(*data);
    } else {
      out->append(data, size);
    }
  }
};

/// Why a body that is empty or over the size limit is refused.
[[nodiscard]] error body_size_error(std::string_view bytes, const decode_limits& limits);

/// The error for a body that is empty or over the size limit, if it is. The
/// test is inline: every decode makes it.
[[nodiscard]] inline std::optional<error> check_body_size(std::string_view bytes,
                                                          const decode_limits& limits) {
  if (!bytes.empty() && bytes.size() <= limits.body_bytes_max) {
    return std::nullopt;
  }
  return body_size_error(bytes, limits);
}

/// Trailing-bytes error for a body with `left` bytes after its value.
[[nodiscard]] error trailing_bytes(size_t left);

/// Parses `bytes` into a generic msgpack object in `zone`, enforcing
/// `limits` (for bodies of no fixed type, such as the gateway's).
[[nodiscard]] expected<msgpack::object> parse(std::string_view bytes, msgpack::zone& zone,
                                              const decode_limits& limits);

}  // namespace detail

/// Encodes `value` as msgpack.
template <class T>
[[nodiscard]] std::string encode(const T& value) {
  // No reserve: small bodies fit the string's inline buffer and never
  // touch the heap; larger ones grow geometrically.
  std::string out;
  detail::string_sink sink{&out};
  msgpack::pack(sink, value);
  return out;
}

/// Decodes a body into `T`. Unknown map keys are skipped and missing ones keep
/// their defaults; anything else that does not fit is a `bad_body` error
/// (`too_large` for a body, nesting or container over its limit).
template <class T>
[[nodiscard]] expected<T> decode(std::string_view bytes, const decode_limits& limits = {}) {
  if (auto refused = detail::check_body_size(bytes, limits)) {
    return std::move(*refused);
  }
  T value{};
  try {
    detail::msgpack_reader reader(bytes, limits);
    detail::read_value(reader, value);
    if (!reader.at_end()) {
      return detail::trailing_bytes(reader.left());
    }
  } catch (const detail::decode_failure& e) {
    return make_error(e.code, e.what());
  }
  return value;
}

/// A reply envelope of `type` carrying `body`.
template <class T>
[[nodiscard]] envelope make_envelope(std::string type, const T& body, uint64_t correlation_id = 0) {
  return envelope{std::move(type), encode(body), correlation_id};
}

/// An `error` envelope carrying `{code, message}`.
[[nodiscard]] envelope make_error_envelope(const error& err, uint64_t correlation_id = 0);

/// Reads the error out of an `error` envelope; a body that is not an error
/// body is itself reported as `internal`.
[[nodiscard]] error read_error(const envelope& reply);

}  // namespace troupe
