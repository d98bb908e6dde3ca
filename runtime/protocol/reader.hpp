#pragma once

// A bounded, allocation-free msgpack reader that decodes straight into plain
// structs (no intermediate object tree). Every read checks the bytes left,
// the nesting depth and container sizes against decode_limits; a mismatch
// throws decode_failure, which decode<T> turns into an error value.

#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "runtime/error.hpp"

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

namespace detail {

/// Thrown inside decoding only; decode<T> turns it into an error value.
struct decode_failure : std::runtime_error {
  decode_failure(errc c, const std::string& what, bool mismatch = false)
      : std::runtime_error(what), code(c), type_mismatch(mismatch) {}
  errc code;
  /// The value is well-formed but not of the field's type (or range).
  bool type_mismatch;
};

/// The msgpack type of a value, as far as errors name it.
enum class value_kind : uint8_t {
  nothing,
  nil,
  boolean,
  integer,
  floating,
  str,
  bin,
  array,
  map,
  ext,
  reserved
};

/// "int", "str", ...: how errors name a kind.
[[nodiscard]] std::string_view name_of(value_kind k);

/// Whether `b` starts a value of that kind: msgpack's byte ranges, in one
/// place (fixmap 0x80-0x8f, map16/32; fixarray 0x90-0x9f, array16/32;
/// fixstr 0xa0-0xbf, str8/16/32).
[[nodiscard]] constexpr bool starts_map(uint8_t b) {
  return (b & 0xf0) == 0x80 || b == 0xde || b == 0xdf;
}
[[nodiscard]] constexpr bool starts_array(uint8_t b) {
  return (b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd;
}
[[nodiscard]] constexpr bool starts_str(uint8_t b) {
  return (b & 0xe0) == 0xa0 || (b >= 0xd9 && b <= 0xdb);
}

/// The kind of the value whose first byte is `b`.
[[nodiscard]] constexpr value_kind kind_of(uint8_t b) {
  if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) {
    return value_kind::integer;
  }
  if (starts_map(b)) {
    return value_kind::map;
  }
  if (starts_array(b)) {
    return value_kind::array;
  }
  if (starts_str(b)) {
    return value_kind::str;
  }
  switch (b) {
    case 0xc0:
      return value_kind::nil;
    case 0xc2:
    case 0xc3:
      return value_kind::boolean;
    case 0xc4:
    case 0xc5:
    case 0xc6:
      return value_kind::bin;
    case 0xca:
    case 0xcb:
      return value_kind::floating;
    case 0xc1:
      return value_kind::reserved;
    default:
      return value_kind::ext;
  }
}

class msgpack_reader {
 public:
  msgpack_reader(std::string_view bytes, const decode_limits& limits)
      : data_(reinterpret_cast<const uint8_t*>(bytes.data())),
        end_(data_ + bytes.size()),
        limits_(limits) {}

  [[nodiscard]] bool at_end() const { return data_ == end_; }
  [[nodiscard]] size_t left() const { return static_cast<size_t>(end_ - data_); }

  /// Kind of the next value (`nothing` at the end).
  [[nodiscard]] value_kind peek_kind() const {
    return data_ == end_ ? value_kind::nothing : kind_of(*data_);
  }
  /// Whether the next value is a map / a string (cheaper than peek_kind).
  [[nodiscard]] bool next_is_map() const { return data_ != end_ && starts_map(*data_); }
  [[nodiscard]] bool next_is_str() const { return data_ != end_ && starts_str(*data_); }
  /// Where the reader is: kind_at() names what was there after a failed read.
  [[nodiscard]] const uint8_t* position() const { return data_; }
  [[nodiscard]] value_kind kind_at(const uint8_t* at) const {
    return at == end_ ? value_kind::nothing : kind_of(*at);
  }
  /// Name of the msgpack type of the next value ("int", "str", ...).
  [[nodiscard]] std::string_view peek_type_name() const { return name_of(peek_kind()); }

  [[nodiscard]] bool read_nil();  // true (and consumed) if the next value is nil
  bool read_bool();
  int64_t read_int();
  // The common one-byte forms are read inline; the rest out of line.
  uint64_t read_uint() {
    if (data_ != end_ && *data_ <= 0x7f) {
      return *data_++;
    }
    return read_uint_slow();
  }
  double read_double();
  std::string_view read_str() {
    if (data_ != end_ && (*data_ & 0xe0) == 0xa0) {
      const size_t n = *data_ & 0x1fu;
      if (n < left()) {
        auto p = reinterpret_cast<const char*>(data_ + 1);
        data_ += n + 1;
        return {p, n};
      }
    }
    return read_str_slow();
  }
  /// Map or array header: the element count, checked against the limits.
  size_t read_map_header() {
    if (data_ != end_ && (*data_ & 0xf0) == 0x80) {
      const size_t n = *data_ & 0x0fu;
      if (n <= limits_.elements_max && n < left()) {
        ++data_;
        return n;
      }
    }
    return read_map_header_slow();
  }
  size_t read_array_header();
  /// Skips one value of any type (unknown fields).
  void skip();

