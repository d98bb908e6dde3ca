#include "runtime/protocol/reader.hpp"

#include <bit>

namespace troupe::detail {

namespace {

[[noreturn]] void truncated() {
  throw decode_failure(errc::bad_body, "body is truncated msgpack");
}

}  // namespace

uint8_t msgpack_reader::peek() const {
  if (data_ == end_) {
    truncated();
  }
  return *data_;
}

uint8_t msgpack_reader::next() {
  auto b = peek();
  ++data_;
  return b;
}

const uint8_t* msgpack_reader::take(size_t n) {
  if (left() < n) {
    truncated();
  }
  auto p = data_;
  data_ += n;
  return p;
}

uint64_t msgpack_reader::read_be(size_t n) {
  auto p = take(n);
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    v = (v << 8) | p[i];
  }
  return v;
}

size_t msgpack_reader::check_count(uint64_t n) {
  // Each element needs at least one byte, so a count beyond the bytes left
  // is a lie; refuse it before anything is reserved for it.
  if (n > limits_.elements_max) {
    throw decode_failure(errc::too_large, "body has a container of " + std::to_string(n) +
                                              " elements, over the limit of " +
                                              std::to_string(limits_.elements_max));
  }
  if (n > left()) {
    truncated();
  }
  return static_cast<size_t>(n);
}

std::string_view name_of(value_kind k) {
  switch (k) {
    case value_kind::nothing:
      return "nothing";
    case value_kind::nil:
      return "nil";
    case value_kind::boolean:
      return "bool";
    case value_kind::integer:
      return "int";
    case value_kind::floating:
      return "float";
    case value_kind::str:
      return "str";
    case value_kind::bin:
      return "bin";
    case value_kind::array:
      return "array";
    case value_kind::map:
      return "map";
    case value_kind::reserved:
      return "reserved byte";
    case value_kind::ext:
      return "ext";
  }
  return "ext";
}

void msgpack_reader::wrong_type(std::string_view expected) const {
  throw decode_failure(
      errc::bad_body,
      "expected " + std::string(expected) + ", got " + std::string(peek_type_name()), true);
}

bool msgpack_reader::read_nil() {
  if (peek() == 0xc0) {
    ++data_;
    return true;
  }
  return false;
}

bool msgpack_reader::read_bool() {
  auto b = peek();
  if (b != 0xc2 && b != 0xc3) {
    wrong_type("bool");
  }
  ++data_;
  return b == 0xc3;
}

int64_t msgpack_reader::read_int() {
  auto b = peek();
  if (b <= 0x7f) {
    ++data_;
    return b;
  }
  if (b >= 0xe0) {
    ++data_;
    return static_cast<int8_t>(b);
  }
  switch (b) {
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
      ++data_;
      auto v = read_be(size_t{1} << (b - 0xcc));
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        throw decode_failure(errc::bad_body, "integer out of range", true);
      }
      return static_cast<int64_t>(v);
    }
    case 0xd0:
      ++data_;
      return static_cast<int8_t>(read_be(1));
    case 0xd1:
      ++data_;
      return static_cast<int16_t>(read_be(2));
    case 0xd2:
      ++data_;
      return static_cast<int32_t>(read_be(4));
    case 0xd3:
      ++data_;
      return static_cast<int64_t>(read_be(8));
    default:
      wrong_type("int");
  }
}

uint64_t msgpack_reader::read_uint_slow() {
  auto b = peek();
  if (b <= 0x7f) {
    ++data_;
    return b;
  }
  if (b >= 0xcc && b <= 0xcf) {
    ++data_;
    return read_be(size_t{1} << (b - 0xcc));
  }
  if (b >= 0xe0 || (b >= 0xd0 && b <= 0xd3)) {
    auto v = read_int();
    if (v < 0) {
      throw decode_failure(errc::bad_body, "negative integer for an unsigned field", true);
    }
    return static_cast<uint64_t>(v);
  }
  wrong_type("int");
}

double msgpack_reader::read_double() {
  auto b = peek();
  if (b == 0xca) {
    ++data_;
    return static_cast<double>(std::bit_cast<float>(static_cast<uint32_t>(read_be(4))));
  }
  if (b == 0xcb) {
    ++data_;
    return std::bit_cast<double>(read_be(8));
  }
  if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) {
    return static_cast<double>(read_int());
  }
  wrong_type("float");
}

std::string_view msgpack_reader::read_str_slow() {
  auto b = peek();
  size_t n = 0;
  if (b >= 0xa0 && b <= 0xbf) {
    ++data_;
    n = b & 0x1fu;
  } else if (b >= 0xd9 && b <= 0xdb) {
    ++data_;
    n = read_be(size_t{1} << (b - 0xd9));
  } else {
    wrong_type("str");
  }
  auto p = take(n);
  return {reinterpret_cast<const char*>(p), n};
}

size_t msgpack_reader::read_map_header_slow() {
  auto b = peek();
  if (b >= 0x80 && b <= 0x8f) {
    ++data_;
    return check_count(b & 0x0fu);
  }
  if (b == 0xde || b == 0xdf) {
    ++data_;
    return check_count(read_be(b == 0xde ? 2 : 4));
  }
  wrong_type("map");
}

size_t msgpack_reader::read_array_header() {
  auto b = peek();
  if (b >= 0x90 && b <= 0x9f) {
    ++data_;
    return check_count(b & 0x0fu);
  }
  if (b == 0xdc || b == 0xdd) {
    ++data_;
    return check_count(read_be(b == 0xdc ? 2 : 4));
  }
  wrong_type("array");
}

void msgpack_reader::skip() {
  auto b = peek();
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
    ++data_;
    return;
  }
  if ((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb)) {
    (void)read_str();
    return;
  }
  if ((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf) {
    depth_guard guard(*this);
    for (size_t i = read_map_header(); i > 0; --i) {
      skip();
      skip();
    }
    return;
  }
  if ((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd) {
    depth_guard guard(*this);
    for (size_t i = read_array_header(); i > 0; --i) {
      skip();
    }
    return;
  }
  ++data_;
  switch (b) {
    case 0xc4:
    case 0xc5:
    case 0xc6:  // bin 8/16/32
      take(read_be(size_t{1} << (b - 0xc4)));
      return;
    case 0xc7:
    case 0xc8:
    case 0xc9:  // ext 8/16/32: length, type byte, data
      take(read_be(size_t{1} << (b - 0xc7)) + 1);
      return;
    case 0xca:
      take(4);
      return;
    case 0xcb:
      take(8);
      return;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
      take(size_t{1} << (b - 0xcc));
      return;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3:
      take(size_t{1} << (b - 0xd0));
      return;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:  // fixext 1/2/4/8/16: type byte + data
      take(1 + (size_t{1} << (b - 0xd4)));
      return;
    default:  // 0xc1, never used
      throw decode_failure(errc::bad_body, "body is not valid msgpack: reserved byte 0xc1");
  }
}

}  // namespace troupe::detail
