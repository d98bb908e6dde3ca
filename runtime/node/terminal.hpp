#pragma once

// The terminal protocol: what a viewer (the gateway's WebSocket, through its
// viewer actor) and a session actor (the sessions family) say to each other.
// Every message is an envelope with a msgpack body, so a viewer may sit on
// another node than its session. The gateway does not link the family: this
// header is all they share.
//
//   viewer -> sessions/manager -> session
//     term.attach  {id, readonly, resume, from} -> term.attach.reply {from, cols, rows}
//                   request to the manager, which forwards it (sender kept)
//                   to the session's running incarnation, or holds it while
//                   the session restarts and forwards it to the next one.
//                   The sender becomes a viewer; the session replies, then
//                   sends the output it keeps from absolute offset `from`
//                   (everything it keeps unless `resume`), then all new output.
//   viewer -> session
//     term.input   {bytes}         keystrokes (ignored from read-only viewers)
//     term.resize  {cols, rows}
//     term.ack     {bytes}         output written to the client: credits back
//     term.detach  {}              the viewer leaves
//     term.signal  {signal}        INT, TERM, KILL or HUP to the terminal's
//                                  foreground process group when that is not
//                                  the session's own program (a command the
//                                  shell runs); ignored from read-only viewers
//   session -> viewer
//     term.output  {bytes}         terminal output, in order
//     term.control {json}          a notice for the client (a WebSocket text frame)
//     term.close   {why}           the session ended: close the connection
//
// Flow control: a session counts, per viewer, the output bytes sent and not
// yet acknowledged. While a viewer is more than `term_window_high` behind,
// the session stops reading its PTY (the program blocks, as on a slow
// terminal), and reads again below `term_window_low`. A viewer that stays
// behind longer than the session's patience is no longer waited for.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "runtime/error.hpp"
#include "runtime/protocol/fields.hpp"

namespace troupe {

/// Largest side (columns or rows) of a session's terminal.
inline constexpr int64_t terminal_side_max = 1000;

/// nullopt for a size the node accepts; else a bad_request naming it.
[[nodiscard]] inline std::optional<error> check_terminal_size(int64_t cols, int64_t rows) {
  if (cols >= 1 && cols <= terminal_side_max && rows >= 1 && rows <= terminal_side_max) {
    return std::nullopt;
  }
  return make_error(errc::bad_request, "cols and rows must be between 1 and " +
                                           std::to_string(terminal_side_max) + " (got " +
                                           std::to_string(cols) + "x" + std::to_string(rows) + ")");
}

namespace term {

inline constexpr const char* attach_type = "term.attach";
inline constexpr const char* input_type = "term.input";
inline constexpr const char* resize_type = "term.resize";
inline constexpr const char* ack_type = "term.ack";
inline constexpr const char* detach_type = "term.detach";
inline constexpr const char* signal_type = "term.signal";
inline constexpr const char* output_type = "term.output";
inline constexpr const char* control_type = "term.control";
inline constexpr const char* close_type = "term.close";

/// Output a viewer may have unacknowledged before its session stops reading.
inline constexpr size_t window_high = 1u << 20;
/// ... and below which it reads again.
inline constexpr size_t window_low = 256u << 10;

struct attach_request {
  std::string id;
  bool readonly = false;
  /// Re-attaching after a restart: send only what follows `from`.
  bool resume = false;
  uint64_t from = 0;
  TROUPE_FIELDS(id, readonly, resume, from)
};

struct attach_reply {
  /// Absolute offset of the first output byte the viewer will receive.
  uint64_t from = 0;
  uint16_t cols = 0;
  uint16_t rows = 0;
  TROUPE_FIELDS(from, cols, rows)
};

struct bytes_msg {
  std::string bytes;
  TROUPE_FIELDS(bytes)
};

struct resize_msg {
  uint16_t cols = 0;
  uint16_t rows = 0;
  TROUPE_FIELDS(cols, rows)
};

struct ack_msg {
  uint64_t bytes = 0;
  TROUPE_FIELDS(bytes)
};

/// A signal by name: "INT", "TERM", "KILL" or "HUP".
struct signal_msg {
  std::string signal;
  TROUPE_FIELDS(signal)
};

struct control_msg {
  std::string json;
  TROUPE_FIELDS(json)
};

struct close_msg {
  std::string why;
  TROUPE_FIELDS(why)
};

}  // namespace term

}  // namespace troupe