  /// Tracks nesting; throws too_large past depth_max.
  struct depth_guard {
    explicit depth_guard(msgpack_reader& r) : r_(r) {
      if (++r_.depth_ > r_.limits_.depth_max) {
        throw decode_failure(errc::too_large, "body nests deeper than " +
                                                  std::to_string(r_.limits_.depth_max) + " levels");
      }
    }
    ~depth_guard() { --r_.depth_; }
    depth_guard(const depth_guard&) = delete;
    depth_guard& operator=(const depth_guard&) = delete;

   private:
    msgpack_reader& r_;
  };

  [[noreturn]] void wrong_type(std::string_view expected) const;

 private:
  uint8_t peek() const;
  uint8_t next();
  const uint8_t* take(size_t n);
  uint64_t read_be(size_t n);
  size_t check_count(uint64_t n);
  uint64_t read_uint_slow();
  std::string_view read_str_slow();
  size_t read_map_header_slow();

  const uint8_t* data_;
  const uint8_t* end_;
  decode_limits limits_;
  size_t depth_ = 0;
};

// --- reading values of each supported type ----------------------------------

inline void read_value(msgpack_reader& r, bool& out) {
  out = r.read_bool();
}

template <class T>
requires(std::is_integral_v<T> && !std::is_same_v<T, bool>) void read_value(msgpack_reader& r,
                                                                            T& out) {
  if constexpr (std::is_signed_v<T>) {
    auto v = r.read_int();
    if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
      throw decode_failure(errc::bad_body, "integer out of range", true);
    }
    out = static_cast<T>(v);
  } else {
    auto v = r.read_uint();
    if (v > std::numeric_limits<T>::max()) {
      throw decode_failure(errc::bad_body, "integer out of range", true);
    }
    out = static_cast<T>(v);
  }
}

template <class T>
requires std::is_floating_point_v<T>
void read_value(msgpack_reader& r, T& out) {
  out = static_cast<T>(r.read_double());
}

inline void read_value(msgpack_reader& r, std::string& out) {
  out = r.read_str();
}

/// A view into the body being decoded: valid only as long as that body.
inline void read_value(msgpack_reader& r, std::string_view& out) {
  out = r.read_str();
}

template <class T>
void read_value(msgpack_reader& r, std::vector<T>& out);
template <class T>
void read_value(msgpack_reader& r, std::map<std::string, T>& out);
template <class T>
void read_value(msgpack_reader& r, std::optional<T>& out);

/// Structs declared with TROUPE_FIELDS (or with their own troupe_read).
template <class T>
requires requires(T& t, msgpack_reader& r) {
  t.troupe_read(r);
}
void read_value(msgpack_reader& r, T& out) {
  msgpack_reader::depth_guard guard(r);
  out.troupe_read(r);
}

template <class T>
void read_value(msgpack_reader& r, std::vector<T>& out) {
  msgpack_reader::depth_guard guard(r);
  const size_t n = r.read_array_header();
  out.clear();
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    read_value(r, out.emplace_back());
  }
}

template <class T>
void read_value(msgpack_reader& r, std::map<std::string, T>& out) {
  msgpack_reader::depth_guard guard(r);
  const size_t n = r.read_map_header();
  out.clear();
  for (size_t i = 0; i < n; ++i) {
    std::string key(r.read_str());
    read_value(r, out[key]);
  }
}

template <class T>
void read_value(msgpack_reader& r, std::optional<T>& out) {
  if (r.read_nil()) {
    out.reset();
    return;
  }
  read_value(r, out.emplace());
}

/// Reads one named field, naming it in the error when its value does not fit:
/// "field 'text' has the wrong type (int)" when the value itself is of
/// another type; "field 'ids': expected int, got str" when an element inside
/// it is, or "field 'port': integer out of range" (the reader stops at the
/// value it refused, so the two cases are told apart by where it stopped).
template <class Field>
void read_field(msgpack_reader& r, Field& field, std::string_view name) {
  const auto* at = r.position();
  try {
    read_value(r, field);
  } catch (const decode_failure& e) {
    if (!e.type_mismatch) {
      throw;  // truncation, limits, or a nested field's own message
    }
    if (r.position() == at) {
      throw decode_failure(errc::bad_body, "field '" + std::string(name) +
                                               "' has the wrong type (" +
                                               std::string(name_of(r.kind_at(at))) + ")");
    }
    throw decode_failure(errc::bad_body, "field '" + std::string(name) + "': " + e.what());
  }
}

}  // namespace detail
}  // namespace troupe
