#pragma once

// The configuration's closed sets of values. Each is an enum whose names,
// in order, are what config files, env and flags spell; the config loader
// refuses any other name, so code past it only sees valid values.

#include <array>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace troupe {

/// log.level: least to most severe; `off` logs nothing.
enum class log_level : uint8_t { trace, debug, info, warn, error, critical, off };
/// log.format: text for people, json (one object per line) for collectors.
enum class log_format : uint8_t { text, json };
/// cache.shard_policy: how the shard threads are scheduled (idle: only
/// when nothing else wants the core).
enum class shard_policy : uint8_t { normal, idle };

/// The names of an enum's values, indexed by value.
template <class E>
struct choice_names;

template <>
struct choice_names<log_level> {
  static constexpr std::array<std::string_view, 7> names{"trace", "debug",    "info", "warn",
                                                         "error", "critical", "off"};
};
template <>
struct choice_names<log_format> {
  static constexpr std::array<std::string_view, 2> names{"text", "json"};
};
template <>
struct choice_names<shard_policy> {
  static constexpr std::array<std::string_view, 2> names{"normal", "idle"};
};

template <class E>
concept config_choice = std::is_enum_v<E> && requires {
  choice_names<E>::names;
};

template <config_choice E>
[[nodiscard]] constexpr std::string_view to_string(E value) noexcept {
  return choice_names<E>::names[static_cast<size_t>(value)];
}

/// The value named `name`, or false.
template <config_choice E>
[[nodiscard]] constexpr bool from_string(std::string_view name, E& out) noexcept {
  const auto& names = choice_names<E>::names;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) {
      out = static_cast<E>(i);
      return true;
    }
  }
  return false;
}

}  // namespace troupe
