#pragma once

// TROUPE_FIELDS(a, b, c) declares a message struct's fields once. From that
// one list come the msgpack codec (a map keyed by field name, so old and new
// nodes interoperate: unknown keys are skipped, missing keys keep their
// defaults) and the field names used in decode errors.
//
//   struct echo_request {
//     std::string text;
//     TROUPE_FIELDS(text)
//   };

#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include <msgpack.hpp>

namespace troupe::detail {

constexpr size_t count_fields(std::string_view names) {
  size_t n = 1;
  for (char c : names) {
    n += (c == ',') ? 1 : 0;
  }
  return n;
}

constexpr bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t'; }

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

/// Thrown inside decoding only; `decode` turns it into an error value.
struct field_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string_view msgpack_type_name(msgpack::type::object_type t);

template <class Packer, class Tuple, size_t... Is>
void pack_fields(Packer& pk, const Tuple& values, const auto& names, std::index_sequence<Is...>) {
  pk.pack_map(static_cast<uint32_t>(sizeof...(Is)));
  ((pk.pack_str(static_cast<uint32_t>(names[Is].size())),
    pk.pack_str_body(names[Is].data(), static_cast<uint32_t>(names[Is].size())),
    pk.pack(std::get<Is>(values))),
   ...);
}

template <class Field>
void convert_field(const msgpack::object& value, Field& field, std::string_view name) {
  try {
    value.convert(field);
  } catch (const msgpack::type_error&) {
    throw field_error("field '" + std::string(name) + "' has the wrong type (" +
                      std::string(msgpack_type_name(value.type)) + ")");
  }
}

template <class Tuple, size_t... Is>
void unpack_fields(const msgpack::object& o, Tuple values, const auto& names,
                   std::index_sequence<Is...>) {
  if (o.type != msgpack::type::MAP) {
    throw field_error("body must be a map, got " + std::string(msgpack_type_name(o.type)));
  }
  // Linear scan: message structs have few fields, and this allocates nothing.
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& kv = o.via.map.ptr[i];
    if (kv.key.type != msgpack::type::STR) {
      throw field_error("map keys must be strings, got " +
                        std::string(msgpack_type_name(kv.key.type)));
    }
    std::string_view key(kv.key.via.str.ptr, kv.key.via.str.size);
    ((key == names[Is] ? convert_field(kv.val, std::get<Is>(values), names[Is]) : void()), ...);
  }
}

}  // namespace troupe::detail

#define TROUPE_FIELDS(...)                                                                  \
  static constexpr auto troupe_field_names() {                                              \
    constexpr size_t n = ::troupe::detail::count_fields(#__VA_ARGS__);                      \
    return ::troupe::detail::split_fields<n>(#__VA_ARGS__);                                 \
  }                                                                                         \
  template <class Packer>                                                                   \
  void msgpack_pack(Packer& pk) const {                                                     \
    constexpr auto names = troupe_field_names();                                            \
    ::troupe::detail::pack_fields(pk, std::tie(__VA_ARGS__), names,                         \
                                  std::make_index_sequence<names.size()>{});                \
  }                                                                                         \
  void msgpack_unpack(const msgpack::object& o) {                                           \
    constexpr auto names = troupe_field_names();                                            \
    ::troupe::detail::unpack_fields(o, std::tie(__VA_ARGS__), names,                        \
                                    std::make_index_sequence<names.size()>{});              \
  }
