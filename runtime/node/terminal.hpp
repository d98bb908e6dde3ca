#pragma once

// A terminal viewer (the gateway's WebSocket) and the session it watches
// (the sessions family) meet through these two interfaces, so the gateway
// does not link the family. Both sides are thread-safe.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "runtime/error.hpp"

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

/// What a session does to a viewer.
class terminal_viewer {
 public:
  virtual ~terminal_viewer() = default;
  /// Terminal output (a binary frame).
  virtual void output(std::string bytes) = 0;
  /// A control message (a text frame), e.g. {"type":"notice",...}.
  virtual void control(std::string json) = 0;
  /// Ends the viewer's connection (the session ended, or the viewer is too
  /// slow); `why` goes in the close frame.
  virtual void close(std::string why) = 0;
  /// The viewer went away; the session forgets it.
  [[nodiscard]] virtual bool gone() const = 0;
  /// Bytes sent to it and not yet written to its connection: the session
  /// pauses reading while a viewer is far behind.
  [[nodiscard]] virtual size_t backlog() const = 0;
};

/// What a viewer does to its session.
class terminal_port {
 public:
  virtual ~terminal_port() = default;
  virtual void input(std::string bytes) = 0;
  virtual void resize(uint16_t cols, uint16_t rows) = 0;
};

/// Attaches `viewer` to session `id`: it first receives the recent output,
/// then everything new. Errors: not_found (no such session).
using attach_handler = std::function<expected<std::shared_ptr<terminal_port>>(
    const std::string& id, std::shared_ptr<terminal_viewer> viewer)>;

}  // namespace troupe
