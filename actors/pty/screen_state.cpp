#include "actors/pty/screen_state.hpp"

#include <cassert>
#include <utility>

namespace troupe::pty {

namespace {

constexpr char esc = '\x1b';
constexpr char bel = '\x07';
/// CAN and SUB abort an escape sequence in a VT parser.
constexpr char can = '\x18';
constexpr char sub = '\x1a';

bool is_continuation(char c) noexcept {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

bool in_range(char c, unsigned char lo, unsigned char hi) noexcept {
  const auto b = static_cast<unsigned char>(c);
  return b >= lo && b <= hi;
}

}  // namespace

std::string_view to_string(activity a) noexcept {
  switch (a) {
    case activity::running:
      return "running";
    case activity::idle:
      return "idle";
    case activity::waiting:
      return "waiting";
  }
  return "running";
}

expected<screen_state> screen_state::create(std::chrono::milliseconds idle_after,
                                            std::string_view prompt_regex) {
  try {
    return screen_state(idle_after, prompt_regex);
  } catch (const std::regex_error& e) {
    return make_error(errc::config_invalid,
                      "invalid prompt pattern '" + std::string(prompt_regex) + "': " + e.what());
  }
}

screen_state::screen_state(std::chrono::milliseconds idle_after, std::string_view prompt_regex)
    : idle_after_(idle_after),
      prompt_(prompt_regex.begin(), prompt_regex.end(), std::regex::ECMAScript) {}

void screen_state::feed(std::string_view output, time_point now) {
  last_output_ = now;
  for (char c : output) {
    on_byte(c);
  }
  if (!output.empty()) {
    prompt_match_.reset();
  }
}

void screen_state::on_byte(char c) {
  if ((c == can || c == sub) && parse_ != parse::ground) {
    parse_ = parse::ground;
    return;
  }
  const bool in_sequence =
      parse_ == parse::escape || parse_ == parse::escape_intermediate || parse_ == parse::csi;
  if (in_sequence && c != esc && in_range(c, 0x00, 0x1F)) {
    on_ground(c);  // A VT parser acts on C0 controls (CR, LF, BS) mid-sequence.
    return;
  }
  switch (parse_) {
    case parse::ground:
      on_ground(c);
      return;
    case parse::escape:
      if (c == '[') {
        parse_ = parse::csi;
      } else if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_') {
        parse_ = parse::string;  // OSC, DCS, SOS, PM, APC: text up to ST.
      } else if (in_range(c, 0x20, 0x2F)) {
        parse_ = parse::escape_intermediate;  // e.g. ESC ( B
      } else if (c != esc) {
        parse_ = parse::ground;  // ESC + final, e.g. ESC 7, ESC =
      }
      return;
    case parse::escape_intermediate:
      if (c == esc) {
        parse_ = parse::escape;
      } else if (!in_range(c, 0x20, 0x2F)) {
        parse_ = parse::ground;
      }
      return;
    case parse::csi:
      if (c == esc) {
        parse_ = parse::escape;
      } else if (in_range(c, 0x40, 0x7E)) {
        parse_ = parse::ground;  // The final byte.
      }
      return;
    case parse::string:
      if (c == bel) {
        parse_ = parse::ground;  // xterm's short terminator for OSC.
      } else if (c == esc) {
        parse_ = parse::string_escape;
      }
      return;
    case parse::string_escape:
      // ST is ESC '\'; any other ESC starts a new sequence (the string ends).
      parse_ = parse::ground;
      if (c != '\\') {
        parse_ = parse::escape;
        on_byte(c);
      }
      return;
  }
}

void screen_state::on_ground(char c) {
  if (c == esc) {
    parse_ = parse::escape;
    return;
  }
  if (c == '\r' || c == '\n') {
    line_.clear();
    return;
  }
  if (c == '\b') {
    // Erase one character: its continuation bytes, then its first byte.
    while (!line_.empty() && is_continuation(line_.back())) {
      line_.pop_back();
    }
    if (!line_.empty()) {
      line_.pop_back();
    }
    return;
  }
  if (in_range(c, 0x00, 0x1F) && c != '\t') {
    return;  // Other controls (BEL, SI, ...) draw nothing.
  }
  line_ += c;
  if (line_.size() >= 2 * line_bytes_max) {
    // Trim in bulk, not per byte, so a long line costs O(n) overall.
    line_.erase(0, line_.size() - line_bytes_max);
  }
}

std::string_view screen_state::visible_line() const {
  std::string_view line = line_;
  if (line.size() <= line_bytes_max) {
    return line;
  }
  line.remove_prefix(line.size() - line_bytes_max);
  // Do not start on the middle of a character.
  while (!line.empty() && is_continuation(line.front())) {
    line.remove_prefix(1);
  }
  return line;
}

activity screen_state::state(time_point now) const {
  if (!last_output_) {
    return activity::running;
  }
  const auto quiet = now > *last_output_ ? now - *last_output_ : clock::duration::zero();
  if (quiet >= prompt_quiet) {
    if (!prompt_match_) {
      const std::string_view line = visible_line();
      prompt_match_ = std::regex_search(line.begin(), line.end(), prompt_);
    }
    if (*prompt_match_) {
      return activity::waiting;
    }
  }
  return quiet >= idle_after_ ? activity::idle : activity::running;
}

std::string screen_state::cursor_line() const {
  return std::string(visible_line());
}

}  // namespace troupe::pty
