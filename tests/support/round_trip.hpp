#pragma once

// Checks that a message type round-trips through msgpack with all its
// fields: decoding its encoding and encoding that again gives the same
// bytes (every field is in the encoding, by name).

#include <catch2/catch.hpp>

#include "runtime/protocol/codec.hpp"

namespace troupe::test {

template <class T>
void round_trips(const T& value) {
  const auto bytes = encode(value);
  auto back = decode<T>(bytes, decode_limits{.body_bytes_max = 16u << 20});
  REQUIRE(back);
  CHECK(encode(*back) == bytes);
}

}  // namespace troupe::test
