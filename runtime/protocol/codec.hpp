#pragma once

// Encoding and decoding of message bodies, in one place. Decoding is where
// untrusted bytes meet typed code: it is bounded (size, depth, element
// counts) and every failure becomes an `error` naming what was wrong.

#include <cstddef>
#include <string>
#include <string_view>

#include <msgpack.hpp>

#include "runtime/error.hpp"
#include "runtime/protocol/envelope.hpp"
#include "runtime/protocol/fields.hpp"

namespace troupe {

/// Bounds on a body being decoded. Every bound is a defence against a
/// hostile or broken sender making a receiver allocate without limit.
struct decode_limits {
  /// Largest body accepted.
  size_t body_bytes_max = 1u << 20;
  /// Deepest nesting of maps and arrays.
  size_t depth_max = 32;
  /// Most elements in one array or entries in one map.
  size_t elements_max = 65536;
};

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
  void msgpack_unpack(const msgpack::object& o);
};

namespace detail {

/// msgpack output stream appending to a std::string (no 8 KiB sbuffer).
struct string_sink {
  std::string* out;
  void write(const char* data, size_t size) { out->append(data, size); }
};

/// Parses `bytes` into `zone`, enforcing `limits`.
[[nodiscard]] expected<msgpack::object> parse(std::string_view bytes, msgpack::zone& zone,
                                              const decode_limits& limits);

}  // namespace detail

/// Encodes `value` as msgpack.
template <class T>
[[nodiscard]] std::string encode(const T& value) {
  std::string out;
  out.reserve(64);
  detail::string_sink sink{&out};
  msgpack::pack(sink, value);
  return out;
}

/// Decodes a body into `T`. Unknown map keys are skipped and missing ones keep
/// their defaults; anything else that does not fit is a `bad_body` error
/// (`too_large` for a body over the limit).
template <class T>
[[nodiscard]] expected<T> decode(std::string_view bytes, const decode_limits& limits = {}) {
  // 512 bytes covers small messages in one chunk; larger bodies grow the zone.
  msgpack::zone zone(512);
  auto parsed = detail::parse(bytes, zone, limits);
  if (!parsed) {
    return std::move(parsed).err();
  }
  T value{};
  try {
    parsed->convert(value);
  } catch (const detail::field_error& e) {
    return make_error(errc::bad_body, e.what());
  } catch (const msgpack::type_error&) {
    return make_error(errc::bad_body, "body does not have the shape of this message type");
  } catch (const std::bad_cast&) {
    return make_error(errc::bad_body, "body does not have the shape of this message type");
  }
  return value;
}

/// A reply envelope of `type` carrying `body`.
template <class T>
[[nodiscard]] envelope make_envelope(std::string type, const T& body, uint64_t correlation_id = 0) {
  return envelope{std::move(type), encode(body), correlation_id, {}};
}

/// An `error` envelope carrying `{code, message}`.
[[nodiscard]] envelope make_error_envelope(const error& err, uint64_t correlation_id = 0);

/// Reads the error out of an `error` envelope; a body that is not an error
/// body is itself reported as `internal`.
[[nodiscard]] error read_error(const envelope& reply);

}  // namespace troupe
