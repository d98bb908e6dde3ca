#include "runtime/protocol/codec.hpp"

namespace troupe {

namespace detail {

error body_size_error(std::string_view bytes, const decode_limits& limits) {
  if (bytes.empty()) {
    return make_error(errc::bad_body, "body is empty (an empty message is the map {})");
  }
  return make_error(errc::too_large, "body of " + std::to_string(bytes.size()) +
                                         " bytes exceeds the limit of " +
                                         std::to_string(limits.body_bytes_max));
}

error trailing_bytes(size_t left) {
  return make_error(errc::bad_body, "body has " + std::to_string(left) +
                                        " trailing bytes after the first msgpack value");
}

expected<msgpack::object> parse(std::string_view bytes, msgpack::zone& zone,
                                const decode_limits& limits) {
  if (auto refused = check_body_size(bytes, limits)) {
    return std::move(*refused);
  }
  const msgpack::unpack_limit limit(limits.elements_max, limits.elements_max, limits.body_bytes_max,
                                    limits.body_bytes_max, limits.body_bytes_max, limits.depth_max);
  size_t offset = 0;
  try {
    auto object =
        msgpack::unpack(zone, bytes.data(), bytes.size(), offset, nullptr, nullptr, limit);
    if (offset != bytes.size()) {
      return trailing_bytes(bytes.size() - offset);
    }
    return object;
  } catch (const msgpack::insufficient_bytes&) {
    return make_error(errc::bad_body, "body is truncated msgpack");
  } catch (const msgpack::depth_size_overflow&) {
    return make_error(errc::too_large,
                      "body nests deeper than " + std::to_string(limits.depth_max) + " levels");
  } catch (const msgpack::size_overflow&) {
    return make_error(errc::too_large, "body has a container or string over its size limit");
  } catch (const msgpack::parse_error& e) {
    return make_error(errc::bad_body, std::string("body is not valid msgpack: ") + e.what());
  } catch (const std::bad_alloc&) {
    return make_error(errc::too_large, "body needs more memory than it may use");
  }
}

}  // namespace detail

void empty_body::troupe_read(detail::msgpack_reader& r) {
  if (r.read_nil()) {
    return;
  }
  if (r.peek_kind() != detail::value_kind::map) {
    throw detail::decode_failure(errc::bad_body,
                                 "body must be a map, got " + std::string(r.peek_type_name()));
  }
  for (size_t i = r.read_map_header(); i > 0; --i) {
    r.skip();
    r.skip();
  }
}

envelope make_error_envelope(const error& err, uint64_t correlation_id) {
  return make_envelope(error_type, error_body{std::string(to_string(err.code)), err.message},
                       correlation_id);
}

error read_error(const envelope& reply) {
  auto body = decode<error_body>(reply.body);
  if (!body) {
    return make_error(errc::internal, "error reply with an unreadable body: " + body.err().message);
  }
  return make_error(errc_from_string(body->code), std::move(body->message));
}

}  // namespace troupe
