#pragma once

// TROUPE_FIELDS(a, b, c) declares a message struct's fields once. From that
// one list come the msgpack encoder (a map keyed by field name), the decoder
// (msgpack_reader straight into the fields: unknown keys skipped, missing
// keys keep their defaults, so old and new nodes interoperate) and the field
// names used in decode errors.
//
//   struct echo_request {
//     std::string text;
//     TROUPE_FIELDS(text)
//   };

#include <array>
#include <cstddef>
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

template <class Packer, class Tuple, size_t... Is>
void pack_fields(Packer& pk, const Tuple& values, const auto& names, std::index_sequence<Is...>) {
  pk.pack_map(static_cast<uint32_t>(sizeof...(Is)));
  ((pk.pack_str(static_cast<uint32_t>(names[Is].size())),
    pk.pack_str_body(names[Is].data(), static_cast<uint32_t>(names[Is].size())),
    pk.pack(std::get<Is>(values))),
   ...);
}

template <class Tuple, size_t... Is>
void read_fields(msgpack_reader& r, Tuple values, const auto& names, std::index_sequence<Is...>) {
  if (r.peek_kind() != value_kind::map) {
    throw decode_failure(errc::bad_body,
                         "body must be a map, got " + std::string(r.peek_type_name()));
  }
  const size_t entries = r.read_map_header();
  for (size_t i = 0; i < entries; ++i) {
    if (r.peek_kind() != value_kind::str) {
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

#define TROUPE_FIELDS(...)                                                   \
  static constexpr auto troupe_field_names() {                               \
    constexpr size_t n = ::troupe::detail::count_fields(#__VA_ARGS__);       \
    return ::troupe::detail::split_fields<n>(#__VA_ARGS__);                  \
  }                                                                          \
  template <class Packer>                                                    \
  void msgpack_pack(Packer& pk) const {                                      \
    constexpr auto names = troupe_field_names();                             \
    ::troupe::detail::pack_fields(pk, std::tie(__VA_ARGS__), names,          \
                                  std::make_index_sequence<names.size()>{}); \
  }                                                                          \
  void troupe_read(::troupe::detail::msgpack_reader& r) {                    \
    constexpr auto names = troupe_field_names();                             \
    ::troupe::detail::read_fields(r, std::tie(__VA_ARGS__), names,           \
                                  std::make_index_sequence<names.size()>{}); \
  }
