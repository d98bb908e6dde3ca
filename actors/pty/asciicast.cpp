#include "actors/pty/asciicast.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <charconv>
#include <cmath>
#include <utility>

namespace troupe::pty {

namespace {

enum class utf8_kind { valid, invalid, truncated };

struct utf8_step {
  utf8_kind kind;
  /// Valid: the character's length. Invalid or truncated: the maximal
  /// subpart to replace with one U+FFFD (Unicode's recommended practice).
  size_t length;
};

/// Decodes the sequence at `s[i]` by the well-formed table of Unicode 3.9
/// (Table 3-7): no overlong forms, no surrogates, nothing past U+10FFFF.
utf8_step next_utf8(std::string_view s, size_t i) {
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

constexpr std::string_view replacement_char = "\xEF\xBF\xBD";

void append_escaped_ascii(std::string& out, char c) {
  switch (c) {
    case '"':
      out += "\\\"";
      return;
    case '\\':
      out += "\\\\";
      return;
    case '\n':
      out += "\\n";
      return;
    case '\r':
      out += "\\r";
      return;
    case '\t':
      out += "\\t";
      return;
    default:
      break;
  }
  if (static_cast<unsigned char>(c) < 0x20) {
    constexpr std::string_view hex = "0123456789abcdef";
    out += "\\u00";
    out += hex[static_cast<unsigned char>(c) >> 4];
    out += hex[static_cast<unsigned char>(c) & 0xF];
    return;
  }
  out += c;
}

/// Appends `s` as a JSON string literal that is always valid UTF-8.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    const utf8_step step = next_utf8(s, i);
    assert(step.length > 0);
    if (step.kind != utf8_kind::valid) {
      out += replacement_char;
    } else if (step.length == 1) {
      append_escaped_ascii(out, s[i]);
    } else {
      out.append(s, i, step.length);
    }
    i += step.length;
  }
  out += '"';
}

/// Why a ceiling: a fixed-notation double can need ~310 digits; no recording
/// lasts 10^12 seconds, so clamping keeps the buffer small and the line sane.
constexpr double seconds_max = 1e12;

void append_seconds(std::string& out, double seconds) {
  if (!(seconds >= 0)) {
    seconds = 0;  // Also catches NaN.
  }
  seconds = std::min(seconds, seconds_max);
  std::array<char, 32> buf{};
  // to_chars, not printf: printf follows LC_NUMERIC and may write a comma.
  const auto [end, ec] =
      std::to_chars(buf.data(), buf.data() + buf.size(), seconds, std::chars_format::fixed, 6);
  assert(ec == std::errc{});
  out.append(buf.data(), end);
}

}  // namespace

std::string asciicast_header(uint16_t cols, uint16_t rows, int64_t unix_ts, std::string_view title,
                             std::string_view shell) {
  std::string out = R"({"version":2,"width":)";
  out += std::to_string(cols);
  out += R"(,"height":)";
  out += std::to_string(rows);
  out += R"(,"timestamp":)";
  out += std::to_string(unix_ts);
  out += R"(,"env":{"TERM":"xterm-256color","SHELL":)";
  append_json_string(out, shell);
  out += R"(},"title":)";
  append_json_string(out, title);
  out += "}\n";
  return out;
}

std::string asciicast_event(double seconds, char kind, std::string_view data) {
  assert(kind == 'o' || kind == 'i' || kind == 'r' || kind == 'm');
  std::string out;
  out.reserve(data.size() + 32);
  out += '[';
  append_seconds(out, seconds);
  out += ",\"";
  out += kind;
  out += "\",";
  append_json_string(out, data);
  out += "]\n";
  return out;
}

std::string asciicast_resize_event(double seconds, uint16_t cols, uint16_t rows) {
  return asciicast_event(seconds, 'r', std::to_string(cols) + "x" + std::to_string(rows));
}

std::string utf8_carry::take(std::string_view chunk) {
  std::string out = std::move(held);
  held.clear();
  out.append(chunk);
  // Look back at most three bytes for the start of the last character.
  const size_t lookback = std::min<size_t>(out.size(), 3);
  for (size_t k = 1; k <= lookback; ++k) {
    const size_t at = out.size() - k;
    if ((static_cast<unsigned char>(out[at]) & 0xC0) == 0x80) {
      continue;  // A continuation byte: the start is further back.
    }
    if (next_utf8(out, at).kind == utf8_kind::truncated) {
      held.assign(out, at, std::string::npos);
      out.resize(at);
    }
    break;
  }
  return out;
}

std::string utf8_carry::flush() {
  return std::exchange(held, std::string());
}

}  // namespace troupe::pty
