#pragma once

// UTF-8 by the well-formed table of Unicode (3.9, Table 3-7): what the
// terminal recorder and the LLM stream reader check their bytes against.

#include <cstddef>
#include <string_view>

namespace troupe {

enum class utf8_kind { valid, invalid, truncated };

struct utf8_step {
  utf8_kind kind;
  /// Valid: the character's length. Invalid or truncated: the maximal
  /// subpart to replace with one U+FFFD (Unicode's recommended practice).
  size_t length;
};

/// Decodes the sequence at `s[i]` by the well-formed table of Unicode 3.9
/// (Table 3-7): no overlong forms, no surrogates, nothing past U+10FFFF.
inline utf8_step next_utf8(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    return {utf8_kind::valid, 1};
  }
  size_t continuations = 0;
  unsigned char lo = 0x80;  // Range of the second byte; later ones are 80..BF.
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    continuations = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    continuations = 2;
    lo = b0 == 0xE0 ? 0xA0 : 0x80;
    hi = b0 == 0xED ? 0x9F : 0xBF;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    continuations = 3;
    lo = b0 == 0xF0 ? 0x90 : 0x80;
    hi = b0 == 0xF4 ? 0x8F : 0xBF;
  } else {
    return {utf8_kind::invalid, 1};
  }
  size_t length = 1;
  for (size_t k = 0; k < continuations; ++k) {
    if (i + length >= s.size()) {
      return {utf8_kind::truncated, length};
    }
    const auto b = static_cast<unsigned char>(s[i + length]);
    if (b < lo || b > hi) {
      return {utf8_kind::invalid, length};
    }
    lo = 0x80;
    hi = 0xBF;
    ++length;
  }
  return {utf8_kind::valid, length};
}

/// Whether all of `s` is well-formed UTF-8.
[[nodiscard]] inline bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const utf8_step step = next_utf8(s, i);
    if (step.kind != utf8_kind::valid) {
      return false;
    }
    i += step.length;
  }
  return true;
}

}  // namespace troupe
