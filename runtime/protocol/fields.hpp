#pragma once

// TROUPE_FIELDS(a, b, c) declares a message struct's fields once. From that
// one list come the msgpack encoder (a map keyed by field name), the decoder
// (msgpack_reader straight into the fields: unknown keys skipped, missing
// keys keep their defaults, so old and new nodes interoperate) and the field
// names used in decode errors. Field names are at most 31 characters (a
// msgpack fixstr); the macro's own names start with `troupe_` and end in
// `_`, so a field may be called anything else.
//
//   struct echo_request {
//     std::string text;
//     TROUPE_FIELDS(text)
//   };

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include <msgpack.hpp>

#include "runtime/protocol/reader.hpp"

namespace troupe::detail {

constexpr size_t count_fields(std::string_view names) {
  size_t n = 1;
  for (char c : names) {
    n += (c == ',') ? 1 : 0;
  }
  return n;
}

constexpr bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\t';
}

constexpr std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_space(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

template <size_t N>
constexpr std::array<std::string_view, N> split_fields(std::string_view names) {
  std::array<std::string_view, N> out{};
  for (size_t i = 0; i < N; ++i) {
    auto comma = names.find(',');
    out[i] = trim(names.substr(0, comma));
    names = comma == std::string_view::npos ? std::string_view{} : names.substr(comma + 1);
  }
  return out;
}

/// Longest field name: its key is a msgpack fixstr (a one-byte header).
inline constexpr size_t field_name_max = 31;

/// A field's key as it is encoded: the fixstr header, then the name.
struct packed_key {
  std::array<char, field_name_max + 1> bytes{};
  uint32_t size = 0;
};

template <size_t N>
constexpr std::array<packed_key, N> pack_keys(const std::array<std::string_view, N>& names) {
  std::array<packed_key, N> keys{};
  for (size_t i = 0; i < N; ++i) {
    if (names[i].size() > field_name_max) {
      throw "TROUPE_FIELDS: a field name is longer than 31 characters";  // compile-time error
    }
    keys[i].bytes[0] = static_cast<char>(0xa0u | names[i].size());
    for (size_t j = 0; j < names[i].size(); ++j) {
      keys[i].bytes[j + 1] = names[i][j];
    }
    keys[i].size = static_cast<uint32_t>(names[i].size() + 1);
  }
  return keys;
}

/// Writes a map of `keys` to `values`; each key goes out in one write.
template <class Packer, class Tuple, size_t... Is>
void pack_fields(Packer& pk, const Tuple& values, const auto& keys, std::index_sequence<Is...>) {
  pk.pack_map(static_cast<uint32_t>(sizeof...(Is)));
  ((pk.pack_str_body(keys[Is].bytes.data(), keys[Is].size), pk.pack(std::get<Is>(values))), ...);
}

template <class Tuple, size_t... Is>
void read_fields(msgpack_reader& r, Tuple values, const auto& names, std::index_sequence<Is...>) {
  if (!r.next_is_map()) {
    throw decode_failure(errc::bad_body,
                         "body must be a map, got " + std::string(r.peek_type_name()));
  }
  const size_t entries = r.read_map_header();
  for (size_t i = 0; i < entries; ++i) {
    if (!r.next_is_str()) {
      throw decode_failure(errc::bad_body,
                           "map keys must be strings, got " + std::string(r.peek_type_name()));
    }
    const auto key = r.read_str();
    // Linear scan: message structs have few fields, and this allocates nothing.
    const bool known =
        ((key == names[Is] ? (read_field(r, std::get<Is>(values), names[Is]), true) : false) ||
         ...);
    if (!known) {
      r.skip();  // a field from a newer sender
    }
  }
}

}  // namespace troupe::detail

/// The packing half of TROUPE_FIELDS alone: for a view a sender packs from
/// bytes it does not own (a string_view member), in the wire form of the
/// struct it stands for; nothing decodes into it.
#define TROUPE_PACK_FIELDS(...)                                                      \
  static constexpr auto troupe_field_names() {                                       \
    constexpr size_t n = ::troupe::detail::count_fields(#__VA_ARGS__);               \
    return ::troupe::detail::split_fields<n>(#__VA_ARGS__);                          \
  }                                                                                  \
  template <class Packer>                                                            \
  void msgpack_pack(Packer& troupe_pk_) const {                                      \
    constexpr auto troupe_keys_ = ::troupe::detail::pack_keys(troupe_field_names()); \
    ::troupe::detail::pack_fields(                                                   \
        troupe_pk_, std::tie(__VA_ARGS__), troupe_keys_,                             \
        std::make_index_sequence<std::tuple_size_v<decltype(troupe_keys_)>>{});      \
  }

#define TROUPE_FIELDS(...)                                                       \
  TROUPE_PACK_FIELDS(__VA_ARGS__)                                                \
  void troupe_read(::troupe::detail::msgpack_reader& troupe_r_) {                \
    constexpr auto troupe_names_ = troupe_field_names();                         \
    ::troupe::detail::read_fields(                                               \
        troupe_r_, std::tie(__VA_ARGS__), troupe_names_,                         \
        std::make_index_sequence<std::tuple_size_v<decltype(troupe_names_)>>{}); \
  }
