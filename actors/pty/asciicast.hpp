#pragma once

// Writes session recordings in the asciicast v2 format (asciinema's
// newline-delimited JSON): one header line, then one `[time, kind, data]`
// line per event. Terminal output is arbitrary bytes, but JSON strings are
// UTF-8, so invalid sequences become U+FFFD; `utf8_carry` keeps a character
// that a read cut in two from being mangled that way.

#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::pty {

/// The header line (ending in '\n'): version 2, the terminal size, the start
/// as Unix seconds, env TERM=xterm-256color and SHELL=`shell`, and `title`.
[[nodiscard]] std::string asciicast_header(uint16_t cols, uint16_t rows, int64_t unix_ts,
                                           std::string_view title,
                                           std::string_view shell = "/bin/sh");

/// One event line (ending in '\n'): `[seconds, "kind", "data"]`, `seconds`
/// since the header's timestamp with microsecond precision (a negative or NaN
/// time is written as 0). `kind` is 'o' (output), 'i' (input), 'r' (resize,
/// data "COLSxROWS") or 'm' (marker). Invalid UTF-8 in `data` is written as
/// U+FFFD, one per maximal invalid subpart.
[[nodiscard]] std::string asciicast_event(double seconds, char kind, std::string_view data);

/// A resize event: `asciicast_event(seconds, 'r', "COLSxROWS")`.
[[nodiscard]] std::string asciicast_resize_event(double seconds, uint16_t cols, uint16_t rows);

/// Holds back a UTF-8 character cut at the end of one chunk until the next
/// chunk completes it. Keep one per stream (output and input apart):
///   auto data = carry.take(chunk); if (!data.empty()) write(asciicast_event(t, 'o', data));
struct utf8_carry {
  /// The start of a character still waiting for its last bytes (<= 3 bytes).
  std::string held;

  /// `held` + `chunk`, minus a trailing incomplete (but so far valid)
  /// character, which becomes the new `held`. May return "".
  [[nodiscard]] std::string take(std::string_view chunk);

  /// Returns and clears `held`; for the end of the stream, where an
  /// unfinished character can only be written as U+FFFD.
  [[nodiscard]] std::string flush();
};

}  // namespace troupe::pty
