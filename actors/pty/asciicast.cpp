#include "actors/pty/asciicast.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <charconv>
#include <cmath>
#include <utility>

#include "runtime/text/utf8.hpp"

namespace troupe::pty {

namespace {

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
